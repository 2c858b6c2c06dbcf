"""Load a Salesforce-format CSV export (Contact or Account) into the platform.

Rows go through the platform service's ``create_many`` RPC in chunks, so
each record gets its own platform event (and so its own sync). A row the
platform cannot take is reported with its line number in the file and the
reason, and written to an errors CSV that can be fixed and imported again.
The export's own ``Id`` of every row that went in is appended, with its new
platform id, to an ids CSV as each chunk lands, as a data loader's success
file would be; an import run again with the same ids file skips those rows,
so an interrupted import resumes instead of duplicating.

Contacts name their account by the export's ``AccountId``; with the ids file
of the account import, each is linked to its platform account, and a row
whose account did not come in is refused, as a data loader's lookup would.

The whole file is read and checked (UTF-8, a header with the required
columns) before anything is sent.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfsync.mapping import (
    ACCOUNT_FIELDS,
    CONTACT_FIELDS,
    Field,
    InvalidFields,
    from_export_row,
)

__all__ = [
    "ExportFileError",
    "ExportRow",
    "ImportReport",
    "Importer",
    "OBJECTS",
    "read_export",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 200  # one sObject Collections call when the sync writes them up
MAX_FIELD_BYTES = 16 * 1024 * 1024
OBJECTS: dict[str, tuple[Field, ...]] = {
    "contact": CONTACT_FIELDS,
    "account": ACCOUNT_FIELDS,
}
_PASSED_OVER = {"createddate", "lastmodifieddate"}  # the source org's, not ours


class ExportFileError(ValueError):
    """The file as a whole cannot be imported; nothing was sent."""


@dataclass
class ExportRow:
    line: int  # the line of the file the row starts on
    values: dict[str, str]
    data: dict[str, Any] | None = None
    error: str | None = None

    @property
    def source_id(self) -> str:
        return self.values.get("Id", "")


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0  # already imported by an earlier run
    rejected: list[ExportRow] = field(default_factory=list)
    ids: list[tuple[str, int]] = field(default_factory=list)  # (source Id, new id)
    warnings: list[str] = field(default_factory=list)
    stopped: bool = False  # interrupted between two chunks


def read_export(
    path: Path,
    skip: int = 0,
    limit: int | None = None,
    fields: tuple[Field, ...] = CONTACT_FIELDS,
    warnings: list[str] | None = None,
) -> Iterator[ExportRow]:
    """Rows of an export with their line numbers, mapped or with an error.

    ``skip`` and ``limit`` count records (not lines) after the header.
    Column names match the Salesforce field names whatever their case.
    Raises ``ExportFileError`` before the first row for a file that is not
    UTF-8 or whose header lacks a required column.
    """
    text = _decoded(path)
    csv.field_size_limit(MAX_FIELD_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = _canonical_header(next(reader), fields, warnings)
    except StopIteration:
        return
    line = reader.line_num + 1
    number = taken = 0
    for values in _records(reader):
        start, line = line, reader.line_num + 1
        if not values:
            continue  # a blank line is no record
        number += 1
        if number <= skip:
            continue
        if limit is not None and taken >= limit:
            return
        taken += 1
        yield _mapped(start, header, values, fields)


def _decoded(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ExportFileError(
            f"{path}: line {line} is not UTF-8 (byte {raw[exc.start]:#x}); "
            "save the file as UTF-8 and import it again"
        ) from None


def _canonical_header(
    header: list[str], fields: tuple[Field, ...], warnings: list[str] | None
) -> list[str]:
    known = {f.salesforce.lower(): f.salesforce for f in fields}
    known.update({"id": "Id", "accountid": "AccountId"})
    canonical = []
    for name in header:
        lowered = name.strip().lower()
        canonical.append(known.get(lowered, name))
        if (
            lowered not in known
            and lowered not in _PASSED_OVER
            and warnings is not None
        ):
            warnings.append(f"column {name!r} is not a field of this object; ignored")
    for f in fields:
        if f.required and f.salesforce not in canonical:
            raise ExportFileError(f"the header has no {f.salesforce} column")
    return canonical


def _records(reader: Any) -> Iterator[list[str]]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield [f"\x00unreadable: {exc}"]


def _mapped(
    line: int, header: list[str], values: list[str], fields: tuple[Field, ...]
) -> ExportRow:
    if values and values[0].startswith("\x00unreadable"):
        return ExportRow(line, {}, error=values[0][1:])
    row = ExportRow(line, dict(zip(header, values, strict=False)))
    if len(values) != len(header):
        row.error = f"has {len(values)} columns, the header has {len(header)}"
        return row
    try:
        row.data = from_export_row(row.values, fields)
    except InvalidFields as exc:
        row.error = str(exc)
    return row


class Importer:
    """Sends valid rows to ``create_many`` in chunks; collects what was refused.

    ``already`` holds source ids imported before (they are skipped);
    ``account_ids`` maps the export's account ids to platform account ids
    (contacts only); ``on_chunk`` gets each chunk's ``(source id, new id)``
    pairs as soon as they land; ``stopping()`` true ends the run between
    two chunks.
    """

    def __init__(
        self,
        create_many: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
        already: set[str] | None = None,
        account_ids: dict[str, int] | None = None,
        on_chunk: Callable[[list[tuple[str, int]]], None] = lambda ids: None,
        progress: Callable[[int], None] = lambda done: None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.create_many = create_many
        self.already = already or set()
        self.account_ids = account_ids
        self.on_chunk = on_chunk
        self.progress = progress
        self.stopping = stopping
        self.report = ImportReport()
        self._chunk: list[ExportRow] = []

    def run(self, rows: Iterator[ExportRow]) -> ImportReport:
        for row in rows:
            if self.stopping():
                # Between chunks: every row sent so far is in the ids file,
                # so running the import again resumes without duplicates.
                self.report.stopped = True
                return self.report
            if row.source_id and row.source_id in self.already:
                self.report.skipped += 1
                self.progress(1)
                continue
            if row.error is None and self.account_ids is not None:
                self._link_account(row)
            if row.error is not None:
                log.info("line %s rejected: %s", row.line, row.error)
                self.report.rejected.append(row)
                self.progress(1)
                continue
            self._chunk.append(row)
            if len(self._chunk) >= CHUNK_SIZE:
                self._flush()
        self._flush()
        return self.report

    def _link_account(self, row: ExportRow) -> None:
        assert self.account_ids is not None and row.data is not None
        source = row.values.get("AccountId", "")
        if not source:
            row.data["account_id"] = None
        elif source in self.account_ids:
            row.data["account_id"] = self.account_ids[source]
        else:
            row.error = f"its account {source} was not imported"

    def _flush(self) -> None:
        chunk, self._chunk = self._chunk, []
        if not chunk:
            return
        results = self.create_many([row.data or {} for row in chunk])
        landed = []
        for row, result in zip(chunk, results, strict=True):
            if "error" in result:
                row.error = result["error"]
                self.report.rejected.append(row)
            else:
                self.report.imported += 1
                landed.append((row.source_id, result["id"]))
        self.report.ids += landed
        self.on_chunk(landed)
        self.progress(len(chunk))


def read_ids(path: Path) -> dict[str, int]:
    """An ids CSV (``source_id,platform_id``) as a dict; empty if none."""
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {
            row["source_id"]: int(row["platform_id"]) for row in csv.DictReader(handle)
        }


def append_ids(path: Path, ids: list[tuple[str, int]]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["source_id", "platform_id"])
        writer.writerows(ids)


def write_rejected(path: Path, rows: list[ExportRow]) -> None:
    """The refused rows with line and reason, ready to fix and import again."""
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row.values if name not in columns]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "error", *columns])
        for row in rows:
            writer.writerow(
                [row.line, row.error, *(row.values.get(name, "") for name in columns)]
            )
