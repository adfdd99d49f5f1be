"""Printing for the CLI: human tables by default, one JSON object per line with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def print_json(obj: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=_default, ensure_ascii=False) + "\n")


def print_json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    for row in rows:
        print_json(row)


def is_missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA: a cell that JSON shows as null and a table as "-"."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a value pandas cannot judge, such as a list
        return False


def print_records(frame: pd.DataFrame) -> None:
    """Each row as one JSON object, missing cells as null (a `--json` listing)."""
    print_json_lines(
        {k: (None if is_missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    )


def print_table(frame: pd.DataFrame, empty: str = "(none)") -> None:
    if frame.empty:
        print(empty)
        return
    print(frame.to_string(index=False))


def print_pairs(pairs: Iterable[tuple[str, Any]]) -> None:
    items = list(pairs)
    width = max((len(k) for k, _ in items), default=0)
    for key, value in items:
        print(f"{key.ljust(width)}  {value}")
