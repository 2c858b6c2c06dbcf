"""Auto-generated CRUD over RPC for a SQLAlchemy model, with list filters.

Inherit ``CrudEntrypoints`` and name the model in the class statement; the
service gets ``get``, ``create``, ``update``, ``delete``, ``list`` and
``count`` as real ``@rpc`` entrypoints, and an event after each committed
change::

    class NotesService(CrudEntrypoints, model=Note, record="note"):
        name = "notes"

        db = Database(Base)         # the session: self.db.session
        dispatch = EventDispatcher()  # note_created / note_updated / note_deleted

``list`` and ``count`` take the filters of ``sfsync.extensions.filters``;
``list`` also sorts and pages. Class keywords: ``model`` (required),
``record`` (the name in events and messages; default the table name),
``event_fields`` (columns copied into event payloads; default ``("id",)``),
``fields`` (what callers may filter and sort on; default every column),
``page_size`` (default limit) and ``max_page_size``, ``not_found`` (the
``RecordNotFound`` subclass ``update`` raises).

What a service can change is in the ``crud_*`` hooks: ``crud_clean``
(validate incoming data), ``crud_assign``, ``crud_serialize``,
``crud_before_commit`` (add rows to the same transaction), ``crud_announce``
(the event and its log line) and ``crud_session``. A service may replace an
entrypoint by defining the method again with its own ``@rpc``; one it
redefines without ``@rpc`` stops being an entrypoint.

Errors::

    CrudError
     ├── RecordNotFound      no record with that id (also LookupError)
     └── InvalidRecord       data the model refuses (also ValueError)
    InvalidQuery             from filters: bad filter, sort key or page
     ├── InvalidFilter
     ├── InvalidOrder
     └── InvalidPage

All are declared ``expected_exceptions`` of the entrypoints that raise them.
"""

from __future__ import annotations

import builtins
import datetime
import logging
import types
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, ClassVar

from nameko.rpc import rpc
from sqlalchemy import ColumnElement, Select, func, inspect, select
from sqlalchemy.orm import Session

from sfsync.extensions.filters import (
    InvalidFilter,
    InvalidOrder,
    InvalidPage,
    InvalidQuery,
    ModelQuery,
)

__all__ = [
    "CrudEntrypoints",
    "CrudError",
    "InvalidFilter",
    "InvalidOrder",
    "InvalidPage",
    "InvalidQuery",
    "InvalidRecord",
    "RecordNotFound",
]

log = logging.getLogger(__name__)


class CrudError(Exception):
    """Root of the errors a CRUD entrypoint raises about records."""


class RecordNotFound(CrudError, LookupError):
    pass


class InvalidRecord(CrudError, ValueError):
    pass


class CrudEntrypoints:
    """get, create, update, delete, list and count over RPC for one model.

    Consumes: ``self.db.session`` (override ``crud_session`` for another
    provider) and ``self.dispatch`` (an ``EventDispatcher``).
    Emits: ``<record>_created``, ``<record>_updated``, ``<record>_deleted``
    after the commit, with the ``event_fields`` of the record.
    Raises: ``InvalidRecord``, ``RecordNotFound``, ``InvalidQuery``.
    """

    crud_model: ClassVar[type[Any]]
    crud_record: ClassVar[str]
    crud_event_fields: ClassVar[tuple[str, ...]]
    crud_query: ClassVar[ModelQuery]
    crud_page_size: ClassVar[int]
    crud_not_found: ClassVar[type[RecordNotFound]]

    def __init_subclass__(
        cls,
        *,
        model: type[Any] | None = None,
        record: str | None = None,
        event_fields: Iterable[str] = ("id",),
        fields: Iterable[str] | None = None,
        page_size: int = 100,
        max_page_size: int = 1000,
        not_found: type[RecordNotFound] = RecordNotFound,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        if model is None:
            if not hasattr(cls, "crud_model"):
                raise TypeError(
                    f"{cls.__name__} needs a model: "
                    f"class {cls.__name__}(CrudEntrypoints, model=YourModel)"
                )
            return
        columns = {attr.key for attr in inspect(model).column_attrs}
        missing = sorted(set(event_fields) - columns)
        if missing:
            raise TypeError(
                f"event_fields {', '.join(missing)} are not columns of {model.__name__}"
            )
        cls.crud_model = model
        cls.crud_record = record or model.__tablename__
        cls.crud_event_fields = tuple(event_fields)
        cls.crud_query = ModelQuery(model, fields, max_page_size)
        cls.crud_page_size = page_size
        cls.crud_not_found = not_found
        for name, expected in _ENTRYPOINTS.items():
            if name in cls.__dict__ or hasattr(getattr(cls, name), ENTRYPOINTS_ATTR):
                continue  # the service's own, or added to a configured parent
            method = _copied(getattr(CrudEntrypoints, name))
            setattr(cls, name, rpc(expected_exceptions=expected)(method))

    # -- entrypoints ---------------------------------------------------------
    # Made ``@rpc`` entrypoints on each class that names a model, not here:
    # nameko run treats any class of the module with entrypoints as a
    # service, and this one is imported into service modules.

    def get(self, record_id: Any) -> dict[str, Any] | None:
        """The record, or None when there is none with that id."""
        record = self.crud_session.get(self.crud_model, record_id)
        return self.crud_serialize(record) if record is not None else None

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a record from ``data``; emits ``<record>_created``.

        Raises InvalidRecord naming the fields the data gets wrong.
        """
        record = self.crud_model()
        what = f"the new {self.crud_record}"
        self.crud_assign(record, self.crud_clean(data, partial=False, what=what))
        return self.crud_commit(record, "created")

    def update(self, record_id: Any, data: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a record; emits ``<record>_updated``.

        Raises RecordNotFound (or the service's subclass) and InvalidRecord.
        """
        record = self.crud_existing(record_id)
        what = f"{self.crud_record} {record_id}"
        self.crud_assign(record, self.crud_clean(data, partial=True, what=what))
        return self.crud_commit(record, "updated")

    def delete(self, record_id: Any) -> bool:
        """Delete a record, emitting ``<record>_deleted``; False if it was not
        there."""
        record = self.crud_session.get(self.crud_model, record_id)
        if record is None:
            return False
        self.crud_remove(record)
        return True

    def count(self, *, filters: Any = None) -> int:
        """How many records match ``filters``; raises InvalidQuery."""
        return self.crud_count(self.crud_query.where(filters))

    def list(
        self,
        offset: int = 0,
        limit: int | None = None,
        *,
        filters: Any = None,
        order_by: Any = None,
    ) -> builtins.list[dict[str, Any]]:
        """A page of the records matching ``filters``, sorted by ``order_by``
        then the primary key; the limit is cut to the maximum page size.

        Raises InvalidQuery (InvalidFilter, InvalidOrder, InvalidPage) naming
        the field, operator or key at fault.
        """
        query = self.crud_query
        offset, limit = query.page(
            offset, self.crud_page_size if limit is None else limit
        )
        statement = (
            select(self.crud_model)
            .where(*query.where(filters))
            .order_by(*query.order_by(order_by))
            .offset(offset)
            .limit(limit)
        )
        return [
            self.crud_serialize(row) for row in self.crud_session.scalars(statement)
        ]

    # -- hooks a service may override ----------------------------------------

    @property
    def crud_session(self) -> Session:
        """The worker's session; the default is nameko-sqlalchemy's."""
        return self.db.session  # type: ignore[attr-defined]

    def crud_clean(
        self, data: dict[str, Any], *, partial: bool, what: str
    ) -> dict[str, Any]:
        """``data`` checked against the model's columns: known, writable,
        of the column's type, and (unless ``partial``) every required one."""
        if not isinstance(data, dict):
            raise InvalidRecord(f"{what} must be an object of fields")
        mapper = inspect(self.crud_model)
        writable = {
            attr.key: attr.columns[0]
            for attr in mapper.column_attrs
            if not attr.columns[0].primary_key
        }
        problems = [f"{name}: is not a field" for name in data if name not in writable]
        cleaned: dict[str, Any] = {}
        for name, value in data.items():
            column = writable.get(name)
            if column is None:
                continue
            if value is None:
                if not column.nullable:
                    problems.append(f"{name}: is required")
                cleaned[name] = None
                continue
            try:
                cleaned[name] = _converted(column.type.python_type, value)
            except (TypeError, ValueError, NotImplementedError):
                problems.append(f"{name}: {value!r:.40} is not a {column.type}")
        if not partial:
            problems.extend(
                f"{name}: is required"
                for name, column in writable.items()
                if not column.nullable
                and column.default is None
                and column.server_default is None
                and name not in data
            )
        if problems:
            raise InvalidRecord(f"{what} is invalid: {'; '.join(problems)}")
        return cleaned

    def crud_assign(self, record: Any, cleaned: dict[str, Any]) -> None:
        """Set the cleaned fields on the record."""
        for name, value in cleaned.items():
            setattr(record, name, value)

    def crud_serialize(self, record: Any) -> dict[str, Any]:
        """The record as plain data for RPC and events."""
        data: dict[str, Any] = {}
        for attr in inspect(self.crud_model).column_attrs:
            value = getattr(record, attr.key)
            if isinstance(value, datetime.date | datetime.datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            data[attr.key] = value
        return data

    def crud_before_commit(self, record: Any, action: str) -> None:
        """Called inside the transaction of each change, after the flush (so
        the record has its id); add audit rows here."""

    def crud_announce(self, action: str, data: dict[str, Any]) -> None:
        """Dispatch ``<record>_<action>`` with the event fields; log it."""
        payload = {name: data.get(name) for name in self.crud_event_fields}
        self.dispatch(f"{self.crud_record}_{action}", payload)  # type: ignore[attr-defined]
        log.info("%s %s %s", self.crud_record, data.get("id"), action)

    # -- building blocks for a service's own entrypoints ---------------------

    def crud_existing(self, record_id: Any) -> Any:
        """The record, or the service's RecordNotFound."""
        record = self.crud_session.get(self.crud_model, record_id)
        if record is None:
            raise self.crud_not_found(f"{self.crud_record} {record_id} does not exist")
        return record

    def crud_count(self, conditions: Iterable[ColumnElement[bool]]) -> int:
        """How many records meet every condition."""
        statement: Select[int] = (
            select(func.count()).select_from(self.crud_model).where(*conditions)
        )
        return self.crud_session.scalar(statement) or 0

    def crud_commit(self, record: Any, action: str) -> dict[str, Any]:
        """Save a new or changed record, commit, then announce it."""
        session = self.crud_session
        session.add(record)
        session.flush()
        self.crud_before_commit(record, action)
        session.commit()
        data = self.crud_serialize(record)
        self.crud_announce(action, data)
        return data

    def crud_remove(self, record: Any) -> None:
        """Delete a record, commit, then announce it."""
        session = self.crud_session
        data = self.crud_serialize(record)
        self.crud_before_commit(record, "deleted")
        session.delete(record)
        session.commit()
        self.crud_announce("deleted", data)


_ENTRYPOINTS: dict[str, tuple[type[Exception], ...]] = {
    "get": (),
    "create": (InvalidRecord,),
    "update": (InvalidRecord, RecordNotFound),
    "delete": (),
    "count": (InvalidQuery,),
    "list": (InvalidQuery,),
}
ENTRYPOINTS_ATTR = "nameko_entrypoints"  # where nameko registers them


def _copied(function: Callable[..., Any]) -> Callable[..., Any]:
    """A new function object with the same code and signature, so that each
    service registers its own entrypoints on its own function."""
    copy = types.FunctionType(
        function.__code__,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__doc__ = function.__doc__
    copy.__qualname__ = function.__qualname__
    copy.__annotations__ = dict(function.__annotations__)
    copy.__module__ = function.__module__
    return copy


def _converted(expected: type, value: Any) -> Any:
    """``value`` as a column of ``expected`` type holds it; ISO strings for
    dates. Raises TypeError or ValueError when it does not fit."""
    if expected in (datetime.date, datetime.datetime) and isinstance(value, str):
        return expected.fromisoformat(value)
    if expected in (int, float, Decimal):
        fits = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        fits = isinstance(value, expected)
    if not fits:
        raise TypeError(f"{type(value).__name__} is not {expected.__name__}")
    return value
