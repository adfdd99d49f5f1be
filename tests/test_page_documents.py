"""The Documents page, driven through Streamlit's AppTest on a real database file."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.studio import Studio
from tests.page_helpers import open_page, shop_database

CSV = (
    "customer_id,first_name,consent,mobile\n"
    "1,Anna,yes,0612345671\n"
    "2,Zoë,yes,0612345672\n"
    "3,Bram,yes,+32470123456\n"
)


@pytest.fixture
def page_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return shop_database(tmp_path, monkeypatch, CSV)


def start() -> AppTest:
    return open_page("pages/documents.py")


def create(at: AppTest, name: str) -> AppTest:
    at.text_input(key="doc_new_name").input(name)
    at.button(key="doc_create").click().run()
    assert not at.exception
    return at


def body_area(at: AppTest):
    return next(t for t in at.text_area if t.label == "Message")


def type_body(at: AppTest, text: str) -> AppTest:
    body_area(at).input(text).run()
    assert not at.exception
    return at


def meter(at: AppTest, block: int = 0) -> dict[str, str]:
    """The n-th meter on the page (0: the text as typed, 1: the default destination's)."""
    names = ["Characters", "Encoding", "Units", "Left in this part", "Segments"]
    metrics = [m for m in at.metric if m.label in names]
    return {m.label: m.value for m in metrics[5 * block: 5 * block + 5]}


def texts(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_create_type_and_watch_the_meter_and_the_preview(page_db):
    at = start()
    assert "No documents yet" in at.info[0].value
    create(at, "Welcome")
    assert at.success[0].value == "Document 'Welcome' created."
    assert at.selectbox(key="doc_current").value == "Welcome"

    type_body(at, "Hi {{ first_name }}")
    # The braces are in the GSM-7 extension table: two septets each.
    assert meter(at) == {"Characters": "19", "Encoding": "GSM-7", "Units": "23",
                         "Left in this part": "137", "Segments": "1"}
    assert "Hi Anna" in texts(at)  # preview for the default destination
    assert meter(at, 1)["Characters"] == "7"

    type_body(at, "x" * 160)
    assert (meter(at)["Segments"], meter(at)["Left in this part"]) == ("1", "0")
    type_body(at, "x" * 161)
    assert meter(at) == {"Characters": "161", "Encoding": "GSM-7", "Units": "161",
                         "Left in this part": "145", "Segments": "2"}

    type_body(at, "x" * 60 + " 😀")  # an emoji: UCS-2, and it counts two units
    assert meter(at) == {"Characters": "62", "Encoding": "UCS-2", "Units": "63",
                         "Left in this part": "7", "Segments": "1"}
    type_body(at, "x" * 70 + " 😀")
    assert (meter(at)["Encoding"], meter(at)["Segments"]) == ("UCS-2", "2")
    assert "forces UCS-2" in texts(at)  # the emoji is highlighted


def test_save_keeps_a_draft_with_a_template_error_and_shows_where(page_db):
    at = create(start(), "Draft")
    at.text_input(key=next(t.key for t in at.text_input if t.label == "Sender")).input("Shop")
    type_body(at, "Hello\n{{ frist_name }}")
    assert any("did you mean 'first_name'" in e.value and "line 2" in e.value for e in at.error)
    at.button(key="doc_save").click().run()
    assert any("Saved as a draft" in w.value for w in at.warning)
    with Studio(page_db) as app:
        doc = app.get_document("Draft")
    assert (doc.sender, doc.body) == ("Shop", "Hello\n{{ frist_name }}")


def test_an_invalid_sender_is_shown_and_not_saved(page_db):
    at = create(start(), "Promo")
    sender_key = next(t.key for t in at.text_input if t.label == "Sender")
    at.text_input(key=sender_key).input("Webshop Deals!").run()
    assert any("1 to 11 letters" in e.value for e in at.error)
    at.button(key="doc_save").click().run()
    assert any("contains '!'" in e.value for e in at.error)
    with Studio(page_db) as app:
        assert app.get_document("Promo").sender == ""


def test_the_smart_encoding_fix_is_applied_only_on_click(page_db):
    at = create(start(), "Quotes")
    text = "Don’t miss our sale, it’s on “now” " * 3  # 105 characters, UCS-2: 2 parts
    type_body(at, text)
    assert (meter(at)["Encoding"], meter(at)["Segments"]) == ("UCS-2", "2")
    fix = at.button(key="doc_smart_fix")
    assert fix.label.endswith("(2 segments → 1)") and "’→'" in fix.label
    assert body_area(at).value == text  # nothing changed before the click
    fix.click().run()
    assert body_area(at).value == text.replace("’", "'").replace("“", '"').replace("”", '"')
    assert (meter(at)["Encoding"], meter(at)["Segments"]) == ("GSM-7", "1")


def test_whole_selection_view_and_document_actions(page_db):
    at = create(start(), "Hello")
    type_body(at, "Hi {{ first_name }}")
    at.button(key="doc_view_run").click().run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Recipients"] == "3"
    assert values["Total segments"] == "3"
    assert values["In UCS-2"] == "1"  # Zoë
    assert values["Estimated cost"] == "0.70 EUR"  # two NL at 0.10, one BE at the * price 0.50
    assert any("Zoë" in str(frame.value.to_dict()) for frame in at.dataframe)

    at.button(key="doc_save").click().run()
    at.text_input(key="doc_copy_to").input("Hello BE")
    next(b for b in at.button if b.label == "Duplicate").click().run()
    assert at.selectbox(key="doc_current").value == "Hello BE"
    assert body_area(at).value == "Hi {{ first_name }}"
    at.text_input(key="doc_rename_to").input("Hallo BE")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert at.selectbox(key="doc_current").options == ["Hallo BE", "Hello"]
    at.checkbox(key="doc_delete_sure").check().run()
    next(b for b in at.button if b.label == "Delete").click().run()
    assert at.selectbox(key="doc_current").options == ["Hello"]
    assert at.success[0].value == "Document 'Hallo BE' deleted."


def test_settings_national_shift_changes_the_documents_meter_and_secrets_are_refused(page_db):
    settings = open_page("pages/settings.py")
    settings.selectbox[0].select("turkish")  # inside the form: committed by its submit button
    next(b for b in settings.button if b.label == "Save sending settings").click().run()
    assert "Sending settings saved." in [s.value for s in settings.success]

    settings.text_input(key="settings_gateway_url").input("smpp://studio:hunter2@host:2775")
    settings.button(key="settings_gateway_save").click().run()
    assert any("must not contain a password" in e.value for e in settings.error)
    assert all("hunter2" not in m.value for m in [*settings.error, *settings.markdown])
    with Studio(page_db) as app:
        assert app.get_setting("gateway_url") == ""
        assert app.get_setting("national_shift") == "turkish"

    at = create(start(), "Turkish")
    type_body(at, "Merhaba ağabey")
    assert meter(at)["Encoding"] == "GSM-7 + turkish"


def test_send_bulk_mailing_saves_and_opens_the_wizard_with_the_document(page_db):
    at = open_page("app.py")
    at.switch_page("pages/documents.py").run()
    create(at, "Launch")
    type_body(at, "Hi {{ first_name }}, we launched!")
    at.button(key="doc_bulk").click().run()
    assert [t.value for t in at.title] == ["Mailings"]
    # the wizard took the document over (and cleared the hand-over key)
    assert at.session_state["wiz"]["document"] == "Launch"
    with Studio(page_db) as app:
        assert app.get_document("Launch").body == "Hi {{ first_name }}, we launched!"
