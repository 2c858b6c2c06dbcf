"""Command line: `python -m sfsync.emulator` runs the local Salesforce emulator."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from sfsync.emulator.faults import load_faults
from sfsync.emulator.server import Settings, serve
from sfsync.emulator.streaming import CDC_ENTITIES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfsync-emulator",
        description="Run a local Salesforce emulator (REST, logins, CometD).",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/emulator"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--https-port", type=int, default=8443, help="0 = any free port"
    )
    parser.add_argument("--http-port", type=int, default=8080, help="0 = any free port")
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=110.0,
        help="seconds a CometD /meta/connect is held",
    )
    parser.add_argument(
        "--api-limit", type=int, default=5_000_000, help="daily API request maximum"
    )
    parser.add_argument(
        "--faults",
        type=Path,
        default=None,
        help="JSON file of fault switches (see docs/emulator.md)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one fault switch; repeatable; wins over --faults",
    )
    parser.add_argument(
        "--cdc-entities",
        default=",".join(CDC_ENTITIES),
        help="comma-separated sObjects with Change Data Capture enabled",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        help="start with the clock moved this many seconds ahead",
    )
    return parser


def main() -> None:
    args = _parser().parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        faults = load_faults(args.faults, args.fault)
    except (OSError, ValueError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    settings = Settings(
        data_dir=args.data_dir,
        host=args.host,
        https_port=args.https_port,
        http_port=args.http_port,
        ready_file=args.ready_file,
        connect_timeout=args.connect_timeout,
        api_limit=args.api_limit,
        faults=faults,
        cdc_entities=tuple(e.strip() for e in args.cdc_entities.split(",") if e),
        clock_offset=args.clock_offset,
    )
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
