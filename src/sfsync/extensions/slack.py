"""Slack for nameko services: signed slash commands in, notices out.

Two extensions, built on Slack's current HTTP APIs (not the retired RTM
API) and on the maintained ``slack_sdk``:

- ``@slash_command("/contact")``: an HTTP entrypoint on nameko's web server
  (``WEB_SERVER_ADDRESS``) at ``/slack/commands/contact``. It checks Slack's
  request signature, parses the form Slack posts into a ``SlashCommand``,
  runs the decorated method with it and answers with the method's ``Reply``
  (a plain string becomes an ephemeral reply).
- ``SlackNotifier``: a dependency that hands workers a ``SlackPoster`` whose
  ``post`` sends a message through the Web API (``chat.postMessage``). Errors
  are logged and never raised, so a notice cannot break the work it reports.

Config (secrets come from the environment through ``${...}`` substitution)::

    WEB_SERVER_ADDRESS: 127.0.0.1:8000
    SLACK:
      SIGNING_SECRET: ${SLACK_SIGNING_SECRET}
      BOT_TOKEN: ${SLACK_BOT_TOKEN}
      API_BASE_URL: https://slack.com/api/   # a local stand-in in tests
      CHANNEL: C0123456789                   # where notices go by default

Slack waits 3 seconds for the answer to a slash command, then shows the user
an error. A command that takes longer should answer at once ("started") and
post its outcome later, e.g. from an RPC it calls asynchronously, through
``SlackNotifier``.

Signature check (Slack's v0 scheme): ``X-Slack-Signature`` must equal
``"v0=" + hex(HMAC-SHA256(secret, "v0:{X-Slack-Request-Timestamp}:{body}"))``
and the timestamp must be within 5 minutes of now; anything else is refused
with 401 before a worker runs. The secret is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from nameko.containers import WorkerContext
from nameko.exceptions import ConfigurationError
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from nameko_amqp_retry import Backoff
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

__all__ = [
    "API_BASE_URL_KEY",
    "BOT_TOKEN_KEY",
    "CHANNEL_KEY",
    "COMMANDS_URL_PREFIX",
    "MAX_TIMESTAMP_AGE",
    "SIGNATURE_HEADER",
    "SIGNING_SECRET_KEY",
    "SLACK_CONFIG_KEY",
    "TIMESTAMP_HEADER",
    "InvalidSignature",
    "Reply",
    "SlackFailureNotices",
    "SlackNotifier",
    "SlackPoster",
    "SlashCommand",
    "SlashCommandHandler",
    "escape",
    "parse_slash_command",
    "sign",
    "slash_command",
    "verify_signature",
]

log = logging.getLogger(__name__)

SLACK_CONFIG_KEY = "SLACK"
SIGNING_SECRET_KEY = "SIGNING_SECRET"
BOT_TOKEN_KEY = "BOT_TOKEN"
API_BASE_URL_KEY = "API_BASE_URL"
CHANNEL_KEY = "CHANNEL"
TIMEOUT_KEY = "TIMEOUT"

COMMANDS_URL_PREFIX = "/slack/commands"
MAX_TIMESTAMP_AGE = 5 * 60  # seconds, as Slack recommends
MAX_BODY_BYTES = 64 * 1024  # a slash command form is a few hundred bytes
DEFAULT_TIMEOUT = 5.0  # seconds per Web API call

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_VERSION = "v0"


# -- signatures ------------------------------------------------------------


class InvalidSignature(Exception):
    """A request that Slack did not sign, or signed too long ago."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent at ``timestamp``."""
    base = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
    max_age: float = MAX_TIMESTAMP_AGE,
) -> None:
    """Raise ``InvalidSignature`` unless Slack signed ``body`` recently.

    Consumes the two Slack headers and the raw body; returns nothing.
    Timestamps further than ``max_age`` seconds from ``now``, either way, are
    refused so that a captured request cannot be replayed later.
    """
    if not secret:
        raise InvalidSignature("no signing secret is configured")
    if not timestamp or not signature:
        raise InvalidSignature(
            f"the {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header is missing"
        )
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature(
            f"the timestamp {timestamp[:20]!r} is not a number"
        ) from None
    age = (time.time() if now is None else now) - sent_at
    if abs(age) > max_age:
        raise InvalidSignature(
            f"the timestamp is {age:.0f} s from now, more than {max_age:.0f} s"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise InvalidSignature("the signature does not match the body")


# -- commands and replies --------------------------------------------------


@dataclass(frozen=True)
class SlashCommand:
    """What Slack posts for a slash command, the parts a handler needs."""

    command: str
    text: str = ""
    user_id: str = ""
    user_name: str = ""
    channel_id: str = ""
    channel_name: str = ""
    team_id: str = ""
    response_url: str = ""
    trigger_id: str = ""

    @property
    def words(self) -> list[str]:
        """``text`` split on white space: ``["show", "42"]``."""
        return self.text.split()

    @property
    def subcommand(self) -> str:
        """The first word of ``text``, lower case; ``""`` when there is none."""
        return self.words[0].lower() if self.words else ""

    @property
    def argument(self) -> str:
        """``text`` after the first word, stripped."""
        parts = self.text.strip().split(None, 1)
        return parts[1].strip() if len(parts) > 1 else ""


def parse_slash_command(body: bytes) -> SlashCommand:
    """Parse Slack's ``application/x-www-form-urlencoded`` body.

    Raises ``ValueError`` when the body has no ``command`` field.
    """
    form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    values = {name: items[0] for name, items in form.items() if items}
    if not values.get("command"):
        raise ValueError("the body has no command field")
    known = SlashCommand.__dataclass_fields__
    return SlashCommand(**{k: v for k, v in values.items() if k in known})


IN_CHANNEL = "in_channel"
EPHEMERAL = "ephemeral"


@dataclass(frozen=True)
class Reply:
    """A slash command's answer: ephemeral (only the user sees it) by default."""

    text: str
    in_channel: bool = False
    blocks: list[dict[str, Any]] | None = field(default=None)

    def as_json(self) -> str:
        payload: dict[str, Any] = {
            "response_type": IN_CHANNEL if self.in_channel else EPHEMERAL,
            "text": self.text,
        }
        if self.blocks is not None:
            payload["blocks"] = self.blocks
        return json.dumps(payload)


def escape(text: str) -> str:
    """Escape the three characters Slack's message format reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- the entrypoint --------------------------------------------------------


def _slack_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    section = config.get(SLACK_CONFIG_KEY) or {}
    return section if isinstance(section, Mapping) else {}


class SlashCommandHandler(HttpRequestHandler):
    """Runs the decorated method for one Slack slash command.

    Consumes: ``POST /slack/commands/<name>`` with Slack's signed form body.
    Calls the method with a ``SlashCommand``; the method returns a ``Reply``
    or a string. Emits: ``200`` with ``{"response_type", "text"}`` JSON; a
    method's error becomes an ephemeral reply (an expected exception shows its
    message, any other only its type; both are logged). Refuses: ``401`` for a
    missing, wrong or stale signature, ``400`` for a body that is not a
    command, ``413`` for a body over 64 KiB. Raises ``ConfigurationError`` at
    setup when ``SLACK.SIGNING_SECRET`` is empty.
    """

    def __init__(self, command: str, url: str | None = None, **kwargs: Any) -> None:
        if not command.startswith("/"):
            raise ValueError(f"a slash command starts with '/': {command!r}")
        self.command = command
        super().__init__("POST", url or COMMANDS_URL_PREFIX + command, **kwargs)

    def setup(self) -> None:
        secret = _slack_section(self.container.config).get(SIGNING_SECRET_KEY)
        if not secret:
            raise ConfigurationError(
                f"{SLACK_CONFIG_KEY}.{SIGNING_SECRET_KEY} is empty: slash command "
                f"{self.command} cannot check who sent a request"
            )
        self._secret = str(secret)
        super().setup()

    def get_url_rule(self) -> Rule:
        return Rule(self.url, methods=["POST"])

    def handle_request(self, request: Request) -> Response:
        request.shallow = False
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Response("request body too large", status=413)
        body = request.get_data(cache=True)
        try:
            verify_signature(
                self._secret,
                request.headers.get(TIMESTAMP_HEADER),
                request.headers.get(SIGNATURE_HEADER),
                body,
            )
        except InvalidSignature as exc:
            log.warning(
                "slack: %s request from %s refused: %s",
                self.command, request.remote_addr, exc,
            )  # fmt: skip
            return Response("invalid request signature", status=401)
        try:
            command = parse_slash_command(body)
        except ValueError as exc:
            log.warning("slack: %s request refused: %s", self.command, exc)
            return Response("not a slash command", status=400)
        if command.command != self.command:
            log.warning(
                "slack: %s request carried command %s, refused",
                self.command, command.command,
            )  # fmt: skip
            return Response("wrong command for this URL", status=400)
        return super().handle_request(request)

    def get_entrypoint_parameters(
        self, request: Request
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (parse_slash_command(request.get_data(cache=True)),), {}

    def response_from_result(self, result: Any) -> Response:
        reply = result if isinstance(result, Reply) else Reply(str(result or ""))
        return Response(reply.as_json(), mimetype="application/json")

    def response_from_exception(self, exc: Exception) -> Response:
        if isinstance(exc, self.expected_exceptions):
            text = f"{self.command} failed: {exc}"
        else:
            text = f"{self.command} failed ({type(exc).__name__}); it is logged."
        log.warning("slack: %s failed: %s: %s", self.command, type(exc).__name__, exc)
        return Response(Reply(text).as_json(), mimetype="application/json")


slash_command: Callable[..., Any] = SlashCommandHandler.decorator


# -- notices ---------------------------------------------------------------


class SlackPoster:
    """What a worker gets from ``SlackNotifier``: post a message, never raise."""

    def __init__(self, client: WebClient | None, channel: str | None) -> None:
        self._client = client
        self._channel = channel

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def post(
        self,
        text: str,
        channel: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> str | None:
        """Post ``text`` to ``channel`` (default: the configured one).

        Returns the message's ``ts``, or None when it was not posted: Slack
        is not configured, refused it, or could not be reached (logged).
        """
        target = channel or self._channel
        if self._client is None or not target:
            log.debug("slack: notice not posted, no client or channel: %s", text)
            return None
        try:
            response = self._client.chat_postMessage(
                channel=target, text=text, blocks=blocks
            )
        except SlackApiError as exc:
            log.warning(
                "slack: notice to %s refused: %s", target, exc.response.get("error")
            )
            return None
        except (SlackClientError, OSError) as exc:
            log.warning("slack: notice to %s not sent: %s", target, exc)
            return None
        ts = response.get("ts")
        log.info("slack: notice posted to %s (ts=%s)", target, ts)
        return str(ts) if ts is not None else None

    def notify_failure(self, direction: str, ids: Iterable[Any], error: str) -> None:
        """Tell the default channel a sync task failed for good (kept for replay)."""
        listed = ", ".join(str(item) for item in ids)
        self.post(
            f":warning: sync {escape(direction)} of {escape(listed)} failed for good "
            f"and is kept for replay: {escape(error[:500])}"
        )


class SlackNotifier(DependencyProvider):
    """Gives workers a ``SlackPoster`` on the container's ``slack_sdk`` client.

    Consumes the ``SLACK`` config section: ``BOT_TOKEN``, ``API_BASE_URL``
    (required with a token; there is no built-in default, so nothing reaches
    Slack unless config says so), ``CHANNEL`` (default target) and
    ``TIMEOUT`` (seconds, default 5). Emits ``chat.postMessage`` calls.
    Raises nothing into workers; without a token it is switched off and says
    so once at setup.
    """

    client: WebClient | None = None
    channel: str | None = None

    def setup(self) -> None:
        section = _slack_section(self.container.config)
        token = section.get(BOT_TOKEN_KEY)
        if not token:
            log.info("slack: no %s.%s, notices off", SLACK_CONFIG_KEY, BOT_TOKEN_KEY)
            return
        base_url = section.get(API_BASE_URL_KEY)
        if not base_url:
            raise ConfigurationError(
                f"{SLACK_CONFIG_KEY}.{API_BASE_URL_KEY} is empty; set it to "
                "https://slack.com/api/ or to a local stand-in"
            )
        self.client = WebClient(
            token=str(token),
            base_url=str(base_url),
            timeout=int(float(section.get(TIMEOUT_KEY) or DEFAULT_TIMEOUT)),
        )
        self.channel = str(section.get(CHANNEL_KEY) or "") or None

    def get_dependency(self, worker_ctx: WorkerContext) -> SlackPoster:
        return SlackPoster(self.client, self.channel)


class SlackFailureNotices(SlackNotifier):
    """Posts a notice when a listed task fails for good (is dead-lettered).

    Consumes the results of workers of the methods named in ``directions``
    (method name → direction shown, e.g. ``{"sync_contact_up": "up"}``). A
    worker that ends in an error other than nameko-amqp-retry's ``Backoff``
    (a retry scheduled for later) is what ``sfsync.extensions.tasks`` moves
    to the dead letters; for those it emits ``notify_failure(direction,
    args, error)`` to the default channel, in its own thread so the task's
    acknowledgement does not wait for Slack. Raises nothing.
    """

    def __init__(self, directions: Mapping[str, str], **kwargs: Any) -> None:
        self.directions = dict(directions)
        super().__init__(**kwargs)

    def worker_result(
        self, worker_ctx: WorkerContext, result: Any = None, exc_info: Any = None
    ) -> None:
        if exc_info is None or isinstance(exc_info[1], Backoff):
            return
        direction = self.directions.get(worker_ctx.entrypoint.method_name)
        if direction is None:
            return
        cause = exc_info[1]
        while isinstance(cause, Backoff.Expired) and cause.__cause__ is not None:
            cause = cause.__cause__
        error = f"{type(cause).__name__}: {cause}"
        poster = self.get_dependency(worker_ctx)
        self.container.spawn_managed_thread(
            lambda: poster.notify_failure(direction, list(worker_ctx.args), error)
        )
