"""A local stand-in for Slack's Web API, signed slash commands, pytest fixtures.

The stand-in runs as its own process (``python -m sfsync.testing.slack``), a
threaded stdlib HTTP server on 127.0.0.1, so it behaves the same under
eventlet's monkey-patching in the test process. It answers the Web API
methods the product calls (``auth.test``, ``chat.postMessage``) at
``{base_url}{method}``, checks the bot token, records every call, and can be
told to refuse the next calls with a Slack error. Tests read and steer it
over plain HTTP under ``/_stand_in/``.

Use in tests: ``pytest_plugins`` or import ``slack_api`` and ``slack_config``;
``post_slash_command`` signs and posts a command as Slack would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

# The stand-in process imports this module too: nameko and slack_sdk are
# imported inside the helpers that need them, so it starts in a blink.

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
CONTROL_PREFIX = "/_stand_in/"
TEST_TOKEN = "xoxb-test-token"
TEST_SIGNING_SECRET = "test-signing-secret"
TEST_CHANNEL = "C0NOTICES"


# -- the server (runs in the child process) --------------------------------


class _State:
    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.failures: list[str] = []  # Slack error codes for the next calls
        self.next_ts = 1_700_000_000


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("stand-in: " + format, *args)

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.headers.get("Content-Type", "")
        if not raw:
            return {}
        if kind.startswith("application/json"):
            parsed = json.loads(raw)
            return parsed if isinstance(parsed, dict) else {}
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        return {name: values[0] for name, values in form.items()}

    def do_GET(self) -> None:
        state = self.server.state
        if self.path == CONTROL_PREFIX + "calls":
            with state.lock:
                self._send(200, list(state.calls))
            return
        self._send(404, {"ok": False, "error": "unknown_method"})

    def do_POST(self) -> None:
        state = self.server.state
        body = self._body()
        if self.path.startswith(CONTROL_PREFIX):
            self._control(self.path[len(CONTROL_PREFIX) :], body)
            return
        if not self.path.startswith(API_PREFIX):
            self._send(404, {"ok": False, "error": "unknown_method"})
            return
        method = self.path[len(API_PREFIX) :]
        with state.lock:
            state.calls.append({"method": method, "args": body})
            failure = state.failures.pop(0) if state.failures else None
            state.next_ts += 1
            ts = f"{state.next_ts}.000100"
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            self._send(200, {"ok": False, "error": "invalid_auth"})
        elif failure:
            self._send(200, {"ok": False, "error": failure})
        elif method == "auth.test":
            self._send(200, {"ok": True, "user_id": "U0BOT", "team_id": "T0TEST"})
        elif method == "chat.postMessage":
            self._post_message(body, ts)
        else:
            self._send(200, {"ok": False, "error": "unknown_method"})

    def _post_message(self, body: dict[str, Any], ts: str) -> None:
        if not body.get("channel"):
            self._send(200, {"ok": False, "error": "channel_not_found"})
        elif not body.get("text") and not body.get("blocks"):
            self._send(200, {"ok": False, "error": "no_text"})
        else:
            message = {"text": body.get("text"), "ts": ts, "bot_id": "B0BOT"}
            self._send(
                200,
                {"ok": True, "channel": body["channel"], "ts": ts, "message": message},
            )

    def _control(self, action: str, body: dict[str, Any]) -> None:
        state = self.server.state
        with state.lock:
            if action == "reset":
                state.calls.clear()
                state.failures.clear()
            elif action == "fail":
                state.failures.extend([str(body.get("error") or "internal_error")])
            else:
                self._send(404, {"ok": False})
                return
        self._send(200, {"ok": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str) -> None:
        super().__init__(address, _Handler)
        self.state = _State(token)


def serve(port: int, token: str, ready_file: Path) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM; write the URL when ready."""
    server = _Server(("127.0.0.1", port), token)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=server.shutdown, daemon=True
    ).start())  # fmt: skip
    url = f"http://127.0.0.1:{server.server_address[1]}"
    temporary = ready_file.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url}))
    temporary.replace(ready_file)
    server.serve_forever(poll_interval=0.05)
    server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local stand-in for Slack's API")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=TEST_TOKEN)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.token, args.ready_file)


# -- the handle tests hold (in the test process) ---------------------------


class SlackStandIn:
    """A running stand-in process: its URLs, its recorded calls, a switch."""

    def __init__(self, token: str = TEST_TOKEN, timeout: float = 10.0) -> None:
        self.token = token
        self.timeout = timeout
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        """What ``SLACK.API_BASE_URL`` should be: ``http://127.0.0.1:N/api/``."""
        return self.url + API_PREFIX

    def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="slack-stand-in-")
        ready = Path(self._dir.name) / "ready.json"
        command = [
            sys.executable, "-m", "sfsync.testing.slack",
            "--token", self.token, "--ready-file", str(ready),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, env=dict(os.environ))
        deadline = time.monotonic() + self.timeout
        while not ready.exists():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Slack stand-in exited with code {self._process.returncode}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Slack stand-in not ready after {self.timeout} s")
            time.sleep(0.02)
        self.url = json.loads(ready.read_text())["url"]

    def stop(self) -> None:
        """SIGTERM the process this object started; SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # never through a proxy: it is loopback
        return session

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded API calls, oldest first: ``{"method", "args"}`` each."""
        with self._session() as session:
            response = session.get(self.url + CONTROL_PREFIX + "calls", timeout=5)
        response.raise_for_status()
        recorded: list[dict[str, Any]] = response.json()
        return [c for c in recorded if method is None or c["method"] == method]

    def messages(self) -> list[dict[str, Any]]:
        """The arguments of every ``chat.postMessage`` call, oldest first."""
        return [call["args"] for call in self.calls("chat.postMessage")]

    def fail_next(self, error: str = "internal_error") -> None:
        """Answer the next API call with ``{"ok": false, "error": error}``."""
        with self._session() as session:
            session.post(
                self.url + CONTROL_PREFIX + "fail", json={"error": error}, timeout=5
            ).raise_for_status()

    def reset(self) -> None:
        with self._session() as session:
            session.post(self.url + CONTROL_PREFIX + "reset", timeout=5)

    def __enter__(self) -> SlackStandIn:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def slack_section(stand_in: SlackStandIn, channel: str = TEST_CHANNEL) -> dict:
    """A ``SLACK`` config section aimed at ``stand_in``."""
    from sfsync.extensions.slack import (
        API_BASE_URL_KEY,
        BOT_TOKEN_KEY,
        CHANNEL_KEY,
        SIGNING_SECRET_KEY,
    )

    return {
        SIGNING_SECRET_KEY: TEST_SIGNING_SECRET,
        BOT_TOKEN_KEY: stand_in.token,
        API_BASE_URL_KEY: stand_in.base_url,
        CHANNEL_KEY: channel,
    }


# -- posting slash commands as Slack does ----------------------------------


def command_url(server_url: str, command: str) -> str:
    """Where ``@slash_command(command)`` listens on a service's web server."""
    from sfsync.extensions.slack import COMMANDS_URL_PREFIX

    return server_url.rstrip("/") + COMMANDS_URL_PREFIX + command


def post_slash_command(
    url: str,
    secret: str,
    command: str,
    text: str = "",
    *,
    user_id: str = "U0TEST",
    user_name: str = "tester",
    channel_id: str = "C0TEST",
    channel_name: str = "sales-ops",
    response_url: str = "",
    timestamp: int | None = None,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """POST a slash command form to ``url``, signed with ``secret``.

    ``timestamp`` (default now) and ``signature`` (default the right one) let
    a test send an old or forged request; ``headers`` replaces the two Slack
    headers altogether when given.
    """
    from sfsync.extensions.slack import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    form = {
        "token": "deprecated-verification-token",
        "team_id": "T0TEST",
        "team_domain": "test",
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": "A0TEST",
        "response_url": response_url,
        "trigger_id": "1.2.3",
    }
    body = urllib.parse.urlencode(form).encode()
    sent_at = str(int(time.time()) if timestamp is None else timestamp)
    if headers is None:
        headers = {
            TIMESTAMP_HEADER: sent_at,
            SIGNATURE_HEADER: signature or sign(secret, sent_at, body),
        }
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    with requests.Session() as session:
        session.trust_env = False
        return session.post(url, data=body, headers=headers, timeout=timeout)


def web_server_url(container: Any) -> str:
    """The URL of a running container's nameko web server (port 0 allowed)."""
    from nameko.web.server import WebServer

    for extension in container.extensions:
        if isinstance(extension, WebServer) and extension._sock is not None:
            host, port = extension._sock.getsockname()[:2]
            return f"http://{host}:{port}"
    raise LookupError(f"{container.service_name} runs no web server")


# -- pytest fixtures -------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - fixtures need pytest, the rest not
    pass
else:

    @pytest.fixture
    def slack_api() -> Iterator[SlackStandIn]:
        """A fresh Slack Web API stand-in process for one test."""
        with SlackStandIn() as stand_in:
            yield stand_in

    @pytest.fixture
    def slack_config(slack_api: SlackStandIn) -> dict[str, Any]:
        """The ``SLACK`` section aimed at the stand-in; add it to a config."""
        from sfsync.extensions.slack import SLACK_CONFIG_KEY

        return {SLACK_CONFIG_KEY: slack_section(slack_api)}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
