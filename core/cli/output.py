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
