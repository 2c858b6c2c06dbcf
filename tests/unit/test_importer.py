from pathlib import Path

import pytest

from sfsync.importer import CHUNK_SIZE, ExportFileError, Importer, read_export
from sfsync.mapping import ACCOUNT_FIELDS

HEADER = '"Id","LastName","FirstName","Email","HasOptedOutOfEmail","Birthdate"\n'


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_rows_carry_the_line_they_start_on_across_quoted_newlines(tmp_path):
    path = write(
        tmp_path,
        '"a1","Turner","Sara","s@t.uk","false",""\n'
        '"a2","Lines","Two\nlines","","false",""\n'
        '"a3","Ng","","","true","1961-10-02"\n',
    )

    rows = list(read_export(path))

    assert [row.line for row in rows] == [2, 3, 5]
    assert rows[1].data["first_name"] == "Two\nlines"


def test_bad_rows_are_reported_with_line_and_reason(tmp_path):
    path = write(
        tmp_path,
        '"a1","","Nameless","","false",""\n'
        '"a2","Short"\n'
        '"a3","Ng","","bad-address","false",""\n'
        '"a4","Fine","","","false","2001-02-03"\n',
    )

    rows = list(read_export(path))

    errors = {row.line: row.error for row in rows if row.error}
    assert "last_name: is required" in errors[2]
    assert "has 2 columns, the header has 6" in errors[3]
    assert "not an e-mail" in errors[4]
    assert rows[3].error is None


def test_skip_and_limit_count_records_not_lines(tmp_path):
    path = write(
        tmp_path,
        '"a1","One","x\ny","","false",""\n"a2","Two","","","false",""\n'
        '"a3","Three","","","false",""\n',
    )

    rows = list(read_export(path, skip=1, limit=1))

    assert [(row.values["Id"], row.line) for row in rows] == [("a2", 4)]


def test_import_sends_good_rows_and_keeps_every_refused_one(tmp_path):
    path = write(
        tmp_path,
        '"a1","One","","","false",""\n"a2","","","","false",""\n'
        '"a3","Three","","","false",""\n',
    )
    sent = []

    def create_many(rows):
        sent.extend(rows)
        return [{"id": 10}, {"error": "row 1 is invalid: refused by the platform"}]

    report = Importer(create_many).run(read_export(path))

    assert [row["last_name"] for row in sent] == ["One", "Three"]
    assert report.imported == 1
    assert report.ids == [("a1", 10)]
    assert sorted(row.line for row in report.rejected) == [3, 4]


def test_a_file_that_is_not_utf8_is_refused_before_any_row(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + '"a1","José","","","false",""\n').encode("latin-1"))

    with pytest.raises(ExportFileError, match="line 2 is not UTF-8"):
        next(read_export(path))


def test_header_names_match_whatever_their_case(tmp_path):
    path = tmp_path / "lower.csv"
    path.write_text('"id","lastname","EMAIL"\n"a1","Ng","n@g.io"\n', encoding="utf-8")

    [row] = read_export(path)

    assert row.error is None
    assert row.data["email"] == "n@g.io"
    assert row.source_id == "a1"


def test_a_header_without_a_required_column_is_refused(tmp_path):
    path = tmp_path / "nolast.csv"
    path.write_text('"Id","FirstName"\n"a1","Ada"\n', encoding="utf-8")

    with pytest.raises(ExportFileError, match="no LastName column"):
        list(read_export(path))


def test_an_unknown_column_is_warned_about(tmp_path):
    path = tmp_path / "extra.csv"
    path.write_text('"LastName","E-mail"\n"Ng","n@g.io"\n', encoding="utf-8")
    warnings = []

    list(read_export(path, warnings=warnings))

    assert warnings == ["column 'E-mail' is not a field of this object; ignored"]


def test_rows_imported_before_are_skipped(tmp_path):
    path = write(tmp_path, '"a1","One","","","false",""\n"a2","Two","","","false",""\n')
    sent = []

    def create_many(rows):
        sent.extend(rows)
        return [{"id": 20 + n} for n in range(len(rows))]

    report = Importer(create_many, already={"a1"}).run(read_export(path))

    assert [row["last_name"] for row in sent] == ["Two"]
    assert report.skipped == 1
    assert report.ids == [("a2", 20)]


def test_contacts_are_linked_to_imported_accounts_or_refused(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(
        '"Id","AccountId","LastName"\n"c1","001A","One"\n"c2","001B","Two"\n'
        '"c3","","Three"\n',
        encoding="utf-8",
    )
    sent = []

    def create_many(rows):
        sent.extend(rows)
        return [{"id": n} for n in range(len(rows))]

    report = Importer(create_many, account_ids={"001A": 5}).run(read_export(path))

    assert [(row["last_name"], row["account_id"]) for row in sent] == [
        ("One", 5),
        ("Three", None),
    ]
    assert [row.error for row in report.rejected] == [
        "its account 001B was not imported"
    ]


def test_account_exports_map_with_the_account_table(tmp_path):
    path = tmp_path / "accounts.csv"
    path.write_text(
        '"Id","Name","NumberOfEmployees","BillingCity"\n"001A","Acme","12","Oslo"\n'
        '"001B","","x","Rome"\n',
        encoding="utf-8",
    )

    good, bad = read_export(path, fields=ACCOUNT_FIELDS)

    assert good.data["number_of_employees"] == 12
    assert "name: is required" in bad.error
    assert "not a whole number" in bad.error


def test_a_stop_request_ends_the_run_between_chunks(tmp_path):
    body = "".join(f'"s{n}","Row {n}","","","false",""\n' for n in range(450))
    path = write(tmp_path, body)
    chunks = []

    def create_many(rows):
        chunks.append(len(rows))
        return [{"id": n} for n in range(len(rows))]

    report = Importer(create_many, stopping=lambda: len(chunks) == 1).run(
        read_export(path)
    )

    assert chunks == [CHUNK_SIZE]
    assert report.stopped
    assert len(report.ids) == CHUNK_SIZE
