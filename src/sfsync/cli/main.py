"""The ``sfsync`` command: ``import`` a CSV export, run the ``demo``.

Each subcommand imports what it needs when it runs. Errors go to stderr as
one ``Error:`` line with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["main"]


class CommandError(Exception):
    """A failure to report to the user as one line, exit status 2."""


@contextmanager
def broker_errors(amqp_uri: str) -> Iterator[None]:
    """Turn an unreachable or refusing broker into one line, password hidden."""
    from amqp.exceptions import AMQPError  # type: ignore[import-untyped]

    where = without_password(amqp_uri)
    try:
        yield
    except OSError as exc:
        raise CommandError(f"cannot reach the broker at {where}: {exc}") from exc
    except AMQPError as exc:
        raise CommandError(
            f"the broker at {where} refused: {exc} "
            "(is the vhost right? the demo's is sfsync-demo, deleted when it ends)"
        ) from exc


def without_password(uri: str) -> str:
    """``uri`` with the password of its user part replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def main(argv: list[str] | None = None) -> None:
    # Eventlet announces its bug-fix-only status on import; nameko 2.14 runs
    # on it by design (see docs), so the user need not see that every time.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("amqp").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="sfsync")
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "import", help="import a Salesforce CSV export into the platform"
    )
    load.add_argument("csv", type=Path)
    load.add_argument(
        "--amqp-uri",
        default="pyamqp://guest:guest@127.0.0.1:5672/",
        help="the broker the contacts service listens on",
    )
    load.add_argument(
        "--object",
        choices=["contact", "account"],
        default="contact",
        help="what the export holds",
    )
    load.add_argument(
        "--account-ids",
        type=Path,
        default=None,
        help="ids CSV of the account import, to link contacts to their accounts",
    )
    load.add_argument("--skip", type=int, default=0, help="records to skip first")
    load.add_argument("--limit", type=int, default=None, help="records to import")
    load.add_argument(
        "--errors",
        type=Path,
        default=None,
        help="where to write refused rows (default: <csv>.errors.csv)",
    )
    load.add_argument(
        "--ids",
        type=Path,
        default=None,
        help="source id -> platform id, appended as rows land; rows already in "
        "it are skipped (default: <csv>.ids.csv)",
    )
    load.set_defaults(run=run_import)

    demo = commands.add_parser("demo", help="run every part and sync real data")
    demo.add_argument(
        "--csv", type=Path, default=None, help="contacts export (data/contacts.csv)"
    )
    demo.add_argument("--rows", type=int, default=None, help="use the first N rows")
    demo.add_argument("--updates", type=int, default=200, help="per side")
    demo.add_argument("--deletes", type=int, default=50, help="per side")
    demo.add_argument(
        "--work-dir",
        type=Path,
        default=Path("var/demo"),
        help="logs, databases, rejected rows (emptied first)",
    )
    demo.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for convergence"
    )
    demo.add_argument(
        "--instances", type=int, default=1, help="salesforce sync instances to run"
    )
    demo.add_argument("--vhost", default="sfsync-demo", help="RabbitMQ vhost to use")
    demo.add_argument(
        "--redis-uri",
        default="redis://127.0.0.1:6379/1",
        help="Redis database for the sync (flushed first)",
    )
    demo.set_defaults(run=run_demo)

    letters = commands.add_parser(
        "dead-letters", help="list or replay tasks that failed for good"
    )
    letters.add_argument("action", choices=["list", "replay"])
    letters.add_argument("ids", nargs="*", help="dead letter ids to replay")
    letters.add_argument("--all", action="store_true", help="replay every one")
    letters.add_argument("--service", default="salesforce")
    letters.add_argument("--amqp-uri", default="pyamqp://guest:guest@127.0.0.1:5672/")
    letters.set_defaults(run=run_dead_letters)

    args = parser.parse_args(argv)
    try:
        status = args.run(args)
    except CommandError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status)


def run_import(args: argparse.Namespace) -> int:
    import eventlet

    eventlet.monkey_patch()

    from nameko.standalone.rpc import ClusterRpcProxy
    from tqdm import tqdm

    from sfsync.importer import (
        OBJECTS,
        ExportFileError,
        Importer,
        append_ids,
        read_export,
        read_ids,
        write_rejected,
    )

    if not args.csv.is_file():
        raise CommandError(f"{args.csv} is not a file")
    errors_path = args.errors or args.csv.with_suffix(".errors.csv")
    ids_path = args.ids or args.csv.with_suffix(".ids.csv")
    service = {"contact": "contacts", "account": "accounts"}[args.object]
    account_ids = None
    if args.account_ids is not None:
        if not args.account_ids.is_file():
            raise CommandError(f"{args.account_ids} is not a file")
        account_ids = read_ids(args.account_ids)
    warnings: list[str] = []
    try:
        rows = list(
            read_export(args.csv, args.skip, args.limit, OBJECTS[args.object], warnings)
        )
    except ExportFileError as exc:
        raise CommandError(str(exc)) from exc
    for warning in warnings:
        print(f"warning: {warning}")
    interrupt = StopBetweenChunks()
    with (
        broker_errors(args.amqp_uri),
        ClusterRpcProxy({"AMQP_URI": args.amqp_uri}, timeout=120) as cluster,
        tqdm(total=len(rows), desc="import", unit="row", file=sys.stdout,
             mininterval=2.0) as bar,
    ):  # fmt: skip
        importer = Importer(
            getattr(cluster, service).create_many,
            already=set(read_ids(ids_path)),
            account_ids=account_ids,
            on_chunk=lambda ids: append_ids(ids_path, ids),
            progress=bar.update,
            stopping=interrupt.requested,
        )
        with interrupt:
            report = importer.run(iter(rows))
    for row in report.rejected:
        print(f"line {row.line}: {row.error}")
    if report.rejected:
        write_rejected(errors_path, report.rejected)
    if report.stopped:
        print("interrupted: run the same command again to import the rest")
    print(
        f"imported {report.imported} {args.object}s, rejected {len(report.rejected)}"
        + (f" (written to {errors_path})" if report.rejected else "")
        + (f", skipped {report.skipped} imported before" if report.skipped else "")
        + f"; ids in {ids_path}"
    )
    return 0


class StopBetweenChunks:
    """Ctrl-C asks the import to stop after the chunk in flight (whose ids
    are then recorded); a second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self._asked = False

    def requested(self) -> bool:
        return self._asked

    def _handle(self, signum: int, frame: object) -> None:
        if self._asked:
            raise KeyboardInterrupt
        self._asked = True
        print("\nstopping after the current chunk (Ctrl-C again to stop now)")

    def __enter__(self) -> StopBetweenChunks:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)


def run_dead_letters(args: argparse.Namespace) -> int:
    from sfsync.deadletters import list_dead_letters, replay

    with broker_errors(args.amqp_uri):
        if args.action == "list":
            letters = list_dead_letters(args.amqp_uri, args.service)
            for letter in letters:
                print(letter.line())
            print(f"{len(letters)} dead letters in {args.service}.dead-letters")
            return 0
        if not args.ids and not args.all:
            raise CommandError("name the dead letters to replay, or pass --all")
        replayed = replay(args.amqp_uri, args.service, None if args.all else args.ids)
    for letter in replayed:
        print(f"replayed {letter.id} {letter.task}")
    missing = set(args.ids) - {letter.id for letter in replayed}
    if missing:
        raise CommandError(f"no dead letter with id {', '.join(sorted(missing))}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    import eventlet

    eventlet.monkey_patch()

    from sfsync.demo import Demo

    return Demo.from_args(args).run()
