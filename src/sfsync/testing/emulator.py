"""Start and stop the Salesforce emulator as a subprocess, for any test framework."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from sfsync.salesforce.client import Credentials, SalesforceClient

logger = logging.getLogger(__name__)

READY_FILE = "ready.json"
LOG_FILE = "emulator.log"


class EmulatorError(RuntimeError):
    """The emulator process did not become ready or could not be stopped."""


class EmulatorProcess:
    """A running `python -m sfsync.emulator` child process and how to reach it.

    Note for `requests` users: a REQUESTS_CA_BUNDLE environment variable wins
    over `session.verify`; use `session()` (trust_env off) or pass `verify=`.
    """

    def __init__(
        self,
        data_dir: Path,
        connect_timeout: float,
        https_port: int,
        http_port: int,
        timeout: float,
        faults: dict[str, Any] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.connect_timeout = connect_timeout
        self.https_port = https_port
        self.http_port = http_port
        self.timeout = timeout
        # Switches applied at every start (and restart); see set_faults().
        self.start_faults = dict(faults or {})
        self.extra_args = list(extra_args or [])
        self.https_url = ""
        self.http_url = ""
        self.ca_file = ""
        self.users: dict[str, dict[str, str]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Launch the process and wait (bounded) until it writes its ready file."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready = self.data_dir / READY_FILE
        ready.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "sfsync.emulator",
            "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1",
            "--https-port", str(self.https_port),
            "--http-port", str(self.http_port),
            "--ready-file", str(ready),
            "--connect-timeout", str(self.connect_timeout),
        ]  # fmt: skip
        if self.start_faults:
            faults_file = self.data_dir / "faults.json"
            faults_file.write_text(json.dumps(self.start_faults))
            command += ["--faults", str(faults_file)]
        command += self.extra_args
        self._log = open(self.data_dir / LOG_FILE, "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        deadline = time.monotonic() + self.timeout
        while not ready.exists():
            if self._process.poll() is not None:
                raise EmulatorError(
                    f"emulator exited with code {self._process.returncode}:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                self._kill()
                raise EmulatorError(
                    f"emulator not ready after {self.timeout}s:\n" + self.log_tail()
                )
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.https_url = info["https_url"]
        self.http_url = info["http_url"]
        self.ca_file = info["ca_file"]
        self.users = info["users"]
        # Pin the ports so a restart comes back on the same URLs.
        self.https_port = int(urlsplit(self.https_url).port or 0)
        self.http_port = int(urlsplit(self.http_url).port or 0)

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / LOG_FILE
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """SIGTERM the process this object started; SIGKILL if it lingers."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logger.warning("emulator %s ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout=10)
        self._process = None
        self._close_log()

    def restart(self) -> None:
        """Stop, then start again on the same data dir and the same ports."""
        self.stop()
        self.start()

    def session(self) -> requests.Session:
        """A requests session that trusts the emulator CA and ignores proxy env."""
        session = requests.Session()
        session.verify = self.ca_file
        session.trust_env = False
        return session

    def client(self, role: str, client_name: str = "") -> SalesforceClient:
        """The project's Salesforce client, logged in (lazily) as ``role``:
        ``integration`` or ``sales``."""
        user = self.users[role]
        return SalesforceClient(
            Credentials(self.https_url, user["username"], user["password"]),
            ca_file=self.ca_file,
            client_name=client_name or f"emulator-{role}",
        )

    def stats(self) -> dict[str, Any]:
        """`GET /_emulator/stats` over plain HTTP."""
        response = requests.get(
            f"{self.http_url}/_emulator/stats",
            timeout=10,
            proxies={"http": "", "https": ""},
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            f"{self.http_url}/_emulator/{path}",
            json=body,
            timeout=10,
            proxies={"http": "", "https": ""},
        )
        response.raise_for_status()
        return response.json()

    def faults(self) -> dict[str, Any]:
        """The fault switches in force."""
        result: dict[str, Any] = self._admin("GET", "faults")
        return result

    def set_faults(self, **switches: Any) -> dict[str, Any]:
        """Change fault switches while running, e.g. `lock_row_share=0.2`."""
        result: dict[str, Any] = self._admin("POST", "faults", switches)
        return result

    def clear_faults(self) -> dict[str, Any]:
        """Switch every fault off again."""
        return self.set_faults(
            session_ttl_seconds=None,
            api_limit_reached=False,
            lock_row_share=0.0,
            unavailable_share=0.0,
            latency_ms=0.0,
            duplicate_share=0.0,
        )

    def advance_clock(self, seconds: float) -> float:
        """Move the emulator clock forward; returns the total offset."""
        result = self._admin("POST", "clock", {"advance_seconds": seconds})
        return float(result["offset"])

    def revoke_sessions(self, username: str | None = None) -> int:
        """Invalidate every session (of one user); returns how many."""
        body = {"username": username} if username else {}
        return int(self._admin("POST", "sessions/revoke", body)["revoked"])

    def forget_clients(self) -> int:
        """Drop every CometD client; their next connect gets 403::Unknown client."""
        return int(self._admin("POST", "cometd/forget")["forgotten"])

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_emulator(
    data_dir: Path,
    connect_timeout: float = 5.0,
    https_port: int = 0,
    http_port: int = 0,
    timeout: float = 20.0,
    faults: dict[str, Any] | None = None,
    extra_args: list[str] | None = None,
) -> EmulatorProcess:
    """Start an emulator on `data_dir` and return once it is listening.

    `faults` are switches applied at start (see docs/emulator.md);
    `extra_args` go to the command line as they are.
    """
    emulator = EmulatorProcess(
        data_dir, connect_timeout, https_port, http_port, timeout, faults, extra_args
    )
    emulator.start()
    return emulator
