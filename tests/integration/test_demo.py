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
    )  # fmt: skip

    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("SUMMARY "), result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(last.removeprefix("SUMMARY "))
    assert result.returncode == 0, summary
    assert summary["salesforce_contacts"] == summary["platform_contacts"] == 290
    assert summary["mismatched"] == 0
    assert summary["duplicates"] == 0
    assert summary["echo_writes"] == 0
    assert summary["sync_instances"] == 3
    assert summary["sync_writes"] == {
        "to_salesforce": 150 + 150 + 20 + 5,
        "to_platform": 150 + 150 + 20 + 5,
        "api_calls": summary["sync_api_calls"],
    }
