"""One clean stack for one benchmark run: emulator, services, clients.

Every run gets a fresh emulator data dir and SQLite file under its own work
dir, a fresh RabbitMQ vhost and a flushed Redis db (``Stack.start`` does the
last two). Everything started here is stopped here, by its own id.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nameko.standalone.rpc import ClusterRpcProxy

from sfsync.salesforce.client import SalesforceClient
from sfsync.stack import Stack, delete_vhost
from sfsync.testing.emulator import EmulatorProcess, start_emulator

VHOST = "sfsync-bench"
REDIS_URI = "redis://127.0.0.1:6379/5"
# High enough that no scenario ever meets the daily limit.
API_LIMIT = 100_000_000
READY_TIMEOUT_S = 90.0


class BenchStack:
    """Emulator and services of one run, with the clients a scenario needs.

    ``rpc`` is a standalone RPC proxy to the services; ``sales`` a REST client
    logged in as the sales user (the people editing in Salesforce).
    """

    def __init__(self, work_dir: Path, env: dict[str, str]) -> None:
        self.work_dir = work_dir.resolve()
        self.env = env
        self.emulator: EmulatorProcess | None = None
        self.stack: Stack | None = None
        self.sales: SalesforceClient | None = None
        self._proxy: ClusterRpcProxy | None = None
        self.rpc: Any = None

    def __enter__(self) -> BenchStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.work_dir.exists():
            shutil.rmtree(self.work_dir)
        self.work_dir.mkdir(parents=True)
        self.emulator = start_emulator(
            self.work_dir / "emulator",
            connect_timeout=25.0,
            extra_args=["--api-limit", str(API_LIMIT)],
        )
        self.sales = self.emulator.client("sales", "bench-sales")
        self.stack = Stack.for_emulator(
            self.emulator,
            self.work_dir,
            vhost=VHOST,
            redis_uri=REDIS_URI,
            extra_env={**self._database_env(), **self.env},
        )
        self.stack.start()
        self._proxy = ClusterRpcProxy({"AMQP_URI": self.stack.amqp_uri}, timeout=120)
        self.rpc = self._proxy.start()
        self.stack.wait_until_serving(self.rpc, READY_TIMEOUT_S)
        self.stack.wait_until_streaming(READY_TIMEOUT_S)

    def _database_env(self) -> dict[str, str]:
        # The platform database in this run's dir under each name the service
        # configs have used, so no run can fall back to a shared default.
        uri = f"sqlite:///{self.work_dir / 'platform.sqlite3'}"
        return {"PLATFORM_DB_URI": uri, "CONTACTS_DB_URI": uri}

    def stop(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        if self.sales is not None:
            self.sales.close()
        if self.stack is not None:
            self.stack.stop()
        if self.emulator is not None:
            self.emulator.stop()

    # -- what scenarios measure with -----------------------------------

    def check_alive(self) -> None:
        """Raise if a service process exited: its log says why."""
        assert self.stack is not None
        for service in self.stack.services:
            if not service.alive:
                raise RuntimeError(
                    f"the {service.service} service exited; see {service.log_path}"
                )

    def sync_api_calls(self) -> int:
        """REST calls the integration user (the sync) has made so far."""
        assert self.emulator is not None
        username = self.emulator.users["integration"]["username"]
        return int(self.emulator.stats()["api_requests"].get(username, 0))

    def quiet_api_calls(self, quiet_s: float = 1.0, timeout_s: float = 15.0) -> int:
        """The sync's call count once it has stayed still for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        last = self.sync_api_calls()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.sync_api_calls()
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet_s:
                break
        return last

    def peak_rss_mb(self) -> dict[str, float]:
        """Each service process's peak resident set (VmHWM) so far, in MiB."""
        assert self.stack is not None
        peaks: dict[str, float] = {}
        for service in self.stack.services:
            assert service.process is not None
            peaks[service.service] = _vm_hwm_mb(service.process.pid)
        return peaks

    def wait_for(
        self,
        condition: Callable[[], bool],
        timeout_s: float,
        interval_s: float,
    ) -> float | None:
        """Poll ``condition``; the ``perf_counter`` time it held, or None."""
        deadline = time.perf_counter() + timeout_s
        checks = 0
        while time.perf_counter() < deadline:
            if condition():
                return time.perf_counter()
            checks += 1
            if checks % 20 == 0:
                self.check_alive()
            time.sleep(interval_s)
        return None


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


def drop_vhost() -> None:
    """Remove the benchmark's vhost once every run is over."""
    delete_vhost(VHOST)
