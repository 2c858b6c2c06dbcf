from pathlib import Path

from sfsync.importer import import_contacts, read_export

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

    report = import_contacts(read_export(path), create_many)

    assert [row["last_name"] for row in sent] == ["One", "Three"]
    assert report.imported == 1
    assert report.ids == [("a1", 10)]
    assert sorted(row.line for row in report.rejected) == [3, 4]
