"""pytest fixtures for integration tests on real RabbitMQ, Redis and emulator.

Load with ``pytest_plugins = ["sfsync.testing.fixtures"]``. RabbitMQ and
Redis must be running on 127.0.0.1 (``scripts/infra.sh start``); each test
gets its own RabbitMQ vhost, a flushed Redis database and a fresh emulator.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sfsync.salesforce.client import SalesforceClient
from sfsync.stack import create_vhost, delete_vhost
from sfsync.testing.emulator import EmulatorProcess, start_emulator

# Tests flush this database; point it elsewhere to run two suites at once.
TEST_REDIS_URI = os.environ.get("SFSYNC_TEST_REDIS_URI", "redis://127.0.0.1:6379/2")


@pytest.fixture
def broker_uri() -> Iterator[str]:
    vhost = f"sfsync-test-{uuid.uuid4().hex[:8]}"
    create_vhost(vhost)
    yield f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}"
    delete_vhost(vhost)


@pytest.fixture
def redis_uri() -> Iterator[str]:
    client = redis.Redis.from_url(TEST_REDIS_URI)
    client.flushdb()
    yield TEST_REDIS_URI
    client.flushdb()
    client.close()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = start_emulator(tmp_path / "emulator", connect_timeout=2.0)
    yield process
    process.stop()


@pytest.fixture
def sales(emulator: EmulatorProcess) -> Iterator[SalesforceClient]:
    """A client logged in as the sales user: a person editing in Salesforce."""
    client = emulator.client("sales", "test-sales")
    yield client
    client.close()


@pytest.fixture
def service_config(
    emulator: EmulatorProcess, broker_uri: str, redis_uri: str, tmp_path: Path
) -> dict[str, Any]:
    """One nameko config that serves both services in a test."""
    integration = emulator.users["integration"]
    return {
        "AMQP_URI": broker_uri,
        "max_workers": 10,
        "DB_URIS": {
            "contacts:Base": f"sqlite:///{tmp_path / 'platform.sqlite3'}",
            "accounts:Base": f"sqlite:///{tmp_path / 'platform.sqlite3'}",
        },
        "REDIS_URIS": {"sync": redis_uri},
        "SALESFORCE": {
            "LOGIN_URL": emulator.https_url,
            "USERNAME": integration["username"],
            "PASSWORD": integration["password"],
            "API_VERSION": "59.0",
            "CA_FILE": emulator.ca_file,
            "CLIENT_NAME": "sfsync-test",
        },
    }


def wait_for(
    condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def wait_until_streaming(redis_uri: str, instances: int = 1) -> None:
    client = redis.Redis.from_url(redis_uri)
    wait_for(
        lambda: client.scard("sfsync:streaming:status:subscribed") >= instances,
        what="the sync to subscribe",
    )


@pytest.fixture
def start_sync_services(
    service_config: dict[str, Any], runner_factory: Callable
) -> Callable[[], Any]:
    """Start contacts, accounts and the sync in this process; a new runner
    each call (so a test can stop one and start another)."""
    from sfsync.services.accounts import AccountsService
    from sfsync.services.contacts import ContactsService
    from sfsync.services.salesforce_sync import SalesforceSyncService

    def start() -> Any:
        runner = runner_factory(
            service_config, ContactsService, AccountsService, SalesforceSyncService
        )
        runner.start()
        return runner

    return start


@pytest.fixture
def platform(
    start_sync_services: Callable[[], Any],
    service_config: dict[str, Any],
    redis_uri: str,
) -> Iterator[Any]:
    """The platform and the sync running; an RPC proxy to all services."""
    from nameko.standalone.rpc import ClusterRpcProxy

    start_sync_services()
    wait_until_streaming(redis_uri)
    with ClusterRpcProxy(service_config) as cluster:
        yield cluster
