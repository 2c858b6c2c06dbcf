"""Load a Salesforce-format Contact CSV export into the platform.

Rows go through the ``contacts`` service's ``create_many`` RPC in chunks, so
each contact gets its own platform event (and so its own sync). A row the
platform cannot take is reported with its line number in the file and the
reason, and written to an errors CSV that can be fixed and imported again;
the export's own ``Id`` of every row that went in is written with its new
platform id to a results CSV, as a data loader's success file would be.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sfsync.mapping import InvalidFields, from_export_row

__all__ = ["ExportRow", "ImportReport", "import_contacts", "read_export"]

log = logging.getLogger(__name__)

CHUNK_SIZE = 100


@dataclass
class ExportRow:
    line: int  # the line of the file the row starts on
    values: dict[str, str]
    data: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[ExportRow] = field(default_factory=list)
    ids: list[tuple[str, int]] = field(default_factory=list)  # (source Id, new id)


def read_export(
    path: Path, skip: int = 0, limit: int | None = None
) -> Iterator[ExportRow]:
    """Rows of an export with their line numbers, mapped or with an error.

    ``skip`` and ``limit`` count records (not lines) after the header.
    """
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader)
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
            yield _mapped(start, header, values)


def _records(reader: Any) -> Iterator[list[str]]:
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield [f"\x00unreadable: {exc}"]


def _mapped(line: int, header: list[str], values: list[str]) -> ExportRow:
    if values and values[0].startswith("\x00unreadable"):
        return ExportRow(line, {}, error=values[0][1:])
    row = ExportRow(line, dict(zip(header, values, strict=False)))
    if len(values) != len(header):
        row.error = f"has {len(values)} columns, the header has {len(header)}"
        return row
    try:
        row.data = from_export_row(row.values)
    except InvalidFields as exc:
        row.error = str(exc)
    return row


def import_contacts(
    rows: Iterator[ExportRow],
    create_many: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
    progress: Callable[[int], None] = lambda done: None,
) -> ImportReport:
    """Send valid rows to ``create_many`` in chunks; collect what was refused."""
    report = ImportReport()
    chunk: list[ExportRow] = []

    def flush() -> None:
        results = create_many([row.data or {} for row in chunk]) if chunk else []
        for row, result in zip(chunk, results, strict=True):
            if "error" in result:
                row.error = result["error"]
                report.rejected.append(row)
            else:
                report.imported += 1
                report.ids.append((row.values.get("Id", ""), result["id"]))
        progress(len(chunk))
        chunk.clear()

    for row in rows:
        if row.error is not None:
            log.info("line %s rejected: %s", row.line, row.error)
            report.rejected.append(row)
            progress(1)
            continue
        chunk.append(row)
        if len(chunk) >= CHUNK_SIZE:
            flush()
    flush()
    return report


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


def write_ids(path: Path, ids: list[tuple[str, int]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source_id", "platform_id"])
        writer.writerows(ids)
