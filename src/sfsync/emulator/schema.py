"""sObject definitions of the emulated org and validation of written values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sfsync.emulator import ids
from sfsync.emulator.errors import ApiError

SYSTEM_FIELDS = (
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
)
_EMAIL_RE = re.compile(r"^[^@\s\"<>(),;:]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TEXT_TYPES = {"string", "email", "phone", "textarea", "picklist", "url"}


@dataclass(frozen=True)
class Field:
    """One column of an sObject, with the subset of describe data we honour."""

    name: str
    type: str
    label: str
    length: int = 0
    createable: bool = True
    updateable: bool = True
    required: bool = False
    unique: bool = False
    external_id: bool = False
    default: Any = None
    reference_to: tuple[str, ...] = ()
    restricted_values: tuple[str, ...] = ()

    @property
    def writable(self) -> bool:
        return self.createable or self.updateable


@dataclass
class SObjectType:
    """An sObject: its key prefix, its ordered fields and write permissions."""

    name: str
    key_prefix: str
    label: str
    fields: dict[str, Field]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): name for name in self.fields}

    def field(self, name: str) -> Field | None:
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    @property
    def unique_fields(self) -> list[str]:
        return [f.name for f in self.fields.values() if f.unique]

    def coerce(self, body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        """Validate a REST write body; return canonical field name -> value.

        Raises ApiError with the errorCode Salesforce would use.
        """
        values: dict[str, Any] = {}
        for raw_name, raw_value in body.items():
            if raw_name == "attributes":
                continue
            spec = self.field(raw_name)
            if spec is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{raw_name}' on sobject of type {self.name}",
                )
            allowed = spec.createable if creating else spec.updateable
            if not allowed:
                raise ApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {spec.name}. Please check the "
                    "security settings of this field and verify that it is "
                    "read/write for your profile or permission set.",
                    [spec.name],
                )
            values[spec.name] = coerce_value(spec, raw_value)
        for spec in self.fields.values():
            if not spec.required:
                continue
            missing = values.get(spec.name) is None
            if (creating and missing) or (spec.name in values and missing):
                raise ApiError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{spec.name}]",
                    [spec.name],
                )
        return values


def _parser_error(spec: Field, value: Any) -> ApiError:
    kind = type(value).__name__
    return ApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {spec.type} from {kind} value {value!r} "
        f"or request may be missing a required field ({spec.name})",
    )


def coerce_value(spec: Field, value: Any) -> Any:
    """Turn one written JSON value into its stored form, or raise ApiError."""
    if spec.type == "boolean":
        if value is None:
            return bool(spec.default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _parser_error(spec, value)
    if value == "" or value is None:
        return None
    if spec.type in _TEXT_TYPES:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _parser_error(spec, value)
        text = str(value)
        if spec.type == "email":
            # Salesforce trims email addresses before it validates them.
            text = text.strip()
            if not _EMAIL_RE.match(text):
                raise ApiError(
                    400,
                    "INVALID_EMAIL_ADDRESS",
                    f"{spec.label}: invalid email address: {text}",
                    [spec.name],
                )
        if spec.length and len(text) > spec.length:
            raise ApiError(
                400,
                "STRING_TOO_LONG",
                f"{spec.label}: data value too large: {text[:40]} "
                f"(max length={spec.length})",
                [spec.name],
            )
        if spec.restricted_values and text not in spec.restricted_values:
            raise ApiError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{spec.label}: bad value for restricted picklist field: {text}",
                [spec.name],
            )
        return text
    if spec.type == "date":
        if isinstance(value, str) and _DATE_RE.match(value):
            try:
                date.fromisoformat(value)
            except ValueError:
                raise _parser_error(spec, value) from None
            return value
        raise _parser_error(spec, value)
    if spec.type == "int":
        if isinstance(value, bool):
            raise _parser_error(spec, value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise _parser_error(spec, value)
    if spec.type == "double":
        if isinstance(value, bool):
            raise _parser_error(spec, value)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise _parser_error(spec, value) from None
    if spec.type == "reference":
        normalized = ids.normalize(value)
        # Existence of the target is checked by the org, which sees its rows.
        prefixes = {
            CHECKED_PREFIXES[name]
            for name in spec.reference_to
            if name in CHECKED_PREFIXES
        }
        if normalized is None or (prefixes and normalized[:3] not in prefixes):
            raise ApiError(
                400,
                "MALFORMED_ID",
                f"{spec.label}: id value of incorrect type: {value}",
                [spec.name],
            )
        return normalized
    raise _parser_error(spec, value)


def _system_fields() -> list[Field]:
    return [
        Field("CreatedDate", "datetime", "Created Date", createable=False,
              updateable=False),
        Field("CreatedById", "reference", "Created By ID", createable=False,
              updateable=False, reference_to=("User",)),
        Field("LastModifiedDate", "datetime", "Last Modified Date",
              createable=False, updateable=False),
        Field("LastModifiedById", "reference", "Last Modified By ID",
              createable=False, updateable=False, reference_to=("User",)),
        Field("SystemModstamp", "datetime", "System Modstamp", createable=False,
              updateable=False),
    ]  # fmt: skip


def _header_fields() -> list[Field]:
    return [
        Field("Id", "id", "Record ID", 18, createable=False, updateable=False),
        Field("IsDeleted", "boolean", "Deleted", createable=False,
              updateable=False, default=False),
    ]  # fmt: skip


def _object(name: str, prefix: str, fields: list[Field], **kw: Any) -> SObjectType:
    ordered = _header_fields() + fields + _system_fields()
    return SObjectType(name, prefix, name, {f.name: f for f in ordered}, **kw)


CONTACT = _object(
    "Contact",
    "003",
    [
        Field("Salutation", "picklist", "Salutation", 40),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, required=True),
        Field("Name", "string", "Full Name", 121, createable=False,
              updateable=False),
        Field("Title", "string", "Title", 128),
        Field("Email", "email", "Email", 80),
        Field("Phone", "phone", "Business Phone", 40),
        Field("MobilePhone", "phone", "Mobile Phone", 40),
        Field("MailingStreet", "textarea", "Mailing Street", 255),
        Field("MailingCity", "string", "Mailing City", 40),
        Field("MailingPostalCode", "string", "Mailing Zip/Postal Code", 20),
        Field("MailingCountry", "string", "Mailing Country", 80),
        Field("Birthdate", "date", "Birthdate"),
        Field("LeadSource", "picklist", "Lead Source", 40),
        Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", default=False),
        Field("Description", "textarea", "Contact Description", 32000),
        Field("AccountId", "reference", "Account ID", 18,
              reference_to=("Account",)),
        Field("Platform_Id__c", "string", "Platform Id", 32, unique=True,
              external_id=True),
        Field("OwnerId", "reference", "Owner ID", 18, reference_to=("User",)),
    ],
)  # fmt: skip

ACCOUNT = _object(
    "Account",
    "001",
    [
        Field("Name", "string", "Account Name", 255, required=True),
        Field("Type", "picklist", "Account Type", 255),
        Field("Industry", "picklist", "Industry", 255),
        Field("BillingStreet", "textarea", "Billing Street", 255),
        Field("BillingCity", "string", "Billing City", 40),
        Field("BillingCountry", "string", "Billing Country", 80),
        Field("Phone", "phone", "Account Phone", 40),
        Field("Website", "url", "Website", 255),
        Field("NumberOfEmployees", "int", "Employees"),
        Field("Description", "textarea", "Account Description", 32000),
        Field("Platform_Id__c", "string", "Platform Id", 32, unique=True,
              external_id=True),
        Field("OwnerId", "reference", "Owner ID", 18, reference_to=("User",)),
    ],
)  # fmt: skip

USER = _object(
    "User",
    "005",
    [
        Field("Username", "string", "Username", 80, required=True, unique=True),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, required=True),
        Field("Name", "string", "Full Name", 121, createable=False,
              updateable=False),
        Field("Email", "email", "Email", 128, required=True),
        Field("IsActive", "boolean", "Active", default=True),
    ],
    createable=False,
    updateable=False,
    deletable=False,
)  # fmt: skip

PUSH_TOPIC = _object(
    "PushTopic",
    "0IF",
    [
        Field("Name", "string", "Topic Name", 25, required=True, unique=True),
        Field("Query", "textarea", "SOQL Query", 1300, required=True),
        Field("ApiVersion", "double", "API Version", required=True),
        Field("IsActive", "boolean", "Is Active", default=True),
        Field("NotifyForFields", "picklist", "Notify For Fields", 40,
              default="Referenced",
              restricted_values=("All", "Referenced", "Select", "Where")),
        Field("NotifyForOperationCreate", "boolean", "Create", default=True),
        Field("NotifyForOperationUpdate", "boolean", "Update", default=True),
        Field("NotifyForOperationDelete", "boolean", "Delete", default=True),
        Field("NotifyForOperationUndelete", "boolean", "Undelete", default=True),
        Field("Description", "string", "Description", 400),
    ],
)  # fmt: skip

SOBJECTS: dict[str, SObjectType] = {
    s.name.lower(): s for s in (ACCOUNT, CONTACT, USER, PUSH_TOPIC)
}
CHECKED_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "PushTopic": "0IF",
}
# Compound name parts, as Change Data Capture nests them under `Name`.
NAME_PARTS = ("Salutation", "FirstName", "LastName")


def lookup(name: str) -> SObjectType | None:
    return SOBJECTS.get(name.lower())


def relationship(sotype: SObjectType, name: str) -> tuple[Field, SObjectType] | None:
    """The lookup field and parent type behind a relationship name (`Account`)."""
    spec = sotype.field(name + "Id")
    if spec is None or spec.type != "reference" or not spec.reference_to:
        return None
    parent = lookup(spec.reference_to[0])
    return None if parent is None else (spec, parent)


def compound_name(first: str | None, last: str | None) -> str | None:
    parts = [part for part in (first, last) if part]
    return " ".join(parts) if parts else None
