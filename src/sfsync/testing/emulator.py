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
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.connect_timeout = connect_timeout
        self.https_port = https_port
        self.http_port = http_port
        self.timeout = timeout
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
) -> EmulatorProcess:
    """Start an emulator on `data_dir` and return once it is listening."""
    emulator = EmulatorProcess(
        data_dir, connect_timeout, https_port, http_port, timeout
    )
    emulator.start()
    return emulator
