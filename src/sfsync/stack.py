"""Start and stop the product's processes: the nameko services on a
RabbitMQ virtual host of their own, next to a running emulator.

Used by the demo, the benchmarks and the end-to-end tests. Every process it
starts it stops again, by its own id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

__all__ = ["Stack", "ServiceProcess", "create_vhost", "delete_vhost"]

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "config"
STREAMING_STATUS_KEY = "sfsync:streaming:status"
SERVICE_MODULES = {
    "contacts": "sfsync.services.contacts",
    "accounts": "sfsync.services.accounts",
    "salesforce": "sfsync.services.salesforce_sync",
}


def create_vhost(name: str) -> None:
    """Create a RabbitMQ virtual host for ``guest`` (the broker is local)."""
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
    )


def delete_vhost(name: str) -> None:
    """Delete the vhost if there is one (quietly when there is none)."""
    subprocess.run(
        ["rabbitmqctl", "-q", "delete_vhost", name],
        check=False,
        stderr=subprocess.DEVNULL,
    )


class ServiceProcess:
    """One ``nameko run`` of a service, its output going to a log file."""

    def __init__(self, service: str, env: dict[str, str], log_path: Path) -> None:
        self.service = service
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        command = [
            sys.executable,
            "-m",
            "nameko",
            "run",
            "--config",
            str(CONFIG_DIR / f"{self.service}.yaml"),
            SERVICE_MODULES[self.service],
        ]
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@dataclass
class Stack:
    """The services of one run, sharing a vhost, a Redis db and a database."""

    work_dir: Path
    salesforce_login_url: str
    salesforce_ca_file: str
    salesforce_username: str
    salesforce_password: str
    vhost: str = "sfsync"
    redis_uri: str = "redis://127.0.0.1:6379/0"
    instances: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)

    @classmethod
    def for_emulator(cls, emulator: Any, work_dir: Path, **options: Any) -> Stack:
        """The services, logging in to a local Salesforce as its integration user."""
        integration = emulator.users["integration"]
        return cls(
            work_dir=work_dir,
            salesforce_login_url=emulator.https_url,
            salesforce_ca_file=emulator.ca_file,
            salesforce_username=integration["username"],
            salesforce_password=integration["password"],
            **options,
        )

    @property
    def amqp_uri(self) -> str:
        return f"pyamqp://guest:guest@127.0.0.1:5672/{self.vhost}"

    @property
    def platform_db_uri(self) -> str:
        return f"sqlite:///{self.work_dir / 'platform.sqlite3'}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AMQP_URI": self.amqp_uri,
                "REDIS_URI": self.redis_uri,
                "PLATFORM_DB_URI": self.platform_db_uri,
                "SALESFORCE_LOGIN_URL": self.salesforce_login_url,
                "SALESFORCE_CA_FILE": self.salesforce_ca_file,
                "SALESFORCE_USERNAME": self.salesforce_username,
                "SALESFORCE_PASSWORD": self.salesforce_password,
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Fresh vhost and Redis db, then the contacts and sync services."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        delete_vhost(self.vhost)
        create_vhost(self.vhost)
        redis.Redis.from_url(self.redis_uri).flushdb()
        logs = self.work_dir / "logs"
        logs.mkdir(exist_ok=True)
        env = self.env()
        names = ["contacts", "accounts"] + ["salesforce"] * self.instances
        for number, name in enumerate(names):
            log_path = logs / f"{name}-{number}.log"
            self.services.append(ServiceProcess(name, env, log_path))
        for service in self.services:
            service.start()

    def wait_until_serving(self, rpc: Any, timeout: float = 60.0) -> None:
        """Block until the platform services answer RPC (``rpc``: a started
        ClusterRpcProxy on this stack's vhost)."""
        from nameko.exceptions import UnknownService

        deadline = time.monotonic() + timeout
        while True:
            try:
                rpc.contacts.count()
                rpc.accounts.count()
                return
            except UnknownService:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_until_streaming(self, timeout: float = 60.0) -> None:
        """Block until every sync instance has subscribed to its channels."""
        client = redis.Redis.from_url(self.redis_uri, decode_responses=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for service in self.services:
                if not service.alive:
                    raise RuntimeError(
                        f"the {service.service} service exited; see {service.log_path}"
                    )
            if client.scard(STREAMING_STATUS_KEY + ":subscribed") >= self.instances:
                return
            time.sleep(0.2)
        raise TimeoutError(f"the sync did not subscribe within {timeout:.0f} s")

    def stop(self) -> None:
        """Stop the services, then drop the vhost (its queues with it)."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        delete_vhost(self.vhost)
