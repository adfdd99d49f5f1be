"""The Selections page driven through Streamlit's AppTest on a real database file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.studio import Studio, get_studio
from tests.conftest import import_csv, write_csv
from tests.page_helpers import open_page, use_database

CSV = """customer_id,first_name,city,age,consent,mobile
1,Anna,Amsterdam,34,yes,06-12345678
2,Bram,Rotterdam,41,no,+31 6 1234 5679
3,Chloé,Amsterdam,29,ja,0031612345680
4,Dirk,Gent,52,yes,+32 470 12 34 56
5,Eva,Amsterdam,38,yes,+49 151 23456789
6,Finn,Amsterdam,45,yes,020-1234567
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "page.duckdb"
    with Studio(path) as app:
        import_csv(app, write_csv(tmp_path, CSV), database="main", consent_yes=("yes", "ja"))
    return use_database(monkeypatch, path)


def page() -> AppTest:
    return open_page("pages/selections.py")


def page_on(db: Path, name: str, spec: dict) -> tuple[Studio, AppTest]:
    """The page with a new selection ``name`` of database main picked in the tree."""
    app = get_studio(db)
    app.create_selection(name, spec=spec, database="main")
    at = page()
    at.radio(key="sel_pick").set_value(name).run()
    return app, at


def by_label(elements, label: str):
    found = [e for e in elements if e.label == label]
    assert found, f"no widget labelled {label!r}"
    return found[-1]


def metric(at: AppTest) -> str:
    return by_label(at.metric, "Contacts matching now").value


def add_condition(at: AppTest, field: str, op: str | None = None) -> None:
    at.button(key="sb_add_cond").click().run()
    by_label(at.selectbox, "field").select(field).run()
    if op is not None:
        by_label(at.selectbox, "operator").select(op).run()


def test_without_a_database_the_page_says_what_to_do_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_STUDIO_DB", str(tmp_path / "empty.duckdb"))
    at = page()
    assert any("upload contacts on the **Contacts** page first" in i.value for i in at.info)


def test_building_and_saving_a_selection(db: Path) -> None:
    at = page()
    assert metric(at) == "6"  # no conditions yet: every contact
    assert any("No selections yet" in i.value for i in at.info)
    add_condition(at, "city")
    by_label(at.text_input, "value").input("Amsterdam").run()
    assert metric(at) == "4"
    add_condition(at, "age", "ge")
    by_label(at.number_input, "value").set_value(35).run()
    assert not at.exception and not at.error
    assert metric(at) == "2"
    at.text_input(key="sb_new_name").input("Amsterdam 35+")
    at.toggle(key="sb_new_sms").set_value(True)
    at.button(key="sb_save_new").click().run()
    assert not at.exception and not at.error
    assert any("Saved selection 'Amsterdam 35+'" in s.value for s in at.success)
    assert at.radio(key="sel_pick").value == "Amsterdam 35+"
    info = get_studio(db).get_selection("Amsterdam 35+")
    assert info.spec == {"all": [{"field": "city", "op": "eq", "value": "Amsterdam"},
                                 {"field": "age", "op": "ge", "value": 35}]}
    assert info.sms_enabled and info.last_count == 2
    assert any("Usable for SMS mailings" in s.value for s in at.success)
    # The reconciliation of the saved selection: Eva receives it, Finn has a fixed line.
    steps = at.dataframe[1].value
    counts = dict(zip(steps["step"], steps["contacts"], strict=True))
    assert steps["step"].iloc[0] == "In selection" and counts["In selection"] == 2
    assert counts["Not a mobile number"] == 1 and counts["Recipients"] == 1
    downloads = [b.label for b in at.get("download_button")]
    assert "Not a mobile number (1)" in downloads and "Recipients (1)" in downloads


def test_removing_a_condition_keeps_the_others(db: Path) -> None:
    at = page()
    add_condition(at, "city")
    by_label(at.text_input, "value").input("Amsterdam").run()
    add_condition(at, "age", "ge")
    by_label(at.number_input, "value").set_value(35).run()
    assert metric(at) == "2"
    [first_remove] = [b for b in at.button if b.label == "✕"][:1]
    first_remove.click().run()
    assert not at.exception and not at.error
    assert [s.value for s in at.selectbox if s.label == "field"] == ["age"]
    assert metric(at) == "4"  # age ≥ 35: Bram, Dirk, Eva, Finn


def test_a_mini_selection_is_made_from_the_selected_parent(db: Path) -> None:
    app, at = page_on(db, "adam", {"field": "city", "op": "eq", "value": "Amsterdam"})
    assert metric(at) == "4"
    at.button(key="sb_new_mini").click().run()
    assert any("New mini-selection of adam" in h.value for h in at.subheader)
    add_condition(at, "age", "lt")
    by_label(at.number_input, "value").set_value(35).run()
    assert metric(at) == "2"  # within the parent: Anna 34, Chloé 29 (not Bram or Dirk)
    at.text_input(key="sb_new_name").input("adam young")
    at.button(key="sb_save_new").click().run()
    assert not at.exception and not at.error
    info = app.get_selection("adam young")
    assert info.parent == "adam"
    assert info.spec == {"field": "age", "op": "lt", "value": 35}
    tree = at.radio(key="sel_pick")
    assert tree.options == ["➕ new selection", "adam", "\u2003↳ adam young"]
    assert tree.value == "adam young"


def test_edit_as_json_reads_and_writes_the_builder(db: Path) -> None:
    at = page()
    add_condition(at, "city")
    by_label(at.text_input, "value").input("Gent").run()
    shown = json.loads(by_label(at.text_area, "Rule (JSON)").value)
    assert shown == {"field": "city", "op": "eq", "value": "Gent"}
    rule = {"any": [{"field": "age", "op": "between", "value": [30, 40]},
                    {"field": "first_name", "op": "starts_with", "value": "d"}]}
    by_label(at.text_area, "Rule (JSON)").input(json.dumps(rule))
    at.button(key="sb_apply_json").click().run()
    assert not at.exception and not at.error
    assert metric(at) == "3"  # Anna 34, Eva 38 and Dirk (starts with d)
    assert by_label(at.radio, "Contacts must match").value == "any"
    assert [s.value for s in at.selectbox if s.label == "field"] == ["age", "first_name"]
    assert json.loads(by_label(at.text_area, "Rule (JSON)").value) == rule


def test_saving_an_invalid_selection_shows_why(db: Path) -> None:
    at = page()
    at.text_input(key="sb_new_name").input("")
    at.button(key="sb_save_new").click().run()
    assert any("Give the selection a name" in e.value for e in at.error)
    assert get_studio(db).list_selections().empty


def test_the_sms_switch_shows_why_a_selection_is_not_usable(db: Path, tmp_path: Path) -> None:
    app = get_studio(db)
    bare = tmp_path / "bare.csv"
    bare.write_text("id,mobile\n1,0612345678\n", encoding="utf-8")
    app.import_contacts(bare, database="bare")
    app.create_selection("bare all", spec={"all": []}, database="bare")
    at = page()
    at.selectbox(key="database").select("bare").run()
    at.radio(key="sel_pick").set_value("bare all").run()
    assert any("switch on SMS usage for this selection" in w.value for w in at.warning)
    by_label(at.toggle, "Use for SMS mailings").set_value(True).run()
    assert app.get_selection("bare all").sms_enabled
    assert any("database bare has no opt-in rule (consent field and values)" in w.value
               for w in at.warning)


def test_rename_duplicate_and_delete(db: Path) -> None:
    app, at = page_on(db, "gent", {"field": "city", "op": "eq", "value": "Gent"})
    assert by_label(at.text_input, "value").value == "Gent" and metric(at) == "1"
    by_label(at.text_input, "value").input("Amsterdam").run()
    assert metric(at) == "4"
    at.button(key="sb_save").click().run()
    assert app.get_selection("gent").spec == {"field": "city", "op": "eq", "value": "Amsterdam"}
    by_label(at.text_input, "New name").input("ghent")
    at.button(key="sb_rename").click().run()
    assert at.radio(key="sel_pick").value == "ghent"
    by_label(at.text_input, "Name of the copy").input("ghent 2")
    at.button(key="sb_duplicate").click().run()
    assert app.selection_names() == ["ghent", "ghent 2"]
    at.button(key="sb_delete").click().run()
    assert app.selection_names() == ["ghent"]
    assert not at.exception and not at.error


def test_the_default_destination_can_be_a_typed_number_or_a_found_contact(db: Path) -> None:
    app = get_studio(db)
    at = page()
    at.text_input(key="sb_dest_number").input("06 1234 5699")
    at.button(key="sb_dest_use_number").click().run()
    assert app.default_destination("main")["_e164"] == "+31612345699"
    at.text_input(key="sb_dest_search").input("Chloé").run()
    at.button(key="sb_dest_use").click().run()
    assert not at.exception and not at.error
    assert app.default_destination("main")["customer_id"] == "3"
