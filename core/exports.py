"""Exports that are safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return) is a formula to
Excel and LibreOffice: a contact field such as `=HYPERLINK(...)` would run when an analyst
opens the file. CSV exports prefix such text cells with a single quote, as OWASP advises.
E.164 numbers (`+31612345678`) are text too; they get the same quote, which spreadsheets hide.
"""

from __future__ import annotations

import io

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy in which every text cell that a spreadsheet would run as a formula is quoted."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
            continue
        text = series.astype("string")
        risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
        if risky.any():
            out[col] = series.astype(object).where(~risky, "'" + text[risky].astype(str))
    return out


def to_safe_csv(frame: pd.DataFrame) -> bytes:
    """CSV bytes (UTF-8 with BOM, so Excel reads accents right) with formulas neutralised."""
    buffer = io.StringIO()
    neutralise(frame).to_csv(buffer, index=False)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
