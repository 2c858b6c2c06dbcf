"""aiosfstream-ng (the maintained aiosfstream fork), unmodified, against the emulator.

It runs in its own interpreter: the suite monkey-patches sockets for eventlet,
which asyncio clients must not see.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from sfsync.testing.emulator import start_emulator

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[1] / "clients" / "aiosfstream_flow.py"
pytest.importorskip("aiosfstream_ng", reason="pip install aiosfstream-ng")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    process = start_emulator(tmp_path_factory.mktemp("emulator-aio"), connect_timeout=2)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def result(emulator):
    user = emulator.users["integration"]
    env = dict(os.environ)
    env.update(
        # localhost, not 127.0.0.1: aiohttp's cookie jar ignores IP hosts.
        EMU_URL=emulator.https_url.replace("127.0.0.1", "localhost"),
        EMU_USERNAME=user["username"],
        EMU_PASSWORD=user["password"],
        EMU_TAG=uuid.uuid4().hex[:8],
        SSL_CERT_FILE=emulator.ca_file,
    )
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_rest_flow_beside_the_streaming_client(result):
    assert result["created"] == 201
    assert result["fetched_name"].startswith("Aio-")
    assert result["patched"] == 204
    assert result["upserted"] == [201, 200]
    assert result["deleted"] == 204
    assert (result["query_seen"], result["query_pages"]) == (5, 3)


def test_change_events_and_push_topic_reach_aiosfstream(result):
    assert result["cometd_url"].endswith("/cometd/45.0")
    assert result["changes"] == ["CREATE", "UPDATE", "DELETE"]
    assert result["topic_events"] == ["created", "updated", "deleted"]
    assert result["change_origin"].endswith(";client=aiosfstream-flow")
