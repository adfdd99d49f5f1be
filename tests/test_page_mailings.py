"""The Mailings page, driven through Streamlit's AppTest on a real database file: the four
steps of the wizard, scheduling, the second confirmation, edit and cancel, live progress."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import ledger
from core.dispatcher import EventBatch
from core.scheduler import Scheduler
from core.studio import Studio, utc_now
from tests.conftest import import_csv, write_csv
from tests.page_helpers import open_page, shop_database

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
    db = shop_database(tmp_path, monkeypatch, CSV)
    with Studio(db) as app:
        app.create_selection("everyone", spec={"all": []}, database="shop", sms=True)
        app.create_selection("hidden", spec={"all": []}, database="shop")  # not for SMS
        app.create_document("promo", sender="Shop", body="Hi {{ first_name }}, 10% off!")
        app.create_document("second", sender="Shop", body="Second text")
        app.create_document("long", sender="Shop", body="Hi {{ first_name }} " + "x" * 200)
        app.set_setting("rules_text", RULES)
        app.set_setting("time_zone", "Europe/Amsterdam")
    return db


def start(**state: object) -> AppTest:
    return open_page("pages/mailings.py", **state)


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
    assert "Selection everyone" in targets and "Whole contact database shop" in targets
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

    assert at.button(key="wiz_test").label == "Send a test to the default destination"
    click(at, "wiz_test")
    assert "Test message handed to the dispatcher" in texts(at)

    assert at.button(key="wiz_confirm").label == "Send now"
    click(at, "wiz_confirm")
    assert "starts now" in texts(at)
    listed = at.dataframe[0].value
    assert list(listed.columns) == ["id", "mailing", "target", "state", "when", "recipients",
                                    "delivered", "failed"]  # fits the page
    bulk = listed[listed["mailing"] == "promo"]
    assert bulk["state"].tolist() == ["scheduled"]
    assert bulk["target"].tolist() == ["Selection everyone"]
    assert bulk["recipients"].isna().all()  # counted when it starts: not a misleading 0
    assert at.dataframe[0].proto.placeholder == "–"
    test = listed[listed["mailing"] == "test from Shop"]
    assert test["target"].tolist() == ["the default destination of shop"]
    bulk_id = int(bulk["id"].iloc[0])
    assert bulk_id > int(test["id"].iloc[0])
    with studio_for(page_db) as app:
        mailing = app.get_mailing(bulk_id)
        assert mailing["estimate"]["recipients"] == 3
        assert mailing["scheduled_at"] <= utc_now()
    assert at.session_state["wiz_step"] == 1  # the wizard starts afresh
    # The details show the mailing just sent, not the test send picked before it.
    picker = at.selectbox(key="mail_details")
    assert picker.value == bulk_id
    assert f"#{bulk_id} · promo → Selection everyone" in picker.options  # no state: it changes
    # Due but not started yet: the live section watches it until it has started and ended.
    assert f"#{bulk_id}" in texts(at) and "Due since" in texts(at)
    assert "Nothing is sending right now." not in texts(at)
    assert (bulk_id, "scheduled") in at.session_state["mail_watch"]


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


def test_a_due_mailing_is_watched_until_it_has_started_and_finished(page_db: Path) -> None:
    with studio_for(page_db) as app:
        later = app.create_mailing(sender="Shop", body="Later", selection="everyone",
                                   at=utc_now() + timedelta(days=3), accept_rules=True)
        due = app.create_mailing(sender="Shop", body="Hello", selection="everyone",
                                 accept_rules=True)  # due now: the scheduler starts it
    at = start()
    assert at.session_state["mail_watch"] == ((due, "scheduled"),)  # not the later one
    assert "Due since" in texts(at) and "Nothing is sending right now." not in texts(at)
    with studio_for(page_db) as app:
        app.launch_mailing(due)  # started; no dispatcher runs here, so it stays sending
    run(at)
    assert at.session_state["mail_watch"] == ((due, "sending"),)
    assert any("0 of 3 handled" in str(b.proto.text) for b in at.get("progress"))
    with studio_for(page_db) as app:  # every recipient skipped: finished as soon as started
        small = app.create_mailing(sender="Shop", body="x" * 200, selection="everyone",
                                   split_max_parts=1, accept_rules=True)
        app.launch_mailing(small)
        assert app.get_mailing(small)["state"] == "finished"
    run(at)
    assert (small, "finished") not in at.session_state["mail_watch"]
    listed = at.dataframe[0].value.set_index("id")
    assert listed.loc[small, "state"] == "finished" and listed.loc[later, "state"] == "scheduled"


def test_the_list_fits_the_page_and_formats_counts(page_db: Path) -> None:
    with studio_for(page_db) as app:
        app.launch_mailing(app.create_mailing(sender="Shop", body="Hello", database="shop",
                                              accept_rules=True))  # fmt: skip
    at = start()
    table = at.dataframe[0]
    listed = table.value
    assert len(listed.columns) <= 8
    assert listed["target"].tolist() == ["Whole contact database shop"]
    assert listed["recipients"].tolist() == [3]
    config = json.loads(table.proto.columns)
    for col in ("recipients", "delivered", "failed"):
        assert config[col]["type_config"]["format"] == "localized", col
    assert "Times in Europe/Amsterdam" in texts(at)


def test_details_follow_a_new_mailing_and_keep_a_choice_otherwise(page_db: Path) -> None:
    def schedule(body: str) -> int:
        with studio_for(page_db) as app:
            return app.create_mailing(sender="Shop", body=body, selection="everyone",
                                      at=utc_now() + timedelta(days=3), accept_rules=True)

    first = schedule("First")
    at = start()
    assert at.selectbox(key="mail_details").value == first
    second = schedule("Second")
    run(at)
    assert at.selectbox(key="mail_details").value == second  # a new mailing: shown
    at.selectbox(key="mail_details").set_value(first)
    run(at)
    run(at)
    assert at.selectbox(key="mail_details").value == first  # nothing new: the choice stays


def test_the_send_rate_of_a_young_mailing_is_measured_since_its_start(tmp_path: Path) -> None:
    """Parts sent in the first 2 s are a pace of parts / 2 s, not parts / the 10 s window."""
    now = [datetime(2030, 5, 1, 12, 0, 0)]
    with Studio(tmp_path / "rate.duckdb", clock=lambda: now[0]) as app:
        import_csv(app, write_csv(tmp_path, CSV), database="shop")
        mailing_id = app.create_mailing(sender="Shop", body="Hello", database="shop",
                                        accept_rules=True)  # fmt: skip
        app.launch_mailing(mailing_id)  # started at 12:00:00, 3 messages of one part
        assert app.mailing_progress(mailing_id)["eta_seconds"] is None  # no pace yet
        first, second = (int(i) for i, in app.storage.rows(
            "SELECT id FROM messages WHERE mailing_id = ? ORDER BY id LIMIT 2", [mailing_id]))
        sent = now[0] + timedelta(seconds=1)
        batch = EventBatch()
        for message_id in (first, second):
            batch.add(message_id, mailing_id, 0, "submitted", f"p{message_id}", None, sent)
        ledger.record_events(app.storage, batch)

        now[0] += timedelta(seconds=2)
        progress = app.mailing_progress(mailing_id)
        assert progress["rate_segments_per_s"] == pytest.approx(1.0)  # 2 parts in 2 s
        assert progress["eta_seconds"] == pytest.approx(1.0)  # 1 part left at 1 part/s

        now[0] += timedelta(seconds=58)  # nothing sent in the last 10 s: no pace, no ETA
        progress = app.mailing_progress(mailing_id)
        assert progress["rate_segments_per_s"] == 0 and progress["eta_seconds"] is None
