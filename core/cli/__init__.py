"""The command line: every operation a page offers, for servers, cron and scripts.

Each command group lives in its own module with a `register(subparsers)` function; a command's
handler takes `(studio, args)` and returns an exit code. Human tables by default, one JSON
object per line with `--json`, and any error as one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from core.errors import StudioError
from core.storage import DEFAULT_DB

COMMAND_MODULES = (
    "core.cli.contacts_cmd",
    "core.cli.selections_cmd",
    "core.cli.mailings_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Bulk SMS Studio without the browser: import contacts, build selections, "
        "send and follow mailings.",
    )
    parser.add_argument(
        "--db", default=os.environ.get("SMS_STUDIO_DB", DEFAULT_DB),
        help=f"the DuckDB database file (default: {DEFAULT_DB}, or $SMS_STUDIO_DB)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # a command group not present in this build
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        if getattr(args, "no_studio", False):
            return int(handler(None, args) or 0)
        from core.studio import Studio

        with Studio(args.db) as studio:
            return int(handler(studio, args) or 0)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
