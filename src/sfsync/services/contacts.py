"""The ``contacts`` service: the platform's source of truth for contacts.

RPC to create, read, update, delete, list and count contacts (from
``CrudEntrypoints``; ``list`` and ``count`` take filters); an event after every
committed change (``contact_created``, ``contact_updated``,
``contact_deleted``) carrying the contact's id and Salesforce id. Changes made
inside a ``sourced_from_salesforce`` context carry that flag on to their event,
so the sync does not send them back up.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from nameko.events import EventDispatcher
from nameko.rpc import rpc
from nameko_sqlalchemy import Database
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sfsync.extensions.crud import (
    CrudEntrypoints,
    InvalidQuery,
    InvalidRecord,
    RecordNotFound,
)
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import CONTACT_FIELDS, InvalidFields, clean_contact

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Personal data an operator does not need to follow a call: kept out of traces.
PERSONAL_FIELDS = ("birthdate", "phone", "mobile_phone", "mailing_street")


class Base(DeclarativeBase):
    pass


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salesforce_id: Mapped[str | None] = mapped_column(String(18), unique=True)
    salutation: Mapped[str | None] = mapped_column(String(40))
    first_name: Mapped[str | None] = mapped_column(String(40))
    last_name: Mapped[str] = mapped_column(String(80))
    title: Mapped[str | None] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(80), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    mobile_phone: Mapped[str | None] = mapped_column(String(40))
    mailing_street: Mapped[str | None] = mapped_column(String(255))
    mailing_city: Mapped[str | None] = mapped_column(String(40))
    mailing_postal_code: Mapped[str | None] = mapped_column(String(20))
    mailing_country: Mapped[str | None] = mapped_column(String(80))
    birthdate: Mapped[datetime.date | None] = mapped_column(Date)
    lead_source: Mapped[str | None] = mapped_column(String(40))
    has_opted_out_of_email: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=func.now(), onupdate=func.now()
    )


class ChangeLog(Base):
    """One row per committed change, with who caused it: an operator's view."""

    __tablename__ = "contact_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())


class ContactNotFound(RecordNotFound):
    pass


class InvalidContact(InvalidRecord):
    pass


class ContactsDatabase(Database):
    """nameko-sqlalchemy's provider, creating the tables on start."""

    def setup(self) -> None:
        super().setup()
        Base.metadata.create_all(self.engine)


def serialize(contact: Contact) -> dict[str, Any]:
    data: dict[str, Any] = {"id": contact.id, "salesforce_id": contact.salesforce_id}
    for field in CONTACT_FIELDS:
        value = getattr(contact, field.platform)
        if isinstance(value, datetime.date):
            value = value.isoformat()
        data[field.platform] = value
    return data


def _assign(contact: Contact, cleaned: dict[str, Any]) -> None:
    for name, value in cleaned.items():
        if name == "birthdate" and value is not None:
            value = datetime.date.fromisoformat(value)
        setattr(contact, name, value)


def _validated(data: dict[str, Any], what: str, partial: bool = False) -> dict:
    try:
        return clean_contact(data, partial=partial)
    except InvalidFields as exc:
        raise InvalidContact(f"{what} is invalid: {exc}") from None


class ContactsService(
    CrudEntrypoints,
    model=Contact,
    record="contact",
    event_fields=("id", "salesforce_id"),
    max_page_size=MAX_PAGE_SIZE,
    not_found=ContactNotFound,
):
    """CRUD over RPC for contacts, with an event after each change.

    ``get``, ``create``, ``update``, ``delete`` and ``list`` come from
    ``CrudEntrypoints``; ``list`` takes ``filters`` and ``order_by``.
    """

    name = "contacts"

    db = ContactsDatabase(Base, engine_options={"connect_args": {"timeout": 30}})
    dispatch = EventDispatcher()
    source = SourceTracker()
    tracer = Tracer(redact=PERSONAL_FIELDS)

    @rpc
    def get_many(self, contact_ids: list[int]) -> list[dict[str, Any] | None]:
        """The contacts for ``contact_ids``, in order, None for missing ones."""
        rows = self.db.session.scalars(
            select(Contact).where(Contact.id.in_(contact_ids))
        )
        found = {contact.id: serialize(contact) for contact in rows}
        return [found.get(contact_id) for contact_id in contact_ids]

    @rpc
    def create_many(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create each row on its own: ``{"id"}`` or ``{"error"}`` per row, in order.

        One bad row does not stop the others.
        """
        results = []
        for position, data in enumerate(rows):
            try:
                contact = Contact()
                _assign(contact, _validated(data, f"row {position}"))
                results.append({"id": self.crud_commit(contact, "created")["id"]})
            except InvalidContact as exc:
                results.append({"error": str(exc)})
        return results

    @rpc(expected_exceptions=InvalidQuery)
    def count(self, linked: bool | None = None, *, filters: Any = None) -> int:
        """How many contacts match ``filters``; only those with (or without) a
        Salesforce id when ``linked`` is True (or False)."""
        conditions = self.crud_query.where(filters)
        if linked is not None:
            column = Contact.salesforce_id
            conditions.append(column.is_not(None) if linked else column.is_(None))
        return self.crud_count(conditions)

    @rpc
    def change_counts(self) -> dict[str, dict[str, int]]:
        """Committed changes so far, by source then action."""
        rows = self.db.session.execute(
            select(ChangeLog.source, ChangeLog.action, func.count()).group_by(
                ChangeLog.source, ChangeLog.action
            )
        )
        counts: dict[str, dict[str, int]] = {}
        for source, action, number in rows:
            counts.setdefault(source, {})[action] = number
        return counts

    # -- calls the sync makes -------------------------------------------

    @rpc(expected_exceptions=InvalidContact)
    def upsert_from_salesforce(
        self, salesforce_id: str, platform_id: int | None, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Write a contact as Salesforce holds it; ``{"id", "created"}``.

        Found by ``platform_id`` (the record's Platform_Id__c) first, then by
        ``salesforce_id``; created when neither matches. The unique Salesforce
        id column means two concurrent calls cannot create two contacts.
        """
        cleaned = _validated(data, f"Salesforce contact {salesforce_id}")
        found = self._linked(salesforce_id, platform_id)
        created = found is None
        contact = Contact(salesforce_id=salesforce_id) if found is None else found
        _assign(contact, cleaned)
        contact.salesforce_id = salesforce_id
        try:
            result = self.crud_commit(contact, "created" if created else "updated")
        except IntegrityError:
            # Another worker created it meanwhile: apply this state to that one.
            self.db.session.rollback()
            winner = self._linked(salesforce_id, None)
            if winner is None:
                raise
            _assign(winner, cleaned)
            result = self.crud_commit(winner, "updated")
            created = False
        return {"id": result["id"], "created": created}

    @rpc
    def link_salesforce_id(self, contact_id: int, salesforce_id: str) -> bool:
        """Store the Salesforce id of a contact; False if the contact is gone."""
        contact = self.db.session.get(Contact, contact_id)
        if contact is None:
            return False
        if contact.salesforce_id == salesforce_id:
            return True
        contact.salesforce_id = salesforce_id
        self.crud_commit(contact, "updated")
        return True

    @rpc
    def delete_by_salesforce_id(self, salesforce_id: str) -> int | None:
        """Delete the contact linked to ``salesforce_id``; its id, or None."""
        contact = self._linked(salesforce_id, None)
        if contact is None:
            return None
        contact_id = contact.id
        self.crud_remove(contact)
        return contact_id

    # -- how contacts differ from the generic CRUD ------------------------

    def crud_clean(
        self, data: dict[str, Any], *, partial: bool, what: str
    ) -> dict[str, Any]:
        return _validated(data, what, partial=partial)

    def crud_assign(self, record: Any, cleaned: dict[str, Any]) -> None:
        _assign(record, cleaned)

    def crud_serialize(self, record: Any) -> dict[str, Any]:
        return serialize(record)

    def crud_before_commit(self, record: Any, action: str) -> None:
        self.db.session.add(
            ChangeLog(contact_id=record.id, action=action, source=self._source)
        )

    def crud_announce(self, action: str, data: dict[str, Any]) -> None:
        payload = {"id": data["id"], "salesforce_id": data["salesforce_id"]}
        self.dispatch(f"contact_{action}", payload)
        log.info(
            "contact %s %s (source=%s, salesforce_id=%s)",
            data["id"],
            action,
            self._source,
            data["salesforce_id"],
        )

    # -- helpers ---------------------------------------------------------

    def _linked(self, salesforce_id: str, platform_id: int | None) -> Contact | None:
        if platform_id is not None:
            contact = self.db.session.get(Contact, platform_id)
            if contact is not None:
                return contact
        return self.db.session.scalars(
            select(Contact).where(Contact.salesforce_id == salesforce_id)
        ).first()

    @property
    def _source(self) -> str:
        return "salesforce" if self.source.from_salesforce else "platform"


__all__ = ["ContactsService", "Contact", "ContactNotFound", "InvalidContact"]
