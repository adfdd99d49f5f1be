"""The dispatcher loop on its own: an in-memory source, a scripted gateway, a fake clock.

No database and no network: these tests pin down the sending rules themselves (pacing in
segments, part-level retries with the same concatenation reference, unknown parts never
resent, the suppression check right before a first part, recovery after a crash, the lease).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from core.dispatcher import (
    Dispatcher,
    DispatcherBusy,
    DispatcherConfig,
    EventBatch,
    PartRef,
    PendingMessage,
    _Recorder,
)
from core.gateways.base import (
    Capabilities,
    DeliveryReport,
    InboundHandler,
    InboundMessage,
    OutboundMessage,
    PartResult,
)

# -- test doubles ---------------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that only move when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)

    def wall(self) -> datetime:
        return datetime(2026, 1, 1) + timedelta(seconds=self.now)


@dataclass
class Msg:
    id: int
    mailing: int
    e164: str
    parts: int
    body: str = "hello"


class MemorySource:
    """A DispatchSource over dicts: what the ledger does, without DuckDB."""

    def __init__(self, messages: Sequence[Msg], mailings: dict[int, str] | None = None) -> None:
        self.messages = {m.id: m for m in messages}
        self.mailings = mailings or {m.mailing: "bulk" for m in messages}
        self.state = dict.fromkeys(self.mailings, "sending")
        self.events: list[tuple] = []
        self.submitting: list[tuple] = []
        self.suppressed: set[str] = set()
        self.unmatched: list[tuple] = []
        self.inbound: list[InboundMessage] = []
        self.lease: str | None = None
        self.finished: list[int] = []

    # helpers
    def accepted(self, mid: int) -> set[int]:
        return {e[2] for e in self.events if e[0] == mid and e[3] == "submitted"}

    def final(self, mid: int) -> str | None:
        kinds = {e[3] for e in self.events if e[0] == mid}
        for k in ("rejected", "unknown", "skipped"):
            if k in kinds:
                return k
        if len(self.accepted(mid)) == self.messages[mid].parts:
            return "submitted"
        return None

    # DispatchSource
    def sending_mailings(self) -> list[tuple[int, str]]:
        return [(m, self.mailings[m]) for m, s in sorted(self.state.items()) if s == "sending"]

    def next_messages(self, mailing_id: int, after_id: int, limit: int
                      ) -> tuple[list[PendingMessage], int | None]:  # fmt: skip
        ids = sorted(i for i, m in self.messages.items()
                     if m.mailing == mailing_id and i > after_id)  # fmt: skip
        out = []
        for i in ids[:limit]:
            m = self.messages[i]
            if self.final(i) is None:
                out.append(PendingMessage(i, m.mailing, m.e164, "Sender", m.body, "GSM-7",
                                          m.parts, i % 256, None,
                                          frozenset(self.accepted(i))))  # fmt: skip
        more = len(ids) > limit
        return out, (ids[limit - 1] if more else None)

    def blocked(self, messages: Sequence[PendingMessage]) -> dict[int, str | None]:
        return {m.message_id: "suppressed" for m in messages
                if not m.accepted and m.e164 in self.suppressed}  # fmt: skip

    def append(self, batch: EventBatch) -> None:
        for row in batch.rows():
            (self.submitting if row[3] == "submitting" else self.events).append(row)

    def record(self, batch: EventBatch, *, fold: EventBatch | None = None,
               resolved_unmatched: Sequence[str] = ()) -> None:  # fmt: skip
        self.events.extend(batch.rows())  # `fold` was appended already: state is derived
        self.unmatched = [u for u in self.unmatched if u[4] not in set(resolved_unmatched)]

    def find_parts(self, provider_ids: Sequence[str]) -> dict[str, PartRef]:
        out = {}
        for e in self.events:
            if e[3] == "submitted" and e[4] in provider_ids:
                out[e[4]] = (e[0], e[1], e[2])
        return out

    def save_unmatched(self, reports: EventBatch) -> None:
        self.unmatched.extend(reports.rows())

    def load_unmatched(self) -> EventBatch:
        b = EventBatch()
        for row in self.unmatched:
            b.add(*row)
        return b

    def record_inbound(self, messages: Sequence[InboundMessage], received_at: datetime) -> None:
        self.inbound.extend(messages)

    def recover(self) -> list[PartRef]:
        out = []
        for mid, mg, part, *_ in self.submitting:
            sent = sum(1 for s in self.submitting if s[0] == mid and s[2] == part)
            done = sum(1 for e in self.events if e[0] == mid and e[2] == part
                       and e[3] in ("submitted", "retry", "rejected", "unknown"))  # fmt: skip
            if sent > done and (mid, mg, part) not in out:
                out.append((mid, mg, part))
        return out

    def complete_mailing(self, mailing_id: int) -> bool:
        if any(self.final(i) is None for i, m in self.messages.items()
               if m.mailing == mailing_id):  # fmt: skip
            return False
        self.state[mailing_id] = "finished"
        self.finished.append(mailing_id)
        return True

    def acquire_lease(self, owner: str) -> str | None:
        if self.lease not in (None, owner):
            return self.lease
        self.lease = owner
        return None

    def renew_lease(self, owner: str) -> bool:
        return self.lease == owner

    def release_lease(self, owner: str) -> None:
        if self.lease == owner:
            self.lease = None


Script = Callable[[OutboundMessage, int, int], PartResult | None]


@dataclass
class FakeGateway:
    """Accepts everything unless `script(message, part, attempt)` says otherwise.

    Follows the gateway contract: after a permanent refusal or an unknown the message's
    remaining parts are not sent and are reported the same way.
    """

    clock: FakeClock
    throughput: float = 1000.0
    window: int = 10
    script: Script | None = None
    sent: list[tuple[int, int, int, float]] = field(default_factory=list)  # mid, part, ref, t
    attempts: dict[tuple[int, int], int] = field(default_factory=dict)
    reports: list[DeliveryReport] = field(default_factory=list)
    name: str = "fake"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(throughput=self.throughput, window=self.window)

    def connect(self) -> None:
        pass

    def submit(self, messages: Sequence[OutboundMessage]) -> list[PartResult]:
        results = []
        for m in messages:
            stop: PartResult | None = None
            for p in m.pending_parts():
                if stop is not None:
                    results.append(PartResult(m.message_id, p, stop.status,
                                              error=f"not sent: {stop.error}"))  # fmt: skip
                    continue
                attempt = self.attempts.get((m.message_id, p), 0) + 1
                self.attempts[(m.message_id, p)] = attempt
                r = self.script(m, p, attempt) if self.script else None
                if r is None:
                    self.sent.append((m.message_id, p, m.concat_ref, self.clock.now))
                    pid = f"id-{m.message_id}-{p}"
                    r = PartResult(m.message_id, p, "accepted", pid)
                    self.reports.append(DeliveryReport(pid, "delivered"))
                elif r.status == "unknown":
                    self.sent.append((m.message_id, p, m.concat_ref, self.clock.now))
                results.append(r)
                if r.status in ("permanent", "unknown"):
                    stop = r
        return results

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        if not self.reports:
            return 0
        batch, self.reports = self.reports, []
        handler(batch)
        return len(batch)

    def close(self) -> None:
        pass


def make(messages: Sequence[Msg], *, script: Script | None = None, rate: float = 1000.0,
         window: int = 10, **config: object) -> tuple[Dispatcher, MemorySource, FakeGateway,
                                                      FakeClock]:  # fmt: skip
    clock = FakeClock()
    source = MemorySource(messages)
    gateway = FakeGateway(clock, throughput=rate, window=window, script=script)
    dispatcher = Dispatcher(source, gateway, config=DispatcherConfig(**config),  # type: ignore[arg-type]
                            clock=clock, sleep=clock.sleep, wall=clock.wall)  # fmt: skip
    return dispatcher, source, gateway, clock


def numbered(n: int, parts: int = 1, mailing: int = 1, start: int = 1) -> list[Msg]:
    return [Msg(start + i, mailing, f"+3161{start + i:07d}", parts,
                "x" * (153 * parts if parts > 1 else 20)) for i in range(n)]  # fmt: skip


# -- pacing ----------------------------------------------------------------------------------


def test_the_rate_counts_segments_so_three_part_messages_go_three_times_slower() -> None:
    single, _, gw1, clock1 = make(numbered(300, parts=1), rate=100.0)
    start = clock1.now
    single.run_until_idle()
    single_time = clock1.now - start

    triple, _, gw3, clock3 = make(numbered(300, parts=3), rate=100.0)
    start = clock3.now
    triple.run_until_idle()
    triple_time = clock3.now - start

    assert len(gw1.sent) == 300 and len(gw3.sent) == 900
    assert 2.5 <= single_time <= 3.2  # 300 segments at 100/s, less the first batch's budget
    assert 8.5 <= triple_time <= 9.2  # 900 segments at 100/s
    # no second of sending carries more than the rate plus one batch's budget (25 segments)
    times = [t for *_, t in gw3.sent]
    for t0 in times:
        assert sum(1 for t in times if t0 <= t < t0 + 1.0) <= 100 + 25


def test_a_batch_never_exceeds_its_segment_budget() -> None:
    dispatcher, _, gw, _ = make(numbered(100, parts=2), rate=40.0)  # budget 10 segments
    dispatcher.run_until_idle()
    by_time: dict[float, int] = {}
    for _, _, _, t in gw.sent:
        by_time[t] = by_time.get(t, 0) + 1
    assert max(by_time.values()) <= 10


# -- retries and refusals ---------------------------------------------------------------------


def test_a_refused_part_is_retried_alone_with_the_same_concatenation_reference() -> None:
    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if m.message_id == 5 and part == 1 and attempt == 1:
            return PartResult(m.message_id, part, "throttled", error="ESME_RTHROTTLED")
        return None

    dispatcher, source, gw, _ = make(numbered(10, parts=3), script=script)
    dispatcher.run_until_idle()
    parts_of_5 = [(p, ref) for mid, p, ref, _ in gw.sent if mid == 5]
    assert sorted(p for p, _ in parts_of_5) == [0, 1, 2]  # each accepted part exactly once
    assert {ref for _, ref in parts_of_5} == {5}
    assert gw.attempts[(5, 0)] == 1 and gw.attempts[(5, 1)] == 2
    retry = [e for e in source.events if e[0] == 5 and e[3] == "retry"]
    assert [(e[2], e[5]) for e in retry] == [(1, "ESME_RTHROTTLED")]
    assert source.final(5) == "submitted"
    # every outcome answers exactly one `submitting`: nothing is left in flight
    assert source.recover() == []


def test_an_unknown_part_makes_the_message_unknown_and_nothing_more_of_it_is_sent() -> None:
    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if m.message_id == 3 and part == 0:
            return PartResult(m.message_id, part, "unknown", error="connection lost")
        return None

    dispatcher, source, gw, _ = make(numbered(5, parts=3), script=script)
    dispatcher.run_until_idle()
    assert [(mid, p) for mid, p, *_ in gw.sent if mid == 3] == [(3, 0)]
    assert gw.attempts.get((3, 1)) is None  # never handed to the provider
    assert source.final(3) == "unknown"
    assert {source.final(i) for i in (1, 2, 4, 5)} == {"submitted"}
    assert source.recover() == []


def test_a_permanent_refusal_is_final_with_its_reason() -> None:
    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if m.message_id == 2:
            return PartResult(m.message_id, part, "permanent", error="ESME_RINVDSTADR")
        return None

    dispatcher, source, gw, _ = make(numbered(3), script=script)
    dispatcher.run_until_idle()
    assert source.final(2) == "rejected"
    assert [e[5] for e in source.events if e[0] == 2] == ["ESME_RINVDSTADR"]
    assert gw.attempts[(2, 0)] == 1


def test_transient_failures_back_off_and_give_up_after_the_attempt_limit() -> None:
    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if m.message_id == 1:
            return PartResult(m.message_id, part, "transient", error="ESME_RSYSERR")
        return None

    dispatcher, source, gw, clock = make(numbered(3), script=script, max_attempts=4)
    start = clock.now
    dispatcher.run_until_idle()
    assert gw.attempts[(1, 0)] == 4
    assert source.final(1) == "rejected"
    last = [e for e in source.events if e[0] == 1][-1]
    assert last[5].startswith("gave up after 4 attempts")
    assert clock.now - start >= 0.5 + 1.0 + 2.0  # exponential backoff between attempts


def test_when_every_part_of_a_batch_is_refused_for_now_the_link_is_down_not_the_messages(
) -> None:  # fmt: skip
    down_until = 1000.0 + 20.0

    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if dispatcher.clock() < down_until:
            return PartResult(m.message_id, part, "transient", error="not connected: refused")
        return None

    dispatcher, source, _, clock = make(numbered(20), script=script, max_attempts=3)
    dispatcher.run_until_idle()
    assert clock.now >= down_until
    assert all(source.final(i) == "submitted" for i in range(1, 21))  # no attempt was counted


def test_a_throttled_batch_slows_the_pace_and_the_mailing_still_completes() -> None:
    throttle_until = 1000.0 + 2.0

    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if dispatcher.clock() < throttle_until:
            return PartResult(m.message_id, part, "throttled", error="ESME_RTHROTTLED")
        return None

    dispatcher, source, gw, _ = make(numbered(400), script=script, rate=200.0)
    paces = []
    original = dispatcher._settle

    def spy(*args: object) -> None:
        original(*args)  # type: ignore[arg-type]
        paces.append(dispatcher._factor)

    dispatcher._settle = spy  # type: ignore[method-assign]
    dispatcher.run_until_idle()
    assert min(paces) < 1.0  # slowed down while throttled ...
    assert paces[-1] == 1.0  # ... and recovered
    assert len(gw.sent) == 400 and len({mid for mid, *_ in gw.sent}) == 400
    assert all(source.final(i) == "submitted" for i in range(1, 401))


# -- suppression, recovery, reports ----------------------------------------------------------


def test_the_suppression_list_is_checked_again_right_before_a_first_part() -> None:
    dispatcher, source, gw, _ = make(numbered(10), rate=8.0)  # batches of 2 messages
    source.suppressed.add("+31610000007")  # a STOP arrived after the snapshot
    dispatcher.run_until_idle()
    assert 7 not in {mid for mid, *_ in gw.sent}
    assert source.final(7) == "skipped"
    assert len(gw.sent) == 9


def test_a_message_whose_first_part_was_accepted_is_never_stopped_halfway() -> None:
    def script(m: OutboundMessage, part: int, attempt: int) -> PartResult | None:
        if m.message_id == 1 and part == 1 and attempt == 1:
            source.suppressed.add(m.to)  # the STOP arrives between two attempts
            return PartResult(m.message_id, part, "throttled", error="ESME_RTHROTTLED")
        return None

    dispatcher, source, gw, _ = make(numbered(2, parts=2), script=script)
    dispatcher.run_until_idle()
    assert sorted(p for mid, p, *_ in gw.sent if mid == 1) == [0, 1]
    assert source.final(1) == "submitted"


def test_after_a_crash_parts_in_flight_become_unknown_and_are_never_resent() -> None:
    dispatcher, source, gw, _ = make(numbered(6, parts=2))
    # the previous process recorded `submitting` for message 2 (both parts) and for part 1
    # of message 4 whose part 0 had been accepted, then died
    for mid, part in ((2, 0), (2, 1), (4, 0), (4, 1)):
        source.submitting.append((mid, 1, part, "submitting", None, None, datetime(2026, 1, 1)))
    source.events.append((4, 1, 0, "submitted", "old-4-0", None, datetime(2026, 1, 1)))
    dispatcher.run_until_idle()
    assert source.final(2) == "unknown" and source.final(4) == "unknown"
    sent = {mid for mid, *_ in gw.sent}
    assert sent == {1, 3, 5, 6}
    assert dispatcher.counters["recovered_unknown"] == 2


def test_delivery_reports_are_matched_to_parts_by_provider_id() -> None:
    dispatcher, source, _, _ = make(numbered(4, parts=2))
    dispatcher.run_until_idle()
    delivered = [e for e in source.events if e[3] == "delivered"]
    assert sorted((e[0], e[2]) for e in delivered) == [(i, p) for i in range(1, 5) for p in (0, 1)]
    assert all(e[4] == f"id-{e[0]}-{e[2]}" for e in delivered)


def test_a_report_that_overtakes_its_submit_is_kept_and_matched_later() -> None:
    dispatcher, source, _, clock = make(numbered(1))
    rec = dispatcher.recorder
    rec.inbound([DeliveryReport("early-1", "delivered", None)])  # before the outcome
    assert [u[4] for u in source.unmatched] == ["early-1"]  # stored before acknowledging
    outcome = EventBatch()
    outcome.add(1, 1, 0, "submitted", "early-1", None, clock.wall())
    rec.learn(outcome)  # the sender tells the recorder the new provider ids ...
    source.append(outcome)  # ... writes its outcomes, and the recorder folds them
    rec.fold(outcome)
    assert source.unmatched == []
    assert [(e[0], e[2], e[3]) for e in source.events if e[3] == "delivered"] == [(1, 0,
                                                                                   "delivered")]


def test_a_finished_mailing_is_marked_finished_and_others_keep_going() -> None:
    messages = numbered(3, mailing=1) + numbered(3, mailing=2, start=10)
    dispatcher, source, gw, _ = make(messages)
    dispatcher.run_until_idle()
    assert sorted(source.finished) == [1, 2]
    assert len(gw.sent) == 6


def test_test_sends_go_before_bulk_mailings() -> None:
    messages = [*numbered(50, mailing=1), Msg(100, 2, "+31699999999", 1)]
    clock = FakeClock()
    source = MemorySource(messages, mailings={1: "bulk", 2: "test"})
    source.sending_mailings = lambda: [(2, "test"), (1, "bulk")]  # type: ignore[method-assign]
    gw = FakeGateway(clock, throughput=40.0)
    Dispatcher(source, gw, clock=clock, sleep=clock.sleep, wall=clock.wall).run_until_idle()
    assert gw.sent[0][0] == 100


# -- one dispatcher per database -----------------------------------------------------------------


def test_a_second_dispatcher_for_the_same_database_is_refused() -> None:
    clock = FakeClock()
    source = MemorySource(numbered(1))
    first = Dispatcher(source, FakeGateway(clock), key="/db/a", clock=clock, sleep=clock.sleep)
    second = Dispatcher(source, FakeGateway(clock), key="/db/a", clock=clock, sleep=clock.sleep)
    first.start()
    try:
        with pytest.raises(DispatcherBusy, match="already sending"):
            second.start()
    finally:
        first.stop()
    second.start()  # once the first stopped, the next one may run
    second.stop()


def test_a_live_lease_holder_in_another_process_is_respected() -> None:
    clock = FakeClock()
    source = MemorySource(numbered(1))
    source.lease = "otherhost:123:abc"
    dispatcher = Dispatcher(source, FakeGateway(clock), key="/db/b", clock=clock)
    with pytest.raises(DispatcherBusy, match="otherhost"):
        dispatcher.start()
    assert source.lease == "otherhost:123:abc"


# -- two submit calls in flight (the threaded sender) -------------------------------------------


class GatedGateway(FakeGateway):
    """A FakeGateway whose submit calls wait until the test lets them return, one by one:
    what is in flight while they run can be looked at."""

    def __init__(self, clock: FakeClock, **kw: object) -> None:
        super().__init__(clock, **kw)  # type: ignore[arg-type]
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.calls: list[int] = []  # messages per call, in the order they started
        self.gates: list[threading.Event] = []

    def submit(self, messages: Sequence[OutboundMessage]) -> list[PartResult]:
        gate = threading.Event()
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            self.calls.append(len(messages))
            self.gates.append(gate)
        gate.wait(10)
        try:
            with self.lock:
                return super().submit(messages)
        finally:
            with self.lock:
                self.running -= 1

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        with self.lock:
            if not self.reports:
                batch = []
            else:
                batch, self.reports = self.reports, []
        if not batch:
            time.sleep(min(timeout, 0.01))
            return 0
        handler(batch)
        return len(batch)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_two_submit_calls_run_at_once_and_share_the_batch_size_so_a_crash_bound_holds() -> None:
    """While one call waits for its last answers the next one already fills the window;
    the two calls together carry at most `batch_size` messages, so a crash at any moment
    leaves at most `batch_size` messages `submitting` without an outcome."""
    source = MemorySource(numbered(40))
    gateway = GatedGateway(FakeClock(), throughput=1e6, window=10)
    dispatcher = Dispatcher(source, gateway, config=DispatcherConfig(batch_size=10))
    dispatcher.start()
    try:
        assert wait_until(lambda: gateway.running == 2)
        time.sleep(0.1)
        assert gateway.running == 2 and gateway.calls == [5, 5]  # no third call meanwhile
        assert sum(1 for mid, *_ in source.recover()) <= 10  # what a crash would leave
        released = 0
        while not source.finished:
            with gateway.lock:
                waiting = [g for g in gateway.gates if not g.is_set()]
            if waiting:
                waiting[0].set()
                released += 1
                time.sleep(0.01)
                assert len(source.recover()) <= 10
            else:
                time.sleep(0.005)
            assert released <= 20, "more calls than the 40 messages need"
    finally:
        for g in gateway.gates:
            g.set()
        dispatcher.stop()
    assert gateway.most_running == 2
    assert sorted(mid for mid, *_ in gateway.sent) == list(range(1, 41))
    assert source.recover() == []  # every `submitting` has its outcome
    assert source.finished == [1]


def test_with_cheap_appends_a_report_is_stored_while_a_group_commit_is_still_running() -> None:
    """With a journal behind the source (`cheap_appends`), the receiver stores reports in
    its own thread: a slow group commit never holds up an acknowledgement (an SMSC whose
    receipts wait for their answer slows down)."""
    source = MemorySource(numbered(1))
    source.cheap_appends = True  # type: ignore[attr-defined]
    entered, release = threading.Event(), threading.Event()
    record = source.record

    def slow(batch: EventBatch, *, fold: EventBatch | None = None,
             resolved_unmatched: Sequence[str] = ()) -> None:  # fmt: skip
        entered.set()
        release.wait(10)
        record(batch, fold=fold, resolved_unmatched=resolved_unmatched)

    source.record = slow  # type: ignore[method-assign]
    rec = _Recorder(source, FakeClock().wall, DispatcherConfig(record_interval=0.0),
                    time.monotonic)  # fmt: skip
    rec.start()
    try:
        rec.learn_results([PartResult(1, 0, "accepted", "p-1")], {1: 1})
        outcome = EventBatch()
        outcome.add(1, 1, 0, "submitted", "p-1")
        rec.fold(outcome)  # a group commit starts, and takes its time
        assert entered.wait(5)
        t0 = time.monotonic()
        rec.inbound([DeliveryReport("p-1", "delivered")])  # returns once stored
        assert time.monotonic() - t0 < 1.0 and not release.is_set()
        assert [(e[0], e[3]) for e in source.events] == [(1, "delivered")]
        release.set()
        rec.flush()  # the next group commit folds the report
    finally:
        release.set()
        rec.stop()
    assert rec.reports == 1


def test_delivery_reports_are_stored_at_once_and_folded_with_the_next_group_commit() -> None:
    """The receiver acknowledges a report only once it is stored, and an SMSC whose
    receipts stay unanswered slows down: reports are appended within `report_interval`
    rather than waiting for the (more expensive) group commit that folds them."""
    source = MemorySource(numbered(1))
    folded: list[EventBatch] = []
    record = source.record

    def spy(batch: EventBatch, *, fold: EventBatch | None = None,
            resolved_unmatched: Sequence[str] = ()) -> None:  # fmt: skip
        folded.append(fold or EventBatch())
        record(batch, fold=fold, resolved_unmatched=resolved_unmatched)

    source.record = spy  # type: ignore[method-assign]
    config = DispatcherConfig(record_interval=3600.0, report_interval=0.0)
    clock = FakeClock()
    rec = _Recorder(source, clock.wall, config, time.monotonic)
    rec.start()
    try:
        rec.flush()  # a group commit just happened: the next one is an hour away
        rec.learn_results([PartResult(1, 0, "accepted", "p-1")], {1: 1})
        t0 = time.monotonic()
        rec.inbound([DeliveryReport("p-1", "delivered")])  # returns once stored
        assert time.monotonic() - t0 < 1.0
        assert [(e[0], e[2], e[3], e[4]) for e in source.events] == [(1, 0, "delivered", "p-1")]
        assert not any(len(b) for b in folded)  # not folded yet
        rec.flush()
        assert [(row[0], row[3]) for row in folded[-1].rows()] == [(1, "delivered")]
        assert len(source.events) == 1  # folded, not appended twice
    finally:
        rec.stop()
    assert rec.reports == 1 and source.unmatched == []
