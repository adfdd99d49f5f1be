"""What the page tests share: pointing the pages at a database file and opening a page in
Streamlit's AppTest, as a user's browser would."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import pricing
from core.studio import Studio
from tests.conftest import ROOT, import_csv, write_csv


def use_database(
    monkeypatch: pytest.MonkeyPatch, db: Path, *, prices: Path | None = None
) -> Path:
    """Make the pages open ``db`` without background threads (and price with ``prices``)."""
    monkeypatch.setenv("SMS_STUDIO_DB", str(db))
    monkeypatch.setenv("SMS_STUDIO_BACKGROUND", "0")
    if prices is not None:
        monkeypatch.setenv("SMS_STUDIO_PRICES", str(prices))
    return db


def shop_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, csv_text: str) -> Path:
    """The pages' database for the document and mailing tests.

    The contacts of ``csv_text`` are database "shop" (consent "yes"), contact 1 is the default
    destination, and a segment costs 0.10 EUR in NL and 0.50 EUR anywhere else.
    """
    prices = tmp_path / "prices.csv"
    pricing.save_prices(pd.DataFrame({"country": ["*", "NL"], "price_per_segment": [0.5, 0.1],
                                      "currency": ["EUR", "EUR"]}), prices)
    db = use_database(monkeypatch, tmp_path / "page.duckdb", prices=prices)
    with Studio(db) as app:
        import_csv(app, write_csv(tmp_path, csv_text), database="shop")
        app.set_default_destination("shop", contact_key="1")
    return db


def open_page(
    script: str, *, query: Mapping[str, str] | None = None, **state: object
) -> AppTest:
    """Run ``script`` (relative to the project, e.g. "pages/mailings.py") once, with the given
    query parameters and session state, and check that it did not fail."""
    at = AppTest.from_file(str(ROOT / script), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at
