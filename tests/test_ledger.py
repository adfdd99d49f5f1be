"""The ledger in DuckDB: snapshots, the status roll-up, inbound replies and the lease.

Real database files in tmp_path; messages and events are written through `core.ledger`
exactly as the dispatcher writes them.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import ledger
from core.dispatcher import EventBatch
from core.errors import InvalidInput
from core.gateways.base import InboundMessage
from core.ledger import LedgerSource
from core.studio import Studio

CSV = """id,name,consent,mobile
1,Anna,yes,06-12345678
2,Bram,no,0612345679
3,Chloe,yes,+31 6 1234 5680
4,Dirk,yes,not a number
5,Eva,yes,020-1234567
6,Finn,yes,
7,Gina,yes,06 12345678
8,Hugo,yes,0612345681
9,Iris,yes,0612345682
10,Joost,yes,0612345683
"""


@pytest.fixture
def app(tmp_path: Path) -> Studio:
    path = tmp_path / "contacts.csv"
    path.write_text(CSV, encoding="utf-8")
    studio = Studio(tmp_path / "ledger.duckdb")
    studio.import_contacts(path, database="people", mobile_field="mobile", key_field="id",
                           consent_field="consent", consent_yes=["yes"])  # fmt: skip
    yield studio
    studio.close()


def launch(app: Studio, body: str = "Hi {{ name }}", **kw: object) -> int:
    mid = app.create_mailing(sender="Studio", body=body, database="people",
                             accept_rules=True, **kw)  # type: ignore[arg-type]
    app.launch_mailing(mid)
    return mid


# -- creating and launching ---------------------------------------------------------------


def test_launch_writes_one_message_per_reconciled_recipient_and_the_counts(app: Studio) -> None:
    app.suppress(["0612345683"], reason="manual")
    mid = launch(app)
    messages = app.storage.df(
        "SELECT contact_key, e164, body, sender, encoding, parts, concat_ref, id, "
        "initial_status FROM messages WHERE mailing_id = ? ORDER BY id", [mid])
    # 2 no consent; 4 invalid; 5 landline; 6 empty; 7 repeats 1's number; 10 suppressed
    assert messages["contact_key"].tolist() == ["1", "3", "8", "9"]
    assert messages["body"].tolist() == ["Hi Anna", "Hi Chloe", "Hi Hugo", "Hi Iris"]
    assert set(messages["initial_status"]) == {"queued"}
    assert (messages["concat_ref"] == messages["id"] % 256).all()
    assert set(messages["encoding"]) == {"GSM-7"} and set(messages["parts"]) == {1}
    mailing = app.get_mailing(mid)
    assert mailing["state"] == "sending" and mailing["started_at"] is not None
    steps = mailing["reconciliation"]["steps"]
    assert steps == {"in_selection": 10, "no_number": 1, "invalid_number": 1, "not_mobile": 1,
                     "no_consent": 1, "suppressed": 1, "duplicate_number": 1}  # fmt: skip
    assert mailing["reconciliation"]["recipients"] == 4


def test_launching_twice_never_snapshots_twice(app: Studio) -> None:
    mid = launch(app)
    app.launch_mailing(mid)
    assert app.storage.one("SELECT count(*) FROM messages WHERE mailing_id = ?", [mid]) == 5
    assert app.storage.one("SELECT count(*) FROM message_state WHERE mailing_id = ?", [mid]) == 5


def test_a_message_needing_more_parts_than_allowed_is_skipped_whole_with_the_reason(
    app: Studio,
) -> None:  # fmt: skip
    long_text = "{% if name == 'Anna' %}" + "lorem ipsum " * 60 + "{% else %}short{% endif %}"
    mid = launch(app, body=long_text, split_max_parts=4)
    rows = app.mailing_results(mid)
    anna = rows[rows["contact_key"] == "1"].iloc[0]
    assert anna["status"] == "skipped"
    assert anna["parts"] == 5
    assert anna["reason"] == "needs 5 parts, the limit is 4"
    body = app.storage.one("SELECT body FROM messages WHERE mailing_id = ? AND contact_key = '1'",
                           [mid])  # fmt: skip
    assert body == "lorem ipsum " * 60  # stored whole, never cut
    assert set(rows[rows["contact_key"] != "1"]["status"]) == {"queued"}
    assert app.get_mailing(mid)["reconciliation"]["skipped_too_many_parts"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accept_rules": False}, "Accept the sending rules"),
        ({"sender": "ThisSenderIsFarTooLong"}, "sender"),
        ({"body": "Hi {{ nmae }}"}, "nmae"),
        ({"body": "   "}, "empty"),
        ({"split_max_parts": 0}, "between 1 and"),
    ],
)
def test_create_mailing_refuses_bad_input_and_stores_nothing(
    app: Studio, kwargs: dict, message: str
) -> None:
    args = {"sender": "Studio", "body": "Hi {{ name }}", "database": "people",
            "accept_rules": True, **kwargs}  # fmt: skip
    with pytest.raises(InvalidInput, match=message):
        app.create_mailing(**args)
    assert app.storage.one("SELECT count(*) FROM mailings") == 0


def test_a_mailing_is_due_when_its_utc_time_has_come_and_records_how_late_it_started(
    app: Studio,
) -> None:  # fmt: skip
    now = app.clock()
    amsterdam = timezone(timedelta(hours=1))
    later = app.create_mailing(sender="Studio", body="x", database="people", accept_rules=True,
                               at=(now + timedelta(hours=2)).replace(tzinfo=UTC)
                               .astimezone(amsterdam))  # fmt: skip
    stored = app.get_mailing(later)["scheduled_at"]
    assert abs((stored - (now + timedelta(hours=2))).total_seconds()) < 1  # stored as UTC
    past = app.create_mailing(sender="Studio", body="x", database="people", accept_rules=True,
                              at=now - timedelta(seconds=90))  # fmt: skip
    assert app.due_mailings(now) == [past]
    assert app.launch_due_mailings(now) == [past]
    assert app.get_mailing(past)["late_seconds"] >= 90
    assert app.get_mailing(later)["state"] == "scheduled"


def test_a_mailing_nobody_can_receive_finishes_at_once(app: Studio) -> None:
    app.suppress(["0612345678", "+31612345680", "0612345681", "0612345682", "0612345683"])
    mid = launch(app)
    mailing = app.get_mailing(mid)
    assert mailing["state"] == "finished" and mailing["reconciliation"]["recipients"] == 0
    assert app.mailing_results(mid).empty


def test_a_mailing_that_cannot_be_rendered_fails_with_the_reason_and_writes_nothing(
    app: Studio,
) -> None:  # fmt: skip
    mid = app.create_mailing(sender="Studio", body="Born {{ name|date }}", database="people",
                             accept_rules=True)  # fmt: skip
    with pytest.raises(InvalidInput, match="could not start"):
        app.launch_mailing(mid)
    mailing = app.get_mailing(mid)
    assert mailing["state"] == "failed" and "date" in mailing["error"]
    assert app.storage.one("SELECT count(*) FROM messages") == 0
    app.launch_mailing(mid)  # a failed mailing is not retried silently


def test_a_test_send_is_one_message_to_the_default_destination(app: Studio) -> None:
    app.set_default_destination("people", number="+31687654321")
    mid = app.test_send(sender="Studio", body="Hi {{ name }}!", database="people",
                        contact={"name": "Preview"})  # fmt: skip
    mailing = app.get_mailing(mid)
    assert mailing["kind"] == "test" and mailing["state"] == "sending"
    rows = app.storage.rows("SELECT e164, body FROM messages WHERE mailing_id = ?", [mid])
    assert rows == [("+31687654321", "Hi Preview!")]


# -- the status roll-up -----------------------------------------------------------------------


def record(app: Studio, *events: tuple) -> None:
    """Record outcome/report events, each outcome after its `submitting` (as the dispatcher
    does)."""
    submitting, batch = EventBatch(), EventBatch()
    for e in events:
        if e[3] in ("submitted", "retry", "rejected", "unknown"):
            submitting.add(e[0], e[1], e[2], "submitting", None, None, e[6])
        batch.add(*e)
    ledger.append_events(app.storage, submitting)
    ledger.record_events(app.storage, batch)


def test_a_three_part_message_is_delivered_when_all_three_parts_are(app: Studio) -> None:
    mid = launch(app, body="{{ name }} " + "x" * 400)  # 3 parts each
    msg = int(app.storage.one("SELECT min(id) FROM messages WHERE mailing_id = ?", [mid]))
    now = app.clock()
    record(app, *[(msg, mid, p, "submitted", f"p{p}", None, now) for p in range(3)])
    record(app, (msg, mid, 0, "delivered", "p0", None, now), (msg, mid, 2, "delivered", "p2",
                                                             None, now))  # fmt: skip
    row = app.mailing_results(mid).iloc[0]
    assert (row["status"], row["parts"], row["parts_delivered"]) == ("submitted", 3, 2)
    assert row["done_at"] is None or str(row["done_at"]) in ("NaT", "None")
    record(app, (msg, mid, 1, "delivered", "p1", None, now))
    row = app.mailing_results(mid).iloc[0]
    assert (row["status"], row["parts_delivered"]) == ("delivered", 3)
    progress = app.mailing_progress(mid)
    assert progress["delivered"] == 1 and progress["parts_delivered"] == 3
    assert progress["queued"] == 4 and progress["total"] == 5


def test_mailing_results_has_exactly_the_documented_columns(app: Studio) -> None:
    mid = launch(app)
    assert list(app.mailing_results(mid).columns) == [
        "e164", "contact_key", "parts", "encoding", "status", "parts_delivered", "reason",
        "submitted_at", "done_at",
    ]  # fmt: skip


EVENTS = st.sampled_from([
    "submitted", "retry", "rejected", "unknown", "skipped", "delivered", "undelivered",
    "expired", "failed", "report_unknown",
])  # fmt: skip


def oracle(parts: int, skipped: bool, events: list[tuple[int, str]]) -> tuple[str, int]:
    """The documented precedence, computed in Python from the set of events."""
    kinds = {e for _, e in events}
    sub = {p for p, e in events if e == "submitted"}
    dlv = {p for p, e in events if e == "delivered"}
    severity = max([{"failed": 4, "undelivered": 3, "expired": 2, "report_unknown": 1}.get(e, 0)
                    for _, e in events] or [0])  # fmt: skip
    if skipped:
        status = "skipped"
    elif "rejected" in kinds:
        status = "failed"
    elif "unknown" in kinds:
        status = "unknown"
    elif len(sub) >= parts:
        status = {4: "failed", 3: "undelivered", 2: "expired"}.get(severity) or (
            "delivered" if len(dlv) >= parts else "unknown" if severity == 1 else "submitted")
    elif "skipped" in kinds:
        status = "skipped"
    else:
        status = "queued"
    return status, len(dlv)


@pytest.fixture(scope="module")
def rollup_db(tmp_path_factory: pytest.TempPathFactory) -> Studio:
    studio = Studio(tmp_path_factory.mktemp("rollup") / "rollup.duckdb")
    studio.storage.execute("INSERT INTO mailings (id, state, kind) VALUES (1, 'scheduled', 'bulk')")
    yield studio
    studio.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.integers(1, 4), skipped=st.booleans(),
       events=st.lists(st.tuples(st.integers(0, 3), EVENTS), max_size=10),
       splits=st.lists(st.integers(1, 4), max_size=4))  # fmt: skip
def test_the_rolled_up_status_matches_the_events_however_they_were_batched(
    rollup_db: Studio, parts: int, skipped: bool, events: list[tuple[int, str]],
    splits: list[int],
) -> None:
    store = rollup_db.storage
    msg = int(store.one("SELECT coalesce(max(id), 0) + 1000 FROM messages"))
    events = [(p % parts, e) for p, e in events]
    store.execute("UPDATE mailings SET state = 'scheduled' WHERE id = 1")
    table = pa.table({
        "id": [msg], "mailing_id": [1], "contact_key": ["k"], "e164": ["+31600000000"],
        "country": ["NL"], "sender": ["S"], "body": ["b"], "encoding": ["GSM-7"],
        "parts": pa.array([parts], pa.int32()), "concat_ref": pa.array([msg % 256], pa.int32()),
        "initial_status": ["skipped" if skipped else "queued"],
        "skip_reason": ["too long" if skipped else None], "shift_table": pa.array([None],
                                                                                   pa.string()),
    })  # fmt: skip
    now = datetime(2026, 1, 1)
    ledger.write_snapshot(store, 1, table, started_at=now, late_seconds=0, reconciliation={})
    i = 0
    for size in [*splits, len(events)]:  # the same events, in batches of varying sizes
        batch = EventBatch()
        for p, e in events[i:i + size]:
            batch.add(msg, 1, None if e == "skipped" else p, e, f"x{p}", None, now)
        ledger.record_events(store, batch)
        i += size
        if i >= len(events):
            break
    status, delivered = store.rows(
        "SELECT status, parts_delivered FROM message_status WHERE message_id = ?", [msg])[0]
    assert (status, delivered) == oracle(parts, skipped, events)


def test_sms_history_says_who_replied_stop_to_which_mailing_and_leaves_out_test_sends(
    app: Studio,
) -> None:  # fmt: skip
    mid = launch(app)
    msgs = dict(app.storage.rows("SELECT e164, id FROM messages WHERE mailing_id = ?", [mid]))
    now = app.clock()
    record(app, *[(i, mid, 0, "submitted", f"p{i}", None, now) for i in msgs.values()])
    record(app, (msgs["+31612345678"], mid, 0, "delivered", "x", None, now))
    LedgerSource(app).record_inbound(
        [InboundMessage("31612345678", "Studio", "Stop", provider_id="mo-1")], now)
    app.set_default_destination("people", number="+31612345678")
    app.test_send(sender="Studio", body="test", database="people")
    history = app.storage.df("SELECT * FROM sms_history ORDER BY e164")
    assert set(history["mailing_id"]) == {mid}
    anna = history[history["e164"] == "+31612345678"].iloc[0]
    assert anna["status"] == "delivered" and bool(anna["replied_stop"]) is True
    assert history["replied_stop"].sum() == 1
    types = dict(app.storage.rows(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'sms_history'"))  # fmt: skip
    assert types == {"e164": "VARCHAR", "mailing_id": "BIGINT", "status": "VARCHAR",
                     "replied_stop": "BOOLEAN"}  # fmt: skip


# -- inbound ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("sender", ["+31612345678", "31612345678", "0031612345678",
                                    "0612345678"])  # fmt: skip
def test_a_stop_from_any_address_form_suppresses_the_number_with_the_mailing_it_answered(
    app: Studio, sender: str,
) -> None:  # fmt: skip
    mid = launch(app)
    anna = int(app.storage.one("SELECT id FROM messages WHERE e164 = '+31612345678'"))
    record(app, (anna, mid, 0, "submitted", "p", None, app.clock()))
    LedgerSource(app).record_inbound([InboundMessage(sender, "Studio", " stop! ")], app.clock())
    assert app.storage.rows("SELECT e164, reason, source, mailing_id FROM suppressions") == [
        ("+31612345678", "stop_reply", "reply", mid)]
    assert app.storage.rows("SELECT e164, kind, mailing_id, sender_raw FROM inbound") == [
        ("+31612345678", "stop", mid, sender)]


def test_start_lifts_only_a_stop_suppression_and_a_repeated_delivery_is_stored_once(
    app: Studio,
) -> None:  # fmt: skip
    source = LedgerSource(app)
    app.suppress(["0612345679"], reason="manual")
    now = app.clock()
    source.record_inbound([InboundMessage("0612345678", "S", "STOP", provider_id="a"),
                           InboundMessage("0612345679", "S", "STOP", provider_id="b")], now)
    source.record_inbound([InboundMessage("0612345678", "S", "STOP", provider_id="a")], now)
    assert app.storage.one("SELECT count(*) FROM inbound") == 2
    source.record_inbound([InboundMessage("0612345678", "S", "start", provider_id="c"),
                           InboundMessage("0612345679", "S", "START", provider_id="d")], now)
    assert app.storage.rows("SELECT e164, reason FROM suppressions") == [
        ("+31612345679", "manual")]
    assert app.storage.one("SELECT count(*) FROM inbound WHERE kind = 'start'") == 2


# -- resuming and recovery -------------------------------------------------------------------------


def test_the_outbox_hands_out_only_what_still_needs_a_submit(app: Studio) -> None:
    mid = launch(app, body="{{ name }} " + "y" * 300)  # 2 parts each
    ids = [r[0] for r in app.storage.rows(
        "SELECT id FROM messages WHERE mailing_id = ? ORDER BY id", [mid])]  # fmt: skip
    now = app.clock()
    record(app, (ids[0], mid, 0, "submitted", "a", None, now),
           (ids[0], mid, 1, "submitted", "b", None, now),
           (ids[1], mid, 0, "submitted", "c", None, now),
           (ids[1], mid, 1, "retry", None, "ESME_RTHROTTLED", now),
           (ids[2], mid, 0, "rejected", None, "barred", now))  # fmt: skip
    source = LedgerSource(app)
    pending, after = source.next_messages(mid, 0, 2)
    assert after is not None
    more, after2 = source.next_messages(mid, after, 100)
    got = {m.message_id: m for m in [*pending, *more]}
    assert after2 is None
    assert set(got) == {ids[1], ids[3], ids[4]}
    assert got[ids[1]].accepted == frozenset({0}) and got[ids[1]].parts_to_send() == (1,)
    assert got[ids[3]].parts_to_send() == (0, 1)


def test_parts_submitting_without_an_outcome_are_found_after_a_crash(app: Studio) -> None:
    mid = launch(app)
    ids = [r[0] for r in app.storage.rows("SELECT id FROM messages ORDER BY id")]
    now = app.clock()
    batch = EventBatch()
    for i in ids[:3]:
        batch.add(i, mid, 0, "submitting", None, None, now)
    ledger.append_events(app.storage, batch)
    outcomes = EventBatch()
    outcomes.add(ids[0], mid, 0, "submitted", "a", None, now)
    outcomes.add(ids[1], mid, 0, "retry", None, "throttled", now)
    ledger.record_events(app.storage, outcomes)
    assert ledger.in_flight_parts(app.storage) == [(ids[2], mid, 0)]


def test_outcomes_stored_but_not_yet_folded_are_folded_when_sending_resumes(
    app: Studio,
) -> None:  # fmt: skip
    mid = launch(app)
    ids = [r[0] for r in app.storage.rows("SELECT id FROM messages ORDER BY id")]
    now = app.clock()
    batch = EventBatch()
    batch.add(ids[0], mid, 0, "submitting", None, None, now)
    batch.add(ids[0], mid, 0, "submitted", "pid-0", None, now)
    ledger.append_events(app.storage, batch)  # the process died before the fold
    assert app.mailing_results(mid)["status"].iloc[0] == "queued"
    assert LedgerSource(app).recover() == []  # not in flight: it has its outcome
    assert app.mailing_results(mid)["status"].iloc[0] == "submitted"


def test_reports_stored_but_not_yet_folded_are_folded_after_a_crash_in_finished_mailings(
    app: Studio,
) -> None:  # fmt: skip
    """The dispatcher appends delivery reports at once (so the SMSC hears quickly that they
    are stored) and folds them a moment later; reports keep coming after a mailing
    finished, so recovery must find them in any mailing, not only in those sending."""
    mid = launch(app)
    ids = [r[0] for r in app.storage.rows("SELECT id FROM messages ORDER BY id")]
    now = app.clock()
    sent = EventBatch()
    for k, i in enumerate(ids):
        sent.add(i, mid, 0, "submitting", None, None, now)
        sent.add(i, mid, 0, "submitted", f"pid-{k}", None, now)
    ledger.record_events(app.storage, sent)
    assert ledger.complete_mailing(app.storage, mid, now)
    later = now + timedelta(seconds=5)
    reports = EventBatch()
    reports.add(ids[0], mid, 0, "delivered", "pid-0", None, later)
    reports.add(ids[1], mid, 0, "undelivered", "pid-1", "err:001", later)
    ledger.record_events(app.storage, reports)  # folded: nothing to do for these
    unfolded = EventBatch()
    unfolded.add(ids[2], mid, 0, "delivered", "pid-2", None, later)
    unfolded.add(ids[3], mid, 0, "failed", "pid-3", "err:005", later)
    ledger.append_events(app.storage, unfolded)  # the process died before the fold
    status = dict(zip(app.mailing_results(mid)["e164"], app.mailing_results(mid)["status"],
                      strict=True))  # fmt: skip
    assert sorted(status.values()).count("submitted") == len(ids) - 2
    assert ledger.refold_reported(app.storage) == [mid]
    results = app.mailing_results(mid).set_index("e164")
    assert list(results["status"].iloc[:4]) == ["delivered", "undelivered", "delivered",
                                                 "failed"]  # fmt: skip
    assert results["reason"].iloc[3] == "err:005"
    assert ledger.refold_reported(app.storage) == []  # nothing left to fold


def test_the_suppression_check_before_a_batch_finds_numbers_suppressed_meanwhile(
    app: Studio,
) -> None:  # fmt: skip
    mid = launch(app)
    rows = app.storage.rows("SELECT id, e164 FROM messages WHERE mailing_id = ? ORDER BY id",
                            [mid])  # fmt: skip
    (first, first_e164), (last, last_e164) = rows[0], rows[-1]
    app.suppress([first_e164, last_e164], reason="stop_reply", source="reply", mailing_id=mid)
    source = LedgerSource(app)
    batch = source.next_messages(mid, 0, 100)[0]
    assert {m.message_id for m in batch} == {r[0] for r in rows}  # the snapshot had them
    blocked = source.blocked(batch)
    assert set(blocked) == {first, last}
    assert all("stop_reply" in (reason or "") for reason in blocked.values())
    # a retry far from the others is looked up in a range of its own
    sending, suppressed = ledger.screening(app.storage, [(mid, first), (mid, first + 10**6)])
    assert sending == {mid} and suppressed == {first_e164: "stop_reply"}
    app.storage.execute("UPDATE mailings SET state = 'paused' WHERE id = ?", [mid])
    assert source.blocked(batch) == dict.fromkeys((m.message_id for m in batch), None)


# -- the lease -----------------------------------------------------------------------------------


def test_the_lease_is_respected_while_its_holder_lives_and_taken_over_when_it_died(
    app: Studio,
) -> None:  # fmt: skip
    source = LedgerSource(app)
    host = socket.gethostname()
    parent = f"{host}:{os.getppid()}:live"  # a process that certainly runs
    assert source.acquire_lease(parent) is None
    assert "live" in (source.acquire_lease(f"{host}:{os.getpid()}:me") or "")
    dead = f"{host}:999999:gone"
    app.storage.execute("UPDATE dispatcher_lease SET owner = ?", [dead])
    assert source.acquire_lease(f"{host}:{os.getpid()}:me") is None
    elsewhere = "another-host:1:x"
    app.storage.execute("UPDATE dispatcher_lease SET owner = ?, heartbeat = ?",
                        [elsewhere, app.clock()])  # fmt: skip
    assert source.acquire_lease(f"{host}:{os.getpid()}:me") is not None
    app.storage.execute("UPDATE dispatcher_lease SET heartbeat = ?",
                        [app.clock() - timedelta(minutes=5)])  # fmt: skip
    assert source.acquire_lease(f"{host}:{os.getpid()}:me") is None  # stale


def test_the_reconciliation_is_stored_as_json(app: Studio) -> None:
    mid = launch(app)
    raw = app.storage.one("SELECT reconciliation FROM mailings WHERE id = ?", [mid])
    assert json.loads(raw)["queued"] == 5
