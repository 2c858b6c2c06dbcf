"""The demo scenario end to end, on a few hundred rows of the bundled export."""

import json
import os
import subprocess
import sys
import uuid

import pytest
import redis

pytestmark = pytest.mark.integration


DEMO_REDIS_URI = os.environ.get(
    "SFSYNC_TEST_DEMO_REDIS_URI", "redis://127.0.0.1:6379/3"
)


def test_demo_converges_on_a_slice_of_the_export_with_three_sync_instances(
    tmp_path,
):
    redis.Redis.from_url(DEMO_REDIS_URI).flushdb()

    result = subprocess.run(
        [
            sys.executable, "-m", "sfsync.cli", "demo",
            "--rows", "300", "--updates", "20", "--deletes", "5",
            "--work-dir", str(tmp_path / "demo"),
            "--vhost", f"sfsync-demo-test-{uuid.uuid4().hex[:6]}",
            "--redis-uri", DEMO_REDIS_URI,
            "--timeout", "240", "--instances", "3",
        ],
        capture_output=True, text=True, timeout=400,
        env={k: v for k, v in os.environ.items() if k != "SFSYNC_BATCHING"},
    )  # fmt: skip

    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("SUMMARY "), result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(last.removeprefix("SUMMARY "))
    assert result.returncode == 0, summary
    expected = summary["expected"]
    assert summary["salesforce_contacts"] == summary["platform_contacts"] == expected
    # 300 rows less those refused (a contact whose account was refused is too),
    # less the 2 x 5 deletes.
    assert expected == 300 - summary["rejected_rows"] - 10
    assert summary["mismatched"] == 0
    assert summary["duplicates"] == 0
    assert summary["unpaired"] == 0
    assert summary["echo_writes"] == 0
    assert summary["sync_instances"] == 3
    assert summary["batching"] is True  # the default
    accounts = summary["accounts"]
    assert accounts["salesforce"] == accounts["platform"]
    assert accounts["salesforce"] == accounts["rows"] - accounts["rejected_rows"]
    contacts_created = expected + 10
    assert summary["sync_writes"]["to_salesforce"]["Contact"] == (
        contacts_created + 20 + 5  # one create or link each, the edits
    )
    assert summary["sync_writes"]["to_platform"]["Contact"] == contacts_created + 25
