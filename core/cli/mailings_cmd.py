"""`send`, `mailings`, `results`, `edit`, `cancel` and `worker`: mailings without the browser.

Names, options and JSON fields here are contracts that users' scripts rely on: add, never
rename. Times are typed in the Settings time zone (or with an explicit offset) and printed in
JSON as UTC with an offset.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from core.cli.output import print_json, print_json_lines, print_table
from core.errors import InvalidInput, StudioError
from core.exports import to_safe_csv
from core.timeutil import parse_user_time, to_user_time
from core.values import plain

MAILING_FIELDS = ("id", "state", "recipients", "submitted", "delivered", "failed", "unknown",
                  "skipped", "segments", "scheduled_at", "started_at", "finished_at")  # fmt: skip
TIME_FIELDS = ("scheduled_at", "started_at", "finished_at")
SKIPPED_SHOWN = 10  # skipped recipients printed by `send`; `results` lists them all


def register(sub: Any) -> None:
    p = sub.add_parser(
        "send", help="create a mailing: sent now, or scheduled with --at",
        description="Create a bulk mailing to a selection (or a whole database whose mobile "
        "field and opt-in rule are set) and print its id. Without --wait, a running app or "
        "worker sends it; with --wait this process sends it and returns when every message has "
        "a final status or the report timeout has passed.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--document", metavar="NAME", help="an SMS document")
    what.add_argument("--body", metavar="TEXT", help="the message text (needs --sender)")
    p.add_argument("--sender", metavar="S", help="sender ID (with --body)")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--selection", metavar="NAME", help="a selection or mini-selection")
    to.add_argument("--database", metavar="NAME", help="a whole contact database")
    p.add_argument("--at", metavar='"2026-12-01 09:00"',
                   help="send at this time (the Settings time zone, or with an offset such as "
                   "+01:00); default: now")
    p.add_argument("--split", type=int, metavar="N",
                   help="the most parts a recipient's message may have (default from Settings, "
                   "4; 1 = no multi-part messages); recipients whose message needs more are "
                   "skipped and listed, never truncated")
    p.add_argument("--accept-rules", action="store_true",
                   help="confirm that the recipients opted in and the numbers were obtained "
                   "lawfully (required)")
    p.add_argument("--wait", action="store_true",
                   help="send in this process (waiting for --at first) and return when done")
    p.add_argument("--gateway", metavar="URL", help="gateway URL with --wait (default: the "
                   "setting, $SMS_STUDIO_GATEWAY, else the simulator)")
    p.add_argument("--report-timeout", type=float, metavar="SECONDS",
                   help="with --wait: how long to wait for delivery reports (default: the "
                   "setting, 60)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=run_send)

    p = sub.add_parser("mailings", help="list mailings with state and counts, oldest first")
    p.add_argument("--json", action="store_true", help="one JSON object per line per mailing")
    p.set_defaults(handler=run_mailings)

    p = sub.add_parser("results", help="the per-recipient ledger of a mailing")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--format", choices=["csv", "parquet", "json"], default="csv",
                   help="csv (spreadsheet-safe), parquet (needs --output) or json (one object "
                   "per line)")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=run_results)

    p = sub.add_parser("edit", help="change a scheduled mailing (not one that is sending)",
                       description="Change what is given; everything else stays.")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--at", metavar='"2026-12-01 09:00"', help="the new send time")
    p.add_argument("--document", metavar="NAME", help="send this document instead")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--selection", metavar="NAME", help="send to this selection instead")
    target.add_argument("--database", metavar="NAME", help="send to this whole database")
    p.add_argument("--split", type=int, metavar="N", help="the most parts per message")
    p.set_defaults(handler=run_edit)

    p = sub.add_parser("cancel", help="cancel a scheduled mailing (not one that is sending)")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.set_defaults(handler=run_cancel)

    p = sub.add_parser(
        "worker", help="run the scheduler and dispatcher without the UI",
        description="Runs the scheduler and the dispatcher until stopped (SIGTERM stops "
        "cleanly after the batches in flight are recorded). Resumes what was running.",
    )
    p.add_argument("--gateway", metavar="URL", help="gateway URL (default: the setting, "
                   "$SMS_STUDIO_GATEWAY, else the simulator)")
    p.add_argument("--until-done", action="store_true",
                   help="exit 0 once nothing is due or sending and delivery reports are in")
    p.add_argument("--report-timeout", type=float, metavar="SECONDS",
                   help="with --until-done: how long to wait for delivery reports (default: "
                   "the setting, 60)")
    p.set_defaults(handler=run_worker)


# -- helpers -------------------------------------------------------------------------------
def _progress_printer(enabled: bool) -> Callable[[int, int, str], None]:
    """A one-line progress bar on standard error (only on a terminal: logs stay clean)."""

    def show(done: int, total: int, label: str = "") -> None:
        if not enabled or not total:
            return
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r[{bar:<30}] {done:,}/{total:,} {label:<30}")
        sys.stderr.flush()

    return show


def _report_timeout(studio: Any, value: float | None) -> float:
    if value is not None:
        if value < 0:
            raise InvalidInput("--report-timeout must be 0 or more seconds.")
        return float(value)
    return float(studio.get_setting("report_timeout") or 60)


def _utc_text(value: Any) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its offset, for JSON."""
    stamp = plain(value)
    if stamp is None:
        return None
    moment = pd.Timestamp(stamp).to_pydatetime()
    return moment.replace(tzinfo=UTC).isoformat(timespec="seconds")




def _mailing_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: plain(row.get(k)) for k in MAILING_FIELDS}
    for key in TIME_FIELDS:
        out[key] = _utc_text(row.get(key))
    return out


def _mailing_row(studio: Any, mailing_id: int) -> dict[str, Any]:
    frame = studio.list_mailings()
    return _mailing_json(frame[frame["id"] == mailing_id].iloc[0].to_dict())


# -- send ----------------------------------------------------------------------------------
def run_send(studio: Any, args: argparse.Namespace) -> int:
    if not args.accept_rules:
        raise InvalidInput(
            "Add --accept-rules to confirm that the recipients opted in and their numbers were "
            "obtained lawfully."
        )
    if args.body is not None and not args.sender:
        raise InvalidInput("--body needs --sender.")
    if args.document and args.sender:
        raise InvalidInput("--sender goes with --body; a document has its own sender.")
    if (args.gateway or args.report_timeout is not None) and not args.wait:
        raise InvalidInput("--gateway and --report-timeout go with --wait.")
    at = parse_user_time(args.at, studio.get_setting("time_zone")) if args.at else None
    plan = studio.plan_mailing(
        document=args.document, sender=args.sender, body=args.body, selection=args.selection,
        database=args.database, split_max_parts=args.split,
    )
    # On the command line, --accept-rules is the explicit confirmation, whatever the size.
    mailing_id = studio.confirm_mailing(plan, at=at, accept_rules=True, confirm_large=True)
    if not args.json:
        print(mailing_id, flush=True)
    _describe_plan(studio, mailing_id, plan)
    if not args.wait:
        if args.json:
            print_json(_mailing_row(studio, mailing_id))
        return 0
    return _wait_for(studio, mailing_id, args)


def _describe_plan(studio: Any, mailing_id: int, plan: Any) -> None:
    """What was planned, on standard error (standard output carries only the id)."""
    mailing = studio.get_mailing(mailing_id)
    when = to_user_time(mailing["scheduled_at"], studio.get_setting("time_zone"))
    due = mailing["scheduled_at"] <= studio.clock()
    timing = "to start now" if due else f"scheduled for {when:%Y-%m-%d %H:%M %Z}"
    err = sys.stderr
    print(f"Mailing {mailing_id} to {plan.target_label}, {timing}: {plan.to_send:,} "
          f"recipients, {plan.total_segments:,} segments, estimated {plan.total_cost:,.2f} "
          f"{plan.currency}.", file=err)  # fmt: skip
    for warning in plan.warnings:
        print(f"warning: {warning}", file=err)
    if len(plan.skipped):
        print(f"Skipped (not truncated) {len(plan.skipped):,} recipients; all of them: "
              f"python -m core results {mailing_id}", file=err)  # fmt: skip
        shown = plan.skipped.head(SKIPPED_SHOWN)
        print(shown[["contact_key", "e164", "parts", "reason"]].to_string(index=False), file=err)
    err.flush()


def _wait_for(studio: Any, mailing_id: int, args: argparse.Namespace) -> int:
    """Send in this process: wait for the send time, run until done, report the outcome."""
    from core.worker import run_until_done

    timeout = _report_timeout(studio, args.report_timeout)
    tty = sys.stderr.isatty()
    _sleep_until_due(studio, mailing_id, tty)
    run_until_done(studio, gateway_url=args.gateway, report_timeout=timeout,
                   progress=_progress_printer(tty))  # fmt: skip
    if tty:
        sys.stderr.write("\n")
    summary = _mailing_row(studio, mailing_id)
    mailing = studio.get_mailing(mailing_id)
    if args.json:
        print_json(summary)
    print(", ".join(f"{k}={summary[k]}" for k in MAILING_FIELDS[1:9]), file=sys.stderr)
    if mailing["state"] == "failed":
        raise StudioError(f"Mailing {mailing_id} could not start: {mailing.get('error')}")
    return 0


def _sleep_until_due(studio: Any, mailing_id: int, tty: bool) -> None:
    """Block until a mailing scheduled later is due (Ctrl-C leaves it scheduled)."""
    while True:
        mailing = studio.get_mailing(mailing_id)
        if mailing["state"] != "scheduled":
            return
        left = (mailing["scheduled_at"] - studio.clock()).total_seconds()
        if left <= 0:
            return
        if tty:
            sys.stderr.write(f"\rwaiting {left:,.0f} s for the send time ")
            sys.stderr.flush()
        time.sleep(min(left, 1.0))


# -- mailings, results ---------------------------------------------------------------------
def run_mailings(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.list_mailings()
    frame = frame.sort_values("id", kind="stable").reset_index(drop=True)
    if args.json:
        print_json_lines(_mailing_json(row) for row in frame.to_dict("records"))
        return 0
    if frame.empty:
        print("No mailings yet.")
        return 0
    zone = studio.get_setting("time_zone")
    shown = frame[["id", "kind", *MAILING_FIELDS[1:]]].copy()
    for key in TIME_FIELDS:
        shown[key] = [
            "" if plain(v) is None else
            f"{to_user_time(pd.Timestamp(v).to_pydatetime(), zone):%Y-%m-%d %H:%M}"
            for v in shown[key]
        ]  # a few hundred mailings at most: formatting each is fine
    print_table(shown)
    print(f"(times in {zone or 'local time'})", file=sys.stderr)
    return 0


def _with_utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Stored naive-UTC timestamps marked as UTC (JSON gets a Z, Parquet a time zone)."""
    out = frame.copy()
    for col in ("submitted_at", "done_at"):
        if col in out and pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.tz_localize("UTC")
    return out


def run_results(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.mailing_results(args.mailing_id)
    if frame.empty:
        state = studio.get_mailing(args.mailing_id)["state"]
        print(f"Mailing {args.mailing_id} is {state}: no recipients in its ledger "
              f"{'yet' if state == 'scheduled' else ''}".rstrip() + ".", file=sys.stderr)
    if args.format == "parquet":
        if not args.output:
            raise InvalidInput("Parquet is binary: add --output FILE.")
        _with_utc(frame).to_parquet(args.output, index=False)
        return 0
    if args.format == "csv":
        data = to_safe_csv(frame)
    else:
        buffer = io.StringIO()
        _with_utc(frame).to_json(buffer, orient="records", lines=True, date_format="iso",
                                 force_ascii=False)  # fmt: skip
        data = buffer.getvalue().encode("utf-8")
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


# -- edit, cancel, worker ------------------------------------------------------------------
def run_edit(studio: Any, args: argparse.Namespace) -> int:
    at: datetime | None = None
    if args.at:
        at = parse_user_time(args.at, studio.get_setting("time_zone"))
    if not any([at, args.document, args.selection, args.database, args.split is not None]):
        raise InvalidInput("Say what to change: --at, --document, --selection, --database or "
                           "--split.")  # fmt: skip
    studio.edit_mailing(args.mailing_id, at=at, document=args.document,
                        selection=args.selection, database=args.database,
                        split_max_parts=args.split)  # fmt: skip
    print(f"Mailing {args.mailing_id} changed.")
    return 0


def run_cancel(studio: Any, args: argparse.Namespace) -> int:
    studio.cancel_mailing(args.mailing_id)
    print(f"Mailing {args.mailing_id} cancelled.")
    return 0


def run_worker(studio: Any, args: argparse.Namespace) -> int:
    from core.worker import run_until_done, run_worker_forever

    if args.until_done:
        run_until_done(studio, gateway_url=args.gateway,
                       report_timeout=_report_timeout(studio, args.report_timeout),
                       progress=_progress_printer(sys.stderr.isatty()))  # fmt: skip
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return 0
    print("Worker running: sending due mailings until stopped (Ctrl-C or SIGTERM).",
          file=sys.stderr, flush=True)  # fmt: skip
    run_worker_forever(studio, gateway_url=args.gateway)
    print("Worker stopped.", file=sys.stderr)
    return 0
