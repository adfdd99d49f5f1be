"""The dispatcher: drains the outbox through a gateway, exactly once, and records everything.

Shape (after listmonk's manager): the loop depends on two narrow interfaces, a
`DispatchSource` (which mailings are sending, the next messages of one, record events,
record inbound messages) and a `core.gateways.base.Gateway`, so it runs against an
in-memory source and a fake gateway in tests and against the DuckDB ledger
(`core.ledger.LedgerSource`) in the app.

Five threads when started (`start()`), or one when driven inline (`run_until_idle()`):

* the **sender** takes a batch of queued messages: retries that are due first, then each
  sending mailing in turn (test sends first, then oldest first). It checks the suppression
  list again for messages none of whose parts were accepted yet, waits for its rate budget
  (counted in *segments*: a 3-part message costs 3), writes the batch's `submitting` events
  durably (in the same insert as the outcomes settled since the last one) and hands the
  batch to a lane. When a call returns, the sender turns its results into outcomes.
  Throttling and transient refusals come back as retries with exponential backoff; a
  throttled batch also halves the pace, which recovers step by step. A refused part is
  retried alone with the same concatenation reference; an accepted part is never sent
  again; an `unknown` part (no answer before the link dropped) makes its message
  `unknown`, never resent.
* two **lanes** run `gateway.submit`, one call each, so that while one call waits for its
  last answers the other keeps the gateway's window full (a single call would leave the
  window idle at the end of every batch, and while the next batch is prepared). The two
  calls share `batch_size`: a crash still leaves at most `batch_size` messages uncertain.
  Gateways with `early_results` hand the provider ids over while the call runs.
* the **receiver** calls `gateway.receive`; its handler returns only after the batch is
  stored, so a report or a STOP the provider considers delivered is stored. With a journal
  behind the ledger (`cheap_appends`), the receiver and the sender store their events in
  their own threads (a journal write) instead of waiting for the recorder, which may be in
  the middle of a group commit.
* the **recorder** folds outcomes into each message's state, stores delivery reports
  (matched to parts by provider id; a report that cannot be matched yet is stored as
  unmatched and matched later) and replies. Whatever is waiting goes into one transaction
  every `record_interval` (folding costs milliseconds whatever its size), except reports
  the receiver holds unacknowledged: an SMSC whose receipts stay unanswered slows down, so
  they are appended at once (to the ledger's journal: see core.journal) and folded with
  the next group commit; after a crash `DispatchSource.recover` folds them.

Exactly one dispatcher runs per database: a process-wide registry refuses a second one in
the same process, and a lease row (owner, heartbeat) in the database makes another process
wait for a stale or dead holder. After a crash, `start()` first marks every part that was
`submitting` without an outcome as `unknown`: the only uncertain messages, at most
`batch_size` per crash, and at most the gateway's window per dropped connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from core.errors import StudioError
from core.gateways.base import (
    DeliveryReport,
    Gateway,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    PartResult,
)
from core.segments import analyze

log = logging.getLogger(__name__)

PartRef = tuple[int, int, int]  # (message_id, mailing_id, part index)
_MAX_PARTS = 255  # parts a message can have at most (the UDH's part count is one octet)

REPORT_EVENT = {
    "delivered": "delivered",
    "undelivered": "undelivered",
    "expired": "expired",
    "failed": "failed",
    "unknown": "report_unknown",
}  # DeliveryReport.state -> event; "enroute" is not final and is not recorded


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DispatcherBusy(StudioError):
    """Another dispatcher already sends for this database."""


# -- what the loop works on --------------------------------------------------------------
@dataclass(slots=True)
class PendingMessage:
    """A message that still needs a submit, as the source hands it out."""

    message_id: int
    mailing_id: int
    e164: str
    sender: str
    body: str
    encoding: str
    parts: int
    concat_ref: int
    shift_table: str | None = None
    accepted: frozenset[int] = frozenset()  # parts the provider already accepted
    attempts: int = 0  # transient refusals so far (this run)

    def parts_to_send(self) -> tuple[int, ...]:
        return tuple(p for p in range(self.parts) if p not in self.accepted)

    @property
    def cost(self) -> int:
        """Segments this message still costs."""
        return self.parts - len(self.accepted)


class EventBatch:
    """Events in columns (cheap to build per part, cheap to hand to Arrow)."""

    __slots__ = ("event", "mailing_id", "message_id", "part", "provider_id", "reason", "ts")

    def __init__(self) -> None:
        self.message_id: list[int] = []
        self.mailing_id: list[int] = []
        self.part: list[int | None] = []
        self.event: list[str] = []
        self.provider_id: list[str | None] = []
        self.reason: list[str | None] = []
        self.ts: list[datetime] = []

    def add(self, message_id: int, mailing_id: int, part: int | None, event: str,
            provider_id: str | None = None, reason: str | None = None,
            ts: datetime | None = None) -> None:  # fmt: skip
        self.message_id.append(message_id)
        self.mailing_id.append(mailing_id)
        self.part.append(part)
        self.event.append(event)
        self.provider_id.append(provider_id)
        self.reason.append(reason)
        self.ts.append(ts if ts is not None else utc_now())

    def extend(self, other: EventBatch) -> None:
        for name in self.__slots__:
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.event)

    def rows(self) -> Iterator[tuple[Any, ...]]:
        return zip(self.message_id, self.mailing_id, self.part, self.event, self.provider_id,
                   self.reason, self.ts, strict=True)  # fmt: skip


class DispatchSource(Protocol):
    """What the dispatcher needs from storage (the ledger, or a dict in tests).

    Every `record*` method is durable when it returns.
    """

    def sending_mailings(self) -> list[tuple[int, str]]:
        """(mailing id, kind) of mailings in state `sending`, in the order to serve them."""

    def next_messages(self, mailing_id: int, after_id: int, limit: int
                      ) -> tuple[list[PendingMessage], int | None]:
        """Up to about `limit` messages needing a submit with id > after_id, ascending, and
        the id to continue after (None: nothing further in this mailing)."""

    def blocked(self, messages: Sequence[PendingMessage]) -> dict[int, str | None]:
        """Messages that must not be submitted now: message id -> reason to record them
        `skipped` with, or None to leave them alone (their mailing stopped sending)."""

    def append(self, batch: EventBatch) -> None:
        """Append events as they are, without folding them into message state: the
        sender's `submitting` events with the outcomes settled since its last append, and
        the delivery reports the recorder stores at once; `record(..., fold=...)` folds them
        next, and `recover` after a crash. A source may say `cheap_appends = True` when
        this is cheap and thread-safe: the dispatcher then calls it from the sending and
        receiving threads themselves, concurrently with `record`."""

    def record(self, batch: EventBatch, *, fold: EventBatch | None = None,
               resolved_unmatched: Sequence[str] = ()) -> None:
        """Append `batch` and fold it, and `fold` (already appended), into message state;
        delete the `unmatched_reports` now resolved."""

    def find_parts(self, provider_ids: Sequence[str]) -> dict[str, PartRef]: ...

    def save_unmatched(self, reports: EventBatch) -> None: ...

    def load_unmatched(self) -> EventBatch: ...

    def record_inbound(self, messages: Sequence[InboundMessage], received_at: datetime
                       ) -> None:
        """Store replies and apply STOP/START to the suppression list."""

    def recover(self) -> list[PartRef]:
        """After a crash: bring message state up to date with the events, and return the
        parts recorded `submitting` without an outcome."""

    def complete_mailing(self, mailing_id: int) -> bool:
        """Mark the mailing finished if no message of it still needs a submit."""

    def acquire_lease(self, owner: str) -> str | None:
        """Take the lease; None on success, else a description of the live holder."""

    def renew_lease(self, owner: str) -> bool: ...

    def release_lease(self, owner: str) -> None: ...


@dataclass
class DispatcherConfig:
    """Knobs; the defaults suit the SMPP and simulator gateways."""

    # Messages handed to the gateway and not yet settled, at most: what a crash can leave
    # `unknown`. Default from the gateway window. The threaded sender splits it over
    # `pipeline` overlapping submit calls; driven inline, one call carries it all.
    batch_size: int | None = None
    pipeline: int = 2  # submit calls in flight at once (threaded): no idle window between
    rate: float | None = None  # segments per second; default the gateway's throughput
    tick: float = 0.25  # a batch holds about rate * tick segments (smooth pacing)
    max_attempts: int = 8  # transient refusals of one message before it is rejected
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    prefetch: int = 5000  # messages read from the source at a time
    idle_poll: float = 0.5  # seconds between looks for new sending mailings when idle
    heartbeat: float = 5.0
    provider_map_size: int = 500_000  # provider ids remembered for matching reports
    # The group commit: events the journal holds are appended to the table and folded into
    # each message's state at most this often (each costs ~10 ms of CPU plus ~2 µs per event).
    record_interval: float = 0.5
    # Reports the receiver holds unacknowledged are stored at most this often. By default
    # at once: an SMSC waiting for its deliver_sm_resp slows down (the test SMSC by 5-20%
    # at 50 ms, 15-35% at 100 ms), and storing them is a journal write (core.journal,
    # ~0.2 ms of CPU), not a DuckDB commit.
    report_interval: float = 0.0
    unmatched_memory: float = 600.0  # seconds an unmatched report is retried in memory


@dataclass(slots=True)
class _Cursor:
    mailing_id: int
    kind: str
    after: int = 0
    exhausted: bool = False
    buffer: deque[PendingMessage] = field(default_factory=deque)
    outstanding: int = 0  # loaded and not yet final: buffered, waiting to retry, in flight
    recheck_at: float = 0.0


class _Flight:
    """One submit call: what goes out, and what came back."""

    __slots__ = ("batch", "error", "id", "mailing_of", "outbound", "recorder", "results")

    def __init__(self, flight_id: int, batch: list[PendingMessage],
                 outbound: list[OutboundMessage], recorder: _Recorder | None) -> None:  # fmt: skip
        self.id = flight_id
        self.batch = batch
        self.outbound = outbound
        self.recorder = recorder
        self.mailing_of = {m.message_id: m.mailing_id for m in batch}
        self.results: list[PartResult] | None = None
        self.error = ""

    def learn(self, results: Sequence[PartResult]) -> None:
        """Remember the provider ids of accepted parts (reports are matched on them)."""
        if self.recorder is not None:
            self.recorder.learn_results(results, self.mailing_of)


_LAST_FLIGHT = _Flight(0, [], [], None)  # queued when the sending thread ends: lanes stop


@lru_cache(maxsize=4096)
def _split(body: str, shift: str | None) -> tuple[tuple[str, ...], str]:
    info = analyze(body, shift)
    return info.parts, info.encoding


# -- the recorder: the one writer of outcomes, reports and replies --------------------------
@dataclass
class _Job:
    append: EventBatch | None = None  # the sender's events, to append as they are (durably)
    fold: EventBatch | None = None  # outcomes appended (or in `append`), to fold
    reports: list[DeliveryReport] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    flush: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class _Recorder:
    """Groups waiting jobs into one transaction; matches reports to parts by provider id."""

    def __init__(self, source: DispatchSource, wall: Callable[[], datetime],
                 config: DispatcherConfig, clock: Callable[[], float]) -> None:  # fmt: skip
        self.source = source
        self.wall = wall
        self.clock = clock
        self.config = config
        self.parts: dict[str, PartRef] = {}  # provider id -> part, newest last
        self._parts_lock = threading.Lock()
        self.orphans: dict[str, tuple[str, str | None, datetime, float]] = {}
        self.unfolded = EventBatch()  # reports appended by `_stage`, folded by `_write`
        self.error: BaseException | None = None
        self.reports = 0
        self.unmatched = 0
        # With a source whose appends are cheap (a journal write), the sender's events and
        # the receiver's reports are stored in the caller's own thread: a group commit in
        # progress (tens of milliseconds) never holds up an acknowledgement or a batch.
        # `_memory` guards what those threads share with the writer thread.
        self.direct = bool(getattr(source, "cheap_appends", False))
        self._memory = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- lifecycle --
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sms-recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    # -- entry points --
    def _urgent(self) -> bool:
        """A flush or a reply (a STOP must count at once) is waiting, or enough work
        gathered: commit now (called holding `_cond`)."""
        size = 0
        for job in self._queue:
            if job.flush or job.inbound:
                return True
            size += len(job.fold or ()) + len(job.reports) + len(job.inbound)
        return size >= 20_000

    @staticmethod
    def _stageable(job: _Job) -> bool:
        """Jobs a quick insert serves: the sender's events and the receiver's reports."""
        if job.inbound or job.flush:
            return False
        return job.append is not None or (bool(job.reports) and job.fold is None)

    def put(self, job: _Job, wait: bool) -> None:
        if self.error is not None:
            raise StudioError(f"the ledger cannot be written: {self.error}")
        if self._thread is None:  # inline
            self._process([job])
        elif self.direct and self._stageable(job):
            self._process([job], stage=True)  # here: a journal write, durable on return
            with self._cond:
                self._cond.notify_all()  # the writer folds them with its next group commit
        else:
            with self._cond:
                self._queue.append(job)
                self._cond.notify_all()
            while wait and not job.done.wait(1.0):
                thread = self._thread
                if thread is None or not thread.is_alive():  # stopped meanwhile: do it here
                    with self._cond:
                        left = list(self._queue)
                        self._queue.clear()
                    self._process(left)
        if wait and job.error is not None:
            raise StudioError(f"the ledger cannot be written: {job.error}") from job.error

    def fold(self, batch: EventBatch) -> None:
        """Fold outcomes the sender already appended into message state (soon, not now)."""
        if len(batch):
            self.put(_Job(fold=batch), wait=False)

    def append(self, batch: EventBatch, *, fold: EventBatch) -> None:
        """Append the sender's events durably, now (in one insert with the reports waiting
        to be stored); fold `fold` (outcomes among them) with the next group commit."""
        self.put(_Job(append=batch, fold=fold), wait=True)

    def inbound(self, events: Sequence[InboundEvent]) -> None:
        reports = [e for e in events if isinstance(e, DeliveryReport)]
        messages = [e for e in events if isinstance(e, InboundMessage)]
        self.put(_Job(reports=reports, inbound=messages), wait=True)

    def flush(self) -> None:
        self.put(_Job(flush=True), wait=True)

    def load_unmatched(self) -> None:
        old = self.source.load_unmatched()
        now = self.clock()
        for _, _, _, event, pid, reason, ts in old.rows():
            self.orphans[pid] = (event, reason, ts, now)
        if self.orphans:
            found = self.source.find_parts(list(self.orphans))
            self.parts.update(found)
            self._process([_Job()])

    # -- the writer thread --
    def _run(self) -> None:
        last = last_quick = 0.0
        while True:
            # Group commit: let work gather for a moment, so one transaction carries many
            # batches (each commit costs milliseconds whatever its size, folding ~10 ms).
            # Reports the receiver holds unacknowledged do not wait for it: they are staged
            # (appended in one small insert) and folded with the next group commit.
            deadline = last + self.config.record_interval
            with self._cond:
                while not self._queue and not self._stopping:
                    if not len(self.unfolded):
                        self._cond.wait(1.0)
                        continue
                    pause = deadline - time.monotonic()
                    if pause <= 0:
                        break  # staged reports are due to be folded
                    self._cond.wait(pause)
                if not self._queue and self._stopping:
                    break
            quick = False
            with self._cond:
                while not self._stopping and not self._urgent():
                    now = time.monotonic()
                    pause = deadline - now
                    if pause <= 0:
                        break
                    if any(self._stageable(job) for job in self._queue):
                        soon = last_quick + self.config.report_interval - now
                        if soon <= 0 or any(job.append is not None for job in self._queue):
                            quick = True  # the sender waits: no pause
                            break
                        pause = min(pause, soon)
                    self._cond.wait(pause)
                if quick:
                    jobs = [job for job in self._queue if self._stageable(job)]
                    self._queue = deque(job for job in self._queue
                                        if not self._stageable(job))  # fmt: skip
                else:
                    jobs = list(self._queue)
                    self._queue.clear()
            if quick:
                last_quick = time.monotonic()
                self._process(jobs, stage=True)
            else:
                last = time.monotonic()
                self._process(jobs)
        if len(self.unfolded):  # stopping: fold what was staged
            self._process([])

    def _process(self, jobs: list[_Job], *, stage: bool = False) -> None:
        attempt = 0
        while True:
            try:
                if stage:
                    self._stage(jobs)
                else:
                    self._write(jobs)
                break
            except Exception as exc:  # a conflicting writer, or a broken database
                attempt += 1
                if attempt < 4 and "conflict" in str(exc).lower():
                    time.sleep(0.05 * attempt)
                    continue
                log.exception("the ledger could not be written")
                self.error = exc
                for job in jobs:
                    job.error = exc
                break
        for job in jobs:
            job.done.set()

    def _remember_many(self, pairs: Iterable[tuple[str, PartRef]]) -> None:
        """Remember provider ids (the oldest are forgotten beyond `provider_map_size`;
        a report for one of those is looked up in the source instead)."""
        with self._parts_lock:
            parts = self.parts
            parts.update(pairs)
            excess = len(parts) - self.config.provider_map_size
            if excess > 0:
                for old in list(itertools.islice(parts, excess + 1000)):
                    del parts[old]

    def learn_results(self, results: Sequence[PartResult], mailing_of: dict[int, int]) -> None:
        """The provider ids of accepted parts, as the gateway hands them over (possibly
        before `submit` returns: reports can arrive before the outcomes are written, and
        are matched in memory then)."""
        self._remember_many(
            (r.provider_id, (r.message_id, mailing_of[r.message_id], r.part_index))
            for r in results
            if r.status == "accepted" and r.provider_id and r.message_id in mailing_of
        )  # fmt: skip

    def learn(self, outcomes: EventBatch) -> None:
        """The provider ids of parts just accepted, as soon as `submit` returns: reports
        can arrive before the outcomes are written, and are matched in memory then."""
        b = outcomes
        self._remember_many(
            (b.provider_id[i], (b.message_id[i], b.mailing_id[i], b.part[i]))
            for i, ev in enumerate(b.event) if ev == "submitted"
        )

    def knows(self, provider_id: str) -> bool:
        return provider_id in self.parts

    def _stage(self, jobs: list[_Job]) -> None:
        """Store the sender's events and the reports of `jobs` quickly, in one insert: the
        sender waits for it before its parts go out, the receiver before it acknowledges
        the reports. Matched reports and outcomes are folded into message state by the next
        group commit (and by `recover` after a crash); reports that match no part yet are
        stored as unmatched. Memory changes only once the writes succeeded."""
        reports = [r for job in jobs for r in job.reports
                   if r.state in REPORT_EVENT and r.provider_id]  # fmt: skip
        misses = [r.provider_id for r in reports if r.provider_id not in self.parts]
        if misses:
            self._remember_many(self.source.find_parts(misses).items())
        now_wall, now = self.wall(), self.clock()
        get = self.parts.get
        refs = [get(r.provider_id) for r in reports]
        unmatched = EventBatch()
        if None in refs:
            for r, ref in zip(reports, refs, strict=True):
                if ref is None:
                    unmatched.add(-1, -1, None, REPORT_EVENT[r.state], r.provider_id,
                                  r.reason or (None if r.state == "delivered" else r.state),
                                  now_wall)  # fmt: skip
            kept = [(r, ref) for r, ref in zip(reports, refs, strict=True) if ref is not None]
            reports = [r for r, _ in kept]
            refs = [ref for _, ref in kept]
        # In columns: this runs for every receipt, thousands a second.
        events = EventBatch()
        events.message_id = [ref[0] for ref in refs]  # type: ignore[index]
        events.mailing_id = [ref[1] for ref in refs]  # type: ignore[index]
        events.part = [ref[2] for ref in refs]  # type: ignore[index]
        events.event = [REPORT_EVENT[r.state] for r in reports]
        events.provider_id = [r.provider_id for r in reports]
        events.reason = [r.reason or (None if r.state == "delivered" else r.state)
                         for r in reports]  # fmt: skip
        events.ts = [now_wall] * len(reports)
        # Stored before the provider hears they arrived.
        rows = EventBatch()  # the sender's events and these reports: one insert
        later = EventBatch()  # what the next group commit folds
        for job in jobs:
            if job.append is not None:
                rows.extend(job.append)
                if job.fold is not None:
                    later.extend(job.fold)
        rows.extend(events)
        later.extend(events)
        if len(unmatched):
            self.source.save_unmatched(unmatched)
        if len(rows):
            self.source.append(rows)
        with self._memory:
            self.unfolded.extend(later)
            for row in unmatched.rows():
                self.orphans[row[4]] = (row[3], row[5], row[6], now)
            self.reports += len(reports) + len(unmatched)
            self.unmatched += len(unmatched)

    def _write(self, jobs: list[_Job]) -> None:
        """One round of writing; memory (the unmatched reports) changes only once the
        writes succeeded, so a retried round writes the same again."""
        with self._memory:  # staged from now on: folded by the next round
            staged, self.unfolded = self.unfolded, EventBatch()
            orphans = list(self.orphans.items())
        try:
            self._write_round(jobs, staged, orphans)
        except BaseException:
            with self._memory:  # not folded: keep them for the retry
                staged.extend(self.unfolded)
                self.unfolded = staged
            raise

    def _write_round(self, jobs: list[_Job], staged: EventBatch,
                     orphans: list[tuple[str, tuple[str, str | None, datetime, float]]]
                     ) -> None:  # fmt: skip
        events = EventBatch()  # new events: reports matched to their parts
        folds = EventBatch()  # events appended already (outcomes, staged reports), to fold
        folds.extend(staged)
        appended = EventBatch()  # the sender's events, to append as they are first
        for job in jobs:
            if job.append is not None:
                appended.extend(job.append)
            if job.fold is not None:
                folds.extend(job.fold)
        now_wall, now = self.wall(), self.clock()
        # Reports that overtook the recording of their submit: matched now, if ever.
        resolved: list[str] = []
        expired: list[str] = []
        for pid, (event, reason, ts, seen) in orphans:
            ref = self.parts.get(pid)
            if ref is not None:
                events.add(ref[0], ref[1], ref[2], event, pid, reason, ts)
                resolved.append(pid)
            elif now - seen > self.config.unmatched_memory:
                expired.append(pid)  # stays in the table, for the record
        reports = [r for job in jobs for r in job.reports
                   if r.state in REPORT_EVENT and r.provider_id]  # fmt: skip
        misses = [r.provider_id for r in reports if r.provider_id not in self.parts]
        if misses:
            self._remember_many(self.source.find_parts(misses).items())
        unmatched = EventBatch()
        for r in reports:
            ref = self.parts.get(r.provider_id)
            event = REPORT_EVENT[r.state]
            reason = r.reason or (None if r.state == "delivered" else r.state)
            if ref is None:
                unmatched.add(-1, -1, None, event, r.provider_id, reason, now_wall)
            else:
                events.add(ref[0], ref[1], ref[2], event, r.provider_id, reason, now_wall)
        if len(appended):
            self.source.append(appended)
            for job in jobs:  # a retried round must not append them twice
                job.append = None
        if len(unmatched):  # stored before the provider hears they arrived
            self.source.save_unmatched(unmatched)
        if len(events) or len(folds) or resolved:
            self.source.record(events, fold=folds, resolved_unmatched=resolved)
        messages = [m for job in jobs for m in job.inbound]
        if messages:
            self.source.record_inbound(messages, now_wall)
        with self._memory:
            for pid in (*resolved, *expired):
                self.orphans.pop(pid, None)
            for row in unmatched.rows():
                self.orphans[row[4]] = (row[3], row[5], row[6], now)
            self.reports += len(reports)
            self.unmatched += len(unmatched)


# -- the dispatcher ---------------------------------------------------------------------------
_active: dict[str, Dispatcher] = {}
_active_lock = threading.Lock()


def running_dispatcher(key: str) -> Dispatcher | None:
    """The dispatcher running in this process for a database (key: its resolved path)."""
    with _active_lock:
        return _active.get(key)


class Dispatcher:
    """Sends every queued message of every sending mailing; see the module docstring."""

    def __init__(
        self,
        source: DispatchSource,
        gateway: Gateway,
        *,
        config: DispatcherConfig | None = None,
        key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
        wall: Callable[[], datetime] = utc_now,
    ) -> None:
        self.source = source
        self.gateway = gateway
        self.config = config or DispatcherConfig()
        self.key = key
        self.clock = clock
        self.wall = wall
        self._sleep = sleep or time.sleep
        caps = gateway.capabilities
        self.rate = float(self.config.rate or caps.throughput or 100.0)
        window = max(int(getattr(caps, "window", 1) or 1), 1)
        self.batch_size = int(self.config.batch_size or min(5000, max(50, window * 20)))
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.recorder = _Recorder(source, wall, self.config, clock)
        self._cursors: dict[int, _Cursor] = {}
        self._pending = EventBatch()  # outcomes not yet written (go with the next batch)
        self._retry: list[tuple[float, int, PendingMessage]] = []
        self._seq = itertools.count()
        self._tokens = 0.0
        self._tokens_at: float | None = None
        self._factor = 1.0  # share of `rate` used now (halved on throttling)
        self._pause_until = 0.0
        self._link_failures = 0
        self._next_refresh = 0.0
        self._next_heartbeat = 0.0
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._lanes = max(1, min(int(self.config.pipeline), self.batch_size))
        self._call_size = max(1, self.batch_size // self._lanes)
        self._early = bool(getattr(caps, "early_results", False))
        # Submit calls: prepared by the sending thread, run by the lanes, settled by the
        # sending thread again (all ledger state stays in that one thread).
        self._submit_state = threading.Condition()  # guards everything below
        self._queued_calls: deque[_Flight] = deque()  # waiting for a lane
        self._landed: deque[_Flight] = deque()  # returned, waiting to be settled
        self._flying: set[int] = set()  # ids of calls handed to a lane and not yet landed
        self._flights = itertools.count(1)
        self._replies_pending = 0  # reply batches being stored (a STOP must count first)
        self._threads: list[threading.Thread] = []
        self._lane_threads: list[threading.Thread] = []
        self._recovered = False
        self._started = False
        self._lease = False
        self.last_error = ""
        self.counters: dict[str, int] = dict.fromkeys(
            ("batches", "parts_submitted", "parts_accepted", "parts_retry", "parts_rejected",
             "parts_unknown", "skipped", "recovered_unknown", "finished_mailings"), 0)

    # -- public control ---------------------------------------------------------------------
    def start(self) -> None:
        """Take the lease, recover after a crash and run the threads; raises DispatcherBusy."""
        if self._started:
            return
        self._claim()
        try:
            self._prepare()
            self.recorder.start()
            self._threads = [
                threading.Thread(target=self._send_loop, name="sms-dispatcher", daemon=True),
                threading.Thread(target=self._receive_loop, name="sms-receiver", daemon=True),
            ]
            self._lane_threads = [
                threading.Thread(target=self._lane_loop, name=f"sms-submit-{k + 1}", daemon=True)
                for k in range(self._lanes)
            ]
            for t in (*self._threads, *self._lane_threads):
                t.start()
            self._started = True
        except BaseException:
            self._unclaim()
            raise

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the batch in flight, record everything pending, release the connection."""
        self._stop.set()
        self._wakeup.set()
        with self._submit_state:
            self._submit_state.notify_all()
        for t in (*self._threads, *self._lane_threads):
            t.join(timeout)
        self._threads = []
        self._lane_threads = []
        with contextlib.suppress(Exception):
            self._flush_pending()
        self.recorder.stop()
        with contextlib.suppress(Exception):
            self.gateway.close()
        if self._started or self._lease:
            self._unclaim()
        self._started = False

    def wake(self) -> None:
        """Look for newly launched mailings now rather than at the next poll."""
        self._next_refresh = 0.0
        self._wakeup.set()

    @property
    def running(self) -> bool:
        return self._started and any(t.is_alive() for t in self._threads)

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running, "owner": self.owner, "gateway": self.gateway.name,
            "rate": self.rate, "pace": round(self.rate * self._factor, 3),
            "batch_size": self.batch_size, "mailings": sorted(self._cursors),
            "retry_waiting": len(self._retry), "last_error": self.last_error,
            "reports": self.recorder.reports, "unmatched_reports": self.recorder.unmatched,
            **self.counters,
        }  # fmt: skip

    # -- inline driving (tests, benchmarks) ----------------------------------------------------
    def run_until_idle(self, *, max_batches: int | None = None, receive: bool = True) -> int:
        """Send in the calling thread until nothing is left to send; returns batches sent.

        No threads: recording is synchronous and `gateway.receive` is polled between
        batches, and waits go through `sleep` (so a fake clock makes pacing testable).
        """
        if not self._recovered:
            self._claim()
            self._prepare()
        batches = 0
        while max_batches is None or batches < max_batches:
            self._next_refresh = 0.0
            handled = self._cycle()
            if receive:
                self._receive_once(0.0)
            if handled:
                batches += 1
                continue
            self._flush_pending()
            if self._retry:
                self._sleep(max(self._retry[0][0] - self.clock(), 0.001))
                continue
            if self._pause_until > self.clock():
                self._sleep(self._pause_until - self.clock())
                continue
            break
        self._finish_mailings()
        return batches

    def receive_reports(self, timeout: float = 0.0) -> int:
        """Inline: poll the gateway once for reports and replies."""
        return self._receive_once(timeout)

    # -- lease ---------------------------------------------------------------------------------
    def _claim(self) -> None:
        if self.key is not None:
            with _active_lock:
                other = _active.get(self.key)
                if other is not None and other is not self:
                    raise DispatcherBusy(
                        "A dispatcher is already sending for this database in this process "
                        f"({other.owner}); a second one is not started."
                    )
                _active[self.key] = self
        holder = self.source.acquire_lease(self.owner)
        if holder is not None:
            self._forget()
            raise DispatcherBusy(
                f"Another dispatcher holds this database's sending lease ({holder}); "
                "stop it first (its lease expires a minute after it stops renewing)."
            )
        self._lease = True

    def _forget(self) -> None:
        if self.key is not None:
            with _active_lock:
                if _active.get(self.key) is self:
                    del _active[self.key]

    def _unclaim(self) -> None:
        if self._lease:
            with contextlib.suppress(Exception):
                self.source.release_lease(self.owner)
            self._lease = False
        self._forget()

    def _prepare(self) -> None:
        """After a crash: parts in flight become `unknown`; stored unmatched reports retry."""
        parts = self.source.recover()
        if parts:
            batch = EventBatch()
            now = self.wall()
            for mid, mg, part in parts:
                batch.add(mid, mg, part, "unknown", None,
                          "no answer was recorded before the dispatcher stopped; not resent",
                          now)  # fmt: skip
            self.source.record(batch)
            self.counters["recovered_unknown"] += len({p[0] for p in parts})
            log.warning("%d part(s) were in flight when the dispatcher last stopped: unknown",
                        len(parts))
        self.recorder.load_unmatched()
        self._recovered = True

    # -- threads -------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self.gateway.connect()
            while not self._stop.is_set():
                if self.recorder.error is not None:
                    self.last_error = f"the ledger cannot be written: {self.recorder.error}"
                    log.error("dispatcher stops: %s", self.last_error)
                    break
                self._heartbeat()
                if not self._lease:
                    break
                self._settle_landed()
                if len(self._flying) < self._lanes and self._cycle():
                    continue
                if self._flying:  # wait for a call to return, then look again
                    self._await_landing(self._idle_wait())
                    continue
                self._flush_pending()
                self._finish_mailings()
                self._wakeup.wait(self._idle_wait())
                self._wakeup.clear()
        except Exception as exc:  # keep the reason for the status page
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("dispatcher stopped")
        finally:
            with contextlib.suppress(Exception):
                self._land_all()  # the calls in flight finish and are settled
            with contextlib.suppress(Exception):
                self._flush_pending()  # the last batch's outcomes, before stopping
            with self._submit_state:
                self._queued_calls.append(_LAST_FLIGHT)  # the lanes may end now
                self._submit_state.notify_all()

    # -- the lanes: submit calls run here, two at a time, so the window never runs dry ----------
    def _lane_loop(self) -> None:
        while True:
            with self._submit_state:
                while not self._queued_calls:
                    self._submit_state.wait()
                flight = self._queued_calls[0]
                if flight is _LAST_FLIGHT:  # left queued for the other lanes too
                    return
                self._queued_calls.popleft()
            self._fly(flight)
            with self._submit_state:
                self._landed.append(flight)
                self._flying.discard(flight.id)
                self._submit_state.notify_all()

    def _fly(self, flight: _Flight) -> None:
        """Run one submit call; its provider ids are known (for matching delivery reports)
        before it counts as landed."""
        outbound = flight.outbound
        try:
            if self._early:
                results = self.gateway.submit(outbound, on_results=flight.learn)  # type: ignore[call-arg]
            else:
                results = self.gateway.submit(outbound)
        except Exception as exc:  # a gateway bug: nobody knows what went out
            log.exception("gateway.submit raised")
            flight.error = f"gateway error: {exc}"
            results = [PartResult(o.message_id, p, "unknown", error=flight.error)
                       for o in outbound for p in o.parts_to_send]  # fmt: skip
        if not self._early or flight.error:
            flight.learn(results)
        flight.results = results

    def _settle_landed(self) -> None:
        """Settle the calls that returned (in the sending thread)."""
        if not self._landed:
            return
        with self._submit_state:
            landed = list(self._landed)
            self._landed.clear()
        for flight in landed:
            if flight.error:
                self.last_error = flight.error
            self._settle(flight.batch, flight.outbound, flight.results or [])

    def _await_landing(self, timeout: float) -> None:
        with self._submit_state:
            self._submit_state.wait_for(
                lambda: bool(self._landed) or self._stop.is_set(), timeout=timeout)
        self._settle_landed()

    def _land_all(self, timeout: float = 120.0) -> None:
        """Wait for every call in flight to return and settle it (stopping)."""
        deadline = time.monotonic() + timeout
        while self._flying or self._landed:
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("%d submit call(s) did not return before stopping", len(self._flying))
                return
            with self._submit_state:
                self._submit_state.wait_for(lambda: bool(self._landed), timeout=left)
            self._settle_landed()

    def _idle_wait(self) -> float:
        now = self.clock()
        wait = self.config.idle_poll
        if self._retry:
            wait = min(wait, max(self._retry[0][0] - now, 0.001))
        if self._pause_until > now:
            wait = min(wait, self._pause_until - now)
        return max(wait, 0.001)

    def _receive_loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._receive_once(0.5)
                backoff = 0.5
            except Exception as exc:
                self.last_error = f"receiving: {exc}"
                log.warning("receiving failed: %s", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _receive_once(self, timeout: float) -> int:
        return int(self.gateway.receive(self._on_inbound, timeout))

    def _on_inbound(self, events: Sequence[InboundEvent]) -> None:
        """Store a batch of reports and replies (the gateway acknowledges it afterwards).

        A report for a part of a call still running can arrive before `submit` returned
        its provider id. A gateway with `early_results` has handed that id over already;
        with another, wait for the calls in flight to return (bounded), so the report is
        matched in memory rather than stored as unmatched.
        """
        replies = any(isinstance(e, InboundMessage) for e in events)
        unknown = not self._early and any(
            isinstance(e, DeliveryReport) and e.provider_id
            and not self.recorder.knows(e.provider_id) for e in events)  # fmt: skip
        with self._submit_state:
            if replies:  # the sender's suppression check waits for these
                self._replies_pending += 1
            if unknown and self._threads and self._flying:
                flying = set(self._flying)  # wait for these calls, not for a quiet moment
                self._submit_state.wait_for(lambda: not flying & self._flying, timeout=30.0)
        try:
            self.recorder.inbound(events)
        finally:
            if replies:
                with self._submit_state:
                    self._replies_pending -= 1
                    self._submit_state.notify_all()

    def _heartbeat(self) -> None:
        now = self.clock()
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self.config.heartbeat
        if not self.source.renew_lease(self.owner):
            self.last_error = "the sending lease was taken over by another dispatcher"
            log.error("dispatcher stops: %s", self.last_error)
            self._lease = False

    def _wait(self, seconds: float) -> bool:
        """Wait; False when a stop was requested meanwhile."""
        if seconds <= 0:
            return not self._stop.is_set()
        if self._threads:  # a call that returns meanwhile ends the wait: settle it at once
            with self._submit_state:
                self._submit_state.wait_for(lambda: bool(self._landed) or self._stop.is_set(),
                                            timeout=seconds)  # fmt: skip
            return not self._stop.is_set()
        self._sleep(seconds)
        return True

    # -- one batch -----------------------------------------------------------------------------
    def _cycle(self) -> int:
        """Send one batch; returns how many messages it handled (0: nothing to do now)."""
        now = self.clock()
        if now < self._pause_until:
            return 0
        self._refresh(now)
        batch, segments = self._take(now)
        if not batch:
            return 0
        if not self._pace(segments):
            self._drop_all(batch)  # stopping: leave them queued, untouched
            return 1
        # The suppression list once more, after any wait for the pace: right before sending.
        screened = self._screen(batch)
        if len(screened) != len(batch):
            self._tokens += segments - sum(m.cost for m in screened)
        if screened:
            self._submit(screened)
        return len(batch)

    def _refresh(self, now: float) -> None:
        if now < self._next_refresh:
            return
        self._next_refresh = now + self.config.idle_poll
        sending = self.source.sending_mailings()
        ids = {mid for mid, _ in sending}
        for mid, kind in sending:
            if mid not in self._cursors:
                self._cursors[mid] = _Cursor(mid, kind)
        for mid in [m for m in self._cursors if m not in ids]:
            del self._cursors[mid]  # no longer sending: what it had buffered stays queued
        if any(m.mailing_id not in ids for _, _, m in self._retry):
            self._retry = [e for e in self._retry if e[2].mailing_id in ids]
            heapq.heapify(self._retry)

    def _take(self, now: float) -> tuple[list[PendingMessage], int]:
        """The next batch, and the segments it costs."""
        limit = self._call_size if self._lane_threads else self.batch_size
        budget = max(1.0, self.rate * self._factor * self.config.tick)
        batch: list[PendingMessage] = []
        segments = 0
        while self._retry and self._retry[0][0] <= now and len(batch) < limit:
            m = self._retry[0][2]
            cost = m.cost
            if batch and segments + cost > budget:
                return batch, segments
            heapq.heappop(self._retry)
            batch.append(m)
            segments += cost
        for cur in list(self._cursors.values()):
            while len(batch) < limit:
                if not cur.buffer:
                    if cur.exhausted:
                        break
                    self._load(cur)
                    if not cur.buffer:
                        break
                room = min(limit - len(batch), len(cur.buffer))
                if budget - segments >= room * _MAX_PARTS:  # no need to count one by one
                    taken = [cur.buffer.popleft() for _ in range(room)]
                    batch.extend(taken)
                    segments += sum(m.parts - len(m.accepted) for m in taken)
                    continue
                m = cur.buffer[0]
                cost = m.parts - len(m.accepted)
                if batch and segments + cost > budget:
                    return batch, segments
                cur.buffer.popleft()
                batch.append(m)
                segments += cost
            if len(batch) >= limit:
                break
        return batch, segments

    def _load(self, cur: _Cursor) -> None:
        messages, after = self.source.next_messages(cur.mailing_id, cur.after,
                                                    self.config.prefetch)  # fmt: skip
        cur.buffer.extend(messages)
        cur.outstanding += len(messages)
        if after is None:
            cur.exhausted = True
        else:
            cur.after = after

    def _drop(self, m: PendingMessage) -> None:
        """The message leaves this run's hands (final, or left queued for later)."""
        cur = self._cursors.get(m.mailing_id)
        if cur is not None:
            cur.outstanding -= 1

    def _drop_all(self, batch: Sequence[PendingMessage]) -> None:
        """`_drop` for many (usually of one mailing)."""
        for mailing_id, n in Counter(m.mailing_id for m in batch).items():
            cur = self._cursors.get(mailing_id)
            if cur is not None:
                cur.outstanding -= n

    def _screen(self, batch: list[PendingMessage]) -> list[PendingMessage]:
        """The suppression list again, right before a message's first part goes out.

        Replies already handed over by the gateway are stored first, so a STOP that
        arrived before this moment always counts.
        """
        with self._submit_state:
            self._submit_state.wait_for(lambda: self._replies_pending == 0, timeout=10.0)
        blocked = self.source.blocked(batch)
        if not blocked:
            return batch
        skips = self._pending
        keep = []
        now = self.wall()
        for m in batch:
            if m.message_id not in blocked:
                keep.append(m)
                continue
            reason = blocked[m.message_id]
            if reason is not None:
                skips.add(m.message_id, m.mailing_id, None, "skipped", None, reason, now)
            self._drop(m)
        self.counters["skipped"] += sum(1 for m in batch if blocked.get(m.message_id))
        return keep

    def _pace(self, segments: int) -> bool:
        """Wait until the segment budget allows `segments` more; False if stopping."""
        while True:
            self._settle_landed()  # calls that returned meanwhile (may slow the pace down)
            now = self.clock()
            if now < self._pause_until:  # one of them was throttled: this batch waits too
                if self._pause_until - now > 0.05:
                    self._flush_pending()
                if not self._wait(self._pause_until - now):
                    return False
                continue
            rate = self.rate * self._factor
            capacity = max(1.0, rate * self.config.tick)
            if self._tokens_at is None:
                self._tokens, self._tokens_at = capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            need = min(float(segments), capacity)
            if self._tokens >= need - 1e-6:
                self._tokens -= segments  # a message larger than the bucket goes into debt
                return True
            wait = max((need - self._tokens) / rate, 1e-4)
            if wait > 0.05:  # a slow pace: do not keep the last outcomes waiting meanwhile
                self._flush_pending()
            if not self._wait(wait):
                return False

    def _outbound(self, m: PendingMessage) -> OutboundMessage:
        if m.parts == 1 and m.shift_table is None:  # the common case: no splitting needed
            parts: tuple[str, ...] = (m.body,)
            encoding = m.encoding
        else:
            parts, encoding = _split(m.body, m.shift_table)
            if len(parts) != m.parts:
                log.warning("message %d: %d parts now, %d at the snapshot", m.message_id,
                            len(parts), m.parts)  # fmt: skip
        return OutboundMessage(
            message_id=m.message_id, to=m.e164, sender=m.sender, parts=parts,
            encoding=encoding, concat_ref=m.concat_ref,  # type: ignore[arg-type]
            parts_to_send=m.parts_to_send() if m.accepted or m.parts > 1 else (0,),
            shift_table=m.shift_table,
        )

    def _submit(self, batch: list[PendingMessage]) -> None:
        submitting = EventBatch()
        if all(m.parts == 1 and m.shift_table is None and not m.accepted for m in batch):
            # The common case (single-part messages, none retried), in columns.
            outbound = [OutboundMessage(m.message_id, m.e164, m.sender, (m.body,), m.encoding,
                                        m.concat_ref, (0,))  # type: ignore[arg-type]
                        for m in batch]  # fmt: skip
            submitting.message_id = [m.message_id for m in batch]
            submitting.mailing_id = [m.mailing_id for m in batch]
            submitting.part = [0] * len(batch)
        else:
            outbound = [self._outbound(m) for m in batch]
            for m, o in zip(batch, outbound, strict=True):
                for p in o.parts_to_send:
                    submitting.message_id.append(m.message_id)
                    submitting.mailing_id.append(m.mailing_id)
                    submitting.part.append(p)
        n = len(submitting.part)
        now = self.wall()
        submitting.event = ["submitting"] * n
        submitting.provider_id = [None] * n
        submitting.reason = [None] * n
        submitting.ts = [now] * n
        # Durable before anything goes out, in one insert with the outcomes settled so far
        # (so a crash leaves at most the calls in flight uncertain: `batch_size` messages)
        # and with the delivery reports waiting to be stored.
        outcomes, self._pending = self._pending, EventBatch()
        if len(outcomes):
            written = EventBatch()
            written.extend(outcomes)
            written.extend(submitting)
        else:
            written = submitting
        self.recorder.append(written, fold=outcomes)  # `submitting` changes no state
        self.counters["batches"] += 1
        self.counters["parts_submitted"] += n
        flight = _Flight(next(self._flights), batch, outbound, self.recorder)
        if not self._lane_threads:  # inline: run it here
            self._fly(flight)
            if flight.error:
                self.last_error = flight.error
            self._settle(batch, outbound, flight.results or [])
            return
        with self._submit_state:
            self._flying.add(flight.id)
            self._queued_calls.append(flight)
            self._submit_state.notify_all()

    def _settle(self, batch: list[PendingMessage], outbound: list[OutboundMessage],
                results: list[PartResult]) -> None:  # fmt: skip
        """Turn the gateway's per-part results into events, retries and pacing."""
        wall = self.wall()
        if all(r.status == "accepted" for r in results) and \
                len(results) == sum(len(o.parts_to_send) for o in outbound):
            self._settle_accepted(batch, results, wall)
            return
        by_msg: dict[int, list[PartResult]] = {}
        for r in results:
            by_msg.setdefault(r.message_id, []).append(r)
        statuses = {r.status for r in results}
        # The gateway contract: not connected (and not reconnecting yet) means every part
        # comes back transient "not connected: ...". Then the link is down, not the
        # messages: pause, and count no attempt against them.
        link_down = bool(results) and all(
            r.status == "transient" and (r.error or "").startswith("not connected")
            for r in results
        )
        now = self.clock()
        events = EventBatch()
        ev_mid, ev_mg, ev_part, ev_event = (events.message_id, events.mailing_id, events.part,
                                            events.event)  # fmt: skip
        ev_pid, ev_reason = events.provider_id, events.reason
        accepted_total = 0
        for m, o in zip(batch, outbound, strict=True):
            mine = by_msg.get(m.message_id, ())
            if len(mine) == len(o.parts_to_send) and all(r.status == "accepted" for r in mine):
                for r in mine:  # fast path: every part accepted
                    ev_mid.append(m.message_id)
                    ev_mg.append(m.mailing_id)
                    ev_part.append(r.part_index)
                    ev_event.append("submitted")
                    ev_pid.append(r.provider_id)
                    ev_reason.append(None)
                accepted_total += len(mine)
                self._drop(m)
                continue
            accepted_total += self._settle_one(m, o, mine, link_down, now, events)
        events.ts = [wall] * len(events.event)
        self.counters["parts_accepted"] += accepted_total
        self._pending.extend(events)
        throttled = [r for r in results if r.status == "throttled"] if "throttled" in statuses \
            else []
        if throttled:
            self._factor = max(0.05, self._factor * 0.5)
            hint = max((r.retry_after or 0.0) for r in throttled)
            self._pause_until = now + max(hint, self.config.backoff_initial)
            self.last_error = f"provider throttling: {throttled[0].error}"
        elif link_down:
            self._link_failures += 1
            self._pause_until = now + self._backoff(self._link_failures)
            self.last_error = next((r.error or "" for r in results), "")
        else:
            self._link_failures = 0
            self._factor = min(1.0, self._factor + 0.1)

    def _settle_accepted(self, batch: list[PendingMessage], results: list[PartResult],
                         wall: datetime) -> None:  # fmt: skip
        """The common case, in columns: the provider accepted every part of the batch."""
        mailing = {m.message_id: m.mailing_id for m in batch}
        n = len(results)
        events = EventBatch()
        events.message_id = [r.message_id for r in results]
        events.mailing_id = [mailing[r.message_id] for r in results]
        events.part = [r.part_index for r in results]
        events.event = ["submitted"] * n
        events.provider_id = [r.provider_id for r in results]
        events.reason = [None] * n
        events.ts = [wall] * n
        self._pending.extend(events)
        self.counters["parts_accepted"] += n
        self._drop_all(batch)
        self._link_failures = 0
        self._factor = min(1.0, self._factor + 0.1)

    def _settle_one(self, m: PendingMessage, o: OutboundMessage, results: Sequence[PartResult],
                    link_down: bool, now: float, events: EventBatch) -> int:  # fmt: skip
        """The slow path of `_settle` for one message; returns the parts accepted."""
        by_part = {r.part_index: r for r in results}
        mine = [by_part.get(p) or PartResult(
            m.message_id, p, "unknown", error="the gateway gave no result for this part")
            for p in o.parts_to_send]  # fmt: skip
        accepted = [r for r in mine if r.status == "accepted"]
        final = [r for r in mine if r.status in ("permanent", "unknown")]
        waiting = [r for r in mine if r.status in ("throttled", "transient")]
        counts_attempt = not link_down and any(
            r.status == "transient" and not (r.error or "").startswith("not connected")
            for r in waiting
        )
        give_up = bool(waiting) and not final and counts_attempt and \
            m.attempts + 1 >= self.config.max_attempts

        def add(part: int, event: str, pid: str | None, reason: str | None) -> None:
            events.message_id.append(m.message_id)
            events.mailing_id.append(m.mailing_id)
            events.part.append(part)
            events.event.append(event)
            events.provider_id.append(pid)
            events.reason.append(reason)

        for r in accepted:
            add(r.part_index, "submitted", r.provider_id, None)
        for r in final:
            add(r.part_index, "rejected" if r.status == "permanent" else "unknown", None,
                r.error)  # fmt: skip
        for r in waiting:
            if final or give_up:  # the message is over: these parts will never go out
                why = (f"gave up after {m.attempts + 1} attempts: {r.error}" if give_up
                       else f"not sent: {r.error}")
                event = "unknown" if any(f.status == "unknown" for f in final) else "rejected"
                add(r.part_index, event, None, why)
            else:
                add(r.part_index, "retry", None, r.error)
        if accepted:
            m.accepted = m.accepted | {r.part_index for r in accepted}
        if final or give_up or not waiting:
            self.counters["parts_rejected"] += sum(r.status == "permanent" for r in final)
            self.counters["parts_unknown"] += sum(r.status == "unknown" for r in final)
            self._drop(m)
            return len(accepted)
        self.counters["parts_retry"] += len(waiting)
        if counts_attempt:
            m.attempts += 1
        delay = self._backoff(m.attempts)
        hinted = [r.retry_after for r in waiting if r.retry_after]
        if hinted:
            delay = max(delay, max(hinted))
        heapq.heappush(self._retry, (now + delay, next(self._seq), m))
        return len(accepted)

    def _backoff(self, attempts: int) -> float:
        return min(self.config.backoff_max,
                   self.config.backoff_initial * (2 ** min(max(attempts - 1, 0), 30)))

    # -- mailings that are done ------------------------------------------------------------
    def _flush_pending(self) -> None:
        """Write outcomes that were waiting for the next batch (now: there is none)."""
        if len(self._pending):
            pending, self._pending = self._pending, EventBatch()
            self.recorder.append(pending, fold=pending)

    def _finish_mailings(self) -> None:
        self._flush_pending()
        now = self.clock()
        done = [c for c in self._cursors.values()
                if c.exhausted and c.outstanding <= 0 and now >= c.recheck_at]  # fmt: skip
        if not done:
            return
        self.recorder.flush()
        for cur in done:
            if self.source.complete_mailing(cur.mailing_id):
                self.counters["finished_mailings"] += 1
                del self._cursors[cur.mailing_id]
                log.info("mailing %d finished", cur.mailing_id)
            else:  # something is still queued that this run did not see: read it again
                cur.after, cur.exhausted, cur.outstanding = 0, False, 0
                cur.recheck_at = now + 5.0

