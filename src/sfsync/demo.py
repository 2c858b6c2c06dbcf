"""The demo: every part running, real data played into both sides, checked.

Half the export is created in the local Salesforce by the sales user through
REST, the other half is imported into the platform with the import command,
while the sync runs. Once both sides hold every accepted record they are
compared field by field through the mapping; then each side gets updates and
deletes on records of its own, and they are compared again. The last line
printed is ``SUMMARY {json}``; the exit status is 0 only when both sides
converged.
"""

from __future__ import annotations

import argparse
import json
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
from nameko.exceptions import UnknownService
from nameko.standalone.rpc import ClusterRpcProxy
from tqdm import tqdm

from sfsync.importer import read_export, write_rejected
from sfsync.mapping import (
    EXTERNAL_ID_FIELD,
    SALESFORCE_NAMES,
    InvalidFields,
    to_platform,
)
from sfsync.salesforce.client import Credentials, SalesforceClient
from sfsync.salesforce.errors import SalesforceError
from sfsync.stack import ROOT, Stack
from sfsync.testing.emulator import EmulatorProcess, start_emulator

__all__ = ["Comparison", "Demo", "compare"]

DEFAULT_CSV = ROOT / "data" / "contacts.csv"
SALES_WRITERS = 8
POLL_SECONDS = 0.5
PROGRESS_SECONDS = 5.0


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


def compare(salesforce: SalesforceClient, list_page: Callable) -> Comparison:
    """Pair every Contact with its platform contact and compare the fields."""
    fields = ", ".join(("Id", EXTERNAL_ID_FIELD, *SALESFORCE_NAMES))
    records = list(salesforce.query(f"SELECT {fields} FROM Contact"))
    contacts = []
    offset = 0
    while page := list_page(offset, 1000):
        contacts += page
        offset += len(page)
    result = Comparison(salesforce=len(records), platform=len(contacts))

    by_salesforce_id = Counter(
        c["salesforce_id"] for c in contacts if c["salesforce_id"]
    )
    by_platform_id = Counter(
        r[EXTERNAL_ID_FIELD] for r in records if r[EXTERNAL_ID_FIELD]
    )
    result.duplicates = sum(n - 1 for n in by_salesforce_id.values() if n > 1) + sum(
        n - 1 for n in by_platform_id.values() if n > 1
    )
    platform_by_id = {str(c["id"]): c for c in contacts}
    paired_ids = set()
    for record in records:
        contact = platform_by_id.get(record[EXTERNAL_ID_FIELD] or "")
        if contact is None or contact["salesforce_id"] != record["Id"]:
            result.unpaired += 1
            _example(result, f"Contact {record['Id']} has no linked platform contact")
            continue
        paired_ids.add(contact["id"])
        result.paired += 1
        try:
            expected = to_platform(record)
        except InvalidFields as exc:
            expected = {"invalid": str(exc)}
        actual = {name: contact[name] for name in expected if name in contact}
        if expected != actual:
            result.mismatched += 1
            differing = sorted(k for k in expected if expected[k] != actual.get(k))
            _example(result, f"contact {contact['id']} differs in {differing}")
    result.unpaired += sum(1 for c in contacts if c["id"] not in paired_ids)
    return result


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
        self.emulator: EmulatorProcess | None = None
        self.stack: Stack | None = None

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
        integration = self.emulator.users["integration"]
        sales = self.emulator.users["sales"]
        self.sales = SalesforceClient(
            Credentials(self.emulator.https_url, sales["username"], sales["password"]),
            ca_file=self.emulator.ca_file,
            client_name="demo-sales-team",
        )
        self.stack = Stack(
            work_dir=self.work_dir,
            salesforce_login_url=self.emulator.https_url,
            salesforce_ca_file=self.emulator.ca_file,
            salesforce_username=integration["username"],
            salesforce_password=integration["password"],
            vhost=self.vhost,
            redis_uri=self.redis_uri,
            instances=self.instances,
        )
        self.stack.start()
        self.platform = ClusterRpcProxy({"AMQP_URI": self.stack.amqp_uri}, timeout=60)
        self.rpc = self.platform.start()
        self._wait_for_contacts_service()
        self.stack.wait_until_streaming()
        _say(
            f"ready: Salesforce at {self.emulator.https_url}, "
            f"logs in {self.work_dir}/logs"
        )

    def _wait_for_contacts_service(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rpc.contacts.count()
                return
            except UnknownService:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _stop(self) -> None:
        if getattr(self, "rpc", None) is not None:
            self.platform.stop()
        if self.stack is not None:
            self.stack.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def _play(self) -> bool:
        total = self.rows or sum(1 for _ in read_export(self.csv_path))
        half = total // 2
        with self._phase("salesforce_load_s"):
            sales_ids, sales_rejected = self._create_in_salesforce(half)
        with self._phase("platform_import_s"):
            imported, import_rejected = self._import_into_platform(half, total - half)
        expected = len(sales_ids) + imported
        with self._phase("converge_s"):
            first = self._wait_for_convergence(expected)
        with self._phase("edits_s"):
            edits = self._edit_both_sides()
        expected -= 2 * self.deletes
        with self._phase("reconverge_s"):
            second = self._wait_for_convergence(expected)

        writes = self._sync_writes()
        expected_up = imported + edits["platform_updates"] + edits["platform_deletes"]
        expected_down = len(sales_ids) + edits["salesforce_updates"]
        expected_down += edits["salesforce_deletes"]
        # Each record created on one side costs one link write on its own side
        # (storing the other side's id): those are no echo.
        expected_up += len(sales_ids)
        expected_down += imported
        echo = max(0, writes["to_salesforce"] - expected_up) + max(
            0, writes["to_platform"] - expected_down
        )
        self.summary = {
            "rows": total,
            "sync_instances": self.instances,
            "rejected_rows": sales_rejected + import_rejected,
            "expected": expected,
            "salesforce_contacts": second.salesforce,
            "platform_contacts": second.platform,
            "mismatched": second.mismatched,
            "duplicates": second.duplicates,
            "unpaired": second.unpaired,
            "echo_writes": echo,
            "first_pass": {
                "mismatched": first.mismatched,
                "duplicates": first.duplicates,
            },
            "edits": edits,
            "sync_writes": writes,
            "sync_api_calls": writes["api_calls"],
            "examples": second.examples,
        }
        return first.converged and second.converged and echo == 0

    # -- phases --------------------------------------------------------

    def _create_in_salesforce(self, count: int) -> tuple[list[str], int]:
        _say(f"phase 1: the sales team creates {count} contacts in Salesforce (REST)")
        rows = list(read_export(self.csv_path, limit=count))
        ids: list[str] = []
        refused = []
        pool = eventlet.GreenPool(SALES_WRITERS)
        outcomes = pool.imap(self._sales_create, rows)
        with tqdm(
            total=len(rows), desc="salesforce", unit="row", file=sys.stdout,
            mininterval=2.0,
        ) as bar:  # fmt: skip
            for row, outcome in zip(rows, outcomes, strict=True):
                bar.update(1)
                if isinstance(outcome, SalesforceError):
                    row.error = str(outcome)
                    refused.append(row)
                else:
                    ids.append(outcome)
        for row in refused:
            print(f"line {row.line} refused by Salesforce: {row.error}")
        if refused:
            write_rejected(self.work_dir / "salesforce-rejected.csv", refused)
        rejected = len(refused)
        return ids, rejected

    def _sales_create(self, row: Any) -> str | SalesforceError:
        record: dict[str, Any] = {
            name: row.values.get(name) or None for name in SALESFORCE_NAMES
        }
        record["HasOptedOutOfEmail"] = row.values.get("HasOptedOutOfEmail") == "true"
        try:
            return self.sales.create("Contact", record)
        except SalesforceError as exc:
            return exc

    def _import_into_platform(self, skip: int, count: int) -> tuple[int, int]:
        _say(f"phase 2: the import command loads {count} contacts into the platform")
        assert self.stack is not None
        command = [
            sys.executable,
            "-m",
            "sfsync.cli",
            "import",
            str(self.csv_path),
            "--skip",
            str(skip),
            "--limit",
            str(count),
            "--amqp-uri",
            self.stack.amqp_uri,
            "--errors",
            str(self.work_dir / "import-rejected.csv"),
            "--ids",
            str(self.work_dir / "import-ids.csv"),
        ]
        subprocess.run(command, check=True, timeout=self.timeout)
        with (self.work_dir / "import-ids.csv").open(encoding="utf-8") as ids:
            imported = sum(1 for _ in ids) - 1
        return imported, count - imported

    def _wait_for_convergence(self, expected: int) -> Comparison:
        _say(f"waiting until both sides hold the same {expected} contacts")
        deadline = time.monotonic() + self.timeout
        last_report = 0.0
        while True:
            on_platform = self.rpc.contacts.count(linked=True)
            in_salesforce = self.sales.count(
                f"FROM Contact WHERE {EXTERNAL_ID_FIELD} != null"
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
            result = compare(self.sales, self.rpc.contacts.list)
            settled = result.converged and result.salesforce == expected
            if settled or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        _say(
            f"compared: {result.salesforce} in Salesforce, {result.platform} on the "
            f"platform, {result.mismatched} mismatched, "
            f"{result.duplicates} duplicates, {result.unpaired} unpaired"
        )
        for example in result.examples:
            _say(f"  e.g. {example}")
        return result

    def _edit_both_sides(self) -> dict[str, int]:
        _say(f"phase 3: {self.updates} updates and {self.deletes} deletes on each side")
        contacts = []
        offset = 0
        while page := self.rpc.contacts.list(offset, 1000):
            contacts += page
            offset += len(page)
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

    def _sync_writes(self) -> dict[str, int]:
        assert self.emulator is not None
        stats = self.emulator.stats()
        username = self.emulator.users["integration"]["username"]
        by_object = stats["dml_by_object"].get(username, {})
        to_salesforce = sum(by_object.get("Contact", {}).values())
        by_source = self.rpc.contacts.change_counts()
        return {
            "to_salesforce": to_salesforce,
            "to_platform": sum(by_source.get("salesforce", {}).values()),
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
