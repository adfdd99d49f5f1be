"""The SMPP gateway against a real SMPP server written by someone else (smpp34's Server,
wrapped by tests/smsc.py): encodings, concatenation, window, receipts, replies, and every
failure the dispatcher must be able to trust: throttling, refusals, dropped connections."""

from __future__ import annotations

import json
import logging
import socket
import string
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import smpp34
from hypothesis import given, settings
from hypothesis import strategies as st
from smpplib import client as smpp_client
from smsc import ESME_RINVDSTADR, TestSMSC, free_port

from core.gateways import (
    DeliveryReport,
    GatewayError,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    PartResult,
    parse_gateway_url,
    smpp_wire,
)
from core.gateways.config import Secret
from core.gateways.smpp import SmppGateway

PASSWORD = "pw-7x!Q"


@pytest.fixture
def smsc() -> Iterator[TestSMSC]:
    with TestSMSC() as server:
        yield server


@pytest.fixture
def make_gw() -> Iterator[Any]:
    made: list[SmppGateway] = []

    def make(server: TestSMSC, **params: Any) -> SmppGateway:
        params.setdefault("rate", 100000)
        gw = SmppGateway(parse_gateway_url(server.url(**params)), Secret(PASSWORD))
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


def msg(
    mid: int,
    to: str,
    *parts: str,
    enc: str = "GSM-7",
    ref: int = 0,
    sender: str = "Studio",
    **kw: Any,
) -> OutboundMessage:
    return OutboundMessage(mid, to, sender, parts, enc, ref, **kw)  # type: ignore[arg-type]


def by_key(results: list[PartResult]) -> dict[tuple[int, int], PartResult]:
    return {(r.message_id, r.part_index): r for r in results}


def collect(gw: SmppGateway, want: int, timeout: float = 5.0) -> list[InboundEvent]:
    got: list[InboundEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        gw.receive(got.extend, 0.2)
    return got


def test_single_part_gsm7_and_ucs2_are_sent_with_the_right_data_coding(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    results = gw.submit(
        [
            msg(1, "+31612345678", "Price: 10€ {today} @home"),
            msg(2, "+31612345679", "Привет, мир 👋", enc="UCS-2"),
            msg(3, "+447700900123", "Hi", sender="+447700900000"),
        ]
    )
    assert [r.status for r in results] == ["accepted"] * 3
    assert smsc.wait_for(lambda: len(smsc.received) == 3)
    gsm, ucs, numeric = (
        smsc.parts_to(n)[0] for n in ("31612345678", "31612345679", "447700900123")
    )
    assert (gsm.data_coding, gsm.esm_class, gsm.text) == (0, 0, "Price: 10€ {today} @home")
    assert gsm.short_message.count(b"\x1b") == 3  # €, {, } through the extension table
    assert (ucs.data_coding, ucs.text) == (8, "Привет, мир 👋")
    assert (gsm.source, gsm.source_ton, gsm.source_npi) == ("Studio", 5, 0)
    assert (gsm.dest_ton, gsm.dest_npi) == (1, 1)
    assert (numeric.source, numeric.source_ton, numeric.source_npi) == ("447700900000", 1, 1)
    assert {r.provider_id for r in results} == {p.message_id for p in smsc.received}


def test_multi_part_messages_carry_a_udh_and_reassemble_exactly(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc, window=20)
    gsm_parts = ("A" * 150 + "€", "B" * 153, "the end")
    ucs_parts = ("Ж" * 67, "Ω" * 10)
    results = gw.submit(
        [
            msg(1, "+31600000001", *gsm_parts, ref=42),
            msg(2, "+31600000002", *ucs_parts, enc="UCS-2", ref=7),
        ]
    )
    assert len(results) == 5 and all(r.status == "accepted" for r in results)
    assert len({r.provider_id for r in results}) == 5
    assert smsc.wait_for(lambda: len(smsc.received) == 5)
    gsm = smsc.parts_to("31600000001")
    assert [p.udh for p in gsm] == [bytes([5, 0, 3, 42, 3, seq]) for seq in (1, 2, 3)]
    assert all(p.esm_class & 0x40 and p.data_coding == 0 for p in gsm)
    assert smsc.texts("31600000001") == ["".join(gsm_parts)]
    ucs = smsc.parts_to("31600000002")
    assert [(p.ref, p.total, p.part, p.data_coding) for p in ucs] == [(7, 2, 1, 8), (7, 2, 2, 8)]
    assert smsc.texts("31600000002") == ["".join(ucs_parts)]


def test_national_shift_table_only_when_enabled(smsc: TestSMSC, make_gw: Any) -> None:
    turkish = msg(1, "+905321234567", "Güzel şeyler İstanbul'da", shift_table="turkish")
    refused = make_gw(smsc).submit([turkish])
    assert refused[0].status == "permanent" and "shift=turkish" in (refused[0].error or "")
    gw = make_gw(smsc, shift="turkish,spanish")
    assert gw.capabilities.shift_tables == ("turkish", "spanish")
    assert gw.submit([turkish])[0].status == "accepted"
    assert smsc.wait_for(lambda: len(smsc.received) == 1)
    part = smsc.received[0]
    assert part.udh == bytes([3, 0x24, 1, 1]) and part.national_language == 1
    assert part.text == "Güzel şeyler İstanbul'da"


def test_parts_that_cannot_be_sent_are_refused_before_the_wire(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    results = by_key(
        gw.submit(
            [
                msg(1, "+31600000001", "emoji 👋 is not GSM"),
                msg(2, "+31600000002", "x" * 161),
                msg(3, "+31600000003", "ok", sender="A-very-long-sender"),
                msg(4, "+31600000004", "fine", "but part two 👋", ref=1),
            ]
        )
    )
    assert results[(1, 0)].status == "permanent" and "not GSM-7" in (results[(1, 0)].error or "")
    assert results[(2, 0)].status == "permanent" and "septets" in (results[(2, 0)].error or "")
    assert results[(3, 0)].status == "permanent" and "11 characters" in (
        results[(3, 0)].error or ""
    )
    assert results[(4, 0)].status == "accepted"
    assert results[(4, 1)].status == "permanent"
    smsc.wait_for(lambda: len(smsc.received) >= 1, 1)
    assert [p.destination for p in smsc.received] == ["31600000004"]


def test_the_window_bounds_outstanding_requests(smsc: TestSMSC, make_gw: Any) -> None:
    gw = make_gw(smsc, window=5)
    smsc.hold_responses = True
    out: list[PartResult] = []
    worker = threading.Thread(
        target=lambda: out.extend(
            gw.submit([msg(i, f"+316000000{i:02d}", "hi") for i in range(20)])
        )
    )
    worker.start()
    assert smsc.wait_for(lambda: len(smsc.received) == 5)
    time.sleep(0.3)
    assert len(smsc.received) == 5  # the sixth waits for an answer
    smsc.release()
    worker.join(10)
    assert len(out) == 20 and all(r.status == "accepted" for r in out)


def test_parts_of_one_message_go_in_order_while_messages_interleave(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc, window=10)
    batch = [msg(i, f"+316000001{i:02d}", "a", "b", "c", ref=i) for i in range(8)]
    smsc.hold_responses = True
    out: list[PartResult] = []
    worker = threading.Thread(target=lambda: out.extend(gw.submit(batch)))
    worker.start()
    # every message has its first part in flight; no second part before its first is answered
    assert smsc.wait_for(lambda: len(smsc.received) == 8)
    time.sleep(0.3)
    assert sorted((p.destination, p.part) for p in smsc.received) == sorted(
        (m.to[1:], 1) for m in batch
    )
    smsc.release()
    worker.join(10)
    assert len(out) == 24 and all(r.status == "accepted" for r in out)
    for m in batch:
        assert [p.part for p in smsc.parts_to(m.to[1:])] == [1, 2, 3]


def test_receipts_are_parsed_and_match_the_submitted_ids(smsc: TestSMSC, make_gw: Any) -> None:
    smsc.undeliverable = {"31600000002"}
    gw = make_gw(smsc)
    results = gw.submit(
        [
            msg(1, "+31600000001", "one"),
            msg(2, "+31600000002", "two"),
            msg(3, "+31600000003", "a", "b", ref=3),
        ]
    )
    ids = {r.provider_id: (r.message_id, r.part_index) for r in results}
    events = collect(gw, 4)
    reports = {e.provider_id: e for e in events if isinstance(e, DeliveryReport)}
    assert set(reports) == set(ids)
    states = {ids[pid]: (r.state, r.reason) for pid, r in reports.items()}
    assert states == {
        (1, 0): ("delivered", None),
        (2, 0): ("undelivered", "err:001"),
        (3, 0): ("delivered", None),
        (3, 1): ("delivered", None),
    }
    assert all(r.at is not None and "stat:" in (r.raw or "") for r in reports.values())


def test_receipts_without_tlvs_are_read_from_the_text(smsc: TestSMSC, make_gw: Any) -> None:
    smsc.receipt_tlvs = False
    smsc.undeliverable = {"31600000009"}
    gw = make_gw(smsc)
    [r] = gw.submit([msg(9, "+31600000009", "x")])
    [report] = collect(gw, 1)
    assert isinstance(report, DeliveryReport)
    assert (report.provider_id, report.state) == (r.provider_id, "undelivered")


def test_a_stop_reply_reaches_the_handler_and_is_acknowledged_after_it(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    gw.connect()
    assert smsc.wait_bound()
    status: list[int | None] = []
    t = threading.Thread(
        target=lambda: status.append(smsc.send_mo("31611112222", "Studio", "STOP"))
    )
    t.start()
    seen: list[InboundEvent] = []

    def store(batch: Any) -> None:
        time.sleep(0.2)  # "writing to the database"
        assert not smsc.deliveries  # not acknowledged while we store
        seen.extend(batch)

    assert collect_with(gw, store, 1)
    t.join(5)
    assert seen == [InboundMessage(sender="+31611112222", recipient="Studio", text="STOP")]
    assert status == [0]


def collect_with(gw: SmppGateway, handler: Any, want: int, timeout: float = 5.0) -> bool:
    n = 0
    deadline = time.monotonic() + timeout
    while n < want and time.monotonic() < deadline:
        n += gw.receive(handler, 0.2)
    return n >= want


def test_a_handler_that_fails_means_no_acknowledgement_and_a_redelivery(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    gw.connect()
    assert smsc.wait_bound()
    smsc.send_mo_async("31633334444", "Studio", "Stop")

    def broken(batch: Any) -> None:
        raise OSError("database is locked")

    with pytest.raises(OSError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gw.receive(broken, 0.2)
    assert smsc.wait_for(lambda: len(smsc.deliveries) >= 1)
    assert smsc.deliveries[0]["status"] == 0x64  # ESME_RX_T_APPN: not stored, send again
    again = collect(gw, 1)  # the SMSC redelivers; this time it is stored and acknowledged
    assert [e.text for e in again if isinstance(e, InboundMessage)] == ["Stop"]
    assert smsc.wait_for(lambda: smsc.deliveries[-1]["status"] == 0)


def test_events_arriving_during_submit_are_held_unacknowledged_until_receive(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    gw.connect()
    assert smsc.wait_bound()
    smsc.send_mo_async("31655556666", "Studio", "STOP")
    time.sleep(0.3)  # the deliver_sm is on our socket now
    gw.submit([msg(1, "+31600000001", "hello")])
    assert gw.held_events >= 1
    assert not [d for d in smsc.deliveries if d["kind"] == "mo"]  # no deliver_sm_resp yet
    events = collect(gw, 2)
    assert any(isinstance(e, InboundMessage) and e.text == "STOP" for e in events)
    assert smsc.wait_for(
        lambda: any(d["kind"] == "mo" and d["status"] == 0 for d in smsc.deliveries)
    )


def test_throttled_parts_are_retryable_and_never_duplicated(smsc: TestSMSC, make_gw: Any) -> None:
    smsc.throttle_first = 3
    gw = make_gw(smsc, window=1)
    todo = [msg(i, f"+316000002{i:02d}", "hi") for i in range(5)]
    statuses: Counter[str] = Counter()
    for _ in range(10):
        results = gw.submit(todo)
        statuses.update(r.status for r in results)
        retry = {r.message_id for r in results if r.status == "throttled"}
        assert all(r.status in ("accepted", "throttled") for r in results)
        todo = [m for m in todo if m.message_id in retry]
        if not todo:
            break
    assert statuses["accepted"] == 5
    answered_throttled = [p for p in smsc.received if p.status == 0x58]
    assert len(answered_throttled) == 3
    accepted_parts = [p.destination for p in smsc.received if p.status == 0]
    assert sorted(accepted_parts) == sorted(set(accepted_parts)) and len(accepted_parts) == 5


def test_throttling_stops_the_batch_and_reports_the_rest_as_not_sent(
    smsc: TestSMSC, make_gw: Any
) -> None:
    smsc.throttle_first = 1
    gw = make_gw(smsc, window=1)
    results = gw.submit([msg(i, f"+316000003{i:02d}", "hi") for i in range(4)])
    assert [r.status for r in results] == ["throttled"] * 4
    assert "ESME_RTHROTTLED" in (results[0].error or "")
    assert all((r.error or "").startswith("not sent") for r in results[1:])
    assert len(smsc.received) == 1


def test_permanent_refusals_name_the_code_and_stop_the_message(
    smsc: TestSMSC, make_gw: Any
) -> None:
    smsc.reject = {"31600000666": ESME_RINVDSTADR}
    gw = make_gw(smsc)
    results = by_key(
        gw.submit(
            [
                msg(1, "+31600000666", "one", "two", "three", ref=1),
                msg(2, "+31600000777", "fine"),
            ]
        )
    )
    assert results[(1, 0)].status == "permanent"
    assert "ESME_RINVDSTADR" in (results[(1, 0)].error or "")
    assert [results[(1, i)].status for i in (1, 2)] == ["permanent", "permanent"]
    assert "not sent: part 1 refused" in (results[(1, 1)].error or "")
    assert results[(2, 0)].status == "accepted"
    smsc.wait_for(lambda: len(smsc.received) == 2, 2)
    assert len(smsc.parts_to("31600000666")) == 1


def test_a_dropped_connection_makes_in_flight_parts_unknown_and_unsent_ones_retryable(
    smsc: TestSMSC, make_gw: Any
) -> None:
    smsc.drop_after = 6
    smsc.receipts = False
    gw = make_gw(smsc, window=4)
    batch = [msg(i, f"+316000004{i:02d}", "x", "y", ref=i) for i in range(12)]
    results = by_key(gw.submit(batch))
    assert len(results) == 24
    statuses = Counter(r.status for r in results.values())
    assert statuses["unknown"] >= 1 and statuses["transient"] >= 1
    assert set(statuses) <= {"accepted", "unknown", "transient"}
    received = Counter((p.destination, p.part) for p in smsc.received)
    for m in batch:
        first, second = results[(m.message_id, 0)], results[(m.message_id, 1)]
        for part, r in ((1, first), (2, second)):
            if r.status == "transient":  # safe to resend only if the SMSC never saw it
                assert received[(m.to[1:], part)] == 0
                assert (r.error or "").startswith("not connected")
            if r.status == "accepted":
                assert received[(m.to[1:], part)] == 1
        if first.status == "unknown":  # never half a message
            assert second.status == "unknown"
    # the next call reconnects; resending the retryable parts completes the job
    retry = [
        OutboundMessage(
            m.message_id,
            m.to,
            m.sender,
            m.parts,
            m.encoding,
            m.concat_ref,
            parts_to_send=tuple(
                i for i in (0, 1) if results[(m.message_id, i)].status == "transient"
            ),
        )
        for m in batch
        if any(results[(m.message_id, i)].status == "transient" for i in (0, 1))
    ]
    again = gw.submit(retry)
    assert all(r.status == "accepted" for r in again)
    assert smsc.binds == 2
    received = Counter((p.destination, p.part) for p in smsc.received)
    assert max(received.values()) == 1  # nothing was sent twice


def test_a_silent_link_is_declared_dead_after_the_timeout(smsc: TestSMSC, make_gw: Any) -> None:
    gw = make_gw(smsc, timeout=0.5)
    gw.connect()
    smsc.blackhole = True
    t0 = time.monotonic()
    results = gw.submit([msg(1, "+31600000001", "lost?")])
    assert results[0].status == "unknown" and "no response" in (results[0].error or "")
    assert time.monotonic() - t0 < 3
    assert not gw.connected
    smsc.blackhole = False
    assert gw.submit([msg(2, "+31600000002", "back")])[0].status == "accepted"


def test_an_unreachable_centre_gives_transient_results_and_a_clear_connect_error(
    make_gw: Any,
) -> None:
    port = free_port()
    gw = SmppGateway(
        parse_gateway_url(f"smpp://studio@127.0.0.1:{port}?reconnect_max=60"), Secret(PASSWORD)
    )
    with pytest.raises(GatewayError) as err:
        gw.connect()
    assert f"127.0.0.1:{port}" in str(err.value) and PASSWORD not in str(err.value)
    results = gw.submit([msg(1, "+31600000001", "a", "b", ref=1)])
    assert [r.status for r in results] == ["transient", "transient"]
    assert (results[0].error or "").startswith("not connected")
    t0 = time.monotonic()
    gw.submit([msg(2, "+31600000002", "c")])  # within the backoff: no new attempt
    assert time.monotonic() - t0 < 0.2
    assert gw.receive(lambda _: None, 0.1) == 0
    gw.close()


def test_an_idle_link_is_kept_alive_with_enquire_link(smsc: TestSMSC, make_gw: Any) -> None:
    gw = make_gw(smsc, enquire_link=1, timeout=2)
    gw.connect()
    time.sleep(1.1)
    assert gw.enquire_links == 0
    assert gw.receive(lambda _: None, 0.1) == 0  # idle for longer than enquire_link: probe
    assert gw.enquire_links == 1
    gw.receive(lambda _: None, 0.3)  # the answer arrives (or had already)
    assert gw._enquire_sent is None  # answered
    assert gw.connected and smsc.binds == 1


def test_the_password_never_reaches_the_logs(
    smsc: TestSMSC, make_gw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = make_gw(smsc)
    gw.connect()
    gw.submit([msg(1, "+31600000001", "x")])
    gw.close()
    assert "bound to" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD.encode().hex() not in caplog.text


def test_after_the_centre_cuts_an_idle_link_receive_reconnects(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc)
    gw.connect()
    assert smsc.wait_bound()
    smsc.drop_connections()
    assert gw.receive(lambda _: None, 0.3) == 0
    assert smsc.wait_for(lambda: smsc.binds == 2)
    assert smsc.wait_bound()
    smsc.send_mo_async("31677778888", "Studio", "STOP")
    assert [e.text for e in collect(gw, 1) if isinstance(e, InboundMessage)] == ["STOP"]


def test_the_smsc_runs_standalone_and_records_one_json_line_per_part(tmp_path: Path) -> None:
    """Crash tests run the sender in another process and compare this record with the
    ledger, so every line must be on disk as soon as the part arrived."""
    record = tmp_path / "received.jsonl"
    smsc_py = Path(__file__).with_name("smsc.py")
    proc = subprocess.Popen(
        [sys.executable, str(smsc_py), "--port", "0", "--record", str(record)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[1])
        url = f"smpp://studio@127.0.0.1:{port}?rate=100000"
        gw = SmppGateway(parse_gateway_url(url), Secret(PASSWORD))
        results = gw.submit(
            [msg(1, "+31600000001", "hello €"), msg(2, "+31600000002", "a", "b", ref=2)]
        )
        gw.close()
        assert all(r.status == "accepted" for r in results)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(record.read_text().splitlines()) < 3:
            time.sleep(0.05)
        rows = [json.loads(line) for line in record.read_text().splitlines()]  # still running
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    assert len(rows) == 3
    assert {r["message_id"] for r in rows} == {r.provider_id for r in results}
    single = next(r for r in rows if r["destination"] == "31600000001")
    assert (single["text"], single["data_coding"], single["udh"]) == ("hello €", 0, None)
    parts = sorted((r["part"], r["udh"]) for r in rows if r["destination"] == "31600000002")
    assert parts == [(1, "0500030202" + "01"), (2, "0500030202" + "02")]


def test_pacing_keeps_to_the_rate_in_segments_per_second(smsc: TestSMSC, make_gw: Any) -> None:
    gw = make_gw(smsc, rate=4, window=2)
    t0 = time.monotonic()
    results = gw.submit([msg(i, f"+316000005{i:02d}", "x") for i in range(4)])
    elapsed = time.monotonic() - t0
    assert [r.status for r in results] == ["accepted"] * 4
    assert 0.35 < elapsed < 1.5  # burst of 2 (the window), then 4 per second
    assert smsc.binds == 1


def _send_while_receiving(
    smsc: TestSMSC,
    gw: Any,
    send: Callable[[], list[PartResult]],
    handler: Callable[[Sequence[InboundEvent]], None],
    handled: list[tuple[float, InboundEvent]],
) -> tuple[list[PartResult], float]:
    """Run `send` (200 single-part messages) in one thread while another calls
    `gw.receive(handler)`, as the dispatcher does; wait for the 200 receipts in `handled`.
    Returns the results, all accepted, and when the send returned."""
    results: list[PartResult] = []
    done_at: list[float] = []

    def sender() -> None:
        results.extend(send())
        done_at.append(time.monotonic())

    stop = threading.Event()

    def receiver() -> None:
        while not stop.is_set():
            gw.receive(handler, 0.1)

    threads = [threading.Thread(target=sender), threading.Thread(target=receiver)]
    for t in threads:
        t.start()
    threads[0].join(20)
    assert smsc.wait_for(lambda: len(handled) >= 200, 10)
    stop.set()
    threads[1].join(5)
    assert len(results) == 200 and all(r.status == "accepted" for r in results)
    return results, done_at[0]


def test_submit_and_receive_in_two_threads_ack_receipts_while_the_batch_runs(
    smsc: TestSMSC, make_gw: Any
) -> None:
    gw = make_gw(smsc, window=5, rate=400)  # 200 parts take about half a second
    batch = [msg(i, f"+316000006{i:03d}", "x") for i in range(200)]
    handled: list[tuple[float, InboundEvent]] = []
    results, done_at = _send_while_receiving(
        smsc, gw, lambda: gw.submit(batch),
        lambda b: handled.extend((time.monotonic(), e) for e in b), handled)  # fmt: skip
    assert {e.provider_id for _, e in handled} == {r.provider_id for r in results}  # type: ignore[union-attr]
    early = [t for t, _ in handled if t < done_at]
    assert len(early) > 50  # receipts were stored and acknowledged during the batch
    assert smsc.wait_for(lambda: sum(d["status"] == 0 for d in smsc.deliveries) == 200)


def test_provider_ids_reach_on_results_before_their_receipts_reach_a_handler(
    smsc: TestSMSC, make_gw: Any
) -> None:
    """The dispatcher matches receipts to parts by provider id. A receipt can overtake the
    end of the call that sent its part; with `on_results` the id is known by then, so the
    receipt is matched at once instead of waiting for the call to return."""
    gw = make_gw(smsc, window=5, rate=400)  # 200 parts take about half a second
    assert gw.capabilities.early_results
    known: set[str] = set()
    handed: list[PartResult] = []
    lock = threading.Lock()

    def learn(results: Sequence[PartResult]) -> None:
        with lock:
            handed.extend(results)
            known.update(r.provider_id for r in results if r.provider_id)

    strangers: list[str] = []
    handled: list[tuple[float, InboundEvent]] = []

    def handler(batch: Sequence[InboundEvent]) -> None:
        with lock:
            for e in batch:
                if isinstance(e, DeliveryReport) and e.provider_id not in known:
                    strangers.append(e.provider_id)
        handled.extend((time.monotonic(), e) for e in batch)

    batch = [msg(i, f"+316000008{i:03d}", "x") for i in range(200)]
    results, done_at = _send_while_receiving(
        smsc, gw, lambda: gw.submit(batch, on_results=learn), handler, handled)  # fmt: skip
    assert sum(1 for t, _ in handled if t < done_at) > 50  # while the call ran
    # smpp34 may write a receipt before the response to its submit_sm (the dispatcher
    # stores such a report as unmatched and matches it later); all others are known
    assert len(strangers) <= 10, strangers
    assert sorted(handed, key=lambda r: r.message_id) == \
        sorted(results, key=lambda r: r.message_id)  # each result once  # fmt: skip


def test_a_second_call_keeps_the_window_full_while_the_first_waits_for_its_answers(
    smsc: TestSMSC, make_gw: Any
) -> None:
    """The dispatcher keeps two calls running: whichever thread reads the connection sends
    the parts of both, so the SMSC gets the second call's parts while the first one's last
    answers are still outstanding, and each call returns exactly its own results."""
    smsc.receipts = False
    smsc.hold_responses = True
    gw = make_gw(smsc, window=6)
    out: dict[int, list[PartResult]] = {}

    def send(k: int, n: int) -> None:
        out[k] = gw.submit([msg(k * 100 + i, f"+3160001{k}{i:03d}", "hi") for i in range(n)])

    first = threading.Thread(target=send, args=(1, 2))
    first.start()
    assert smsc.wait_for(lambda: len(smsc.received) == 2)
    second = threading.Thread(target=send, args=(2, 10))
    second.start()
    assert smsc.wait_for(lambda: len(smsc.received) == 6)  # the window, from both calls
    time.sleep(0.2)
    assert len(smsc.received) == 6
    smsc.release()
    first.join(10)
    second.join(10)
    assert sorted(r.message_id for r in out[1]) == [100, 101]
    assert sorted(r.message_id for r in out[2]) == [200 + i for i in range(10)]
    assert all(r.status == "accepted" for rs in out.values() for r in rs)


# -- the hot path: PDUs read by hand, one write per round, no stall at the end of a batch ---

CLIENT = smpp_client.Client("127.0.0.1", 1, allow_unknown_opt_params=True)  # parser context
ADDRESS = st.text(alphabet="0123456789+ABCxyz ", max_size=20)


def _data_sm(seq: int, source: str, dest: str, esm: int, dc: int, tlvs: bytes) -> bytes:
    body = (
        b"\0"  # service_type
        + bytes((1, 1)) + source.encode() + b"\0"
        + bytes((0, 0)) + dest.encode() + b"\0"
        + bytes((esm, 0, dc))  # esm_class, registered_delivery, data_coding
        + tlvs
    )  # fmt: skip
    return struct.pack(">IIII", 16 + len(body), smpp_wire.DATA_SM, 0, seq) + body


def _tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


@settings(max_examples=150, deadline=None)
@given(
    source=ADDRESS,
    dest=ADDRESS,
    ton=st.integers(0, 6),
    esm=st.sampled_from([0x00, 0x04, 0x08, 0x40, 0x44]),
    dc=st.sampled_from([0, 1, 3, 8, 0xF0]),
    short=st.binary(max_size=254),
    rid=st.none() | st.text(alphabet="0123456789ABCDEFabc-", max_size=30),
    state=st.none() | st.integers(0, 9),
    net_error=st.none() | st.binary(min_size=3, max_size=3),
    payload=st.none() | st.binary(min_size=1, max_size=400),
    vendor=st.binary(max_size=12),
    seq=st.integers(1, 0x7FFFFFFF),
)
def test_deliver_sm_is_read_as_smpplib_reads_what_smpp34_encoded(
    source: str, dest: str, ton: int, esm: int, dc: int, short: bytes, rid: str | None,
    state: int | None, net_error: bytes | None, payload: bytes | None, vendor: bytes, seq: int,
) -> None:  # fmt: skip
    tlvs = [smpp34.Tlv(0x1400, vendor)]  # a vendor TLV first: skipped, not misread
    if rid is not None:
        tlvs.append(smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, rid.encode() + b"\0"))
    if state is not None:
        tlvs.append(smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([state])))
    if net_error is not None:
        tlvs.append(smpp34.Tlv(smpp34.TLV_NETWORK_ERROR_CODE, net_error))
    if payload is not None:
        tlvs.append(smpp34.Tlv(smpp34.TLV_MESSAGE_PAYLOAD, payload))
    raw = smpp34.DeliverSm(
        dest, source, short, source_addr_ton=ton, esm_class=esm, data_coding=dc, tlvs=tlvs,
        sequence_number=seq,
    ).encode()  # fmt: skip
    fields = smpp_wire.parse_deliver(raw)
    assert fields == smpp_wire.parse_deliver_smpplib(raw, CLIENT)
    assert (fields.command_id, fields.sequence, fields.source_addr, fields.source_ton) == (
        smpp_wire.DELIVER_SM, seq, dest, ton)  # fmt: skip
    assert (fields.destination_addr, fields.esm_class, fields.data_coding) == (source, esm, dc)
    assert fields.short_message == (short or payload or b"")
    assert fields.receipted_message_id == (rid or None)
    assert (fields.message_state, fields.network_error) == (state, net_error)


def test_data_sm_is_read_as_smpplib_reads_it() -> None:
    tlvs = _tlv(smpp_wire.TLV_MESSAGE_PAYLOAD, "Stop ☺".encode("utf-16-be")) + _tlv(
        0x1401, b"vendor"
    )
    raw = _data_sm(77, "31611112222", "Studio", 0x00, 8, tlvs)
    fields = smpp_wire.parse_deliver(raw)
    assert fields == smpp_wire.parse_deliver_smpplib(raw, CLIENT)
    assert (fields.command_id, fields.sequence, fields.source_addr, fields.data_coding) == (
        smpp_wire.DATA_SM, 77, "31611112222", 8)  # fmt: skip
    assert fields.short_message.decode("utf-16-be") == "Stop ☺"


@settings(max_examples=40, deadline=None)
@given(short=st.binary(max_size=40), rid=st.text(alphabet="0123456789", min_size=1, max_size=9))
def test_a_cut_or_inconsistent_deliver_sm_is_refused_with_value_error(
    short: bytes, rid: str
) -> None:
    tlvs = [smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, rid.encode() + b"\0")]
    raw = smpp34.DeliverSm("Studio", "31600000001", short, tlvs=tlvs).encode()
    mandatory_end = len(raw) - 4 - len(rid) - 1
    for cut in range(16, len(raw)):
        shortened = struct.pack(">I", cut) + raw[4:cut]
        if cut != mandatory_end:  # inside a mandatory field, or inside the TLV
            with pytest.raises(ValueError):
                smpp_wire.parse_deliver(shortened)
        else:  # exactly without the TLV: still a complete deliver_sm
            assert smpp_wire.parse_deliver(shortened).receipted_message_id is None
    with pytest.raises(ValueError, match="command_length"):
        smpp_wire.parse_deliver(raw + b"\0")  # header and size disagree
    with pytest.raises(ValueError, match="not deliver_sm"):
        smpp_wire.parse_deliver(raw[:4] + struct.pack(">I", smpp_wire.SUBMIT_SM) + raw[8:])


RECEIPT_VALUE = st.text(alphabet=string.ascii_letters + string.digits + ":-_", max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(RECEIPT_VALUE, min_size=7, max_size=7),
    text=st.none() | st.text(max_size=30),
)
def test_standard_receipts_read_the_same_on_the_fast_and_the_general_path(
    values: list[str], text: str | None
) -> None:
    keys = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
    receipt = " ".join(f"{k}:{v}" for k, v in zip(keys, values, strict=True))
    if text is not None:
        receipt += f" text:{text}"
    fields = smpp_wire.parse_receipt_text(receipt)
    assert fields == smpp_wire.parse_receipt_text_general(receipt)
    assert [fields[k] for k in keys] == values


def test_a_batch_does_not_wait_for_the_delayed_ack_timer_at_its_end() -> None:
    """Without TCP_QUICKACK the SMSC's last answers of a batch sit in its Nagle buffer
    until our delayed ACK (40 ms on Linux) releases them: every batch would end with a
    stall, and a dispatcher calling submit in batches would lose a fifth of its rate."""
    if not hasattr(socket, "TCP_QUICKACK"):
        pytest.skip("TCP_QUICKACK is Linux-only")
    with TestSMSC(relay=False) as server:  # the relay would add a Nagle hop of its own
        url = server.url(window=50, rate=100000)
        gw = SmppGateway(parse_gateway_url(url), Secret(PASSWORD))
        gw.connect()
        took = []
        for k in range(9):
            batch = [msg(k * 100 + i, f"+3161{k:03d}{i:04d}", "hi") for i in range(10)]
            t0 = time.perf_counter()
            results = gw.submit(batch)
            took.append(time.perf_counter() - t0)
            assert [r.status for r in results] == ["accepted"] * 10
            gw.receive(lambda _: None, 0.02)
        gw.close()
    assert sorted(took)[len(took) // 2] < 0.025, took  # about 4 ms; 46 ms when it stalls


def test_concurrent_submit_calls_share_one_window_and_each_gets_its_own_results(
    smsc: TestSMSC, make_gw: Any
) -> None:
    smsc.receipts = False
    smsc.hold_responses = True
    gw = make_gw(smsc, window=4)
    out: dict[int, list[PartResult]] = {}

    def send(k: int) -> None:
        out[k] = gw.submit([msg(k * 100 + i, f"+3160000{k}{i:03d}", "hi") for i in range(30)])

    threads = [threading.Thread(target=send, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    assert smsc.wait_for(lambda: len(smsc.received) == 4)
    time.sleep(0.3)
    assert len(smsc.received) == 4  # the window is the connection's, not each call's
    smsc.release()
    for t in threads:
        t.join(10)
    for k in range(3):
        assert sorted(r.message_id for r in out[k]) == [k * 100 + i for i in range(30)]
        assert all(r.status == "accepted" for r in out[k])
    provider_ids = [r.provider_id for rs in out.values() for r in rs]
    assert len(set(provider_ids)) == 90
    assert Counter(p.destination for p in smsc.received).most_common(1)[0][1] == 1


def test_a_write_that_fails_part_way_counts_only_the_pdus_that_went_out_whole() -> None:
    """The gateway writes a round's submit_sm in one go; when the link fails during the
    write, the PDUs handed over completely may have reached the SMSC (`unknown`), the
    rest certainly did not (resendable). The peer here never reads, so the write stalls."""
    gw = SmppGateway(parse_gateway_url("smpp://studio@127.0.0.1:1?timeout=0.3"), Secret(PASSWORD))
    ours, peer = socket.socketpair()
    try:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ours.settimeout(0.3)
        gw._sock = ours
        pdus = [
            smpp_wire.submit_sm(
                seq, source_addr="Studio", source_ton=5, source_npi=0,
                destination_addr=f"3160000{seq:04d}", dest_ton=1, dest_npi=1,
                short_message=b"x" * (100 + seq % 50),
            )
            for seq in range(1, 2001)
        ]  # fmt: skip
        complete, failure = gw._write(pdus)
        assert failure is not None and failure.startswith("write failed")
        assert 0 < complete < len(pdus)
        ours.shutdown(socket.SHUT_WR)
        received = b""
        peer.settimeout(2)
        while chunk := peer.recv(1 << 16):
            received += chunk
        whole = b"".join(pdus[:complete])
        assert received.startswith(whole)
        assert len(received) < len(whole) + len(pdus[complete])  # the next one is cut short
    finally:
        gw._sock = None
        ours.close()
        peer.close()


def test_a_submit_is_not_held_up_by_an_idle_receive_in_another_thread(
    smsc: TestSMSC, make_gw: Any
) -> None:
    """The dispatcher's receiver thread waits in receive() all the time; between two
    batches it is the one watching the socket, and the next submit() must not queue
    behind that wait (up to 50 ms per round, a third of the rate in batches of 500)."""
    smsc.receipts = False
    gw = make_gw(smsc)
    gw.connect()
    stop = threading.Event()

    def receiver() -> None:
        while not stop.is_set():
            gw.receive(lambda _: None, 0.5)

    worker = threading.Thread(target=receiver)
    worker.start()
    took = []
    try:
        for i in range(12):
            time.sleep(0.01)  # the receiver is back in its wait
            t0 = time.perf_counter()
            [result] = gw.submit([msg(i, f"+3160000{i:04d}", "hi")])
            took.append(time.perf_counter() - t0)
            assert result.status == "accepted"
    finally:
        stop.set()
        worker.join(5)
    assert sorted(took)[len(took) // 2] < 0.015, took  # a round trip: a few ms
