"""Shared fixtures: real DuckDB files in tmp_path, and small contact files."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SMS_STUDIO_BACKGROUND", "0")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "studio.duckdb"


@pytest.fixture
def studio(db_path: Path) -> Iterator[object]:
    from core.studio import Studio

    app = Studio(db_path)
    try:
        yield app
    finally:
        app.close()


CONTACTS_CSV = """customer_id,first_name,city,age,consent,mobile
1,Anna,Amsterdam,34,yes,06-12345678
2,Bram,Rotterdam,41,no,+31 6 1234 5679
3,Chloé,Utrecht,29,ja,0031612345680
4,Dirk,Gent,52,yes,+32 470 12 34 56
5,Eva,Berlin,38,yes,+49 151 23456789
6,Finn,Den Haag,45,yes,020-1234567
7,Gina,Leiden,23,yes,onbekend
8,Hugo,Delft,31,yes,
9,Iris,Haarlem,27,yes,06-12345678
"""


def write_csv(folder: Path, text: str, name: str = "contacts.csv") -> Path:
    """``text`` as a UTF-8 file in ``folder``: what a user uploads or hands to the CLI."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def import_csv(
    app: Any, csv: Path, *, database: str, consent_yes: Sequence[str] = ("yes",)
) -> None:
    """Import a contacts file laid out like the tables in these tests: keyed on customer_id,
    opt-in in the consent column, numbers without a country code read as Dutch."""
    app.import_contacts(csv, database=database, key_field="customer_id",
                        consent_field="consent", consent_yes=list(consent_yes), region="NL")


@pytest.fixture
def contacts_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path, CONTACTS_CSV)
