"""Exports are safe to open in a spreadsheet."""

from __future__ import annotations

import io

import pandas as pd

from core.exports import neutralise, to_safe_csv


def test_formula_cells_are_neutralised():
    frame = pd.DataFrame({
        "name": ["=HYPERLINK(\"http://x\")", "+SUM(A1)", "-2+3", "@cmd", "Anna", None],
        "count": [1, 2, 3, 4, 5, 6],
    })
    safe = neutralise(frame)
    assert list(safe["name"][:5]) == ["'=HYPERLINK(\"http://x\")", "'+SUM(A1)", "'-2+3",
                                      "'@cmd", "Anna"]
    assert pd.isna(safe["name"][5])
    assert list(safe["count"]) == [1, 2, 3, 4, 5, 6]  # numbers are not text: untouched


def test_csv_bytes_round_trip_with_bom():
    data = to_safe_csv(pd.DataFrame({"e164": ["+31612345678"], "note": ["Zoë"]}))
    assert data.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str)
    assert back.loc[0, "e164"] == "'+31612345678"
    assert back.loc[0, "note"] == "Zoë"
