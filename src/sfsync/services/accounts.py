"""The ``accounts`` service: the platform's accounts, which contacts belong to.

RPC to create, read, update, delete, list and count accounts (from
``CrudEntrypoints``) and what the sync calls (from ``SalesforceLinked``); an
event after every committed change (``account_created``, ``account_updated``,
``account_deleted``) with the account's id and Salesforce id, or one
``account_batch`` event per action from a bulk call. It shares the
platform database with ``contacts``.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from nameko.events import EventDispatcher
from nameko.rpc import rpc
from sqlalchemy import DateTime, Integer, String, func, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from sfsync.extensions.crud import CrudEntrypoints, InvalidRecord, RecordNotFound
from sfsync.extensions.source import SourceTracker
from sfsync.extensions.tracing import Tracer
from sfsync.mapping import ACCOUNT_FIELDS, InvalidFields, clean_account
from sfsync.services import linked
from sfsync.services.linked import Base, PlatformDatabase

log = logging.getLogger(__name__)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = {"sqlite_autoincrement": True}  # an id is never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    salesforce_id: Mapped[str | None] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str | None] = mapped_column(String(255))
    industry: Mapped[str | None] = mapped_column(String(255))
    billing_street: Mapped[str | None] = mapped_column(String(255))
    billing_city: Mapped[str | None] = mapped_column(String(40))
    billing_country: Mapped[str | None] = mapped_column(String(80))
    phone: Mapped[str | None] = mapped_column(String(40))
    website: Mapped[str | None] = mapped_column(String(255))
    number_of_employees: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime.datetime] = mapped_column(DateTime, default=func.now())
    updated_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=func.now(), onupdate=func.now()
    )


class AccountNotFound(RecordNotFound):
    pass


class InvalidAccount(InvalidRecord):
    pass


def serialize(account: Account) -> dict[str, Any]:
    data: dict[str, Any] = {"id": account.id, "salesforce_id": account.salesforce_id}
    for field in ACCOUNT_FIELDS:
        data[field.platform] = getattr(account, field.platform)
    return data


class AccountsService(
    linked.SalesforceLinked,
    CrudEntrypoints,
    model=Account,
    record="account",
    event_fields=("id", "salesforce_id"),
    not_found=AccountNotFound,
):
    """CRUD over RPC for accounts, with an event after each change."""

    name = "accounts"

    db = PlatformDatabase(Base, engine_options={"connect_args": {"timeout": 30}})
    dispatch = EventDispatcher()
    source = SourceTracker()
    tracer = Tracer()

    @rpc(expected_exceptions=InvalidAccount)
    def delete(self, record_id: int) -> bool:
        """Delete an account; False when it did not exist.

        Refused (InvalidAccount) while contacts belong to it: Salesforce
        would delete them with it, so move or delete them first.
        """
        account = self.db.session.get(Account, record_id)
        if account is None:
            return False
        members = self._contacts_of(record_id)
        if members:
            raise InvalidAccount(
                f"account {record_id} still has {members} contacts; "
                "move or delete them first"
            )
        self.crud_remove(account)
        return True

    def _contacts_of(self, account_id: int) -> int:
        try:
            return self.db.session.scalar(
                text("SELECT count(*) FROM contacts WHERE account_id = :id"),
                {"id": account_id},
            )
        except OperationalError:  # no contacts table: no contacts service yet
            self.db.session.rollback()
            return 0

    def crud_clean(
        self, data: dict[str, Any], *, partial: bool, what: str
    ) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise InvalidAccount(f"{what} must be an object of fields")
        try:
            return clean_account(data, partial=partial)
        except InvalidFields as exc:
            raise InvalidAccount(f"{what} is invalid: {exc}") from None

    def crud_assign(self, record: Any, cleaned: dict[str, Any]) -> None:
        for name, value in cleaned.items():
            setattr(record, name, value)

    def crud_serialize(self, record: Any) -> dict[str, Any]:
        return serialize(record)


__all__ = ["Account", "AccountNotFound", "AccountsService", "InvalidAccount"]
