"""The emulated org: users, sessions, records, DML semantics, usage counters.

Emulator decisions where Salesforce leaves room or the emulator simplifies:
- A delete sets IsDeleted, and also stamps LastModifiedById/LastModifiedDate with
  the deleting user and bumps SystemModstamp, so PushTopic filters such as
  `LastModifiedById != '<sync user>'` see who deleted the row.
- Unique fields (Contact.Platform_Id__c, PushTopic.Name, User.Username) compare
  case-sensitively and only among rows that are not deleted.
- SystemModstamp is strictly increasing across the whole org (ms precision);
  LastModifiedDate carries the same stamp.
- Usage counters (`/_emulator/stats`) persist with every DML and at shutdown.
- A lookup to a row that does not exist gives FIELD_INTEGRITY_EXCEPTION ("id
  value of incorrect type"), to a deleted row ENTITY_IS_DELETED; an id with
  the wrong key prefix is MALFORMED_ID (checked in schema).
- Deleting an Account deletes its Contacts in the same transaction; undeleting
  the Account does not bring them back (issue #4: Salesforce restores them).
- Every DML runs in a transaction: changes reach listeners only when it
  commits, all with one transaction key; a failure rolls back memory and disk.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import string
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sfsync.emulator import ids, soql
from sfsync.emulator.clock import CLOCK, Clock, format_datetime
from sfsync.emulator.errors import ApiError, SoqlError
from sfsync.emulator.faults import Faults
from sfsync.emulator.schema import (
    ACCOUNT,
    CONTACT,
    PUSH_TOPIC,
    SOBJECTS,
    USER,
    Field,
    SObjectType,
    coerce_value,
    compound_name,
    lookup,
)
from sfsync.emulator.store import Store

logger = logging.getLogger(__name__)

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "._"


@dataclass(frozen=True)
class UserSpec:
    """A login the emulator always provides."""

    key: str
    username: str
    password: str
    first_name: str
    last_name: str
    number: int

    @property
    def user_id(self) -> str:
        return ids.make_id("005", self.number)


DEFAULT_USERS = (
    UserSpec("integration", "sync@platform.example", "sync-password", "Sync",
             "Integration", 1),
    UserSpec("sales", "sales@platform.example", "sales-password", "Sam", "Sales",
             2),
)  # fmt: skip


@dataclass
class Change:
    """One committed DML on one record, handed to listeners (streaming)."""

    kind: str  # created | updated | deleted | undeleted
    sotype: SObjectType
    before: dict[str, Any] | None
    after: dict[str, Any]
    changed: set[str]
    user_id: str
    origin: str = ""
    transaction_key: str = ""
    sequence: int = 1
    commit_ms: int = 0


@dataclass
class Transaction:
    """What one atomic unit of DML touched, to publish or to roll back."""

    key: str
    origin: str
    journal: list[tuple[str, str, dict[str, Any] | None]]
    changes: list[Change]
    stats: dict[str, Any]


@dataclass
class QueryCursor:
    """The rows of one query result, served page by page."""

    records: list[dict[str, Any]]
    total: int
    page_size: int
    version: str
    created: float = field(default=0.0)


class Org:
    """All state of the emulated org and the operations REST performs on it."""

    def __init__(
        self,
        store: Store,
        clock: Clock = CLOCK,
        api_limit: int = 5_000_000,
        faults: Faults | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.api_limit = api_limit
        self.faults = faults or Faults()
        self.tx: Transaction | None = None
        # Sforce-Call-Options of the request being served (CDC changeOrigin).
        self.call_origin = ""
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            s.name: {} for s in SOBJECTS.values()
        }
        # (sobject, field) -> value -> ids of live rows holding that value.
        self.unique_index: dict[tuple[str, str], dict[str, set[str]]] = {
            (s.name, name): {} for s in SOBJECTS.values() for name in s.unique_fields
        }
        self.listeners: list[Callable[[Change], None]] = []
        self.sessions = store.load_sessions()
        self.session_times = store.load_session_times()
        self.id_counters: dict[str, int] = store.get_value("id_counters", {})
        self.last_stamp: int = store.get_value("last_stamp", 0)
        self.stats: dict[str, Any] = store.get_value(
            "stats", {"api_requests": {}, "dml": {}}
        )
        self.api_usage: dict[str, Any] = store.get_value(
            "api_usage", {"day": "", "used": 0}
        )
        self.cursors: dict[str, QueryCursor] = {}
        self.push_topic_queries: dict[tuple[str, str], soql.Query] = {}
        for sobject, record in store.load_records():
            self.records[sobject][record["Id"]] = record
            self._index(sobject, record)
        self._ensure_users()

    # --- users and sessions -------------------------------------------------

    def _ensure_users(self) -> None:
        for spec in DEFAULT_USERS:
            if spec.user_id in self.records["User"]:
                continue
            stamp = self.next_stamp()
            record: dict[str, Any] = {name: None for name in USER.fields}
            record.update(
                Id=spec.user_id,
                IsDeleted=False,
                Username=spec.username,
                FirstName=spec.first_name,
                LastName=spec.last_name,
                Name=compound_name(spec.first_name, spec.last_name),
                Email=spec.username,
                IsActive=True,
                CreatedById=spec.user_id,
                LastModifiedById=spec.user_id,
            )
            self._stamp(record, stamp, created=True)
            self.records["User"][spec.user_id] = record
            self._index("User", record)
            self.store.save_record("User", record)
        self.store.commit()

    def user(self, user_id: str) -> dict[str, Any]:
        return self.records["User"][user_id]

    def authenticate(self, username: str, password: str) -> dict[str, Any] | None:
        for spec in DEFAULT_USERS:
            if spec.username.lower() == username.strip().lower():
                if secrets.compare_digest(spec.password, password):
                    return self.user(spec.user_id)
                return None
        return None

    def new_session(self, user_id: str) -> str:
        secret = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(96))
        token = f"{ids.ORG_ID}!AQ{secret}"
        now_ms = self.clock.now_ms()
        self.sessions[token] = user_id
        self.session_times[token] = now_ms
        self.store.save_session(token, user_id, now_ms)
        self.store.commit()
        return token

    def session_user(self, token: str | None) -> dict[str, Any] | None:
        user_id = self.sessions.get(token or "")
        if user_id is None:
            return None
        ttl = self.faults.session_ttl_seconds
        if ttl is not None:
            created = self.session_times.get(token or "", 0)
            if self.clock.now_ms() - created > ttl * 1000:
                return None
        return self.user(user_id)

    def revoke_sessions(self, username: str | None = None) -> int:
        """Forget every session (of one user); their tokens get 401 from now on."""
        doomed = [
            token
            for token, user_id in self.sessions.items()
            if username is None
            or self.user(user_id)["Username"].lower() == username.lower()
        ]
        for token in doomed:
            del self.sessions[token]
            self.session_times.pop(token, None)
        self.store.delete_sessions(doomed)
        self.store.commit()
        logger.info("revoked %d sessions", len(doomed))
        return len(doomed)

    # --- usage counters -------------------------------------------------------

    def count_request(self, user: dict[str, Any]) -> None:
        """Count one REST call; raise REQUEST_LIMIT_EXCEEDED past the daily max."""
        today = datetime.fromtimestamp(self.clock.now(), tz=UTC).date().isoformat()
        if self.api_usage["day"] != today:
            self.api_usage = {"day": today, "used": 0}
        if self.faults.api_limit_reached or self.api_usage["used"] >= self.api_limit:
            raise ApiError(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
            )
        self.api_usage["used"] += 1
        requests = self.stats["api_requests"]
        requests[user["Username"]] = requests.get(user["Username"], 0) + 1

    def limit_info(self) -> str:
        return f"api-usage={self.api_usage['used']}/{self.api_limit}"

    def stats_snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = {"api_requests": {}, "dml": {}}
        for spec in DEFAULT_USERS:
            snapshot["api_requests"][spec.username] = 0
            snapshot["dml"][spec.username] = _zero_dml()
        snapshot["api_requests"].update(self.stats["api_requests"])
        for username, counts in self.stats["dml"].items():
            snapshot["dml"].setdefault(username, {}).update(counts)
        snapshot["dml_by_object"] = self.stats.get("dml_by_object", {})
        return snapshot

    def _count_dml(self, user_id: str, operation: str, sobject: str) -> None:
        username = self.user(user_id)["Username"]
        for counts in (
            self.stats["dml"].setdefault(username, _zero_dml()),
            self.stats.setdefault("dml_by_object", {})
            .setdefault(username, {})
            .setdefault(sobject, _zero_dml()),
        ):
            counts[operation] = counts.get(operation, 0) + 1

    def flush(self) -> None:
        """Persist the counters that are not written with every request."""
        self.store.set_value("stats", self.stats)
        self.store.set_value("api_usage", self.api_usage)
        self.store.commit()

    # --- records --------------------------------------------------------------

    def next_stamp(self) -> int:
        # Strictly increasing, so `SystemModstamp > :cursor` polling is exact.
        self.last_stamp = max(self.clock.now_ms(), self.last_stamp + 1)
        return self.last_stamp

    def _new_id(self, sotype: SObjectType) -> str:
        number = self.id_counters.get(sotype.key_prefix, 0) + 1
        self.id_counters[sotype.key_prefix] = number
        return ids.make_id(sotype.key_prefix, number)

    @staticmethod
    def _stamp(record: dict[str, Any], stamp: int, created: bool) -> None:
        text = format_datetime(stamp)
        if created:
            record["CreatedDate"] = text
        record["LastModifiedDate"] = text
        record["SystemModstamp"] = text

    def _index(self, sobject: str, record: dict[str, Any]) -> None:
        for (indexed_object, name), index in self.unique_index.items():
            value = record.get(name)
            if indexed_object == sobject and value is not None:
                if record.get("IsDeleted"):
                    continue
                index.setdefault(value, set()).add(record["Id"])

    def _unindex(self, sobject: str, record: dict[str, Any]) -> None:
        for (indexed_object, name), index in self.unique_index.items():
            value = record.get(name)
            if indexed_object == sobject and value in index:
                index[value].discard(record["Id"])
                if not index[value]:
                    del index[value]

    def find_live(self, sotype: SObjectType, name: str, value: Any) -> list[str]:
        index = self.unique_index.get((sotype.name, name))
        if index is not None:
            return sorted(index.get(value, ()))
        return [
            rid
            for rid, rec in self.records[sotype.name].items()
            if not rec["IsDeleted"] and rec.get(name) == value
        ]

    def _check_unique(
        self, sotype: SObjectType, values: dict[str, Any], own_id: str | None
    ) -> None:
        for name in sotype.unique_fields:
            value = values.get(name)
            if value is None:
                continue
            holders = [
                rid for rid in self.find_live(sotype, name, value) if rid != own_id
            ]
            if holders:
                raise ApiError(
                    400,
                    "DUPLICATE_VALUE",
                    f"duplicate value found: {name} duplicates value on record "
                    f"with id: {holders[0]}",
                    [name],
                )

    def resolve_id(self, sotype: SObjectType, raw_id: str) -> str:
        """18-char id for a path segment; 400 MALFORMED_ID on a foreign prefix."""
        record_id = ids.normalize(raw_id)
        if record_id is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                "Provided external ID field does not exist or is not accessible: "
                f"{raw_id}",
            )
        if record_id[:3] != sotype.key_prefix:
            raise ApiError(
                400,
                "MALFORMED_ID",
                f"{sotype.name} ID: id value of incorrect type: {raw_id}",
            )
        return record_id

    def get(
        self, sotype: SObjectType, record_id: str, *, live: bool = True
    ) -> dict[str, Any]:
        record = self.records[sotype.name].get(record_id)
        if record is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if live and record["IsDeleted"]:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _validate(self, sotype: SObjectType, record: dict[str, Any]) -> None:
        if sotype is PUSH_TOPIC:
            self.push_topic_query(record)

    def push_topic_query(self, record: dict[str, Any]) -> soql.Query:
        """The bound query of a PushTopic record (cached by SystemModstamp)."""
        key = (record["Id"] or "", record["SystemModstamp"] or "")
        cached = self.push_topic_queries.get(key)
        if cached is not None:
            return cached
        try:
            query = soql.bind(soql.parse(record["Query"]))
        except SoqlError as exc:
            raise ApiError(400, exc.code, exc.message, ["Query"]) from None
        problem = None
        if query.count or "Id" not in query.fields:
            problem = "the SELECT list must name fields and include Id"
        elif query.paths:
            problem = "relationship fields are not supported"
        elif query.order_by or query.limit is not None or query.offset is not None:
            problem = "ORDER BY, LIMIT and OFFSET are not allowed"
        if problem:
            raise ApiError(
                400, "INVALID_FIELD", f"Invalid PushTopic query: {problem}", ["Query"]
            )
        if record["Id"]:
            stale = [k for k in self.push_topic_queries if k[0] == record["Id"]]
            for old in stale:
                del self.push_topic_queries[old]
            self.push_topic_queries[key] = query
        return query

    # --- transactions ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One atomic unit of DML; nested calls join the outer transaction."""
        if self.tx is not None:
            yield self.tx
            return
        tx = Transaction(
            key=uuid.uuid4().hex[:20],
            origin=self.call_origin,
            journal=[],
            changes=[],
            stats=copy.deepcopy(self.stats),
        )
        self.tx = tx
        try:
            yield tx
        except BaseException:
            self.tx = None
            self._roll_back(tx)
            raise
        self.tx = None
        commit_ms = self.clock.now_ms()
        for sequence, change in enumerate(tx.changes, start=1):
            change.origin = tx.origin
            change.transaction_key = tx.key
            change.sequence = sequence
            change.commit_ms = commit_ms
            for listener in self.listeners:
                listener(change)
        self.store.set_value("id_counters", self.id_counters)
        self.store.set_value("last_stamp", self.last_stamp)
        self.store.set_value("stats", self.stats)
        self.store.set_value("api_usage", self.api_usage)
        self.store.commit()

    def _roll_back(self, tx: Transaction) -> None:
        self.store.rollback()
        for sobject, record_id, before in reversed(tx.journal):
            current = self.records[sobject].get(record_id)
            if current is not None:
                self._unindex(sobject, current)
            if before is None:
                self.records[sobject].pop(record_id, None)
            else:
                self.records[sobject][record_id] = before
                self._index(sobject, before)
        self.stats = tx.stats
        logger.info("rolled back a transaction of %d rows", len(tx.journal))

    def _write(
        self, sotype: SObjectType, before: dict[str, Any] | None, record: dict[str, Any]
    ) -> None:
        assert self.tx is not None
        self.tx.journal.append((sotype.name, record["Id"], before))
        if before is not None:
            self._unindex(sotype.name, before)
        self.records[sotype.name][record["Id"]] = record
        self._index(sotype.name, record)
        self.store.save_record(sotype.name, record)

    def _emit(self, change: Change) -> None:
        assert self.tx is not None
        self.tx.changes.append(change)

    def _check_references(self, sotype: SObjectType, values: dict[str, Any]) -> None:
        for name, value in values.items():
            spec = sotype.fields[name]
            if spec.type != "reference" or value is None or not spec.reference_to:
                continue
            rows = self.records.get(spec.reference_to[0])
            if rows is None:
                continue
            target = rows.get(value)
            if target is None:
                raise ApiError(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"{spec.label}: id value of incorrect type: {value}",
                    [name],
                )
            if target["IsDeleted"]:
                raise ApiError(400, "ENTITY_IS_DELETED", "entity is deleted", [name])

    def _before_write(self) -> None:
        if self.faults.lock_row():
            raise ApiError(
                400,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records",
            )

    # --- DML ------------------------------------------------------------------

    def create(
        self, sotype: SObjectType, body: dict[str, Any], user_id: str
    ) -> dict[str, Any]:
        """Insert a record from a REST body; return the stored record."""
        self._require(sotype, sotype.createable, "create")
        values = sotype.coerce(body, creating=True)
        with self.transaction():
            return self._insert(sotype, values, user_id)

    def _insert(
        self, sotype: SObjectType, values: dict[str, Any], user_id: str
    ) -> dict[str, Any]:
        self._before_write()
        record: dict[str, Any] = {
            name: spec.default for name, spec in sotype.fields.items()
        }
        record.update(values)
        if "OwnerId" in sotype.fields and record["OwnerId"] is None:
            record["OwnerId"] = user_id
        self._derive(sotype, record)
        self._check_unique(sotype, record, None)
        self._check_references(sotype, values)
        self._validate(sotype, record)
        record["Id"] = self._new_id(sotype)
        record["CreatedById"] = record["LastModifiedById"] = user_id
        self._stamp(record, self.next_stamp(), created=True)
        self._write(sotype, None, record)
        self._count_dml(user_id, "create", sotype.name)
        self._emit(Change("created", sotype, None, record, set(values), user_id))
        logger.debug("created %s %s", sotype.name, record["Id"])
        return record

    def update(
        self, sotype: SObjectType, record_id: str, body: dict[str, Any], user_id: str
    ) -> dict[str, Any]:
        self._require(sotype, sotype.updateable, "update")
        before = self.get(sotype, record_id)
        values = sotype.coerce(body, creating=False)
        with self.transaction():
            return self._modify(sotype, before, values, user_id)

    def _modify(
        self,
        sotype: SObjectType,
        before: dict[str, Any],
        values: dict[str, Any],
        user_id: str,
    ) -> dict[str, Any]:
        self._before_write()
        record = dict(before)
        record.update(values)
        self._derive(sotype, record)
        self._check_unique(sotype, record, record["Id"])
        self._check_references(
            sotype, {k: v for k, v in values.items() if v != before[k]}
        )
        changed = {name for name in sotype.fields if record[name] != before[name]}
        if changed & {"Query"}:
            self._validate(sotype, record)
        record["LastModifiedById"] = user_id
        self._stamp(record, self.next_stamp(), created=False)
        self._write(sotype, before, record)
        self._count_dml(user_id, "update", sotype.name)
        self._emit(Change("updated", sotype, before, record, changed, user_id))
        logger.debug("updated %s %s", sotype.name, record["Id"])
        return record

    def delete(self, sotype: SObjectType, record_id: str, user_id: str) -> None:
        self._require(sotype, sotype.deletable, "delete")
        before = self.get(sotype, record_id)
        with self.transaction():
            self._before_write()
            self._remove(sotype, before, user_id)
            if sotype is ACCOUNT:
                children = [
                    row
                    for row in self.records["Contact"].values()
                    if row["AccountId"] == record_id and not row["IsDeleted"]
                ]
                for child in children:
                    self._remove(CONTACT, child, user_id)

    def _remove(
        self, sotype: SObjectType, before: dict[str, Any], user_id: str
    ) -> None:
        record = dict(before)
        record["IsDeleted"] = True
        record["LastModifiedById"] = user_id
        self._stamp(record, self.next_stamp(), created=False)
        self._write(sotype, before, record)
        # Deleted rows leave the unique index: their values are free again.
        self._unindex(sotype.name, record)
        self._count_dml(user_id, "delete", sotype.name)
        self._emit(Change("deleted", sotype, before, record, {"IsDeleted"}, user_id))
        logger.debug("deleted %s %s", sotype.name, record["Id"])

    def undelete(self, record_id: str, user_id: str) -> dict[str, Any]:
        """Restore a deleted row (SOAP `undelete`); errors as Salesforce words them."""
        normalized = ids.normalize(record_id)
        sotype = next(
            (s for s in SOBJECTS.values() if normalized
             and s.key_prefix == normalized[:3]),
            None,
        )  # fmt: skip
        if normalized is None or sotype is None:
            raise ApiError(400, "MALFORMED_ID", f"bad id {record_id}")
        before = self.records[sotype.name].get(normalized)
        if before is None:
            raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        if not before["IsDeleted"]:
            raise ApiError(400, "UNDELETE_FAILED", "Entity is not in the recycle bin")
        self._require(sotype, sotype.deletable, "undelete")
        with self.transaction():
            self._before_write()
            record = dict(before)
            record["IsDeleted"] = False
            self._check_unique(sotype, record, normalized)
            self._check_references(
                sotype,
                {n: record[n] for n in sotype.fields if n not in SYSTEM_REFERENCES},
            )
            record["LastModifiedById"] = user_id
            self._stamp(record, self.next_stamp(), created=False)
            self._write(sotype, before, record)
            self._count_dml(user_id, "undelete", sotype.name)
            self._emit(
                Change("undeleted", sotype, before, record, {"IsDeleted"}, user_id)
            )
        return record

    def upsert(
        self,
        sotype: SObjectType,
        field_name: str,
        value: str,
        body: dict[str, Any],
        user_id: str,
        version: str,
    ) -> tuple[dict[str, Any], bool]:
        """Insert or update by external id; return (record, created)."""
        spec = external_id_field(sotype, field_name)
        self._require(sotype, sotype.createable and sotype.updateable, "upsert")
        key = coerce_value(spec, value)
        values = sotype.coerce(body, creating=False)
        if values.get(spec.name, key) != key:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"The external ID field {spec.name} in the body does not match "
                "the value in the URL",
                [spec.name],
            )
        matches = self.find_live(sotype, spec.name, key)
        if len(matches) > 1:
            urls = [f"/services/data/v{version}/sobjects/{sotype.name}/{rid}"
                    for rid in matches]  # fmt: skip
            raise ApiError(300, "MULTIPLE_CHOICES", "More than one record", body=urls)
        with self.transaction():
            if not matches:
                values = sotype.coerce(body, creating=True) | {spec.name: key}
                return self._insert(sotype, values, user_id), True
            before = self.records[sotype.name][matches[0]]
            return self._modify(sotype, before, values, user_id), False

    @staticmethod
    def _derive(sotype: SObjectType, record: dict[str, Any]) -> None:
        if "Name" in sotype.fields and "LastName" in sotype.fields:
            record["Name"] = compound_name(record["FirstName"], record["LastName"])

    @staticmethod
    def _require(sotype: SObjectType, allowed: bool, operation: str) -> None:
        if not allowed:
            raise ApiError(
                403,
                "INSUFFICIENT_ACCESS_OR_READONLY",
                f"The emulator does not allow {operation} on {sotype.name}",
            )

    # --- queries --------------------------------------------------------------

    def query(
        self, text: str, *, include_deleted: bool, page_size: int, version: str
    ) -> dict[str, Any]:
        query = soql.bind(soql.parse(text))
        assert query.sotype is not None
        rows: Iterable[dict[str, Any]] = self.records[query.sotype.name].values()
        if not include_deleted:
            rows = [row for row in rows if not row["IsDeleted"]]
        if query.paths:
            rows = [self._with_parents(query.sotype, query, row) for row in rows]
        matched = soql.execute(query, rows)
        if query.count:
            return {"totalSize": len(matched), "done": True, "records": []}
        fields = query.fields
        rendered = [self.render(query.sotype, row, fields, version) for row in matched]
        cursor = QueryCursor(rendered, len(rendered), page_size, version)
        return self.page(cursor, 0)

    def _with_parents(
        self, sotype: SObjectType, query: soql.Query, row: dict[str, Any]
    ) -> dict[str, Any]:
        view = dict(row)
        for path, (link, parent_field) in query.paths.items():
            parent_type = sotype.fields[link].reference_to[0]
            parent = self.records[parent_type].get(row[link] or "")
            view[path] = None if parent is None else parent[parent_field]
        return view

    def page(self, cursor: QueryCursor, offset: int) -> dict[str, Any]:
        end = offset + cursor.page_size
        result: dict[str, Any] = {
            "totalSize": cursor.total,
            "done": end >= cursor.total,
            "records": cursor.records[offset:end],
        }
        if end < cursor.total:
            locator = self._remember(cursor)
            result["nextRecordsUrl"] = (
                f"/services/data/v{cursor.version}/query/{locator}-{end}"
            )
        return result

    def _remember(self, cursor: QueryCursor) -> str:
        for locator, known in self.cursors.items():
            if known is cursor:
                return locator
        # Bounded like Salesforce's open-cursor limit; the oldest goes first.
        while len(self.cursors) >= 50:
            del self.cursors[next(iter(self.cursors))]
        locator = ids.to18("01g" + ids.POD + ids.base62(secrets.randbits(48), 9))
        cursor.created = self.clock.now()
        self.cursors[locator] = cursor
        return locator

    def next_page(self, token: str) -> dict[str, Any]:
        locator, _, offset = token.partition("-")
        cursor = self.cursors.get(locator)
        if cursor is None or not offset.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self.page(cursor, int(offset))

    def render(
        self,
        sotype: SObjectType,
        record: dict[str, Any],
        fields: list[str] | None = None,
        version: str = "59.0",
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": sotype.name,
                "url": f"/services/data/v{version}/sobjects/{sotype.name}/"
                f"{record['Id']}",
            }
        }
        for name in fields or sotype.fields:
            if "." in name:
                self._render_parent(sotype, record, name, out, version)
            else:
                out[name] = record.get(name)
        return out

    def _render_parent(
        self,
        sotype: SObjectType,
        record: dict[str, Any],
        path: str,
        out: dict[str, Any],
        version: str,
    ) -> None:
        relation, _, parent_field = path.partition(".")
        link = sotype.fields[relation + "Id"]
        parent_type = link.reference_to[0]
        parent_id = record.get(link.name)
        if parent_id is None or parent_id not in self.records[parent_type]:
            out[relation] = None
            return
        url = f"/services/data/v{version}/sobjects/{parent_type}/{parent_id}"
        nested = out.get(relation) or {"attributes": {"type": parent_type, "url": url}}
        nested[parent_field] = self.records[parent_type][parent_id][parent_field]
        out[relation] = nested


def lookup_or_fail(name: str) -> SObjectType:
    """The sObject type for a REST path segment; 400 INVALID_TYPE if unknown."""
    sotype = lookup(name)
    if sotype is None:
        raise ApiError(
            400,
            "INVALID_TYPE",
            f"sObject type '{name}' is not supported. If you are attempting to use "
            "a custom object, be sure to append the '__c' after the entity name.",
        )
    return sotype


def external_id_field(sotype: SObjectType, field_name: str) -> Field:
    """The external id field named in a REST path; 404 NOT_FOUND if it is
    not one."""
    spec = sotype.field(field_name)
    if spec is None or not spec.external_id:
        raise ApiError(
            404,
            "NOT_FOUND",
            "Provided external ID field does not exist or is not accessible: "
            f"{field_name}",
        )
    return spec


def _zero_dml() -> dict[str, int]:
    # "undelete" joins the counts only once it happens, so totals stay familiar.
    return {"create": 0, "update": 0, "delete": 0}


# Audit lookups are stamped by the org, never checked against live users.
SYSTEM_REFERENCES = frozenset({"CreatedById", "LastModifiedById", "OwnerId"})
