"""The Contacts page, driven like a user would in Streamlit's AppTest: upload to report."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import CONTACTS_CSV
from tests.page_helpers import open_page, use_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def page(tmp_path, monkeypatch) -> AppTest:
    use_database(monkeypatch, tmp_path / "page.duckdb")
    monkeypatch.chdir(ROOT)
    return open_page("pages/contacts.py")


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_upload_map_and_read_the_report(page: AppTest):
    assert not page.exception
    page.file_uploader(key="contact_file").set_value(
        ("klanten.csv", CONTACTS_CSV.encode("utf-8"), "text/csv")
    )
    page.run()
    assert not page.exception
    # the mapping step guessed the roles from the header
    assert page.selectbox[0].value == "mobile"
    assert page.text_input[0].value == "klanten"
    button(page, "Import").click()
    page.run()
    assert not page.exception, page.exception
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["Rows read"] == "9"
    assert metrics["Valid mobile"] == "6"
    assert metrics["Invalid"] == "1"
    assert metrics["Missing"] == "1"
    assert any("Duplicates" in m.value for m in page.markdown)


def test_a_broken_file_shows_a_message_not_a_stack_trace(page: AppTest):
    page.file_uploader(key="contact_file").set_value(("empty.csv", b"name,mobile\n", "text/csv"))
    page.run()
    assert not page.exception
    assert any("no rows" in e.value for e in page.error)


def test_suppression_list_add(page: AppTest):
    page.text_area[0].set_value("06-12345678\nonbekend")
    button(page, "Add to suppression list").click()
    page.run()
    assert not page.exception
    assert any("Added 1" in s.value for s in page.success)
    assert any("onbekend" in w.value for w in page.warning)
