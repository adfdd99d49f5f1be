"""`send`, `mailings`, `results`, `cancel` and `worker`: mailings without the browser."""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any

from core.cli.output import print_json, print_table
from core.errors import InvalidInput
from core.exports import to_safe_csv
from core.timeutil import parse_user_time

MAILING_FIELDS = ("id", "state", "recipients", "submitted", "delivered", "failed", "unknown",
                  "skipped", "segments", "scheduled_at", "started_at", "finished_at")


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
                   help="send at this time (your time zone, or with an offset); default: now")
    p.add_argument("--split", type=int, metavar="N",
                   help="the most parts a recipient's message may have (default from Settings, "
                   "4); recipients whose message needs more are skipped and listed")
    p.add_argument("--accept-rules", action="store_true",
                   help="confirm that the recipients opted in and the numbers were obtained "
                   "lawfully (required)")
    p.add_argument("--wait", action="store_true", help="send in this process and wait")
    p.add_argument("--gateway", metavar="URL", help="gateway URL with --wait (default: "
                   "$SMS_STUDIO_GATEWAY, else the simulator)")
    p.add_argument("--report-timeout", type=float, metavar="SECONDS",
                   help="with --wait: how long to wait for delivery reports (default 60)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_send)

    p = sub.add_parser("mailings", help="list mailings with state and counts, oldest first")
    p.add_argument("--json", action="store_true", help="one JSON object per line per mailing")
    p.set_defaults(handler=run_mailings)

    p = sub.add_parser("results", help="the per-recipient ledger of a mailing")
    p.add_argument("mailing_id", type=int, metavar="MAILING_ID")
    p.add_argument("--format", choices=["csv", "parquet", "json"], default="csv")
    p.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(handler=run_results)

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
    p.add_argument("--report-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for delivery reports (default 60)")
    p.set_defaults(handler=run_worker)


def _progress_printer(enabled: bool):
    def show(done: int, total: int, label: str = "") -> None:
        if not enabled or not total:
            return
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r[{bar:<30}] {done:,}/{total:,} {label:<30}")
        sys.stderr.flush()
    return show


def run_send(studio: Any, args: argparse.Namespace) -> int:
    if not args.accept_rules:
        raise InvalidInput(
            "Add --accept-rules to confirm that the recipients opted in and their numbers were "
            "obtained lawfully."
        )
    if args.body is not None and not args.sender:
        raise InvalidInput("--body needs --sender.")
    if args.document:
        doc = studio.get_document(args.document)
        sender, body = doc.sender, doc.body
    else:
        sender, body = args.sender, args.body
    at = parse_user_time(args.at, studio.get_setting("time_zone")) if args.at else None
    mailing_id = studio.create_mailing(
        sender=sender, body=body, selection=args.selection, database=args.database,
        document=args.document, at=at, split_max_parts=args.split, accept_rules=True,
    )
    if not args.wait:
        if args.json:
            print_json({"id": mailing_id, "state": studio.get_mailing(mailing_id)["state"]})
        else:
            print(mailing_id)
        return 0
    from core.worker import run_until_done

    timeout = args.report_timeout if args.report_timeout is not None else float(
        studio.get_setting("report_timeout") or 60)
    run_until_done(studio, gateway_url=args.gateway, report_timeout=timeout,
                   progress=_progress_printer(sys.stderr.isatty()))
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    summary = _mailing_row(studio, mailing_id)
    if args.json:
        print_json(summary)
    else:
        print(mailing_id)
        print(", ".join(f"{k}={summary[k]}" for k in MAILING_FIELDS[1:9]), file=sys.stderr)
    return 0


def _mailing_row(studio: Any, mailing_id: int) -> dict[str, Any]:
    frame = studio.list_mailings()
    row = frame[frame["id"] == mailing_id].iloc[0].to_dict()
    return {k: _clean(row.get(k)) for k in MAILING_FIELDS}


def _clean(value: Any) -> Any:
    import pandas as pd

    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value


def run_mailings(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.list_mailings()
    frame = frame.sort_values("id") if not frame.empty else frame
    if args.json:
        for row in frame.to_dict("records"):
            print_json({k: _clean(row.get(k)) for k in MAILING_FIELDS})
        return 0
    cols = [c for c in MAILING_FIELDS if c in frame.columns]
    print_table(frame[cols] if not frame.empty else frame, empty="No mailings yet.")
    return 0


def run_results(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.mailing_results(args.mailing_id)
    if args.format == "parquet":
        if not args.output:
            raise InvalidInput("Parquet is binary: add --output FILE.")
        frame.to_parquet(args.output, index=False)
        return 0
    if args.format == "csv":
        data = to_safe_csv(frame)
    else:
        buffer = io.StringIO()
        frame.to_json(buffer, orient="records", lines=True, date_format="iso", force_ascii=False)
        data = buffer.getvalue().encode("utf-8")
    if args.output:
        with open(args.output, "wb") as handle:
            handle.write(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def run_cancel(studio: Any, args: argparse.Namespace) -> int:
    studio.cancel_mailing(args.mailing_id)
    print(f"Mailing {args.mailing_id} cancelled.")
    return 0


def run_worker(studio: Any, args: argparse.Namespace) -> int:
    from core.worker import run_until_done, run_worker_forever

    if args.until_done:
        run_until_done(studio, gateway_url=args.gateway, report_timeout=args.report_timeout,
                       progress=_progress_printer(sys.stderr.isatty()))
        return 0
    run_worker_forever(studio, gateway_url=args.gateway)
    return 0
