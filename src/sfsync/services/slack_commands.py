"""The ``slack`` service: the ``/contact`` slash command for the sales team.

``/contact create Last, First, email``
    creates a platform contact (``contacts.create``) and replies with its id;
    the sync then takes it to Salesforce as any other new contact.
``/contact show <platform id | Salesforce id>``
    replies with what the platform holds for the contact, its Salesforce id,
    and what the sync reports for it: ``salesforce.sync_state`` when the sync
    offers it, else its kept failures (``salesforce.failures``).
``/contact resync <platform id>``
    replies at once, then runs ``salesforce.sync_up`` through this service's
    own ``resync`` RPC (so Slack's 3 s limit does not apply to the sync) and
    posts "resync done" (or what failed) to the channel the command came from.

Run: ``nameko run --config config/slack.yaml sfsync.services.slack_commands``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from nameko.exceptions import MethodNotFound, RemoteError, UnknownService
from nameko.rpc import RpcProxy, rpc

from sfsync.extensions.slack import (
    Reply,
    SlackNotifier,
    SlashCommand,
    escape,
    slash_command,
)

log = logging.getLogger(__name__)

# Salesforce ids: 15 or 18 letters and digits, never digits only.
SALESFORCE_ID = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
SCAN_PAGE = 1000
SCAN_LIMIT = 20_000  # contacts looked through to find one by Salesforce id

USAGE = (
    "Usage: `/contact create Last, First, email` · "
    "`/contact show <id or Salesforce id>` · `/contact resync <id>`"
)


class CommandError(Exception):
    """A command the user typed that cannot be carried out; says why."""


def parse_create(argument: str) -> dict[str, Any]:
    """``"Last, First, email"`` → contact fields; only the last name is needed."""
    parts = [part.strip() for part in argument.split(",")]
    if not parts or not parts[0]:
        raise CommandError("create needs at least a last name: `Last, First, email`")
    if len(parts) > 3:
        raise CommandError("create takes `Last, First, email`, no more than 3 parts")
    data: dict[str, Any] = {"last_name": parts[0]}
    if len(parts) > 1 and parts[1]:
        data["first_name"] = parts[1]
    if len(parts) > 2 and parts[2]:
        data["email"] = parts[2]
    return data


def parse_platform_id(word: str) -> int:
    try:
        value = int(word)
    except ValueError:
        raise CommandError(f"`{escape(word)}` is not a platform contact id") from None
    if value <= 0:
        raise CommandError(f"`{value}` is not a platform contact id")
    return value


class SlackCommandsService:
    """Slash commands that reach the contacts and the sync over RPC."""

    name = "slack"

    contacts = RpcProxy("contacts")
    salesforce = RpcProxy("salesforce")
    tasks = RpcProxy("slack")
    notifier = SlackNotifier()

    @slash_command("/contact", expected_exceptions=CommandError)
    def contact(self, command: SlashCommand) -> Reply:
        """Dispatch ``/contact <subcommand> ...``; replies are ephemeral."""
        handlers = {
            "create": self._create,
            "show": self._show,
            "resync": self._resync,
        }
        handler = handlers.get(command.subcommand)
        if handler is None:
            return Reply(USAGE)
        log.info(
            "slack: %s %s by %s", command.command, command.subcommand, command.user_id
        )
        return handler(command)

    # -- create ------------------------------------------------------------

    def _create(self, command: SlashCommand) -> Reply:
        data = parse_create(command.argument)
        try:
            created = self.contacts.create(data)
        except RemoteError as exc:
            if exc.exc_type == "InvalidContact":
                raise CommandError(escape(str(exc.value))) from None
            raise
        return Reply(
            f"Created contact {created['id']} ({escape(_full_name(created))}); "
            "it goes to Salesforce in a moment."
        )

    # -- show --------------------------------------------------------------

    def _show(self, command: SlashCommand) -> Reply:
        word = command.argument
        if not word:
            raise CommandError("show needs a platform id or a Salesforce id")
        if SALESFORCE_ID.match(word):
            contact = self._find_by_salesforce_id(word)
            if contact is None:
                return Reply(f"No platform contact is linked to `{word}`.")
        else:
            contact = self.contacts.get(parse_platform_id(word))
            if contact is None:
                return Reply(f"There is no platform contact {escape(word)}.")
        return Reply(self._describe(contact))

    def _find_by_salesforce_id(self, salesforce_id: str) -> dict[str, Any] | None:
        # contacts offers no lookup by Salesforce id yet: page through a
        # bounded number of contacts. A contacts.get_by_salesforce_id RPC
        # would make this one call.
        for offset in range(0, SCAN_LIMIT, SCAN_PAGE):
            page = self.contacts.list(offset, SCAN_PAGE)
            for contact in page:
                if contact["salesforce_id"] == salesforce_id:
                    return dict(contact)
            if len(page) < SCAN_PAGE:
                return None
        log.warning("slack: %s not in the first %s contacts", salesforce_id, SCAN_LIMIT)
        return None

    def _describe(self, contact: dict[str, Any]) -> str:
        lines = [
            f"*Contact {contact['id']}*: {escape(_full_name(contact))}",
            f"e-mail: {escape(contact.get('email') or '-')}",
        ]
        salesforce_id = contact.get("salesforce_id")
        if salesforce_id:
            lines.append(f"Salesforce id: `{salesforce_id}` (linked)")
        else:
            lines.append("Salesforce id: none yet (not synced up, or on its way)")
        lines.append(self._sync_line(contact["id"], salesforce_id))
        return "\n".join(lines)

    def _sync_line(self, contact_id: int, salesforce_id: str | None) -> str:
        """What the sync says about the contact, through what it offers.

        ``salesforce.sync_state`` when the sync has it, else its failures
        store (``salesforce.failures``), else nothing beyond the platform.
        """
        try:
            state = self.salesforce.sync_state(contact_id)
        except UnknownService:
            return "Sync: the sync service is not reachable"
        except MethodNotFound:
            pass
        else:
            pairs = ", ".join(f"{k}: {v}" for k, v in sorted(dict(state).items()))
            return f"Sync: {escape(pairs)}"
        try:
            failures = self.salesforce.failures()
        except MethodNotFound:
            return "Sync: the sync service reports no per-record state"
        mine = [
            entry
            for entry in failures
            if (entry["direction"] == "up" and contact_id in entry["ids"])
            or (entry["direction"] == "down" and salesforce_id in entry["ids"])
        ]
        if not mine:
            return "Sync: no failed task kept for it"
        last = mine[-1]
        return (
            f"Sync: {len(mine)} failed task(s) kept; last {last['direction']} "
            f"at {last['at']}: {escape(last['error'][:300])}"
        )

    # -- resync ------------------------------------------------------------

    def _resync(self, command: SlashCommand) -> Reply:
        contact_id = parse_platform_id(command.argument)
        self.tasks.resync.call_async(contact_id, command.channel_id)
        return Reply(
            f"Resync of contact {contact_id} started; I will post here when it is done."
        )

    @rpc
    def resync(self, contact_id: int, channel: str | None = None) -> str | None:
        """Sync one contact up now and post the outcome; its Salesforce id."""
        try:
            salesforce_id = self.salesforce.sync_up([contact_id])[0]
        except Exception as exc:  # reported in Slack, and logged
            log.warning("slack: resync of contact %s failed: %s", contact_id, exc)
            self.notifier.post(
                f"Resync of contact {contact_id} failed: "
                f"{escape(type(exc).__name__)}: {escape(str(exc)[:300])}",
                channel=channel,
            )
            return None
        outcome = (
            f"Salesforce `{salesforce_id}`"
            if salesforce_id
            else "it is gone, removed in Salesforce"
        )
        log.info("slack: resync of contact %s done: %s", contact_id, salesforce_id)
        self.notifier.post(
            f"Resync done: contact {contact_id}, {outcome}.", channel=channel
        )
        return str(salesforce_id) if salesforce_id else None


def _full_name(contact: dict[str, Any]) -> str:
    first = contact.get("first_name") or ""
    return f"{contact['last_name']}, {first}" if first else str(contact["last_name"])
