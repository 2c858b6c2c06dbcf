"""jsforce 3 and the `cometd` npm client, unmodified, against the emulator.

Needs `npm ci --prefix tests/clients` first; skipped when node_modules is missing.
"""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
NODE = shutil.which("node")

if NODE is None or not (CLIENTS / "node_modules").is_dir():
    pytest.skip(
        "node clients not installed: run `npm ci --prefix tests/clients`",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(
        tmp_path_factory.mktemp("emulator-node"), connect_timeout=2.0
    )
    yield process
    process.stop()


def run_flow(emulator, script, url):
    user = emulator.users["integration"]
    env = dict(os.environ)
    # Other proxies or CA settings in the environment must not leak in.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        env.pop(name, None)
    env.update(
        EMU_URL=url,
        EMU_USERNAME=user["username"],
        EMU_PASSWORD=user["password"],
        EMU_TAG=uuid.uuid4().hex[:8],
        NODE_EXTRA_CA_CERTS=emulator.ca_file,
        NODE_NO_WARNINGS="1",
    )
    completed = subprocess.run(
        [NODE, str(CLIENTS / script)],
        cwd=CLIENTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def jsforce_result(emulator):
    return run_flow(emulator, "jsforce_flow.js", emulator.https_url)


def test_jsforce_soap_login(emulator, jsforce_result):
    assert jsforce_result["userId"] == emulator.users["integration"]["id"]
    assert jsforce_result["instanceUrl"] == emulator.https_url


def test_jsforce_crud_and_upsert(jsforce_result):
    assert jsforce_result["created"]["success"] is True
    assert jsforce_result["fetchedName"].startswith("Js Force-")
    assert jsforce_result["updatedTitle"] == "Updated by jsforce"
    assert jsforce_result["upsertCreated"] == [True, False]
    assert jsforce_result["deleted"]["success"] is True
    assert jsforce_result["queryAllDeleted"] == [True]


def test_jsforce_collections_and_query_paging(jsforce_result):
    assert jsforce_result["collectionSuccesses"] == 2050
    assert jsforce_result["query"] == {
        "totalSize": 2050,
        "firstPage": 2000,
        "done": False,
        "fetched": 2050,
    }


def test_jsforce_streaming_with_replay(jsforce_result):
    topic = jsforce_result["topic"]

    assert topic["types"] == ["created", "updated"]
    assert topic["ids"] == [topic["expectedId"]] * 2
    assert topic["replayIds"][0] < topic["replayIds"][1]
    assert jsforce_result["change"]["changeType"] == "UPDATE"
    assert jsforce_result["change"]["changedFields"] == ["Title", "LastModifiedDate"]


def test_cometd_npm_client_long_polling_over_plain_http(emulator):
    result = run_flow(emulator, "cometd_flow.js", emulator.http_url)

    assert result["transport"] == "long-polling"
    assert [e["id"] for e in result["topic"]] == result["expectedTopicIds"]
    assert [e["type"] for e in result["topic"]] == ["created", "created"]
    assert result["changes"] == [
        {"type": "CREATE", "ids": [result["expectedChangeId"]]},
        {"type": "DELETE", "ids": [result["expectedChangeId"]]},
    ]
