"""The ``contacts`` service: the platform's source of truth for contacts.

RPC to create, read, update, delete, list and count contacts (from
``CrudEntrypoints``; ``list`` and ``count`` take filters); an event after every
committed change (``contact_created``, ``contact_updated``,
``contact_deleted``) carrying the contact's id and Salesforce id; the bulk
calls (``create_many``, ``link_many``, ``upsert_many_from_salesforce``) send
one ``contact_batch`` event per action instead, ``{"action", "records": [{"id",
"salesforce_id"}, ...]}``. Changes made
inside a ``sourced_from_salesforce`` context carry that flag on to their event,
so the sync does not send them back up.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from nameko.events import EventDispatcher
from sqlalchemy import Boolean, Date, DateTime, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from sfsync.extensions.crud import CrudEntrypoints, InvalidRecord, RecordNotFound
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import CONTACT_FIELDS, InvalidFields, clean_contact
from sfsync.services import linked
from sfsync.services.linked import Base, ChangeLog, PlatformDatabase

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Personal data an operator does not need to follow a call: kept out of traces.
PERSONAL_FIELDS = ("birthdate", "phone", "mobile_phone", "mailing_street")


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salesforce_id: Mapped[str | None] = mapped_column(String(18), unique=True)
    account_id: Mapped[int | None] = mapped_column(Integer, index=True)
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


class ContactNotFound(RecordNotFound):
    pass


class InvalidContact(InvalidRecord):
    pass


def serialize(contact: Contact) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": contact.id,
        "salesforce_id": contact.salesforce_id,
        "account_id": contact.account_id,
    }
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
    if not isinstance(data, dict):
        raise InvalidContact(f"{what} must be an object of fields")
    fields = dict(data)
    account = fields.pop("account_id", None)
    has_account = "account_id" in data
    try:
        cleaned = clean_contact(fields, partial=partial)
    except InvalidFields as exc:
        raise InvalidContact(f"{what} is invalid: {exc}") from None
    if account is not None and (
        isinstance(account, bool) or not isinstance(account, int)
    ):
        raise InvalidContact(f"{what} is invalid: account_id: {account!r} is not an id")
    if has_account:
        cleaned["account_id"] = account
    return cleaned


class ContactsService(
    linked.SalesforceLinked,
    CrudEntrypoints,
    model=Contact,
    record="contact",
    event_fields=("id", "salesforce_id"),
    max_page_size=MAX_PAGE_SIZE,
    not_found=ContactNotFound,
):
    """CRUD over RPC for contacts, with an event after each change.

    ``get``, ``create``, ``update``, ``delete`` and ``list`` come from
    ``CrudEntrypoints`` (``list`` takes ``filters`` and ``order_by``); what
    the sync calls comes from ``SalesforceLinked``. A contact's ``account_id``
    is the platform id of its account (see the ``accounts`` service).
    """

    name = "contacts"

    db = PlatformDatabase(Base, engine_options={"connect_args": {"timeout": 30}})
    dispatch = EventDispatcher()
    source = SourceTracker()
    tracer = Tracer(redact=PERSONAL_FIELDS)

    def crud_clean(
        self, data: dict[str, Any], *, partial: bool, what: str
    ) -> dict[str, Any]:
        return _validated(data, what, partial=partial)

    def crud_assign(self, record: Any, cleaned: dict[str, Any]) -> None:
        _assign(record, cleaned)

    def crud_serialize(self, record: Any) -> dict[str, Any]:
        return serialize(record)


__all__ = [
    "ChangeLog",
    "Contact",
    "ContactNotFound",
    "ContactsService",
    "InvalidContact",
]
