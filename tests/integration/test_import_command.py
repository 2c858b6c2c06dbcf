"""The import command, run as a user runs it, against a live contacts service."""

import csv
import subprocess
import sys

import pytest
from nameko.standalone.rpc import ServiceRpcProxy

from sfsync.services.contacts import ContactsService

pytestmark = pytest.mark.integration

EXPORT = (
    '"Id","LastName","FirstName","Email","HasOptedOutOfEmail","Birthdate","Description"\n'
    '"003A","Turner","Sara","sara@turner.uk","false","1961-10-02","two\nlines"\n'
    '"003B","","Nameless","","false","",""\n'
    '"003C","Ng","","","perhaps","",""\n'
    '"003D","Short row"\n'
    '"003E","Хохлов","Аполлон"," CONTACT.1@YAHOO.COM ","true","",""\n'
)


@pytest.fixture
def contacts_service(service_config, runner_factory):
    runner = runner_factory(service_config, ContactsService)
    runner.start()
    return runner


def test_import_loads_good_rows_and_reports_bad_ones_by_line(
    contacts_service, service_config, tmp_path
):
    export = tmp_path / "contacts.csv"
    export.write_text(EXPORT, encoding="utf-8")
    errors = tmp_path / "errors.csv"

    result = subprocess.run(
        [
            sys.executable, "-m", "sfsync.cli", "import", str(export),
            "--amqp-uri", service_config["AMQP_URI"], "--errors", str(errors),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "line 4: last_name: is required" in result.stdout
    assert "line 5: has_opted_out_of_email: 'perhaps' is not true or false" in (
        result.stdout
    )
    assert "line 6: has 2 columns, the header has 7" in result.stdout
    assert "imported 2 contacts, rejected 3" in result.stdout
    with errors.open(encoding="utf-8") as handle:
        kept = list(csv.DictReader(handle))
    assert [row["line"] for row in kept] == ["4", "5", "6"]
    assert kept[0]["FirstName"] == "Nameless"
    with ServiceRpcProxy("contacts", service_config) as contacts:
        loaded = contacts.list(0, 10)
    assert [c["last_name"] for c in loaded] == ["Turner", "Хохлов"]
    assert loaded[0]["description"] == "two\nlines"
    assert loaded[1]["email"] == "CONTACT.1@YAHOO.COM"
    ids = (tmp_path / "contacts.ids.csv").read_text(encoding="utf-8").splitlines()
    assert ids[1:] == [f"003A,{loaded[0]['id']}", f"003E,{loaded[1]['id']}"]


def test_import_of_a_missing_file_is_one_error_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "sfsync.cli", "import", str(tmp_path / "none.csv")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert result.stderr.strip().endswith("none.csv is not a file")
