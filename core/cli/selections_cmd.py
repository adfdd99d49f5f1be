"""`selection`, `suppress` and `audience`: who a mailing may reach, from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.output import is_missing, print_json, print_pairs, print_records, print_table
from core.errors import InvalidInput

SPEC_HELP = (
    'the rule as JSON, e.g. \'{"field": "city", "op": "eq", "value": "Utrecht"}\' or '
    '\'{"all": [{"field": "age", "op": "ge", "value": 18}, ...]}\''
)


def register(sub: Any) -> None:
    _register_selection(sub)
    _register_suppress(sub)
    _register_audience(sub)


# -- selection --------------------------------------------------------------------------------
def _register_selection(sub: Any) -> None:
    p = sub.add_parser(
        "selection",
        help="create, list and delete selections and mini-selections",
        description="Selections are named rules over one contact database, re-evaluated "
        "whenever they are used. A mini-selection (--parent) narrows another selection.",
    )
    cmds = p.add_subparsers(dest="selection_command", metavar="ACTION", required=True)

    c = cmds.add_parser(
        "create", help="store a selection, or a mini-selection of --parent",
        description="Store a selection of --database, or a mini-selection of --parent (its "
        "contacts are always a subset of the parent's).",
    )
    c.add_argument("name", metavar="NAME", help="a unique name for the selection")
    where = c.add_mutually_exclusive_group(required=True)
    where.add_argument("--database", metavar="D", help="the contact database it selects from")
    where.add_argument("--parent", metavar="SELECTION",
                       help="make a mini-selection of this selection")
    c.add_argument("--spec", required=True, metavar="JSON", help=SPEC_HELP)
    c.add_argument("--sms", action="store_true",
                   help="switch on its usage for SMS mailings")
    c.add_argument("--json", action="store_true", help="print the result as one JSON object")
    c.set_defaults(handler=run_create)

    ls = cmds.add_parser(
        "list", help="list selections as a tree, with their last counts",
        description="List every selection, each followed by its mini-selections.",
    )
    ls.add_argument("--database", metavar="D", help="only the selections of this database")
    ls.add_argument("--count", action="store_true",
                    help="recount every selection first (re-evaluates the rules)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=run_list)

    d = cmds.add_parser(
        "delete", help="delete a selection",
        description="Delete a selection. Refused while it has mini-selections (unless "
        "--cascade) or while a scheduled or sending mailing uses it.",
    )
    d.add_argument("name", metavar="NAME")
    d.add_argument("--cascade", action="store_true", help="delete its mini-selections too")
    d.set_defaults(handler=run_delete)


def run_create(studio: Any, args: argparse.Namespace) -> int:
    sel_id = studio.create_selection(
        args.name, spec=args.spec, database=args.database, parent=args.parent, sms=args.sms
    )
    info = studio.get_selection(args.name)
    count, at = studio.count_selection(args.name)
    reason = studio.sms_usable_reason(args.name)
    if args.json:
        print_json({"id": sel_id, "name": info.name, "database": info.database,
                    "parent": info.parent, "sms_enabled": info.sms_enabled,
                    "usable": reason is None, "count": count, "counted_at": at})
        return 0
    kind = f"mini-selection of {info.parent!r}" if info.parent else "selection"
    print(f"Stored {kind} {info.name!r} (id {sel_id}) on database {info.database!r}: "
          f"{count:,} contacts now.")
    print("SMS usage: " + ("usable" if reason is None else f"not usable ({reason})"))
    return 0


def run_list(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.list_selections(args.database)
    if args.count and not frame.empty:
        for name in frame["name"]:
            studio.count_selection(name)
        frame = studio.list_selections(args.database)
    if args.json:
        print_records(frame)
        return 0
    if frame.empty:
        print("(no selections)")
        return 0
    shown = frame.assign(
        name=["  " * int(d) + ("└ " if d else "") + str(n)
              for n, d in zip(frame["name"], frame["depth"], strict=True)],
        last_count=[("-" if is_missing(c) else f"{int(c):,}") for c in frame["last_count"]],
        counted_at=[("-" if is_missing(t) else str(t)[:19]) for t in frame["counted_at"]],
        sms=["yes" if u else ("on" if s else "off")
             for s, u in zip(frame["sms_enabled"], frame["usable"], strict=True)],
    )[["name", "database", "sms", "last_count", "counted_at"]]
    print_table(shown.rename(columns={"sms": "sms usable"}))
    return 0


def run_delete(studio: Any, args: argparse.Namespace) -> int:
    names = studio.delete_selection(args.name, cascade=args.cascade)
    print(f"Deleted {', '.join(repr(n) for n in names)}.")
    return 0


# -- suppress ---------------------------------------------------------------------------------
def _register_suppress(sub: Any) -> None:
    p = sub.add_parser(
        "suppress",
        help="the global suppression list: numbers no mailing ever reaches",
        description="Numbers are normalised like contact numbers (to E.164) before they are "
        "stored or matched, so 06-12345678 and +31 6 1234 5678 are one entry.",
    )
    cmds = p.add_subparsers(dest="suppress_command", metavar="ACTION", required=True)

    a = cmds.add_parser("add", help="add numbers to the suppression list",
                        description="Add numbers (any format) to the suppression list.")
    a.add_argument("numbers", nargs="+", metavar="NUMBER")
    a.add_argument("--reason", default="manual", metavar="R",
                   help="why (default: manual; e.g. stop_reply, bounced)")
    _add_region(a)
    a.set_defaults(handler=run_suppress_add)

    r = cmds.add_parser("remove", help="remove numbers from the suppression list",
                        description="Remove numbers (any format) from the suppression list.")
    r.add_argument("numbers", nargs="+", metavar="NUMBER")
    _add_region(r)
    r.set_defaults(handler=run_suppress_remove)

    i = cmds.add_parser(
        "import", help="add every number in a file",
        description="Add the numbers of a CSV, Excel .xlsx or Parquet file, or of a plain "
        "one-number-per-line file, to the suppression list.",
    )
    i.add_argument("file", metavar="FILE")
    i.add_argument("--column", metavar="C", help="the column with the numbers (guessed)")
    i.add_argument("--reason", default="imported", metavar="R", help="default: imported")
    _add_region(i)
    i.set_defaults(handler=run_suppress_import)

    ls = cmds.add_parser("list", help="list suppressed numbers, newest first",
                         description="List the suppression list, newest first.")
    ls.add_argument("--search", metavar="DIGITS", help="only numbers containing these digits")
    ls.add_argument("--limit", type=int, metavar="N", help="at most N numbers")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=run_suppress_list)


def _add_region(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", default="NL", metavar="NL",
                        help="country for numbers without a country code (default NL)")


def _report_numbers(summary: str, invalid: list[tuple[str, str]], any_valid: bool) -> int:
    """Print what `suppress add|remove` did; exit 1 if some numbers were not usable.

    When no number at all was usable, nothing changed: one error line instead of a summary.
    """
    if not any_valid:
        raise InvalidInput(
            "None of the numbers is a valid phone number: "
            + "; ".join(f"{raw!r}: {why}" for raw, why in invalid)
        )
    print(summary)
    for raw, reason in invalid:
        print(f"error: {raw!r} is not a usable number: {reason}", file=sys.stderr)
    return 1 if invalid else 0


def run_suppress_add(studio: Any, args: argparse.Namespace) -> int:
    result = studio.suppress(args.numbers, reason=args.reason, region=args.region)
    return _report_numbers(
        f"Added {len(result.added)}, already suppressed {len(result.already)}.",
        result.invalid, any_valid=bool(result.added or result.already),
    )


def run_suppress_remove(studio: Any, args: argparse.Namespace) -> int:
    result = studio.unsuppress(args.numbers, region=args.region)
    return _report_numbers(
        f"Removed {len(result.removed)}, not on the list {len(result.not_found)}.",
        result.invalid, any_valid=bool(result.removed or result.not_found),
    )


def run_suppress_import(studio: Any, args: argparse.Namespace) -> int:
    result = studio.import_suppressions(
        args.file, column=args.column, reason=args.reason, region=args.region
    )
    print(f"Added {len(result.added):,}, already suppressed {len(result.already):,}, "
          f"invalid {len(result.invalid):,}.")
    for raw, reason in result.invalid[:20]:
        print(f"skipped {raw!r}: {reason}", file=sys.stderr)
    if len(result.invalid) > 20:
        print(f"… and {len(result.invalid) - 20:,} more invalid lines", file=sys.stderr)
    return 0


def run_suppress_list(studio: Any, args: argparse.Namespace) -> int:
    frame = studio.list_suppressions(search=args.search, limit=args.limit)
    if args.json:
        print_records(frame)
        return 0
    print_table(frame, empty="(the suppression list is empty)")
    return 0


# -- audience ---------------------------------------------------------------------------------
def _register_audience(sub: Any) -> None:
    p = sub.add_parser(
        "audience",
        help="how a selection's size becomes the number of SMS recipients",
        description="The reconciliation: in selection → no mobile number → invalid number → "
        "not a mobile number → no consent → suppressed → duplicate number (kept once) → "
        "recipients, plus recipients per country. Each later step counts the contacts it "
        "removes.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--selection", metavar="NAME", help="a stored selection")
    target.add_argument("--database", metavar="NAME", help="a whole contact database")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run_audience)


def run_audience(studio: Any, args: argparse.Namespace) -> int:
    result = studio.audience(selection=args.selection, database=args.database)
    if args.json:
        print_json(result.to_json())
        return 0
    from core.audience import STEP_LABELS

    target = (f"selection {args.selection!r}" if args.selection
              else f"database {args.database!r}")
    print(f"Audience of {target} (computed {result.computed_at:%Y-%m-%d %H:%M:%S} UTC)")
    table = result.table()
    print_table(table.assign(
        contacts=[f"{n:,}" for n in table["contacts"]],
        left=[f"{n:,}" for n in table["left"]],
        label=[("" if s in ("in_selection", "recipients") else "− ") + STEP_LABELS[s]
               for s in table["step"]],
    )[["label", "contacts", "left"]].rename(columns={"label": "step"}))
    if not result.consent_rule:
        print(f"note: database {result.database!r} has no opt-in rule, so nobody counts as "
              "having consented.")
    if result.by_country:
        print("\nRecipients per country:")
        print_pairs([(k, f"{v:,}") for k, v in result.by_country.items()])
    return 0
