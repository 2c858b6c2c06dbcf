"""What the platform's services share: one database, a change log, tombstones,
and the RPC the sync needs on a record that is linked to Salesforce.

``SalesforceLinked`` adds to a ``CrudEntrypoints`` service: ``get_many``,
``create_many``, ``count`` (with ``linked``), ``change_counts``,
``find_by_salesforce_id`` and ``find_many_by_salesforce_id``,
``upsert_from_salesforce`` and ``upsert_many_from_salesforce``,
``link_salesforce_id`` and ``link_many``, ``delete_by_salesforce_id`` and
``deleted_salesforce_id``. Every committed change is logged with its source
(``platform`` or ``salesforce``); every delete leaves a tombstone, so a
Salesforce change that crosses a platform delete cannot bring the record
back, and the sync still knows which Salesforce record to delete.

A one-record call announces its change as ``<record>_created``,
``<record>_updated`` or ``<record>_deleted``. A bulk call (``create_many``,
``link_many``, ``upsert_many_from_salesforce``) commits its rows in one
transaction and announces them in at most one ``<record>_batch`` event per
action: ``{"action": "created" | "updated", "records": [{"id",
"salesforce_id"}, ...]}``, none when nothing changed.

Import this module, not the class, into a service module (``from
sfsync.services import linked``): ``nameko run`` takes every class of the
module it is given that has entrypoints for a service.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from nameko.rpc import rpc
from nameko_sqlalchemy import Database
from sqlalchemy import DateTime, Integer, String, event, func, or_, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sfsync.extensions.crud import InvalidQuery, InvalidRecord

__all__ = [
    "Base",
    "ChangeLog",
    "LinkConflict",
    "PlatformDatabase",
    "SalesforceLinked",
    "Tombstone",
]

log = logging.getLogger(__name__)

# Rows looked up per query: two ids a row stay under the 999 parameters an
# older SQLite takes.
LOOKUP_CHUNK = 400

T = TypeVar("T")


class Base(DeclarativeBase):
    pass


class ChangeLog(Base):
    """One row per committed change, with who caused it: an operator's view."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[str] = mapped_column(String(20), index=True)
    record_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())


class Tombstone(Base):
    """A deleted record and the Salesforce id it had."""

    __tablename__ = "tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[str] = mapped_column(String(20))
    record_id: Mapped[int] = mapped_column(Integer, index=True)
    salesforce_id: Mapped[str | None] = mapped_column(String(18), index=True)
    deleted_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())


class LinkConflict(ValueError):
    """Two Salesforce records claim one platform record; an operator decides."""


class PlatformDatabase(Database):
    """nameko-sqlalchemy's provider: creates the tables, and puts SQLite in
    WAL mode so the platform's services can share one file."""

    def setup(self) -> None:
        super().setup()
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_wal)
        create_tables(self.engine)


def create_tables(engine: Any, attempts: int = 5) -> None:
    """Create the missing tables. The platform's services start together on
    one database: when another creates a table between this one's check and
    its CREATE, the CREATE fails; checking again then finds it."""
    for attempt in range(1, attempts + 1):
        try:
            Base.metadata.create_all(engine)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            log.info("tables created meanwhile by another service; checking again")
            time.sleep(0.1 * attempt)


def _sqlite_wal(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _SalesforceRow(NamedTuple):
    """One cleaned row of an upsert from Salesforce."""

    position: int
    salesforce_id: str
    platform_id: int | None
    cleaned: dict[str, Any]
    what: str


@dataclass
class _Known:
    """What the database holds about the records some rows name."""

    buried_ids: set[int] = field(default_factory=set)
    buried_salesforce_ids: set[str] = field(default_factory=set)
    by_id: dict[int, Any] = field(default_factory=dict)
    by_salesforce_id: dict[str, Any] = field(default_factory=dict)

    def buried(self, salesforce_id: str, platform_id: int | None) -> bool:
        """True when the platform deleted the record either id names."""
        return salesforce_id in self.buried_salesforce_ids or (
            platform_id is not None and platform_id in self.buried_ids
        )

    def linked(self, salesforce_id: str, platform_id: int | None) -> Any:
        """The record ``platform_id`` names, else the one linked to
        ``salesforce_id``, else None."""
        if platform_id is not None:
            record = self.by_id.get(platform_id)
            if record is not None:
                return record
        return self.by_salesforce_id.get(salesforce_id)


class SalesforceLinked:
    """RPC the sync needs, for a CrudEntrypoints service whose model has an
    integer ``id`` and a unique ``salesforce_id``.

    Needs on the service: ``db``, ``dispatch``, ``source`` (SourceTracker)
    and the crud hooks ``crud_clean``, ``crud_assign``, ``crud_serialize``.
    Emits ``<record>_batch`` from the bulk calls (see the module).
    """

    # Provided by CrudEntrypoints and the service.
    crud_model: Any
    crud_record: str
    crud_query: Any
    crud_clean: Callable[..., dict[str, Any]]
    crud_assign: Callable[[Any, dict[str, Any]], None]
    crud_serialize: Callable[[Any], dict[str, Any]]
    crud_commit: Callable[[Any, str], dict[str, Any]]
    crud_remove: Callable[[Any], None]
    crud_count: Callable[[Any], int]
    db: Any
    dispatch: Any
    source: Any

    @rpc
    def get_many(self, record_ids: list[int]) -> list[dict[str, Any] | None]:
        """The records for ``record_ids``, in order, None for missing ones."""
        found = self._records_by_id(record_ids)
        return [
            self.crud_serialize(found[record_id]) if record_id in found else None
            for record_id in record_ids
        ]

    @rpc
    def create_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create rows: ``{"id"}`` or ``{"error"}`` per row, in order.

        A row that fails validation is refused alone; the others are
        committed together and announced in one ``<record>_batch`` event
        (``"action": "created"``).
        """
        results: list[dict[str, Any]] = []
        changes = []
        for position, data in enumerate(rows):
            try:
                cleaned = self.crud_clean(data, partial=False, what=f"row {position}")
            except InvalidRecord as exc:
                results.append({"error": str(exc)})
                continue
            record = self.crud_model()
            self.crud_assign(record, cleaned)
            changes.append((record, "created"))
            results.append({})
        written = self._flush_changes(changes)
        self._end_transaction(bool(written))
        landed = iter(written)
        for result in results:
            if "error" not in result:
                result["id"] = next(landed)["id"]
        self._announce_batch([("created", data) for data in written])
        self._log_batch(
            "create",
            len(rows),
            created=len(written),
            refused=len(results) - len(written),
        )
        return results

    @rpc(expected_exceptions=InvalidQuery)
    def count(self, linked: bool | None = None, *, filters: Any = None) -> int:
        """How many records match ``filters``; only those with (or without) a
        Salesforce id when ``linked`` is True (or False)."""
        conditions = self.crud_query.where(filters)
        if linked is not None:
            column = self.crud_model.salesforce_id
            conditions.append(column.is_not(None) if linked else column.is_(None))
        return self.crud_count(conditions)

    @rpc
    def change_counts(self) -> dict[str, dict[str, int]]:
        """Committed changes of this kind of record so far, by source, action."""
        rows = self.db.session.execute(
            select(ChangeLog.source, ChangeLog.action, func.count())
            .where(ChangeLog.record == self.crud_record)
            .group_by(ChangeLog.source, ChangeLog.action)
        )
        counts: dict[str, dict[str, int]] = {}
        for source, action, number in rows:
            counts.setdefault(source, {})[action] = number
        return counts

    @rpc
    def find_by_salesforce_id(self, salesforce_id: str) -> int | None:
        """The id of the record linked to ``salesforce_id``, or None."""
        return self.find_many_by_salesforce_id([salesforce_id])[0]

    @rpc
    def find_many_by_salesforce_id(self, salesforce_ids: list[str]) -> list[int | None]:
        """The ids of the records linked to ``salesforce_ids``, in order, None
        where no record is."""
        model = self.crud_model
        found: dict[str, int] = {}
        wanted = list({key for key in salesforce_ids if key is not None})
        for chunk in _chunks(wanted, 2 * LOOKUP_CHUNK):
            rows = self.db.session.execute(
                select(model.salesforce_id, model.id).where(
                    model.salesforce_id.in_(chunk)
                )
            )
            found.update(rows.tuples().all())
        return [found.get(salesforce_id) for salesforce_id in salesforce_ids]

    @rpc
    def deleted_salesforce_id(self, record_id: int) -> str | None:
        """The Salesforce id a deleted record was linked to, from its
        tombstone; None if it was never linked (or is not deleted)."""
        return self.db.session.scalars(
            select(Tombstone.salesforce_id)
            .where(Tombstone.record == self.crud_record)
            .where(Tombstone.record_id == record_id)
            .where(Tombstone.salesforce_id.is_not(None))
            .limit(1)
        ).first()

    # -- calls the sync makes -------------------------------------------

    @rpc(expected_exceptions=(InvalidRecord, LinkConflict))
    def upsert_from_salesforce(
        self, salesforce_id: str, platform_id: int | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Write a record as Salesforce holds it: ``{"id", "created", "deleted"}``.

        A record that already holds those values is not written again.

        Found by ``platform_id`` (its Platform_Id__c) first, then by
        ``salesforce_id``; created when neither matches. Nothing is written,
        and ``deleted`` is True, when the platform deleted that record: a
        Salesforce change that crossed the delete does not bring it back.
        Raises LinkConflict when ``platform_id`` names a record linked to
        another Salesforce record. The unique Salesforce id column means two
        concurrent calls cannot create two records.
        """
        what = f"Salesforce {self.crud_record} {salesforce_id}"
        cleaned = self.crud_clean(data, partial=False, what=what)
        row = _SalesforceRow(0, salesforce_id, platform_id, cleaned, what)
        result, change = self._upsert_alone(row)
        if change is not None:
            self.crud_announce(*change)
        return result

    @rpc
    def upsert_many_from_salesforce(
        self, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``upsert_from_salesforce`` for each ``{"salesforce_id",
        "platform_id", "data"}`` row, all in one transaction.

        One result per row, in order: ``{"id", "created", "deleted"}``, or
        ``{"error", "error_type"}`` (``InvalidRecord`` or ``LinkConflict``)
        for a row refused alone. Rows apply in order, so of two rows naming
        one Salesforce id the later wins, on one record. Announced in a
        ``<record>_batch`` event per action. Should another worker create
        one of the records meanwhile, each row is written in its own
        transaction instead, as ``upsert_from_salesforce`` writes it.
        """
        results: list[dict[str, Any]] = [{} for _ in rows]
        valid = []
        for position, row in enumerate(rows):
            try:
                valid.append(self._salesforce_row(position, row))
            except InvalidRecord as exc:
                results[position] = _refused("InvalidRecord", exc)
        written: list[tuple[str, dict[str, Any]]] = []
        call = "upsert"
        try:
            written = self._upsert_together(valid, results)
        except IntegrityError:
            self.db.session.rollback()
            call = "upsert row by row"
            try:
                self._upsert_apart(valid, results, written)
            finally:  # what landed before a row raised is announced too
                self._announce_batch(written)
        else:
            self._announce_batch(written)
        actions = [action for action, _ in written]
        self._log_batch(
            call,
            len(rows),
            created=actions.count("created"),
            updated=actions.count("updated"),
            deleted=sum(1 for result in results if result.get("deleted")),
            refused=sum(1 for result in results if "error" in result),
        )
        return results

    @rpc
    def link_salesforce_id(self, record_id: int, salesforce_id: str) -> bool:
        """Store the Salesforce id of a record; False if the record is gone."""
        record = self.db.session.get(self.crud_model, record_id)
        if record is None:
            return False
        if record.salesforce_id == salesforce_id:
            return True
        record.salesforce_id = salesforce_id
        self.crud_commit(record, "updated")
        return True

    @rpc
    def link_many(self, links: list[list[Any]]) -> list[bool]:
        """``link_salesforce_id`` for each ``[record_id, salesforce_id]``, in
        one transaction: True per link, False where the record is gone.

        Announced in one ``<record>_batch`` event (``"action": "updated"``)
        for the records whose Salesforce id changed. Like one link to a
        Salesforce id another record holds, a list with one raises
        IntegrityError, and none of its links land.
        """
        records = self._records_by_id([record_id for record_id, _ in links])
        before: dict[Any, str | None] = {}
        linked = []
        for record_id, salesforce_id in links:
            record = records.get(record_id)
            if record is None:
                linked.append(False)
                continue
            before.setdefault(record, record.salesforce_id)
            record.salesforce_id = salesforce_id
            linked.append(True)
        changes = [
            (record, "updated")
            for record, previous in before.items()
            if record.salesforce_id != previous
        ]
        try:
            written = self._flush_changes(changes)
            self._end_transaction(bool(written))
        except IntegrityError:
            # A Salesforce id already linked elsewhere: none of these land.
            self.db.session.rollback()
            raise
        self._announce_batch([("updated", data) for data in written])
        self._log_batch(
            "link", len(links), updated=len(written), missing=linked.count(False)
        )
        return linked

    @rpc
    def delete_by_salesforce_id(self, salesforce_id: str) -> int | None:
        """Delete the record linked to ``salesforce_id``; its id, or None."""
        record = self._by_salesforce_id(salesforce_id)
        if record is None:
            return None
        record_id = record.id
        self.crud_remove(record)
        return record_id

    # -- crud hooks shared by linked records -------------------------------

    def crud_before_commit(self, record: Any, action: str) -> None:
        session = self.db.session
        session.add(
            ChangeLog(
                record=self.crud_record,
                record_id=record.id,
                action=action,
                source=self.change_source,
            )
        )
        if action == "deleted":
            session.add(
                Tombstone(
                    record=self.crud_record,
                    record_id=record.id,
                    salesforce_id=record.salesforce_id,
                )
            )

    def crud_announce(self, action: str, data: dict[str, Any]) -> None:
        payload = {"id": data["id"], "salesforce_id": data["salesforce_id"]}
        self.dispatch(f"{self.crud_record}_{action}", payload)
        log.info(
            "%s %s %s (source=%s, salesforce_id=%s)",
            self.crud_record,
            data["id"],
            action,
            self.change_source,
            data["salesforce_id"],
        )

    @property
    def change_source(self) -> str:
        return "salesforce" if self.source.from_salesforce else "platform"

    # -- writing what Salesforce holds ---------------------------------------

    def _salesforce_row(self, position: int, row: Any) -> _SalesforceRow:
        """A row of ``upsert_many_from_salesforce``, cleaned; raises
        InvalidRecord naming it."""
        if not isinstance(row, dict) or not isinstance(row.get("salesforce_id"), str):
            raise InvalidRecord(
                f"row {position} needs a salesforce_id, a platform_id and data"
            )
        salesforce_id = row["salesforce_id"]
        what = f"Salesforce {self.crud_record} {salesforce_id}"
        platform_id = row.get("platform_id")
        if platform_id is not None and (
            isinstance(platform_id, bool) or not isinstance(platform_id, int)
        ):
            raise InvalidRecord(f"{what} names {platform_id!r:.40}, not a platform id")
        cleaned = self.crud_clean(row.get("data"), partial=False, what=what)
        return _SalesforceRow(position, salesforce_id, platform_id, cleaned, what)

    def _upsert_together(
        self, rows: Sequence[_SalesforceRow], results: list[dict[str, Any]]
    ) -> list[tuple[str, dict[str, Any]]]:
        """Apply the rows in order to what the database holds, commit once;
        fill in their results and return what changed. Raises IntegrityError
        (with nothing committed) when another worker got in first."""
        known = self._known([(row.salesforce_id, row.platform_id) for row in rows])
        before: dict[Any, dict[str, Any] | None] = {}
        placed = []
        for row in rows:
            if known.buried(row.salesforce_id, row.platform_id):
                results[row.position] = _deleted()
                continue
            found = known.linked(row.salesforce_id, row.platform_id)
            if found is not None and found not in before:
                before[found] = self.crud_serialize(found)
            try:
                record = self._take_salesforce_values(found, row)
            except LinkConflict as exc:
                results[row.position] = _refused("LinkConflict", exc)
                continue
            if found is None:
                before[record] = None
            # A later row naming this Salesforce id finds this record.
            known.by_salesforce_id[row.salesforce_id] = record
            placed.append((row.position, record, found is None))
        changes = []
        for record, previous in before.items():
            action = self._change(record, previous)
            if action is not None:
                changes.append((record, action))
        written = self._flush_changes(changes)
        for position, record, created in placed:
            results[position] = {"id": record.id, "created": created, "deleted": False}
        self._end_transaction(bool(written))
        return [
            (action, data) for (_, action), data in zip(changes, written, strict=True)
        ]

    def _upsert_apart(
        self,
        rows: Sequence[_SalesforceRow],
        results: list[dict[str, Any]],
        written: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Each row in its own transaction; fill in their results and add
        what changed to ``written`` as it lands."""
        for row in rows:
            try:
                results[row.position], change = self._upsert_alone(row)
            except LinkConflict as exc:
                results[row.position] = _refused("LinkConflict", exc)
                continue
            if change is not None:
                written.append(change)

    def _upsert_alone(
        self, row: _SalesforceRow
    ) -> tuple[dict[str, Any], tuple[str, dict[str, Any]] | None]:
        """One row in its own transaction: its result, and the change to
        announce (None when nothing was written). Raises LinkConflict."""
        salesforce_id = row.salesforce_id
        known = self._known([(salesforce_id, row.platform_id)])
        if known.buried(salesforce_id, row.platform_id):
            return _deleted(), None
        found = known.linked(salesforce_id, row.platform_id)
        previous = None if found is None else self.crud_serialize(found)
        record = self._take_salesforce_values(found, row)
        action = self._change(record, previous)
        if action is None:
            # Already so (a retried task, a repeated event): no write, no event.
            record_id = record.id
            self.db.session.rollback()
            return {"id": record_id, "created": False, "deleted": False}, None
        try:
            self._flush_changes([(record, action)])
        except IntegrityError:
            # Another worker created it meanwhile: apply this state to that one.
            self.db.session.rollback()
            record = self._by_salesforce_id(salesforce_id)
            if record is None:
                raise
            self.crud_assign(record, row.cleaned)
            action = "updated"
            self._flush_changes([(record, action)])
        data = self.crud_serialize(record)
        self.db.session.commit()
        result = {"id": data["id"], "created": action == "created", "deleted": False}
        return result, (action, data)

    def _take_salesforce_values(self, found: Any, row: _SalesforceRow) -> Any:
        """``found``, or a new record when None, holding the row's values and
        Salesforce id. Raises LinkConflict, changing nothing, when ``found``
        is linked to another Salesforce record."""
        if found is not None and found.salesforce_id not in (None, row.salesforce_id):
            raise LinkConflict(
                f"{row.what} names {self.crud_record} {found.id} in "
                f"Platform_Id__c, which is linked to {found.salesforce_id}"
            )
        record = self.crud_model() if found is None else found
        self.crud_assign(record, row.cleaned)
        record.salesforce_id = row.salesforce_id
        return record

    def _change(self, record: Any, before: dict[str, Any] | None) -> str | None:
        """``created`` for a new record, ``updated`` for one that no longer
        serializes as ``before``, None for one that does."""
        if before is None:
            return "created"
        return "updated" if self.crud_serialize(record) != before else None

    # -- helpers -----------------------------------------------------------

    def _flush_changes(
        self, changes: Sequence[tuple[Any, str]]
    ) -> list[dict[str, Any]]:
        """Flush the records and add their change log rows, leaving the
        commit to the caller: the id and Salesforce id of each, read before
        the commit expires them."""
        if not changes:
            return []
        session = self.db.session
        session.add_all([record for record, _ in changes])
        session.flush()
        for record, action in changes:
            self.crud_before_commit(record, action)
        return [
            {"id": record.id, "salesforce_id": record.salesforce_id}
            for record, _ in changes
        ]

    def _end_transaction(self, changed: bool) -> None:
        """Commit what changed; otherwise end the read without a write."""
        if changed:
            self.db.session.commit()
        else:
            self.db.session.rollback()

    def _announce_batch(self, written: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """One ``<record>_batch`` event per action, each record in the first."""
        records: dict[str, list[dict[str, Any]]] = {"created": [], "updated": []}
        seen = set()
        for action, data in written:
            if data["id"] not in seen:
                seen.add(data["id"])
                records[action].append(
                    {"id": data["id"], "salesforce_id": data["salesforce_id"]}
                )
        for action, announced in records.items():
            if announced:
                self.dispatch(
                    f"{self.crud_record}_batch",
                    {"action": action, "records": announced},
                )

    def _log_batch(self, call: str, rows: int, **outcomes: int) -> None:
        log.info(
            "%s batch %s of %s rows: %s (source=%s)",
            self.crud_record,
            call,
            rows,
            ", ".join(f"{number} {outcome}" for outcome, number in outcomes.items()),
            self.change_source,
        )

    def _known(self, keys: Sequence[tuple[str, int | None]]) -> _Known:
        """Tombstones and records for ``(salesforce_id, platform_id)`` keys:
        three queries per ``LOOKUP_CHUNK`` keys."""
        known = _Known()
        model = self.crud_model
        for chunk in _chunks(keys, LOOKUP_CHUNK):
            salesforce_ids = list({salesforce_id for salesforce_id, _ in chunk})
            platform_ids = list({key for _, key in chunk if key is not None})
            tombstones = self.db.session.execute(
                select(Tombstone.record_id, Tombstone.salesforce_id).where(
                    Tombstone.record == self.crud_record,
                    or_(
                        Tombstone.salesforce_id.in_(salesforce_ids),
                        Tombstone.record_id.in_(platform_ids),
                    ),
                )
            )
            for record_id, salesforce_id in tombstones:
                known.buried_ids.add(record_id)
                if salesforce_id is not None:
                    known.buried_salesforce_ids.add(salesforce_id)
            known.by_id.update(self._records_by_id(platform_ids))
            known.by_salesforce_id.update(
                (record.salesforce_id, record)
                for record in self.db.session.scalars(
                    select(model).where(model.salesforce_id.in_(salesforce_ids))
                )
            )
        return known

    def _records_by_id(self, record_ids: Sequence[int]) -> dict[int, Any]:
        """The records there are for ``record_ids``, by id."""
        model = self.crud_model
        found: dict[int, Any] = {}
        for chunk in _chunks(list(set(record_ids)), 2 * LOOKUP_CHUNK):
            rows = self.db.session.scalars(select(model).where(model.id.in_(chunk)))
            found.update((record.id, record) for record in rows)
        return found

    def _by_salesforce_id(self, salesforce_id: str) -> Any:
        model = self.crud_model
        return self.db.session.scalars(
            select(model).where(model.salesforce_id == salesforce_id)
        ).first()


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _deleted() -> dict[str, Any]:
    return {"id": None, "created": False, "deleted": True}


def _refused(error_type: str, exc: Exception) -> dict[str, Any]:
    return {"error": str(exc), "error_type": error_type}
