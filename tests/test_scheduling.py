"""Scheduled mailings with a controllable clock: start on time, edit and cancel until then,
never cancel once sending, survive a restart and say how late they started."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.scheduler import Scheduler, running_scheduler
from core.studio import Studio

T0 = datetime(2026, 12, 1, 8, 0, 0)  # naive UTC, like every stored time
CSV = """customer_id,first_name,city,consent,mobile
1,Anna,Amsterdam,yes,0612345601
2,Bram,Rotterdam,yes,0612345602
3,Chloé,Utrecht,no,0612345603
4,Dirk,Gent,yes,+32470123456
"""
MORE = """customer_id,first_name,city,consent,mobile
5,Eva,Amsterdam,yes,0612345605
"""


class Clock:
    """A clock the test moves by hand: no sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def app(tmp_path: Path, clock: Clock):
    csv = tmp_path / "contacts.csv"
    csv.write_text(CSV, encoding="utf-8")
    studio = Studio(tmp_path / "sched.duckdb", clock=clock)
    studio.prices_path = tmp_path / "prices.csv"
    studio.import_contacts(csv, database="shop", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes"], region="NL")
    studio.create_selection("everyone", spec={"all": []}, database="shop", sms=True)
    studio.create_selection("amsterdam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                            database="shop", sms=True)
    studio.create_document("promo", sender="Shop", body="Hi {{ first_name }}, 10% off today!")
    studio.create_document("long", sender="Shop", body="Hi {{ first_name }}! " + "x" * 300)
    yield studio
    studio.close()


def schedule(app: Studio, at: datetime, **kw) -> int:
    plan = app.plan_mailing(document=kw.pop("document", "promo"),
                            selection=kw.pop("selection", "everyone"), **kw)
    return app.confirm_mailing(plan, at=at, accept_rules=True)


def test_a_mailing_starts_at_its_time_and_not_before(app: Studio, clock: Clock) -> None:
    mailing_id = schedule(app, T0 + timedelta(hours=1))
    ticker = Scheduler(app)
    assert ticker.tick() == []
    clock.advance(minutes=59, seconds=59)
    assert ticker.tick() == []
    assert app.get_mailing(mailing_id)["state"] == "scheduled"
    clock.advance(seconds=1)
    assert ticker.tick() == [mailing_id]
    mailing = app.get_mailing(mailing_id)
    assert mailing["state"] == "sending"
    assert mailing["started_at"] == T0 + timedelta(hours=1)
    assert mailing["late_seconds"] == 0
    assert app.mailing_progress(mailing_id)["queued"] == 3
    assert ticker.tick() == []  # started once, never twice


def test_a_time_with_a_zone_is_stored_in_utc(app: Studio, clock: Clock) -> None:
    from zoneinfo import ZoneInfo

    amsterdam = datetime(2026, 12, 1, 10, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))
    mailing_id = schedule(app, amsterdam)
    assert app.get_mailing(mailing_id)["scheduled_at"] == datetime(2026, 12, 1, 9, 30)


def test_a_time_in_the_past_is_refused_and_nothing_is_stored(app: Studio) -> None:
    plan = app.plan_mailing(document="promo", selection="everyone")
    with pytest.raises(InvalidInput, match="already passed"):
        app.confirm_mailing(plan, at=T0 - timedelta(hours=1), accept_rules=True)
    assert app.list_mailings().empty


def test_cancel_while_scheduled_and_it_never_starts(app: Studio, clock: Clock) -> None:
    mailing_id = schedule(app, T0 + timedelta(minutes=10))
    assert app.can_cancel(mailing_id) == (True, "")
    app.cancel_mailing(mailing_id)
    mailing = app.get_mailing(mailing_id)
    assert mailing["state"] == "cancelled"
    assert mailing["finished_at"] == T0
    clock.advance(hours=1)
    assert Scheduler(app).tick() == []
    assert app.mailing_results(mailing_id).empty
    with pytest.raises(InvalidInput, match="only a scheduled mailing"):
        app.cancel_mailing(mailing_id)


def test_a_sending_mailing_cannot_be_cancelled_or_edited(app: Studio, clock: Clock) -> None:
    mailing_id = schedule(app, T0 + timedelta(minutes=1))
    clock.advance(minutes=1)
    Scheduler(app).tick()
    ok, why = app.can_cancel(mailing_id)
    assert not ok and "can no longer be cancelled" in why
    with pytest.raises(InvalidInput, match="already sending and can no longer be cancelled"):
        app.cancel_mailing(mailing_id)
    with pytest.raises(InvalidInput, match="only a scheduled mailing can be edited"):
        app.edit_mailing(mailing_id, at=T0 + timedelta(hours=3))
    assert app.get_mailing(mailing_id)["state"] == "sending"


def test_edit_time_document_selection_and_split_while_scheduled(app: Studio,
                                                                 clock: Clock) -> None:
    mailing_id = schedule(app, T0 + timedelta(hours=1))
    before = app.get_mailing(mailing_id)
    assert before["estimate"]["recipients"] == 3

    app.edit_mailing(mailing_id, at=T0 + timedelta(hours=2), document="long",
                     selection="amsterdam", split_max_parts=2)
    mailing = app.get_mailing(mailing_id)
    assert mailing["scheduled_at"] == T0 + timedelta(hours=2)
    assert mailing["document"] == "long" and mailing["body"].startswith("Hi {{ first_name }}! x")
    assert mailing["selection"] == "amsterdam"
    assert mailing["split_max_parts"] == 2
    # the estimate follows the edit: one Amsterdam recipient, skipped (3 parts > 2)
    assert mailing["estimate"]["reconciled"] == 1
    assert mailing["estimate"]["skipped"] == 1 and mailing["estimate"]["recipients"] == 0

    clock.advance(hours=1)
    assert Scheduler(app).tick() == []  # the old time no longer counts
    clock.advance(hours=1)
    assert Scheduler(app).tick() == [mailing_id]
    results = app.mailing_results(mailing_id)
    assert results["status"].tolist() == ["skipped"]
    assert results["reason"].tolist() == ["needs 3 parts, the limit is 2"]


def test_edits_are_checked_and_a_bad_one_changes_nothing(app: Studio) -> None:
    mailing_id = schedule(app, T0 + timedelta(hours=1))
    app.create_document("broken", sender="Shop", body="Hi {{ nickname }}")
    app.set_sms_usage("amsterdam", False)
    with pytest.raises(InvalidInput, match="nickname"):
        app.edit_mailing(mailing_id, document="broken", at=T0 + timedelta(hours=5))
    with pytest.raises(InvalidInput, match="cannot be used for SMS"):
        app.edit_mailing(mailing_id, selection="amsterdam")
    with pytest.raises(InvalidInput, match="already passed"):
        app.edit_mailing(mailing_id, at=T0 - timedelta(days=1))
    with pytest.raises(InvalidInput, match="between 1 and"):
        app.edit_mailing(mailing_id, split_max_parts=0)
    mailing = app.get_mailing(mailing_id)
    assert mailing["scheduled_at"] == T0 + timedelta(hours=1)
    assert mailing["document"] == "promo" and mailing["selection"] == "everyone"


def test_the_recipients_are_counted_when_it_starts_not_when_scheduled(
    app: Studio, clock: Clock, tmp_path: Path
) -> None:
    mailing_id = schedule(app, T0 + timedelta(days=1))
    app.suppress(["0612345601"], reason="manual")  # Anna opts out after scheduling
    more = tmp_path / "more.csv"
    more.write_text(MORE, encoding="utf-8")
    app.import_contacts(more, database="shop", key_field="customer_id",
                        consent_field="consent", consent_yes=["yes"], region="NL")
    clock.advance(days=1)
    Scheduler(app).tick()
    numbers = set(app.mailing_results(mailing_id)["e164"])
    assert numbers == {"+31612345602", "+32470123456", "+31612345605"}


def test_an_overdue_mailing_starts_after_a_restart_and_says_how_late(
    tmp_path: Path, app: Studio, clock: Clock
) -> None:
    mailing_id = schedule(app, T0 + timedelta(minutes=30))
    path = app.db_path
    app.close()  # nothing runs while it becomes due

    later = Clock(T0 + timedelta(hours=2, minutes=30))
    with Studio(path, clock=later) as again:
        assert again.due_mailings() == [mailing_id]
        assert Scheduler(again).tick() == [mailing_id]
        mailing = again.get_mailing(mailing_id)
        assert mailing["state"] == "sending"
        assert mailing["started_at"] == later.now
        assert mailing["late_seconds"] == pytest.approx(2 * 3600)


def test_one_ticker_per_database_however_many_studios(tmp_path: Path, app: Studio) -> None:
    first = app.start_scheduler()
    assert app.start_scheduler() is first
    with Studio(app.db_path) as second:
        assert second.start_scheduler() is first
    assert running_scheduler(str(Path(app.db_path).resolve())) is first
    assert app.scheduler_status()["running"]
    app.close()
    assert running_scheduler(str(Path(app.db_path).resolve())) is None


def test_the_ticker_thread_starts_an_overdue_mailing_at_once(app: Studio, clock: Clock) -> None:
    mailing_id = schedule(app, T0 + timedelta(minutes=5))
    clock.advance(minutes=10)
    app.start_scheduler()  # its first tick runs before start_scheduler returns
    assert app.get_mailing(mailing_id)["state"] == "sending"
    assert app.get_mailing(mailing_id)["late_seconds"] == pytest.approx(300)


def test_a_mailing_that_cannot_start_is_marked_failed_and_others_go_on(
    app: Studio, clock: Clock
) -> None:
    bad = schedule(app, T0 + timedelta(minutes=1))
    good = schedule(app, T0 + timedelta(minutes=1), document="promo", selection="amsterdam")
    # the database loses a field the text needs before the time comes
    app.storage.execute("UPDATE mailings SET body = 'Hi {{ nickname }}' WHERE id = ?", [bad])
    clock.advance(minutes=1)
    ticker = Scheduler(app)
    assert ticker.tick() == [good]
    failed = app.get_mailing(bad)
    assert failed["state"] == "failed" and "nickname" in failed["error"]
    assert any("nickname" in e for e in ticker.errors)


def _race(app: Studio, mailing_id: int) -> dict[str, object]:
    """Cancel and tick at the same moment from two threads; what each one got."""
    outcome: dict[str, object] = {}
    go = threading.Barrier(2)

    def cancel() -> None:
        go.wait()
        try:
            app.cancel_mailing(mailing_id)
            outcome["cancel"] = "ok"
        except InvalidInput as exc:
            outcome["cancel"] = str(exc)

    def launch() -> None:
        go.wait()
        outcome["launch"] = Scheduler(app).tick()

    threads = [threading.Thread(target=cancel), threading.Thread(target=launch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcome


def test_launch_and_cancel_never_both_win(app: Studio, clock: Clock) -> None:
    """A mailing due now, cancelled while the ticker starts it: cancelled with no messages,
    or sending with all of them and the cancel refused; never anything in between."""
    for _ in range(8):
        mailing_id = schedule(app, T0 + timedelta(seconds=1))
        clock.advance(seconds=1)
        outcome = _race(app, mailing_id)
        state = app.get_mailing(mailing_id)["state"]
        messages = len(app.mailing_results(mailing_id))
        if outcome["cancel"] == "ok":
            assert (state, messages) == ("cancelled", 0)
        else:
            assert "can no longer be cancelled" in str(outcome["cancel"])
            assert (state, messages) == ("sending", 3)
