"""The demo: every part running, real data played into both sides, checked.

Accounts first, then contacts: of each export, half is created in the local
Salesforce by the sales user through REST and half is imported into the
platform with the import command, while the sync runs. Contacts name their
account by the export's ``AccountId``, mapped to the new records as a data
loader maps them. Once both sides hold every accepted record they are
compared field by field through the mapping (a contact's account included);
then each side gets updates and deletes of contacts of its own, and they are
compared again. The last line printed is ``SUMMARY {json}``; the exit status
is 0 only when both sides converged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eventlet
from nameko.standalone.rpc import ClusterRpcProxy
from tqdm import tqdm

from sfsync.extensions.batching import batching_config
from sfsync.importer import (
    ExportRow,
    append_ids,
    read_export,
    read_ids,
    write_rejected,
)
from sfsync.mapping import (
    ACCOUNT_FIELDS,
    ACCOUNT_SALESFORCE_NAMES,
    CONTACT_FIELDS,
    EXTERNAL_ID_FIELD,
    SALESFORCE_NAMES,
    Field,
    InvalidFields,
    to_platform,
)
from sfsync.salesforce.client import SalesforceClient
from sfsync.salesforce.errors import SalesforceError
from sfsync.stack import ROOT, Stack
from sfsync.testing.emulator import EmulatorProcess, start_emulator

__all__ = ["Comparison", "Demo", "compare"]

DEFAULT_CSV = ROOT / "data" / "contacts.csv"
ACCOUNTS_CSV = ROOT / "data" / "accounts.csv"
SALES_WRITERS = 8
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 5.0


@dataclass(frozen=True)
class Kind:
    sobject: str
    service: str
    label: str
    fields: tuple[Field, ...]


CONTACTS = Kind("Contact", "contacts", "contacts", CONTACT_FIELDS)
ACCOUNTS = Kind("Account", "accounts", "accounts", ACCOUNT_FIELDS)


@dataclass
class Comparison:
    salesforce: int = 0
    platform: int = 0
    paired: int = 0
    mismatched: int = 0
    duplicates: int = 0
    unpaired: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.salesforce == self.platform == self.paired and not (
            self.mismatched or self.duplicates or self.unpaired
        )


def compare(
    salesforce: SalesforceClient,
    list_page: Callable,
    sobject: str = "Contact",
    fields: tuple[Field, ...] = CONTACT_FIELDS,
    accounts: dict[str, int] | None = None,
) -> Comparison:
    """Pair every record with its platform record and compare the fields.

    For contacts, ``accounts`` (Account id to platform account id) lets the
    account be compared too.
    """
    names = [f.salesforce for f in fields]
    if accounts is not None:
        names.append("AccountId")
    records = list(
        salesforce.query(
            f"SELECT {', '.join(('Id', EXTERNAL_ID_FIELD, *names))} FROM {sobject}"
        )
    )
    platform = list_all(list_page)
    result = Comparison(salesforce=len(records), platform=len(platform))

    by_salesforce_id = Counter(
        p["salesforce_id"] for p in platform if p["salesforce_id"]
    )
    by_platform_id = Counter(
        r[EXTERNAL_ID_FIELD] for r in records if r[EXTERNAL_ID_FIELD]
    )
    result.duplicates = sum(n - 1 for n in by_salesforce_id.values() if n > 1) + sum(
        n - 1 for n in by_platform_id.values() if n > 1
    )
    platform_by_id = {str(p["id"]): p for p in platform}
    paired_ids = set()
    for record in records:
        mine = platform_by_id.get(record[EXTERNAL_ID_FIELD] or "")
        if mine is None or mine["salesforce_id"] != record["Id"]:
            result.unpaired += 1
            _example(result, f"{sobject} {record['Id']} has no linked platform record")
            continue
        paired_ids.add(mine["id"])
        result.paired += 1
        try:
            expected = to_platform(record, fields)
        except InvalidFields as exc:
            expected = {"invalid": str(exc)}
        if accounts is not None:
            expected["account_id"] = accounts.get(record["AccountId"] or "", None)
        actual = {name: mine.get(name) for name in expected}
        if expected != actual:
            result.mismatched += 1
            differing = sorted(k for k in expected if expected[k] != actual.get(k))
            _example(result, f"{sobject} {mine['id']} differs in {differing}")
    result.unpaired += sum(1 for p in platform if p["id"] not in paired_ids)
    return result


def list_all(list_page: Callable) -> list[dict]:
    """Every record, through ``list_page(offset, limit)`` a page at a time."""
    records: list[dict] = []
    while page := list_page(len(records), 1000):
        records += page
    return records


def _example(result: Comparison, text: str) -> None:
    if len(result.examples) < 5:
        result.examples.append(text)


class Demo:
    def __init__(
        self,
        csv_path: Path,
        rows: int | None,
        updates: int,
        deletes: int,
        work_dir: Path,
        timeout: float,
        vhost: str = "sfsync-demo",
        redis_uri: str = "redis://127.0.0.1:6379/1",
        instances: int = 1,
    ) -> None:
        self.csv_path = csv_path
        self.rows = rows
        self.updates = updates
        self.deletes = deletes
        self.work_dir = work_dir.resolve()
        self.timeout = timeout
        self.vhost = vhost
        self.redis_uri = redis_uri
        self.instances = instances
        self.phases: dict[str, float] = {}
        self.summary: dict[str, Any] = {}
        self.accounts_path = ACCOUNTS_CSV
        self.emulator: EmulatorProcess | None = None
        self.stack: Stack | None = None
        # Source org account id -> the new Salesforce id; Salesforce id ->
        # platform id. Filled by the accounts phase.
        self.account_salesforce_ids: dict[str, str] = {}
        self.account_platform_ids: dict[str, int] = {}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Demo:
        return cls(
            csv_path=args.csv or DEFAULT_CSV,
            rows=args.rows,
            updates=args.updates,
            deletes=args.deletes,
            work_dir=args.work_dir,
            timeout=args.timeout,
            vhost=args.vhost,
            redis_uri=args.redis_uri,
            instances=args.instances,
        )

    # -- the run -------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        try:
            self._start()
            converged = self._play()
        finally:
            self._stop()
        self.phases["total_s"] = round(time.monotonic() - started, 1)
        self.summary["seconds"] = self.phases
        print("SUMMARY " + json.dumps(self.summary, ensure_ascii=False), flush=True)
        return 0 if converged else 1

    def _start(self) -> None:
        _say(
            "starting the local Salesforce, a RabbitMQ vhost and the services "
            f"in {self.work_dir}"
        )
        if self.work_dir.exists():
            subprocess.run(["rm", "-rf", str(self.work_dir)], check=True)
        self.work_dir.mkdir(parents=True)
        self.emulator = start_emulator(self.work_dir / "emulator", connect_timeout=25.0)
        self.sales = self.emulator.client("sales", "demo-sales-team")
        self.stack = Stack.for_emulator(
            self.emulator,
            self.work_dir,
            vhost=self.vhost,
            redis_uri=self.redis_uri,
            instances=self.instances,
        )
        self.stack.start()
        self.platform = ClusterRpcProxy({"AMQP_URI": self.stack.amqp_uri}, timeout=60)
        self.rpc = self.platform.start()
        self.stack.wait_until_serving(self.rpc)
        self.stack.wait_until_streaming()
        _say(
            f"ready: Salesforce at {self.emulator.https_url}, "
            f"logs in {self.work_dir}/logs"
        )

    def _stop(self) -> None:
        if getattr(self, "rpc", None) is not None:
            self.platform.stop()
        if self.stack is not None:
            self.stack.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def _play(self) -> bool:
        with self._phase("accounts_s"):
            accounts = self._play_accounts()
        total = self.rows or sum(1 for _ in read_export(self.csv_path))
        half = total // 2
        with self._phase("salesforce_load_s"):
            sales_ids, sales_rejected = self._create_in_salesforce(half)
        with self._phase("platform_import_s"):
            imported, import_rejected = self._import_into_platform(half, total - half)
        expected = len(sales_ids) + imported
        with self._phase("converge_s"):
            first = self._wait_for_convergence(CONTACTS, expected)
        with self._phase("edits_s"):
            edits = self._edit_both_sides()
        expected -= 2 * self.deletes
        with self._phase("reconverge_s"):
            second = self._wait_for_convergence(CONTACTS, expected)

        # Writes the sync should have made: one per user change on the other
        # side, plus one link write (storing the other side's id) per record
        # created on the other side. Anything beyond that is an echo.
        writes = self._sync_writes()
        expected_to_salesforce = {
            "Contact": imported + self.updates + self.deletes + len(sales_ids),
            "Account": accounts["imported"] + accounts["created_in_salesforce"],
        }
        expected_to_platform = {
            "Contact": len(sales_ids) + self.updates + self.deletes + imported,
            "Account": accounts["created_in_salesforce"] + accounts["imported"],
        }
        echo = sum(
            max(0, writes["to_salesforce"][name] - expected_to_salesforce[name])
            + max(0, writes["to_platform"][name] - expected_to_platform[name])
            for name in ("Contact", "Account")
        )
        self.summary = {
            "rows": total,
            "sync_instances": self.instances,
            "batching": batching_on(),
            "rejected_rows": sales_rejected + import_rejected,
            "expected": expected,
            "salesforce_contacts": second.salesforce,
            "platform_contacts": second.platform,
            "mismatched": second.mismatched + accounts["comparison"].mismatched,
            "duplicates": second.duplicates + accounts["comparison"].duplicates,
            "unpaired": second.unpaired + accounts["comparison"].unpaired,
            "echo_writes": echo,
            "accounts": {
                "rows": accounts["rows"],
                "rejected_rows": accounts["rejected"],
                "salesforce": accounts["comparison"].salesforce,
                "platform": accounts["comparison"].platform,
                "mismatched": accounts["comparison"].mismatched,
                "duplicates": accounts["comparison"].duplicates,
            },
            "first_pass": {
                "mismatched": first.mismatched,
                "duplicates": first.duplicates,
            },
            "edits": edits,
            "sync_writes": writes,
            "sync_api_calls": writes["api_calls"],
            "examples": second.examples + accounts["comparison"].examples,
        }
        converged = accounts["comparison"].converged and first.converged
        return converged and second.converged and echo == 0

    # -- phases --------------------------------------------------------

    def _play_accounts(self) -> dict[str, Any]:
        rows = list(read_export(self.accounts_path, fields=ACCOUNT_FIELDS))
        half = len(rows) // 2
        _say(
            f"phase 0: {half} accounts created in Salesforce, "
            f"{len(rows) - half} imported into the platform"
        )
        created, refused = self._sales_create_all(
            "Account", rows[:half], ACCOUNT_SALESFORCE_NAMES, "accounts"
        )
        imported, rejected = self._import_into_platform(
            half, len(rows) - half, obj="account"
        )
        expected = len(created) + imported
        comparison = self._wait_for_convergence(ACCOUNTS, expected)
        self._map_accounts(created)
        return {
            "rows": len(rows),
            "rejected": refused + rejected,
            "created_in_salesforce": len(created),
            "imported": imported,
            "comparison": comparison,
        }

    def _map_accounts(self, created_in_salesforce: dict[str, str]) -> None:
        """Source account id to the new ids on both sides, as a data loader
        keeps them; the contact import reads the platform half from a file."""
        imported = read_ids(self.work_dir / "account-import-ids.csv")
        for source, platform_id in imported.items():
            account = self.rpc.accounts.get(platform_id)
            self.account_salesforce_ids[source] = account["salesforce_id"]
        for source, salesforce_id in created_in_salesforce.items():
            self.account_salesforce_ids[source] = salesforce_id
            imported[source] = self.rpc.accounts.find_by_salesforce_id(salesforce_id)
        append_ids(self.work_dir / "account-ids.csv", sorted(imported.items()))
        self.account_platform_ids = {
            salesforce_id: imported[source]
            for source, salesforce_id in self.account_salesforce_ids.items()
        }

    def _sales_create_all(
        self, sobject: str, rows: list[ExportRow], names: tuple[str, ...], label: str
    ) -> tuple[dict[str, str], int]:
        """Create rows as the sales user; their new ids by source id, and how
        many were refused (kept in a CSV with their reasons)."""
        ids: dict[str, str] = {}
        refused = []

        def create(row: ExportRow) -> str | SalesforceError:
            return self._sales_create(sobject, row, names)

        pool = eventlet.GreenPool(SALES_WRITERS)
        outcomes = pool.imap(create, rows)
        with tqdm(
            total=len(rows), desc=label, unit="row", file=sys.stdout, mininterval=2.0
        ) as bar:
            for row, outcome in zip(rows, outcomes, strict=True):
                bar.update(1)
                if isinstance(outcome, SalesforceError):
                    row.error = str(outcome)
                    refused.append(row)
                else:
                    ids[row.source_id] = outcome
        for row in refused:
            print(f"line {row.line} refused by Salesforce: {row.error}")
        if refused:
            write_rejected(self.work_dir / f"salesforce-rejected-{label}.csv", refused)
        return ids, len(refused)

    def _create_in_salesforce(self, count: int) -> tuple[list[str], int]:
        _say(f"phase 1: the sales team creates {count} contacts in Salesforce (REST)")
        rows = list(read_export(self.csv_path, limit=count))
        ids, refused = self._sales_create_all(
            "Contact", rows, SALESFORCE_NAMES, "contacts"
        )
        return list(ids.values()), refused

    def _sales_create(
        self, sobject: str, row: ExportRow, names: tuple[str, ...]
    ) -> str | SalesforceError:
        record: dict[str, Any] = {name: row.values.get(name) or None for name in names}
        if sobject == "Contact":
            record["HasOptedOutOfEmail"] = (
                row.values.get("HasOptedOutOfEmail") == "true"
            )
            source_account = row.values.get("AccountId") or ""
            if source_account:
                if source_account not in self.account_salesforce_ids:
                    return SalesforceError(
                        f"its account {source_account} is not in Salesforce"
                    )
                record["AccountId"] = self.account_salesforce_ids[source_account]
        try:
            return self.sales.create(sobject, record)
        except SalesforceError as exc:
            return exc

    def _import_into_platform(
        self, skip: int, count: int, obj: str = "contact"
    ) -> tuple[int, int]:
        if obj == "contact":
            _say(
                f"phase 2: the import command loads {count} contacts into the platform"
            )
        assert self.stack is not None
        source = self.csv_path if obj == "contact" else self.accounts_path
        ids_path = self.work_dir / f"{obj}-import-ids.csv"
        command = [
            sys.executable, "-m", "sfsync.cli", "import", str(source),
            "--object", obj, "--skip", str(skip), "--limit", str(count),
            "--amqp-uri", self.stack.amqp_uri,
            "--errors", str(self.work_dir / f"{obj}-import-rejected.csv"),
            "--ids", str(ids_path),
        ]  # fmt: skip
        if obj == "contact":
            command += ["--account-ids", str(self.work_dir / "account-ids.csv")]
        subprocess.run(command, check=True, timeout=self.timeout)
        imported = len(read_ids(ids_path))
        return imported, count - imported

    def _wait_for_convergence(self, kind: Kind, expected: int) -> Comparison:
        _say(f"waiting until both sides hold the same {expected} {kind.label}")
        service = getattr(self.rpc, kind.service)
        deadline = time.monotonic() + self.timeout
        last_report = 0.0
        while True:
            on_platform = service.count(linked=True)
            in_salesforce = self.sales.count(
                f"FROM {kind.sobject} WHERE {EXTERNAL_ID_FIELD} != null"
            )
            done = on_platform == in_salesforce == expected
            if done or time.monotonic() > deadline:
                break
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                _say(
                    f"  linked so far: {on_platform}/{expected} on the platform, "
                    f"{in_salesforce}/{expected} in Salesforce"
                )
                last_report = time.monotonic()
            time.sleep(POLL_SECONDS)
        while True:
            accounts = self.account_platform_ids if kind is CONTACTS else None
            result = compare(
                self.sales, service.list, kind.sobject, kind.fields, accounts
            )
            settled = result.converged and result.salesforce == expected
            if settled or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        _say(
            f"compared {kind.label}: {result.salesforce} in Salesforce, "
            f"{result.platform} on the platform, {result.mismatched} mismatched, "
            f"{result.duplicates} duplicates, {result.unpaired} unpaired"
        )
        for example in result.examples:
            _say(f"  e.g. {example}")
        return result

    def _edit_both_sides(self) -> dict[str, int]:
        contacts = list_all(self.rpc.contacts.list)
        wanted = 2 * (self.updates + self.deletes)
        if wanted > len(contacts):
            # A small slice: scale the edits down to what there is.
            share = len(contacts) / wanted
            self.updates = int(self.updates * share)
            self.deletes = int(self.deletes * share)
            _say(f"only {len(contacts)} contacts: edits scaled down to fit")
        _say(f"phase 3: {self.updates} updates and {self.deletes} deletes on each side")
        chosen = random.Random(7).sample(contacts, 2 * (self.updates + self.deletes))
        in_salesforce = chosen[: self.updates + self.deletes]
        on_platform = chosen[self.updates + self.deletes :]

        def edit_salesforce(position_contact: tuple[int, dict]) -> None:
            position, contact = position_contact
            if position < self.updates:
                self.sales.update(
                    "Contact",
                    contact["salesforce_id"],
                    {
                        "Title": f"Edited in Salesforce #{position}",
                        "MailingCity": "Paris",
                    },
                )
            else:
                self.sales.delete("Contact", contact["salesforce_id"])

        def edit_platform(position_contact: tuple[int, dict]) -> None:
            position, contact = position_contact
            if position < self.updates:
                self.rpc.contacts.update(
                    contact["id"],
                    {
                        "title": f"Edited on the platform #{position}",
                        "phone": "+1 555 0100",
                    },
                )
            else:
                self.rpc.contacts.delete(contact["id"])

        pool = eventlet.GreenPool(SALES_WRITERS)
        jobs = [pool.spawn(edit_salesforce, item) for item in enumerate(in_salesforce)]
        for item in enumerate(on_platform):
            edit_platform(item)
        for job in jobs:
            job.wait()
        return {
            "salesforce_updates": self.updates,
            "salesforce_deletes": self.deletes,
            "platform_updates": self.updates,
            "platform_deletes": self.deletes,
        }

    def _sync_writes(self) -> dict[str, Any]:
        assert self.emulator is not None
        stats = self.emulator.stats()
        username = self.emulator.users["integration"]["username"]
        by_object = stats["dml_by_object"].get(username, {})
        platform = {
            "Contact": self.rpc.contacts.change_counts(),
            "Account": self.rpc.accounts.change_counts(),
        }
        return {
            "to_salesforce": {
                name: sum(by_object.get(name, {}).values()) for name in platform
            },
            "to_platform": {
                name: sum(counts.get("salesforce", {}).values())
                for name, counts in platform.items()
            },
            "api_calls": stats["api_requests"].get(username, 0),
        }

    def _phase(self, name: str) -> _Timer:
        return _Timer(self.phases, name)


class _Timer:
    def __init__(self, phases: dict[str, float], name: str) -> None:
        self.phases = phases
        self.name = name

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.phases[self.name] = round(time.monotonic() - self.started, 1)


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def batching_on() -> bool:
    """Whether the sync services batch, as ``config/salesforce.yaml`` reads
    ``SFSYNC_BATCHING`` (on unless set to 0)."""
    setting = os.environ.get("SFSYNC_BATCHING", "1")
    return batching_config({"BATCHING": {"ENABLED": setting}})[0]
