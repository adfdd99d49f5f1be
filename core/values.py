"""Values read back from DuckDB/pandas as plain Python, for JSON, dicts and widgets."""

from __future__ import annotations

from typing import Any

import pandas as pd


def plain(value: Any) -> Any:
    """NaN/NA/NaT → None, a Timestamp → datetime, a numpy scalar → its Python value."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # lists and arrays have no single truth value
        pass
    return value.item() if hasattr(value, "item") else value
