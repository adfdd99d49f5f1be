"""`import`: contacts into a database, with the import report."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.cli.output import print_json, print_pairs


def register(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="import contacts from CSV, Excel .xlsx or Parquet and print the import report",
        description="Import contacts into a database (created if new). Re-importing with a key "
        "field updates contacts with the same key and inserts new ones.",
    )
    p.add_argument("file", metavar="FILE", help="CSV, .xlsx or .parquet file")
    p.add_argument("--database", required=True, metavar="NAME", help="contact database name")
    p.add_argument("--mobile-field", metavar="F", help="column with mobile numbers (guessed)")
    p.add_argument("--key-field", metavar="K", help="column that identifies a contact")
    p.add_argument("--consent-field", metavar="C", help="column that records opt-in")
    p.add_argument("--consent-yes", metavar="VALUES",
                   help="comma-separated values of the consent column that mean yes")
    p.add_argument("--region", metavar="NL",
                   help="default country for numbers without a country code (default NL)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(handler=run_import)


def run_import(studio: Any, args: argparse.Namespace) -> int:
    if args.consent_yes and not args.consent_field:
        raise SystemExit("error: --consent-yes needs --consent-field")
    if args.consent_field and not args.consent_yes:
        raise SystemExit("error: --consent-field needs --consent-yes (the values that mean yes)")
    yes = [v.strip() for v in args.consent_yes.split(",")] if args.consent_yes else None
    show_progress = sys.stderr.isatty() and not args.json

    def progress(fraction: float, label: str) -> None:
        if show_progress:
            bar = "#" * int(fraction * 30)
            sys.stderr.write(f"\r[{bar:<30}] {label:<45}")
            sys.stderr.flush()

    report = studio.import_contacts(
        args.file, database=args.database, mobile_field=args.mobile_field,
        key_field=args.key_field, consent_field=args.consent_field, consent_yes=yes,
        region=args.region, progress=progress,
    )
    if show_progress:
        sys.stderr.write("\n")
    if args.json:
        print_json(report.to_dict())
        return 0
    print(f"Imported {report.file_name} into {report.database!r} "
          f"({report.file_format}, {report.encoding or '-'}) in {report.seconds:.1f} s")
    print_pairs([
        ("rows read", f"{report.rows:,}"),
        ("inserted", f"{report.inserted:,}"),
        ("updated", f"{report.updated:,}"),
        ("mobile field", report.mobile_field),
        ("key field", report.key_field or "-"),
        ("default country", report.region),
    ])
    print("\nPhone numbers (whole database):")
    print_pairs([(k.replace("_", " "), f"{v:,}") for k, v in report.status_counts.items()])
    if report.country_counts:
        print("\nBy country:")
        print_pairs([(k, f"{v:,}") for k, v in list(report.country_counts.items())[:15]])
    print(f"\nDuplicates: {report.duplicate_numbers:,} numbers shared by "
          f"{report.duplicate_contacts:,} contacts (each number gets one message)")
    print(f"Cannot receive SMS: {report.cannot_receive:,} contacts")
    for warning in report.warnings:
        print(f"warning: {warning}")
    return 0
