"""Field tables for Contact and Account: platform and Salesforce names,
types, limits.

One table per object drives validation on the platform, the mapping both
ways, the CSV import and the demo's field-by-field comparison, so they cannot
drift apart. Values cross RPC as JSON types: strings, integers, booleans,
``YYYY-MM-DD`` dates. The contact's account is a relation, not a field: the
sync translates ``account_id`` and ``AccountId`` through the linked ids.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCOUNT_FIELDS",
    "CONTACT_FIELDS",
    "EXTERNAL_ID_FIELD",
    "InvalidFields",
    "clean",
    "clean_account",
    "clean_contact",
    "from_export_row",
    "to_platform",
    "to_salesforce",
]

EXTERNAL_ID_FIELD = "Platform_Id__c"
# What Salesforce takes in an Email field: an ASCII local part of the usual
# characters and a domain of letter, digit and hyphen labels.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = ("true", "1")
_FALSE = ("false", "0")


@dataclass(frozen=True)
class Field:
    platform: str
    salesforce: str
    kind: str = "string"  # string | email | date | boolean | integer
    max_length: int = 255
    required: bool = False


CONTACT_FIELDS: tuple[Field, ...] = (
    Field("salutation", "Salutation", max_length=40),
    Field("first_name", "FirstName", max_length=40),
    Field("last_name", "LastName", max_length=80, required=True),
    Field("title", "Title", max_length=128),
    Field("email", "Email", kind="email", max_length=80),
    Field("phone", "Phone", max_length=40),
    Field("mobile_phone", "MobilePhone", max_length=40),
    Field("mailing_street", "MailingStreet", max_length=255),
    Field("mailing_city", "MailingCity", max_length=40),
    Field("mailing_postal_code", "MailingPostalCode", max_length=20),
    Field("mailing_country", "MailingCountry", max_length=80),
    Field("birthdate", "Birthdate", kind="date"),
    Field("lead_source", "LeadSource", max_length=40),
    Field("has_opted_out_of_email", "HasOptedOutOfEmail", kind="boolean"),
    Field("description", "Description", max_length=32000),
)
ACCOUNT_FIELDS: tuple[Field, ...] = (
    Field("name", "Name", max_length=255, required=True),
    Field("type", "Type", max_length=255),
    Field("industry", "Industry", max_length=255),
    Field("billing_street", "BillingStreet", max_length=255),
    Field("billing_city", "BillingCity", max_length=40),
    Field("billing_country", "BillingCountry", max_length=80),
    Field("phone", "Phone", max_length=40),
    Field("website", "Website", max_length=255),
    Field("number_of_employees", "NumberOfEmployees", kind="integer"),
)
PLATFORM_NAMES = frozenset(field.platform for field in CONTACT_FIELDS)
SALESFORCE_NAMES = tuple(field.salesforce for field in CONTACT_FIELDS)
ACCOUNT_SALESFORCE_NAMES = tuple(field.salesforce for field in ACCOUNT_FIELDS)


class InvalidFields(ValueError):
    """Some fields failed validation; ``problems`` maps field to reason."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        detail = "; ".join(f"{name}: {reason}" for name, reason in problems.items())
        super().__init__(detail)


def clean_contact(data: Mapping[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate and normalise platform contact fields (see ``clean``)."""
    return clean(CONTACT_FIELDS, data, partial)


def clean_account(data: Mapping[str, Any], partial: bool = False) -> dict[str, Any]:
    """Validate and normalise platform account fields (see ``clean``)."""
    return clean(ACCOUNT_FIELDS, data, partial)


def clean(
    fields: tuple[Field, ...], data: Mapping[str, Any], partial: bool = False
) -> dict[str, Any]:
    """Validate and normalise platform fields of one object.

    Blank strings become None, e-mail addresses lose surrounding spaces.
    ``partial`` allows required fields to be absent (an update).
    Raises ``InvalidFields`` naming every bad field.
    """
    problems: dict[str, str] = {}
    unknown = sorted(set(data) - {field.platform for field in fields})
    for name in unknown:
        problems[name] = "unknown field"
    cleaned: dict[str, Any] = {}
    for field in fields:
        if field.platform not in data:
            if field.required and not partial:
                problems[field.platform] = "is required"
            continue
        try:
            cleaned[field.platform] = _clean_value(field, data[field.platform])
        except ValueError as exc:
            problems[field.platform] = str(exc)
    if problems:
        raise InvalidFields(problems)
    return cleaned


def _clean_value(field: Field, value: Any) -> Any:
    if field.kind == "boolean":
        return _parse_bool(value)
    if isinstance(value, str):
        value = value.strip() if field.kind == "email" else value
        if not value.strip():
            value = None
    if value is None:
        if field.required:
            raise ValueError("is required")
        return None
    if field.kind == "date":
        return _parse_date(value)
    if field.kind == "integer":
        return _parse_int(value)
    if not isinstance(value, str):
        raise ValueError(f"must be text, not {type(value).__name__}")
    if len(value) > field.max_length:
        raise ValueError(f"is {len(value)} characters, the limit is {field.max_length}")
    if field.kind == "email" and not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{value!r} is not true or false")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{value!r} is not a whole number")


def _parse_date(value: Any) -> str:
    if isinstance(value, datetime.date):
        return value.isoformat()
    try:
        if not _DATE.match(str(value)):
            raise ValueError
        return datetime.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def to_salesforce(
    platform: Mapping[str, Any], fields: tuple[Field, ...] = CONTACT_FIELDS
) -> dict[str, Any]:
    """Salesforce fields for a platform record (with its id)."""
    record = {field.salesforce: platform.get(field.platform) for field in fields}
    for field in fields:
        if field.kind == "boolean":
            record[field.salesforce] = bool(record[field.salesforce])
    record[EXTERNAL_ID_FIELD] = str(platform["id"])
    return record


def to_platform(
    record: Mapping[str, Any], fields: tuple[Field, ...] = CONTACT_FIELDS
) -> dict[str, Any]:
    """Platform fields for a Salesforce record."""
    data = {field.platform: record.get(field.salesforce) for field in fields}
    return clean(fields, data)


def from_export_row(
    row: Mapping[str, str], fields: tuple[Field, ...] = CONTACT_FIELDS
) -> dict[str, Any]:
    """Platform fields for one row of a Salesforce export.

    Raises ``InvalidFields`` for a row the platform cannot take.
    """
    data = {field.platform: row.get(field.salesforce, "") for field in fields}
    return clean(fields, data)
