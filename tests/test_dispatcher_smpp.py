"""Mailings over SMPP against a real SMPP server (tests/smsc.py, smpp34) on 127.0.0.1.

Each test compares what the server received with the ledger: nothing twice, nothing
missing, at most a window of `unknown` when the connection is cut.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from core.dispatcher import Dispatcher
from core.studio import Studio
from core.worker import start_dispatcher

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smsc import ESME_ROK, ESME_RTHROTTLED, TestSMSC


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_STUDIO_SMPP_PASSWORD", "secret")


def make_app(tmp_path: Path, n: int, first: int = 0) -> Studio:
    frame = pd.DataFrame({
        "id": [f"K{i}" for i in range(first, first + n)],
        "name": [f"Name{i}" for i in range(first, first + n)],
        "consent": "yes",
        "mobile": [f"+3161{i:07d}" for i in range(first, first + n)],
    })  # fmt: skip
    csv = tmp_path / "contacts.csv"
    frame.to_csv(csv, index=False)
    studio = Studio(tmp_path / "smpp.duckdb")
    studio.import_contacts(csv, database="people", mobile_field="mobile", key_field="id",
                           consent_field="consent", consent_yes=["yes"])  # fmt: skip
    return studio


def launch(app: Studio, body: str = "Hello {{ name }}") -> int:
    mid = app.create_mailing(sender="Studio", body=body, database="people", accept_rules=True)
    app.launch_mailing(mid)
    return mid


def wait_finished(app: Studio, dispatcher: Dispatcher, mids: list[int], timeout: float = 30,
                  reports: bool = True) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert dispatcher.running, dispatcher.last_error
        states = {app.get_mailing(m)["state"] for m in mids}
        waiting = sum(app.mailing_progress(m)["submitted"] for m in mids) if reports else 0
        if states == {"finished"} and waiting == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"not finished in {timeout} s: {[app.mailing_progress(m) for m in mids]}")


def accepted_per_number(smsc: TestSMSC) -> Counter[str]:
    return Counter(p.destination for p in smsc.received if p.status == ESME_ROK)


def test_a_dropped_connection_is_resumed_without_losing_or_doubling_anything(
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(tmp_path, 400)
    with TestSMSC(drop_after=150) as smsc:
        mid = launch(app)
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=10, rate=100000))
        try:
            wait_finished(app, dispatcher, [mid], reports=False)
            smsc.wait_for(lambda: len(smsc.deliveries) >= len(accepted_per_number(smsc)), 5)
        finally:
            dispatcher.stop()
        assert smsc.binds >= 2  # it reconnected
        results = app.mailing_results(mid)
        status = dict(zip(results["e164"].str.lstrip("+"), results["status"], strict=True))
        received = Counter(p.destination for p in smsc.received)
        assert max(received.values()) == 1  # nothing was sent twice
        unknown = [n for n, s in status.items() if s == "unknown"]
        assert 1 <= len(unknown) <= dispatcher.batch_size
        assert len(unknown) <= 10  # ... in fact at most the SMPP window
        for number, s in status.items():
            if s != "unknown":
                assert s in ("delivered", "submitted") and received[number] == 1, number
        assert app.mailing_progress(mid)["queued"] == 0
    app.close()


def test_a_throttling_server_slows_the_mailing_down_and_it_still_completes(
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(tmp_path, 200)
    with TestSMSC() as smsc:
        mid = launch(app)
        smsc.throttle_until = time.monotonic() + 1.5
        started = time.monotonic()
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=10, rate=100000))
        try:
            wait_finished(app, dispatcher, [mid])
        finally:
            dispatcher.stop()
        assert time.monotonic() - started >= 1.5
        throttled = sum(1 for p in smsc.received if p.status == ESME_RTHROTTLED)
        assert throttled > 0
        assert accepted_per_number(smsc) == Counter({f"3161{i:07d}": 1 for i in range(200)})
        retries = app.storage.one(
            "SELECT count(*) FROM message_events WHERE event = 'retry' AND reason LIKE "
            "'%THROTTLED%'")
        assert retries >= throttled
        assert app.mailing_progress(mid)["delivered"] == 200
    app.close()


def test_multipart_messages_arrive_with_correct_headers_and_receipts_roll_up(
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(tmp_path, 12)
    body = "Dear {{ name }}, " + "this message is long enough for three parts. " * 9
    with TestSMSC(undeliverable={"31610000003"}) as smsc:
        mid = launch(app, body)
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=10, rate=100000))
        try:
            wait_finished(app, dispatcher, [mid])
        finally:
            dispatcher.stop()
    messages = app.storage.df(
        "SELECT e164, body, parts, concat_ref FROM messages WHERE mailing_id = ?", [mid])
    assert set(messages["parts"]) == {3}
    for row in messages.itertuples():
        number = row.e164.lstrip("+")
        parts = sorted(smsc.parts_to(number), key=lambda p: p.part)
        assert [(p.part, p.total, p.ref) for p in parts] == [(i, 3, row.concat_ref)
                                                              for i in (1, 2, 3)]
        assert all(p.esm_class & 0x40 for p in parts)  # a user data header
        assert smsc.texts(number) == [row.body]
    results = app.mailing_results(mid).set_index("e164")
    assert results.loc["+31610000003", "status"] == "undelivered"
    delivered = results.drop(index="+31610000003")
    assert set(delivered["status"]) == {"delivered"}
    assert set(delivered["parts_delivered"]) == {3}
    app.close()


def test_a_refused_part_is_resent_alone_with_the_same_reference_over_smpp(
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(tmp_path, 5)
    body = "{{ name }} " + "second and third parts follow. " * 12
    seen: set[str] = set()

    def hook(part: object) -> int | None:
        key = f"{part.destination}/{part.part}"  # type: ignore[attr-defined]
        if part.destination == "31610000002" and part.part == 2 and key not in seen:  # type: ignore[attr-defined]
            seen.add(key)
            return ESME_RTHROTTLED
        return None

    with TestSMSC(status_hook=hook) as smsc:
        mid = launch(app, body)
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=1, rate=100000))
        try:
            wait_finished(app, dispatcher, [mid])
        finally:
            dispatcher.stop()
    parts = smsc.parts_to("31610000002")
    assert [(p.part, p.status) for p in parts] == [
        (1, ESME_ROK), (2, ESME_RTHROTTLED), (2, ESME_ROK), (3, ESME_ROK)]
    assert len({p.ref for p in parts}) == 1
    assert app.mailing_results(mid).set_index("e164").loc["+31610000002", "status"] == \
        "delivered"
    app.close()


def test_a_stop_reply_during_a_mailing_stops_every_later_message_to_that_number(
    tmp_path: Path,
) -> None:  # fmt: skip
    app = make_app(tmp_path, 30)
    stopper = "31610000000"  # the first recipient of the first mailing

    def hook(part: object) -> int | None:
        if part.destination == stopper:  # type: ignore[attr-defined]
            smsc.send_mo_async("0031610000000", "Studio", "STOP")  # national-prefix form
        return None

    with TestSMSC(status_hook=hook) as smsc:
        first = launch(app)
        second = launch(app, "Second mailing for {{ name }}")
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=5, rate=40))
        try:
            wait_finished(app, dispatcher, [first, second])
            third = launch(app, "Third mailing for {{ name }}")
            wait_finished(app, dispatcher, [third])
        finally:
            dispatcher.stop()
    assert len(smsc.parts_to(stopper)) == 1  # the one message before the STOP
    second_row = app.mailing_results(second).set_index("e164").loc["+31610000000"]
    assert second_row["status"] == "skipped"
    assert "stop_reply" in second_row["reason"]
    assert "+31610000000" not in set(app.mailing_results(third)["e164"])
    assert app.get_mailing(third)["reconciliation"]["steps"]["suppressed"] == 1
    assert app.storage.rows("SELECT e164, reason, mailing_id FROM suppressions") == [
        ("+31610000000", "stop_reply", first)]
    assert app.storage.rows("SELECT e164, kind, mailing_id FROM inbound") == [
        ("+31610000000", "stop", first)]
    for mid in (first, second, third):
        assert app.mailing_progress(mid)["queued"] == 0
    app.close()


def test_receipts_are_acknowledged_within_a_fraction_of_a_second_while_sending(
    tmp_path: Path,
) -> None:  # fmt: skip
    """An SMSC waits for each deliver_sm_resp, and one that waits long slows down. Receipts
    are stored (and so acknowledged) every `report_interval`, not only when a batch's
    submit returns or the group commit comes."""
    app = make_app(tmp_path, 1200)
    rate = 400
    with TestSMSC() as smsc:
        mid = launch(app)
        dispatcher = start_dispatcher(app, gateway_url=smsc.url(window=10, rate=rate))
        waiting: list[int] = []
        try:
            deadline = time.monotonic() + 30
            while app.get_mailing(mid)["state"] != "finished" and time.monotonic() < deadline:
                sent = sum(1 for p in smsc.received if p.status == ESME_ROK)
                if 200 <= sent <= 1000:  # sending at full pace
                    waiting.append(sent - len(smsc.deliveries))
                time.sleep(0.02)
            wait_finished(app, dispatcher, [mid])
        finally:
            dispatcher.stop()
    assert len(waiting) > 20
    waiting.sort()
    median = waiting[len(waiting) // 2]
    assert median < rate * 0.3, waiting  # unacknowledged for ~0.1 s, not 0.5-1 s as before
    assert app.mailing_progress(mid)["delivered"] == 1200
    app.close()
