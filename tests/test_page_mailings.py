"""The Mailings page, driven through Streamlit's AppTest on a real database file: the four
steps of the wizard, scheduling, the second confirmation, edit and cancel, live progress."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core import pricing
from core.scheduler import Scheduler
from core.studio import Studio, utc_now

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "mailings.py")
CSV = (
    "customer_id,first_name,city,consent,mobile\n"
    "1,Anna,Amsterdam,yes,0612345671\n"
    "2,Zoë,Utrecht,yes,0612345672\n"
    "3,Bram,Gent,yes,+32470123456\n"
    "4,Eva,Delft,no,0612345674\n"
)
RULES = "Only people who opted in. Numbers obtained lawfully. Honour every STOP."


@pytest.fixture
def page_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "page.duckdb"
    prices = tmp_path / "prices.csv"
    pricing.save_prices(pd.DataFrame({"country": ["*", "NL"], "price_per_segment": [0.5, 0.1],
                                      "currency": ["EUR", "EUR"]}), prices)
    monkeypatch.setenv("SMS_STUDIO_DB", str(db))
    monkeypatch.setenv("SMS_STUDIO_BACKGROUND", "0")
    monkeypatch.setenv("SMS_STUDIO_PRICES", str(prices))
    csv = tmp_path / "contacts.csv"
    csv.write_text(CSV, encoding="utf-8")
    with Studio(db) as app:
        app.import_contacts(csv, database="shop", key_field="customer_id",
                            consent_field="consent", consent_yes=["yes"], region="NL")
        app.set_default_destination("shop", contact_key="1")
        app.create_selection("everyone", spec={"all": []}, database="shop", sms=True)
        app.create_selection("hidden", spec={"all": []}, database="shop")  # not for SMS
        app.create_document("promo", sender="Shop", body="Hi {{ first_name }}, 10% off!")
        app.create_document("second", sender="Shop", body="Second text")
        app.create_document("long", sender="Shop", body="Hi {{ first_name }} " + "x" * 200)
        app.set_setting("rules_text", RULES)
        app.set_setting("time_zone", "Europe/Amsterdam")
    return db


def start(**state: object) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    return run(at)


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.success, *at.error]
    return "\n".join(str(p.value) for p in parts)


def through_step_3(at: AppTest, *, document: str = "promo",
                   target: str = "selection:everyone") -> AppTest:
    at.checkbox(key="wiz_accept").check()
    run(at)
    click(at, "wiz_next1")
    at.selectbox(key="wiz_document").set_value(document)
    at.selectbox(key="wiz_target").set_value(target)
    run(at)
    return click(at, "wiz_next2")


def studio_for(db: Path) -> Studio:
    return Studio(db)


def test_the_wizard_goes_through_four_steps_and_lists_the_mailing(page_db: Path) -> None:
    at = start()
    assert RULES in texts(at)
    assert at.button(key="wiz_next1").disabled  # the rules must be ticked first
    at.checkbox(key="wiz_accept").check()
    run(at)
    click(at, "wiz_next1")

    at.selectbox(key="wiz_document").set_value("promo")
    run(at)
    targets = at.selectbox(key="wiz_target").options
    assert "Selection everyone" in targets and "Whole database shop" in targets
    assert not any("hidden" in t for t in targets)  # not switched on for SMS
    assert "3 recipients" in texts(at)
    click(at, "wiz_next2")

    assert at.radio(key="wiz_when").value == "Now"
    click(at, "wiz_next3")

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Recipients"] == "3" and metrics["Will receive"] == "3"
    assert metrics["Segments"] == "3"  # Zoë's message is UCS-2, and still fits one part
    assert metrics["Estimated cost (EUR)"] == "0.70"  # 2 × NL 0.10 + 1 × BE at the * price
    assert metrics["In UCS-2"] == "33.3%"
    assert "alphanumeric" not in texts(at)

    click(at, "wiz_test")
    assert "Test message handed to the dispatcher" in texts(at)

    assert at.button(key="wiz_confirm").label == "Send now"
    click(at, "wiz_confirm")
    assert "starts now" in texts(at)
    listed = at.dataframe[0].value
    bulk = listed[listed["kind"] == "bulk"]
    assert bulk["state"].tolist() == ["scheduled"]
    assert bulk["target"].tolist() == ["Selection everyone"]
    with studio_for(page_db) as app:
        mailing = app.get_mailing(int(bulk["id"].iloc[0]))
        assert mailing["estimate"]["recipients"] == 3
        assert mailing["scheduled_at"] <= utc_now()
    assert at.session_state["wiz_step"] == 1  # the wizard starts afresh


def test_scheduling_at_a_time_in_the_users_zone(page_db: Path) -> None:
    at = through_step_3(start(), target="database:shop")
    at.radio(key="wiz_when").set_value("At a date and time")
    run(at)
    at.datetime_input(key="wiz_at").set_value(datetime(2031, 7, 1, 10, 0))
    run(at)
    assert "Stored as 2031-07-01 08:00 UTC" in texts(at)  # Amsterdam is UTC+2 in summer
    click(at, "wiz_next3")
    assert at.button(key="wiz_confirm").label.startswith("Schedule for 2031-07-01 10:00")
    click(at, "wiz_confirm")
    assert "is scheduled for 2031-07-01 10:00" in texts(at)
    with studio_for(page_db) as app:
        mailing = app.get_mailing(int(app.list_mailings()["id"].iloc[0]))
    assert mailing["scheduled_at"] == datetime(2031, 7, 1, 8, 0)
    assert mailing["database"] == "shop" and mailing["selection"] is None


def test_a_time_that_has_passed_is_refused_on_step_3(page_db: Path) -> None:
    at = through_step_3(start())
    at.radio(key="wiz_when").set_value("At a date and time")
    run(at)
    at.datetime_input(key="wiz_at").set_value(datetime(2020, 1, 1, 9, 0))
    run(at)
    click(at, "wiz_next3")
    assert "already passed" in at.error[0].value
    assert at.session_state["wiz_step"] == 3


def test_send_bulk_mailing_from_a_document_opens_the_wizard_with_it(page_db: Path) -> None:
    at = start(wizard_document="second")
    at.checkbox(key="wiz_accept").check()
    run(at)
    click(at, "wiz_next1")
    assert at.selectbox(key="wiz_document").value == "second"


def test_long_messages_are_skipped_and_listed_when_not_split(page_db: Path) -> None:
    at = through_step_3(start(), document="long")
    at.radio(key="wiz_split_mode").set_value("Do not split: skip those recipients")
    run(at)
    click(at, "wiz_next3")
    assert {m.label: m.value for m in at.metric}["Will receive"] == "0"
    assert any("skipped and listed, never cut short" in w.value for w in at.warning)
    skipped = next(d.value for d in at.dataframe if "reason" in d.value.columns)
    assert len(skipped) == 3
    assert dict(zip(skipped["contact_key"], skipped["reason"], strict=True)) == {
        "1": "needs 2 parts, the limit is 1",
        "2": "needs 4 parts, the limit is 1",  # Zoë's message is UCS-2
        "3": "needs 2 parts, the limit is 1",
    }


def test_a_large_mailing_needs_a_second_explicit_confirmation(page_db: Path) -> None:
    with studio_for(page_db) as app:
        app.set_setting("confirm_threshold", 2)
    at = through_step_3(start())
    click(at, "wiz_next3")
    assert at.button(key="wiz_confirm").disabled
    at.checkbox(key="wiz_large").check()
    run(at)
    assert not at.button(key="wiz_confirm").disabled
    click(at, "wiz_confirm")
    assert "starts now" in texts(at)


def test_edit_then_cancel_a_scheduled_mailing(page_db: Path) -> None:
    with studio_for(page_db) as app:
        plan = app.plan_mailing(document="promo", selection="everyone")
        mailing_id = app.confirm_mailing(plan, at=utc_now() + timedelta(days=3),
                                         accept_rules=True)
    at = start()
    assert any(f"#{mailing_id}" in e.label for e in at.expander)
    at.selectbox(key=f"mail_doc_{mailing_id}").set_value("second")
    at.number_input(key=f"mail_split_{mailing_id}").set_value(1)
    at.button(key=f"FormSubmitter:mail_edit_{mailing_id}-Save changes").click()
    run(at)
    assert f"Mailing #{mailing_id} changed." in texts(at)
    with studio_for(page_db) as app:
        mailing = app.get_mailing(mailing_id)
        assert (mailing["document"], mailing["split_max_parts"]) == ("second", 1)
        assert mailing["state"] == "scheduled"
    click(at, f"mail_cancel_{mailing_id}")
    assert f"Mailing #{mailing_id} cancelled." in texts(at)
    with studio_for(page_db) as app:
        assert app.get_mailing(mailing_id)["state"] == "cancelled"


def test_a_sending_mailing_shows_progress_and_cannot_be_cancelled(page_db: Path) -> None:
    with studio_for(page_db) as app:
        plan = app.plan_mailing(document="promo", selection="everyone")
        mailing_id = app.confirm_mailing(plan, accept_rules=True)
        app.launch_mailing(mailing_id)
    at = start()
    bars = at.get("progress")
    assert any("0 of 3 handled" in str(b.proto.text) for b in bars)
    assert "segments per second" in texts(at)
    assert "can no longer be cancelled" in texts(at)
    assert not [b for b in at.button if b.key == f"mail_cancel_{mailing_id}"]
    at.selectbox(key="mail_details").set_value(mailing_id)
    run(at)
    assert "can no longer be cancelled" in " ".join(i.value for i in at.info)


def test_a_mailing_that_started_late_says_by_how_much(page_db: Path) -> None:
    with studio_for(page_db) as app:  # due two hours ago, while nothing was running
        mailing_id = app.create_mailing(sender="Shop", body="Hello", selection="everyone",
                                        at=utc_now() - timedelta(hours=2), accept_rules=True)
        Scheduler(app).tick()
    at = start()
    at.selectbox(key="mail_details").set_value(mailing_id)
    run(at)
    assert any("Started late, by 2 h 0 min" in w.value for w in at.warning)
