"""What the platform's services share: one database, a change log, tombstones,
and the RPC the sync needs on a record that is linked to Salesforce.

``SalesforceLinked`` adds to a ``CrudEntrypoints`` service: ``get_many``,
``create_many``, ``count`` (with ``linked``), ``change_counts``,
``find_by_salesforce_id``, ``upsert_from_salesforce``, ``link_salesforce_id``
and ``delete_by_salesforce_id``. Every committed change is logged with its
source (``platform`` or ``salesforce``); every delete leaves a tombstone, so a
Salesforce change that crosses a platform delete cannot bring the record back.

Import this module, not the class, into a service module (``from
sfsync.services import linked``): ``nameko run`` takes every class of the
module it is given that has entrypoints for a service.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

from nameko.rpc import rpc
from nameko_sqlalchemy import Database
from sqlalchemy import DateTime, Integer, String, event, func, select
from sqlalchemy.exc import IntegrityError
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
        Base.metadata.create_all(self.engine)


def _sqlite_wal(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class SalesforceLinked:
    """RPC the sync needs, for a CrudEntrypoints service whose model has an
    integer ``id`` and a unique ``salesforce_id``.

    Needs on the service: ``db``, ``dispatch``, ``source`` (SourceTracker)
    and the crud hooks ``crud_clean``, ``crud_assign``, ``crud_serialize``.
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
        model = self.crud_model
        rows = self.db.session.scalars(select(model).where(model.id.in_(record_ids)))
        found = {row.id: self.crud_serialize(row) for row in rows}
        return [found.get(record_id) for record_id in record_ids]

    @rpc
    def create_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create rows: ``{"id"}`` or ``{"error"}`` per row, in order.

        A row that fails validation is refused alone; the others are
        committed together, then announced one event each.
        """
        results: list[dict[str, Any]] = []
        created = []
        for position, data in enumerate(rows):
            try:
                cleaned = self.crud_clean(data, partial=False, what=f"row {position}")
            except InvalidRecord as exc:
                results.append({"error": str(exc)})
                continue
            record = self.crud_model()
            self.crud_assign(record, cleaned)
            created.append(record)
            results.append({})
        # The good rows in one transaction (the refused ones were never in
        # it), then one event each.
        session = self.db.session
        session.add_all(created)
        session.flush()
        for record in created:
            self.crud_before_commit(record, "created")
        session.commit()
        landed = iter(created)
        for result in results:
            if "error" not in result:
                data = self.crud_serialize(next(landed))
                self.crud_announce("created", data)
                result["id"] = data["id"]
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
        record = self._by_salesforce_id(salesforce_id)
        return record.id if record is not None else None

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
        if self._buried(salesforce_id, platform_id):
            return {"id": None, "created": False, "deleted": True}
        found = self._linked(salesforce_id, platform_id)
        if found is not None and found.salesforce_id not in (None, salesforce_id):
            raise LinkConflict(
                f"{what} names {self.crud_record} {found.id} in Platform_Id__c, "
                f"which is linked to {found.salesforce_id}"
            )
        created = found is None
        record = self.crud_model() if found is None else found
        before = None if created else self.crud_serialize(record)
        self.crud_assign(record, cleaned)
        record.salesforce_id = salesforce_id
        if before is not None and self.crud_serialize(record) == before:
            # Already so (a retried task, a repeated event): no write, no event.
            self.db.session.rollback()
            return {"id": before["id"], "created": False, "deleted": False}
        try:
            result = self.crud_commit(record, "created" if created else "updated")
        except IntegrityError:
            # Another worker created it meanwhile: apply this state to that one.
            self.db.session.rollback()
            winner = self._by_salesforce_id(salesforce_id)
            if winner is None:
                raise
            self.crud_assign(winner, cleaned)
            result = self.crud_commit(winner, "updated")
            created = False
        return {"id": result["id"], "created": created, "deleted": False}

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

    # -- helpers -----------------------------------------------------------

    def _by_salesforce_id(self, salesforce_id: str) -> Any:
        model = self.crud_model
        return self.db.session.scalars(
            select(model).where(model.salesforce_id == salesforce_id)
        ).first()

    def _linked(self, salesforce_id: str, platform_id: int | None) -> Any:
        if platform_id is not None:
            record = self.db.session.get(self.crud_model, platform_id)
            if record is not None:
                return record
        return self._by_salesforce_id(salesforce_id)

    def _buried(self, salesforce_id: str, platform_id: int | None) -> bool:
        query = select(Tombstone.id).where(Tombstone.record == self.crud_record)
        if platform_id is not None:
            named = query.where(
                (Tombstone.record_id == platform_id)
                | (Tombstone.salesforce_id == salesforce_id)
            )
        else:
            named = query.where(Tombstone.salesforce_id == salesforce_id)
        return self.db.session.scalars(named.limit(1)).first() is not None
