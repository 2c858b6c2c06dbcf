"""List filters, sorting and paging for a SQLAlchemy model, from plain data.

A caller over RPC sends JSON-shaped data; this module checks it against the
model's columns and turns it into SQLAlchemy expressions. Nothing a caller
sends becomes SQL text: a field name is only ever a key into the model's own
columns, and a value is only ever a bound parameter of the column's type.

A filter is a condition or a group::

    {"field": "last_name", "op": "eq", "value": "Turner"}
    {"and": [condition_or_group, ...]}
    {"or": [condition_or_group, ...]}
    {"not": condition_or_group}

and a list of them means "all of these". Operators: eq, ne, lt, le, gt, ge,
in, not_in, like, ilike, is_null, is_not_null. Sorting is a list of keys,
each ``"field"``, ``"-field"`` (descending) or
``{"field": ..., "direction": "asc" | "desc"}``.

Usage::

    contacts = ModelQuery(Contact, max_page_size=1000)
    query = (
        select(Contact)
        .where(*contacts.where([{"field": "email", "op": "is_null"}]))
        .order_by(*contacts.order_by(["-birthdate"]))
    )

Errors (all ``ValueError``, so they read as the caller's mistake)::

    InvalidQuery
     ├── InvalidFilter   a field, operator, value or group that cannot be used
     ├── InvalidOrder    a sort key that names no sortable field or direction
     └── InvalidPage     an offset or limit that is not a usable whole number

Each message says where in the request the problem is (``filters[0].or[1]``)
and names the field or operator.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, inspect, not_, or_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import UnaryExpression

__all__ = [
    "OPERATORS",
    "InvalidFilter",
    "InvalidOrder",
    "InvalidPage",
    "InvalidQuery",
    "ModelQuery",
]

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # nested groups
MAX_CONDITIONS = 100  # conditions in one request
MAX_IN_VALUES = 1000  # values for in / not_in


class InvalidQuery(ValueError):
    """A filter, sort key or page the model cannot answer."""


class InvalidFilter(InvalidQuery):
    pass


class InvalidOrder(InvalidQuery):
    pass


class InvalidPage(InvalidQuery):
    pass


Column = InstrumentedAttribute[Any]

# Each operator: how many values it takes ("one", "many" or "none") and how it
# builds the condition from the column and the checked value.
OPERATORS: dict[str, tuple[str, Callable[[Column, Any], ColumnElement[bool]]]] = {
    "eq": ("one", lambda column, value: column == value),
    "ne": ("one", lambda column, value: column != value),
    "lt": ("one", lambda column, value: column < value),
    "le": ("one", lambda column, value: column <= value),
    "gt": ("one", lambda column, value: column > value),
    "ge": ("one", lambda column, value: column >= value),
    "in": ("many", lambda column, value: column.in_(value)),
    "not_in": ("many", lambda column, value: column.not_in(value)),
    "like": ("one", lambda column, value: column.like(value)),
    "ilike": ("one", lambda column, value: column.ilike(value)),
    "is_null": ("none", lambda column, value: column.is_(None)),
    "is_not_null": ("none", lambda column, value: column.is_not(None)),
}
_TEXT_ONLY = {"like", "ilike"}
_GROUPS = {"and", "or", "not"}
_CONDITION_KEYS = {"field", "op", "value"}


class ModelQuery:
    """Checks and compiles filters, sort keys and pages for one model.

    ``fields`` limits what callers may filter and sort on (default: every
    mapped column); ``max_page_size`` caps a page, larger limits are cut down.
    """

    def __init__(
        self,
        model: type[Any],
        fields: Iterable[str] | None = None,
        max_page_size: int = 100,
    ) -> None:
        mapper = inspect(model)
        columns = {attr.key: getattr(model, attr.key) for attr in mapper.column_attrs}
        if fields is not None:
            wanted = list(fields)
            unknown = sorted(set(wanted) - set(columns))
            if unknown:
                raise ValueError(
                    f"{model.__name__} has no column {', '.join(unknown)}; "
                    f"it has {', '.join(sorted(columns))}"
                )
            columns = {name: columns[name] for name in wanted}
        self.model = model
        self.columns: dict[str, Column] = columns
        self.primary_key: list[Column] = [
            getattr(model, mapper.get_property_by_column(column).key)
            for column in mapper.primary_key
        ]
        self.max_page_size = max_page_size

    # -- filters -----------------------------------------------------------

    def where(self, filters: Any) -> list[ColumnElement[bool]]:
        """The conditions for ``filters`` (None, one filter or a list of them)."""
        if filters is None:
            return []
        budget = [MAX_CONDITIONS]
        if isinstance(filters, list):
            return [
                self._node(item, f"filters[{index}]", 1, budget)
                for index, item in enumerate(filters)
            ]
        return [self._node(filters, "filters", 1, budget)]

    def _node(
        self, node: Any, where: str, depth: int, budget: list[int]
    ) -> ColumnElement[bool]:
        if depth > MAX_DEPTH:
            raise InvalidFilter(f"{where}: groups nest deeper than {MAX_DEPTH}")
        if not isinstance(node, Mapping):
            raise InvalidFilter(
                f"{where}: expected an object with field and op, or an and/or/not"
                f" group, got {type(node).__name__}"
            )
        groups = _GROUPS & node.keys()
        if groups:
            if len(node) != 1:
                raise InvalidFilter(
                    f"{where}: a group has exactly one key (and, or or not), "
                    f"got {', '.join(sorted(map(str, node)))}"
                )
            return self._group(groups.pop(), node, where, depth, budget)
        return self._condition(node, where, budget)

    def _group(
        self,
        kind: str,
        node: Mapping[str, Any],
        where: str,
        depth: int,
        budget: list[int],
    ) -> ColumnElement[bool]:
        inner = node[kind]
        if kind == "not":
            return not_(self._node(inner, f"{where}.not", depth + 1, budget))
        if not isinstance(inner, list) or not inner:
            raise InvalidFilter(f"{where}.{kind}: expected a non-empty list")
        parts = [
            self._node(item, f"{where}.{kind}[{index}]", depth + 1, budget)
            for index, item in enumerate(inner)
        ]
        return and_(*parts) if kind == "and" else or_(*parts)

    def _condition(
        self, node: Mapping[str, Any], where: str, budget: list[int]
    ) -> ColumnElement[bool]:
        budget[0] -= 1
        if budget[0] < 0:
            raise InvalidFilter(f"{where}: more than {MAX_CONDITIONS} conditions")
        extra = set(node) - _CONDITION_KEYS
        if extra:
            raise InvalidFilter(
                f"{where}: unexpected key {', '.join(sorted(map(repr, extra)))}; "
                "a condition has field, op and value"
            )
        column, name = self._column(node.get("field"), where, InvalidFilter)
        op = node.get("op")
        if not isinstance(op, str) or op not in OPERATORS:
            raise InvalidFilter(
                f"{where}: unknown operator {op!r} for field {name!r}; "
                f"use one of {', '.join(OPERATORS)}"
            )
        arity, build = OPERATORS[op]
        if op in _TEXT_ONLY and _python_type(column) is not str:
            raise InvalidFilter(f"{where}: {op} needs a text field, {name!r} is not")
        value = node.get("value")
        if arity == "none":
            if value is not None:
                raise InvalidFilter(f"{where}: {op} on {name!r} takes no value")
        elif arity == "many":
            if not isinstance(value, list):
                raise InvalidFilter(f"{where}: {op} on {name!r} needs a list of values")
            if len(value) > MAX_IN_VALUES:
                raise InvalidFilter(
                    f"{where}: {op} on {name!r} takes at most {MAX_IN_VALUES} values"
                )
            value = [_checked(column, name, item, where) for item in value]
        else:
            if value is None:
                raise InvalidFilter(
                    f"{where}: {op} on {name!r} needs a value; "
                    "use is_null or is_not_null for null"
                )
            value = _checked(column, name, value, where)
        return build(column, value)

    # -- sorting and paging --------------------------------------------------

    def order_by(self, keys: Any) -> list[UnaryExpression[Any]]:
        """Sort expressions for ``keys``, ending with the primary key so that
        pages do not overlap or skip rows that share a sort value."""
        if keys is None:
            keys = []
        if isinstance(keys, str | Mapping):
            keys = [keys]
        if not isinstance(keys, list):
            raise InvalidOrder(
                f"order_by: expected a list of sort keys, got {type(keys).__name__}"
            )
        clauses = []
        for index, key in enumerate(keys):
            where = f"order_by[{index}]"
            if isinstance(key, str):
                descending = key.startswith("-")
                field: Any = key[1:] if descending else key
            elif isinstance(key, Mapping):
                extra = set(key) - {"field", "direction"}
                if extra:
                    raise InvalidOrder(
                        f"{where}: unexpected key "
                        f"{', '.join(sorted(map(repr, extra)))}; "
                        "a sort key has field and direction"
                    )
                direction = key.get("direction", "asc")
                if direction not in ("asc", "desc"):
                    raise InvalidOrder(
                        f"{where}: direction must be 'asc' or 'desc', got {direction!r}"
                    )
                field, descending = key.get("field"), direction == "desc"
            else:
                raise InvalidOrder(
                    f"{where}: expected 'field', '-field' or "
                    f"{{'field', 'direction'}}, got {type(key).__name__}"
                )
            column, _ = self._column(field, where, InvalidOrder)
            clauses.append(column.desc() if descending else column.asc())
        clauses.extend(column.asc() for column in self.primary_key)
        return clauses

    def page(self, offset: Any, limit: Any) -> tuple[int, int]:
        """``(offset, limit)`` checked; a limit above the maximum is cut to it
        and a negative one to 0."""
        for name, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidPage(
                    f"{name} must be a whole number, got {type(value).__name__}"
                )
        if offset < 0:
            raise InvalidPage(f"offset must be 0 or more, got {offset}")
        return offset, max(0, min(limit, self.max_page_size))

    # -- helpers -----------------------------------------------------------

    def _column(
        self, field: Any, where: str, error: type[InvalidQuery]
    ) -> tuple[Column, str]:
        if not isinstance(field, str) or field not in self.columns:
            raise error(
                f"{where}: unknown field {field!r}; "
                f"use one of {', '.join(self.columns)}"
            )
        return self.columns[field], field


def _python_type(column: Column) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def _checked(column: Column, name: str, value: Any, where: str) -> Any:
    """``value`` as the column's Python type, or InvalidFilter."""
    expected = _python_type(column)
    if expected is None:
        raise InvalidFilter(f"{where}: field {name!r} cannot be filtered on")
    if expected is bool:
        ok = isinstance(value, bool)
    elif expected in (int, float, Decimal):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if expected is int and isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
    elif expected in (datetime.date, datetime.datetime):
        return _parsed_time(expected, name, value, where)
    else:
        ok = isinstance(value, expected)
    if not ok:
        raise InvalidFilter(
            f"{where}: field {name!r} takes {expected.__name__} values, "
            f"got {type(value).__name__} {value!r:.40}"
        )
    return value


def _parsed_time(expected: type, name: str, value: Any, where: str) -> Any:
    if isinstance(value, str):
        try:
            if expected is datetime.date:
                return datetime.date.fromisoformat(value)
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidFilter(
        f"{where}: field {name!r} takes ISO {expected.__name__} strings "
        f"such as 2024-01-31, got {value!r:.40}"
    )
