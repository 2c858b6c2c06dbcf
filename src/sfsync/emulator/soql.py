"""A small SOQL dialect: tokenizer, recursive-descent parser, binder and evaluator.

Supported: `SELECT f, ... | COUNT() FROM Obj [WHERE expr] [ORDER BY f [ASC|DESC]
[NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]`, with AND/OR/NOT, parentheses,
= != <> < <= > >= IN, NOT IN, LIKE, and string, number, boolean, null, date and
datetime literals, and one level of parent relationship paths (`Account.Name`)
in SELECT, WHERE and ORDER BY. Aggregates other than COUNT(), date literals
such as TODAY and subqueries are rejected as MALFORMED_QUERY.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sfsync.emulator import ids
from sfsync.emulator.errors import SoqlError
from sfsync.emulator.schema import SObjectType, lookup, relationship

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}
        (?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>[+-]?\d+(?:\.\d+)?(?![\w.]))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}
_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY",
    "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "NULL", "TRUE",
    "FALSE", "INCLUDES", "EXCLUDES", "GROUP", "HAVING",
}  # fmt: skip
_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    value: Any
    pos: int


@dataclass(frozen=True)
class DateLiteral:
    text: str


@dataclass(frozen=True)
class DateTimeLiteral:
    text: str


@dataclass
class Condition:
    field: str
    op: str
    value: Any


@dataclass
class BoolOp:
    op: str
    operands: list[Expr]


@dataclass
class Not:
    operand: Expr


Expr = Condition | BoolOp | Not


@dataclass
class OrderItem:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass
class Query:
    """A parsed (and, after `bind`, schema-checked) SELECT statement."""

    fields: list[str]
    sobject: str
    count: bool = False
    where: Expr | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    sotype: SObjectType | None = None
    # Canonical parent path ("Account.Name") -> (lookup field, parent field).
    paths: dict[str, tuple[str, str]] = field(default_factory=dict)
    path_types: dict[str, str] = field(default_factory=dict)
    _predicate: Callable[[dict[str, Any]], bool] | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """Whether a stored record satisfies WHERE (the predicate is cached)."""
        if self._predicate is None:
            self._predicate = compile_where(self)
        return self._predicate(record)

    def field_type(self, name: str) -> str:
        if name in self.path_types:
            return self.path_types[name]
        assert self.sotype is not None
        return self.sotype.fields[name].type

    def where_fields(self) -> set[str]:
        found: set[str] = set()

        def walk(expr: Expr | None) -> None:
            if isinstance(expr, Condition):
                found.add(expr.field)
            elif isinstance(expr, BoolOp):
                for operand in expr.operands:
                    walk(operand)
            elif isinstance(expr, Not):
                walk(expr.operand)

        walk(self.where)
        return found


def _unescape(body: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            nxt = body[index + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt in "%_":
                # Kept escaped so LIKE can tell a literal % or _ from a wildcard.
                out.append("\\" + nxt)
            else:
                raise SoqlError(f"Invalid string literal escape: \\{nxt}")
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise SoqlError(f"unexpected token: '{text[pos : pos + 20]}'")
        kind = match.lastgroup or ""
        raw = match.group()
        pos = match.end()
        if kind == "ws":
            continue
        value: Any = raw
        if kind == "string":
            value = _unescape(raw[1:-1])
        elif kind == "number":
            value = float(raw) if "." in raw else int(raw)
        elif kind == "date":
            value = DateLiteral(raw)
        elif kind == "datetime":
            value = DateTimeLiteral(raw)
        elif kind == "ident" and raw.upper() in _KEYWORDS:
            kind = "keyword"
            value = raw.upper()
        tokens.append(Token(kind, raw, value, match.start()))
    tokens.append(Token("eof", "", None, len(text)))
    return tokens


class Parser:
    """Recursive-descent parser over the token list of one statement."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _fail(self) -> SoqlError:
        token = self.current
        shown = token.text or "<EOF>"
        return SoqlError(f"unexpected token: '{shown}'")

    def _advance(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def _is_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.value in words

    def _expect_keyword(self, word: str) -> None:
        if not self._is_keyword(word):
            raise self._fail()
        self._advance()

    def _expect_punct(self, char: str) -> None:
        if self.current.kind != "punct" or self.current.text != char:
            raise self._fail()
        self._advance()

    def _field_name(self) -> str:
        if self.current.kind != "ident":
            raise self._fail()
        return str(self._advance().text)

    def _integer(self) -> int:
        token = self.current
        if token.kind != "number" or not isinstance(token.value, int):
            raise self._fail()
        self._advance()
        return int(token.value)

    def parse(self) -> Query:
        self._expect_keyword("SELECT")
        count = False
        fields: list[str] = []
        if (
            self.current.kind == "ident"
            and self.current.text.upper() == "COUNT"
            and self.tokens[self.index + 1].text == "("
        ):
            self._advance()
            self._expect_punct("(")
            if self.current.text != ")":
                raise SoqlError("Only COUNT() without a field is supported")
            self._expect_punct(")")
            count = True
        else:
            fields.append(self._field_name())
            while self.current.text == ",":
                self._advance()
                fields.append(self._field_name())
        self._expect_keyword("FROM")
        if self.current.kind != "ident":
            raise self._fail()
        query = Query(fields, self._advance().text, count=count)
        if self._is_keyword("WHERE"):
            self._advance()
            query.where = self._or_expr()
        if self._is_keyword("ORDER"):
            self._advance()
            self._expect_keyword("BY")
            query.order_by.append(self._order_item())
            while self.current.text == ",":
                self._advance()
                query.order_by.append(self._order_item())
        if self._is_keyword("LIMIT"):
            self._advance()
            query.limit = self._integer()
        if self._is_keyword("OFFSET"):
            self._advance()
            query.offset = self._integer()
        if self.current.kind != "eof":
            raise self._fail()
        return query

    def _order_item(self) -> OrderItem:
        item = OrderItem(self._field_name())
        if self._is_keyword("ASC", "DESC"):
            item.descending = self._advance().value == "DESC"
        item.nulls_last = item.descending
        if self._is_keyword("NULLS"):
            self._advance()
            if not self._is_keyword("FIRST", "LAST"):
                raise self._fail()
            item.nulls_last = self._advance().value == "LAST"
        return item

    def _or_expr(self) -> Expr:
        operands = [self._and_expr()]
        while self._is_keyword("OR"):
            self._advance()
            operands.append(self._and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("OR", operands)

    def _and_expr(self) -> Expr:
        operands = [self._not_expr()]
        while self._is_keyword("AND"):
            self._advance()
            operands.append(self._not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("AND", operands)

    def _not_expr(self) -> Expr:
        if self._is_keyword("NOT"):
            self._advance()
            return Not(self._not_expr())
        if self.current.text == "(":
            self._advance()
            expr = self._or_expr()
            self._expect_punct(")")
            return expr
        return self._condition()

    def _condition(self) -> Expr:
        name = self._field_name()
        token = self.current
        if token.kind == "op":
            self._advance()
            op = "!=" if token.text == "<>" else token.text
            return Condition(name, op, self._literal())
        if self._is_keyword("LIKE"):
            self._advance()
            if self.current.kind != "string":
                raise self._fail()
            return Condition(name, "LIKE", self._advance().value)
        negate = False
        if self._is_keyword("NOT"):
            self._advance()
            negate = True
        if self._is_keyword("IN"):
            self._advance()
            self._expect_punct("(")
            values = [self._literal()]
            while self.current.text == ",":
                self._advance()
                values.append(self._literal())
            self._expect_punct(")")
            return Condition(name, "NOT IN" if negate else "IN", values)
        raise self._fail()

    def _literal(self) -> Any:
        token = self.current
        if token.kind in ("string", "number", "date", "datetime"):
            self._advance()
            return token.value
        if token.kind == "keyword" and token.value in ("NULL", "TRUE", "FALSE"):
            self._advance()
            return {"NULL": None, "TRUE": True, "FALSE": False}[token.value]
        raise self._fail()


def parse(text: str) -> Query:
    """Parse one SOQL statement; raise SoqlError (MALFORMED_QUERY) on bad syntax."""
    return Parser(text).parse()


def _datetime_text(literal: DateTimeLiteral | DateLiteral) -> str:
    """Canonical stored form (…000+0000) of a date or datetime literal."""
    text = literal.text
    if isinstance(literal, DateLiteral):
        text += "T00:00:00Z"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}+0000"


def bind(query: Query, allowed: Iterable[str] | None = None) -> Query:
    """Resolve the sObject and field names to their canonical spelling.

    Raises INVALID_TYPE for an unknown sObject and INVALID_FIELD for an unknown
    column; literals are converted to the stored form of their field's type.
    """
    sotype = lookup(query.sobject)
    allowed_names = {name.lower() for name in allowed} if allowed else None
    if sotype is None or (allowed_names and sotype.name.lower() not in allowed_names):
        raise SoqlError(
            f"sObject type '{query.sobject}' is not supported. If you are "
            "attempting to use a custom object, be sure to append the '__c' "
            "after the entity name.",
            "INVALID_TYPE",
        )
    query.sotype = sotype
    query.sobject = sotype.name

    def canonical(name: str) -> str:
        if "." in name:
            return parent_path(name)
        spec = sotype.field(name)
        if spec is None:
            raise SoqlError(
                f"No such column '{name}' on entity '{sotype.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' "
                "after the custom field name.",
                "INVALID_FIELD",
            )
        return spec.name

    def parent_path(name: str) -> str:
        head, _, tail = name.partition(".")
        link = relationship(sotype, head)
        parent_spec = link[1].field(tail) if link else None
        if link is None or parent_spec is None:
            raise SoqlError(
                f"Didn't understand relationship '{head}' in field path "
                f"'{name}'. If you are attempting to use a custom relationship, "
                "be sure to append the '__r' after the custom relationship name.",
                "INVALID_FIELD",
            )
        path = f"{link[0].name[:-2]}.{parent_spec.name}"
        query.paths[path] = (link[0].name, parent_spec.name)
        query.path_types[path] = parent_spec.type
        return path

    seen: list[str] = []
    for name in query.fields:
        resolved = canonical(name)
        if resolved not in seen:
            seen.append(resolved)
    query.fields = seen
    for item in query.order_by:
        item.field = canonical(item.field)

    def bind_expr(expr: Expr) -> None:
        if isinstance(expr, BoolOp):
            for operand in expr.operands:
                bind_expr(operand)
        elif isinstance(expr, Not):
            bind_expr(expr.operand)
        else:
            expr.field = canonical(expr.field)
            field_type = query.field_type(expr.field)
            if isinstance(expr.value, list):
                expr.value = [_bind_value(field_type, v) for v in expr.value]
            elif expr.op == "LIKE":
                if field_type in ("id", "reference", "boolean", "double"):
                    raise SoqlError(
                        f"invalid operator on {field_type} field: LIKE",
                        "INVALID_QUERY_FILTER_OPERATOR",
                    )
            else:
                expr.value = _bind_value(field_type, expr.value)

    if query.where is not None:
        bind_expr(query.where)
    return query


def _bind_value(field_type: str, value: Any) -> Any:
    if value is None:
        return None
    if field_type in ("id", "reference"):
        normalized = ids.normalize(value)
        if normalized is None:
            raise SoqlError(
                f"invalid ID field: {value}", "INVALID_QUERY_FILTER_OPERATOR"
            )
        return normalized
    if field_type in ("datetime", "date") and isinstance(
        value, DateLiteral | DateTimeLiteral
    ):
        if field_type == "date":
            return value.text[:10]
        return _datetime_text(value)
    if isinstance(value, DateLiteral | DateTimeLiteral):
        raise SoqlError(
            f"value of filter criterion for field must be of type {field_type} "
            "and should not be enclosed in quotes",
            "INVALID_QUERY_FILTER_OPERATOR",
        )
    if isinstance(value, str) and "\\" in value:
        return value.replace("\\%", "%").replace("\\_", "_")
    return value


def _fold(value: Any) -> Any:
    # SOQL compares text case-insensitively.
    return value.lower() if isinstance(value, str) else value


def _equals(left: Any, right: Any, case_sensitive: bool) -> bool:
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    if case_sensitive:
        return bool(left == right)
    return bool(_fold(left) == _fold(right))


def _like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            out.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        index += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def compile_where(query: Query) -> Callable[[dict[str, Any]], bool]:
    """Build a predicate over stored records for the bound query's WHERE."""
    sotype = query.sotype
    assert sotype is not None

    def build(expr: Expr) -> Callable[[dict[str, Any]], bool]:
        if isinstance(expr, BoolOp):
            parts = [build(operand) for operand in expr.operands]
            if expr.op == "AND":
                return lambda rec: all(part(rec) for part in parts)
            return lambda rec: any(part(rec) for part in parts)
        if isinstance(expr, Not):
            inner = build(expr.operand)
            return lambda rec: not inner(rec)
        name, op, value = expr.field, expr.op, expr.value
        exact = query.field_type(name) in ("id", "reference")
        if op == "=":
            return lambda rec: _equals(rec.get(name), value, exact)
        if op == "!=":
            return lambda rec: not _equals(rec.get(name), value, exact)
        if op == "IN":
            return lambda rec: any(_equals(rec.get(name), v, exact) for v in value)
        if op == "NOT IN":
            return lambda rec: not any(_equals(rec.get(name), v, exact) for v in value)
        if op == "LIKE":
            regex = _like_regex(value)
            return lambda rec: (
                isinstance(rec.get(name), str) and bool(regex.fullmatch(rec[name]))
            )
        return _ordering(name, op, value, exact)

    if query.where is None:
        return lambda rec: True
    return build(query.where)


def _ordering(
    name: str, op: str, value: Any, exact: bool
) -> Callable[[dict[str, Any]], bool]:
    compare = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]
    right = value if exact else _fold(value)

    def predicate(rec: dict[str, Any]) -> bool:
        left = rec.get(name)
        if left is None or right is None:
            return False
        try:
            return bool(compare(left if exact else _fold(left), right))
        except TypeError:
            return False

    return predicate


def execute(query: Query, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Filter, sort and slice stored records; projection is left to the caller."""
    predicate = compile_where(query)
    matched = [row for row in rows if predicate(row)]
    # Stable sorts applied from the last key to the first give a multi-key order.
    for item in reversed(query.order_by):
        present = [row for row in matched if row.get(item.field) is not None]
        absent = [row for row in matched if row.get(item.field) is None]
        present.sort(key=lambda row: _fold(row[item.field]), reverse=item.descending)
        matched = present + absent if item.nulls_last else absent + present
    start = query.offset or 0
    end = None if query.limit is None else start + query.limit
    return matched[start:end]
