"""Mailings end to end through the embedded simulator: real DuckDB, real dispatcher threads.

The simulator's outcomes are a pure function of (seed, number, message id), so the test can
compute what every recipient should end up as and compare it with the ledger.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from core.dispatcher import DispatcherBusy, running_dispatcher
from core.gateways import OutboundMessage
from core.gateways.simulator import SimulatorGateway
from core.studio import Studio
from core.worker import run_until_done, start_dispatcher

N = 400


def contacts_csv(path: Path, n: int = N) -> Path:
    frame = pd.DataFrame({
        "id": [f"K{i}" for i in range(n)],
        "name": [f"Name{i}" for i in range(n)],
        "consent": "yes",
        "mobile": [f"+3161{i:07d}" for i in range(n)],
    })  # fmt: skip
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def app(tmp_path: Path) -> Studio:
    studio = Studio(tmp_path / "sim.duckdb")
    studio.import_contacts(contacts_csv(tmp_path / "c.csv"), database="people",
                           mobile_field="mobile", key_field="id", consent_field="consent",
                           consent_yes=["yes"])  # fmt: skip
    yield studio
    studio.close()


def new_mailing(app: Studio, body: str = "Hello {{ name }}") -> int:
    mid = app.create_mailing(sender="Studio", body=body, database="people", accept_rules=True)
    app.launch_mailing(mid)
    return mid


SIM = "simulator://?seed=7&instant=1&rate=100000&stop_share=0.05&reject_share=0.03" \
      "&transient_share=0.05&fail_share=0.1"


def test_a_mailing_through_the_simulator_ends_as_the_simulator_decided(app: Studio) -> None:
    mid = new_mailing(app, body="Hello {{ name }}, " + "z" * 150)  # two parts each
    summary = run_until_done(app, gateway_url=SIM, report_timeout=5)
    assert app.get_mailing(mid)["state"] == "finished"
    results = app.mailing_results(mid)
    messages = app.storage.df(
        "SELECT id, e164, sender, body, concat_ref FROM messages WHERE mailing_id = ? "
        "ORDER BY id", [mid])
    fates = SimulatorGateway(seed=7, fail_share=0.1, reject_share=0.03,
                             transient_share=0.05, stop_share=0.05).fates([
        OutboundMessage(int(r.id), r.e164, r.sender, ("a", "b"), "GSM-7", int(r.concat_ref))
        for r in messages.itertuples()
    ])  # fmt: skip
    expected = [
        "failed" if reject else "delivered" if delivered else "other"
        for reject, delivered in zip(fates["reject"], fates["delivered"], strict=True)
    ]
    got = results["status"].tolist()
    for want, have in zip(expected, got, strict=True):
        if want == "other":  # refused by the network: the simulator's reason decides
            assert have in ("undelivered", "expired", "failed")
        else:
            assert have == want
    rejected = results[[e == "failed" for e in expected]]
    assert rejected["reason"].str.contains("barred").all()
    assert (results.loc[results["status"] == "delivered", "parts_delivered"] == 2).all()
    progress = summary["mailings"][mid]
    counts = results["status"].value_counts().to_dict()
    for status in ("delivered", "undelivered", "expired", "failed", "unknown", "queued"):
        assert progress[status] == counts.get(status, 0)
    assert progress["total"] == N
    retried = app.storage.one(
        "SELECT count(DISTINCT message_id) FROM message_events WHERE mailing_id = ? "
        "AND event = 'retry'", [mid])
    assert retried == int((fates["transient"] & ~fates["reject"]).sum())


def test_stop_replies_suppress_their_numbers_for_every_later_mailing(app: Studio) -> None:
    first = new_mailing(app)
    run_until_done(app, gateway_url=SIM, report_timeout=5)
    stops = app.storage.df("SELECT e164, mailing_id FROM inbound WHERE kind = 'stop'")
    assert len(stops) > 5
    assert set(stops["mailing_id"]) == {first}
    suppressed = app.storage.df(
        "SELECT e164, reason, source, mailing_id FROM suppressions ORDER BY e164")
    assert sorted(suppressed["e164"]) == sorted(stops["e164"])
    assert set(suppressed["reason"]) == {"stop_reply"}
    assert set(suppressed["mailing_id"]) == {first}
    second = new_mailing(app)
    reconciliation = app.get_mailing(second)["reconciliation"]
    assert reconciliation["steps"]["suppressed"] == len(stops)
    later = set(app.storage.df(
        "SELECT e164 FROM messages WHERE mailing_id = ?", [second])["e164"])  # fmt: skip
    assert later.isdisjoint(set(stops["e164"]))


def test_a_number_suppressed_after_the_snapshot_gets_nothing(app: Studio) -> None:
    mid = new_mailing(app)
    app.suppress(["+31610000005"], reason="manual")
    run_until_done(app, gateway_url="simulator://?seed=1&instant=1&rate=100000",
                   report_timeout=2)  # fmt: skip
    row = app.mailing_results(mid).set_index("e164").loc["+31610000005"]
    assert row["status"] == "skipped"
    assert "suppressed (manual) after the mailing started" in row["reason"]
    sent = app.storage.one(
        "SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id "
        "WHERE m.e164 = '+31610000005' AND e.event = 'submitting'")
    assert sent == 0


def test_the_background_dispatcher_sends_a_test_message_and_stops_with_the_studio(
    tmp_path: Path,
) -> None:  # fmt: skip
    path = tmp_path / "bg.duckdb"
    studio = Studio(path)
    studio.import_contacts(contacts_csv(tmp_path / "c.csv", 3), database="people",
                           mobile_field="mobile", consent_field="consent",
                           consent_yes=["yes"])  # fmt: skip
    studio.set_default_destination("people", number="+31687654321")
    studio.set_setting("gateway_url", "simulator://?seed=1&instant=1")
    studio.start_background()
    key = str(path.resolve())
    dispatcher = running_dispatcher(key)
    assert dispatcher is not None and dispatcher.running
    other = Studio(path)  # a second Studio on the same file in the same process
    other.start_background()
    assert running_dispatcher(key) is dispatcher  # ... never starts a second dispatcher
    with pytest.raises(DispatcherBusy):
        start_dispatcher(other)
    mid = studio.test_send(sender="Studio", body="Test {{ name }}", database="people")
    import time

    deadline = time.monotonic() + 10
    while studio.mailing_progress(mid)["delivered"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert studio.mailing_progress(mid)["delivered"] == 1
    assert studio.get_mailing(mid)["state"] == "finished"
    other.close()
    studio.close()
    assert running_dispatcher(key) is None
    assert not dispatcher.running


def test_run_until_done_reports_progress_and_resumes_what_was_sending(app: Studio) -> None:
    mid = new_mailing(app)
    seen: list[tuple[int, int, str]] = []
    summary = run_until_done(app, gateway_url="simulator://?seed=3&instant=1&rate=100000",
                             report_timeout=5, progress=lambda d, t, label: seen.append(
                                 (d, t, label)))  # fmt: skip
    assert seen and seen[-1][1] == N
    assert summary["mailings"][mid]["queued"] == 0
    assert summary["mailings"][mid]["submitted"] == 0  # every report is in


def test_a_bad_gateway_setting_does_not_stop_the_app_and_the_reason_is_shown(
    tmp_path: Path,
) -> None:  # fmt: skip
    studio = Studio(tmp_path / "bad.duckdb")
    try:
        studio.set_setting("gateway_url", "smpp://nobody@127.0.0.1")  # no port
        studio.start_background()  # must not raise: the Settings page has to stay reachable
        status = studio.dispatcher_status()
        assert status is not None and status["running"] is False
        assert "port" in status["last_error"]
    finally:
        studio.close()
