"""The embedded gateway: realistic, repeatable outcomes without a provider.

Every message's fate (accepted or refused, delivered or why not, after how long, whether the
recipient replies STOP) is a pure function of (seed, destination, message_id), computed with
a vectorised integer hash, so the same mailing gives the same statistics on every run and
after a restart, whatever the order or batching of the calls. Reports wait in a heap until
they are due and `receive` hands them out; with `instant=1` they are due at once, and a
`clock` can be injected so tests control time.

Delays are lognormal (by default median 3 s, 99th percentile 20 s). Delivery rates come from
a per-country table adjusted per pseudo-operator (see sim_profiles), or from `fail_share`.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .base import (
    Capabilities,
    DeliveryReport,
    InboundEvent,
    InboundHandler,
    InboundMessage,
    OutboundMessage,
    PartResult,
)
from .config import SIMULATOR_OPTIONS, GatewayConfig
from .gsm_codec import SHIFT_TABLES
from .sim_profiles import (
    OPERATOR_FACTORS,
    RATES,
    REASON_CUMULATIVE,
    REASON_STATES,
    REASONS,
    classify,
)

STOP_TEXTS = ("STOP", "STOP", "STOP", "Stop", "stop", "STOP ALL", "Stop please", "UNSUBSCRIBE")
REPLY_TEXTS = ("Thanks", "Who is this?", "ok", "Call me", "Wrong number")

_Z99 = 2.326347874040841  # standard normal 99th percentile
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PART_SPACING = 0.2  # seconds between the reports of consecutive parts of one message
_MAX_BATCH = 20_000  # events per handler call

# Heap entry kinds
_REPORT, _REPLY = 0, 1


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a good 64-bit hash, vectorised (uint64 arithmetic wraps)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def _uniforms(key: np.ndarray, count: int) -> np.ndarray:
    """`count` independent uniforms in [0, 1) per key, shape (count, n)."""
    streams = key[None, :] + np.arange(1, count + 1, dtype=np.uint64)[:, None] * _GOLDEN
    return (_mix(streams) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def _valid_e164(to: str) -> bool:
    return (
        8 <= len(to) <= 16 and to[0] == "+" and to[1] != "0" and to[1:].isdigit() and to.isascii()
    )


class SimulatorGateway:
    """A simulated SMS provider; see the module docstring. Thread-safe."""

    name = "simulator"

    def __init__(
        self,
        *,
        seed: int = 1,
        rate: float = 5000.0,
        throttle: bool = False,
        median_delay: float = 3.0,
        p99_delay: float = 20.0,
        stop_share: float = 0.005,
        reply_share: float = 0.002,
        fail_share: float | None = None,
        reject_share: float = 0.0,
        transient_share: float = 0.0,
        instant: bool = False,
        time_scale: float = 1.0,
        max_parts: int = 10,
        alphanumeric: bool = True,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.seed = int(seed)
        self.rate = float(rate)
        self.throttle = bool(throttle)
        self.median_delay = float(median_delay)
        self.sigma = (
            math.log(p99_delay / median_delay) / _Z99
            if median_delay > 0 and p99_delay > median_delay
            else 0.0
        )
        self.stop_share = float(stop_share)
        self.reply_share = float(reply_share)
        self.fail_share = fail_share
        self.reject_share = float(reject_share)
        self.transient_share = float(transient_share)
        self.time_scale = 0.0 if instant else float(time_scale)
        self.max_parts = int(max_parts)
        self.capabilities = Capabilities(
            max_parts=self.max_parts,
            alphanumeric_senders=bool(alphanumeric),
            shift_tables=SHIFT_TABLES,
            throughput=self.rate,
            window=1000,
        )
        self._wake = threading.Event()
        self._clock = clock or time.time
        # With the real clock we really wait; with an injected clock, waiting is the test's
        # business (pass `sleep`, e.g. one that advances the fake clock).
        self._sleep: Callable[[float], Any] | None = (
            sleep if sleep is not None else (self._wake.wait if clock is None else None)
        )
        self._lock = threading.Lock()
        self._heap: list[tuple[Any, ...]] = []
        self._seq = itertools.count()
        self._failed_once: set[int] = set()
        self._tokens = self.rate
        self._tokens_at: float | None = None
        self._closed = False
        self._seed_key = _mix(np.array([self.seed], dtype=np.uint64))[0]
        self.accepted_parts = 0

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> SimulatorGateway:
        opts = {k: config.options[k] for k in SIMULATOR_OPTIONS}
        return cls(**opts, clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"SimulatorGateway(seed={self.seed}, rate={self.rate:g})"

    # -- the fate of a batch, vectorised ---------------------------------------------------

    def fates(self, messages: Sequence[OutboundMessage]) -> dict[str, np.ndarray]:
        """Every random outcome of each message, as arrays (one row per message).

        Pure: depends only on the seed and each message's (to, message_id).
        """
        n = len(messages)
        valid = np.fromiter((_valid_e164(m.to) for m in messages), dtype=bool, count=n)
        msisdn = np.fromiter(
            (int(m.to[1:]) if ok else 100 for m, ok in zip(messages, valid, strict=True)),
            dtype=np.uint64,
            count=n,
        )
        ndigits = np.fromiter(
            (len(m.to) - 1 if ok else 3 for m, ok in zip(messages, valid, strict=True)),
            dtype=np.int64,
            count=n,
        )
        ids = np.fromiter((m.message_id for m in messages), dtype=np.int64, count=n)
        key = _mix(_mix(msisdn ^ self._seed_key) ^ ids.astype(np.uint64))
        u = _uniforms(key, 7)
        profile, operator = classify(msisdn, ndigits)
        if self.fail_share is None:
            p_delivered = RATES[profile] * OPERATOR_FACTORS[operator]
        else:
            p_delivered = np.full(n, 1.0 - self.fail_share)
        delivered = u[0] < p_delivered
        reason = np.minimum((u[1][:, None] >= REASON_CUMULATIVE[profile]).sum(axis=1), 3)
        # lognormal delay via Box-Muller on two uniforms
        z = np.sqrt(-2.0 * np.log1p(-u[2])) * np.cos(2.0 * np.pi * u[3])
        delay = self.median_delay * np.exp(self.sigma * z) * self.time_scale
        stop = delivered & (u[4] < self.stop_share)
        reply = delivered & ~stop & (u[4] < self.stop_share + self.reply_share)
        reply_delay = delay + (5.0 + 115.0 * u[5]) * self.time_scale
        reject = u[6] < self.reject_share
        transient = ~reject & (u[6] < self.reject_share + self.transient_share)
        return {
            "valid": valid,
            "delivered": delivered,
            "reason": reason,
            "delay": delay,
            "stop": stop,
            "reply": reply,
            "reply_delay": reply_delay,
            "text": u[5],
            "reject": reject,
            "transient": transient,
            "profile": profile,
            "operator": operator,
        }

    # -- Gateway protocol ------------------------------------------------------------------

    def connect(self) -> None:
        self._closed = False
        self._wake.clear()

    def submit(self, messages: Sequence[OutboundMessage]) -> list[PartResult]:
        if not messages:
            return []
        f = self.fates(messages)
        valid, reason = f["valid"].tolist(), f["reason"]
        delay, reply_delay = f["delay"].tolist(), f["reply_delay"].tolist()
        stop, reply, text_u = f["stop"].tolist(), f["reply"].tolist(), f["text"].tolist()
        reject, transient = f["reject"].tolist(), f["transient"].tolist()
        state_code = np.where(f["delivered"], -1, reason).tolist()
        results: list[PartResult] = []
        append = results.append
        with self._lock:
            now = self._clock()
            tokens = self._refill(now) if self.throttle else math.inf
            heap, seq, push = self._heap, self._seq, heapq.heappush
            for i, m in enumerate(messages):
                pending = m.pending_parts()
                refusal = self._refusal(m, valid[i], reject[i])
                if refusal is not None:
                    for p in pending:
                        append(PartResult(m.message_id, p, "permanent", error=refusal))
                    continue
                if transient[i] and m.message_id not in self._failed_once:
                    self._failed_once.add(m.message_id)
                    for p in pending:
                        append(
                            PartResult(
                                m.message_id,
                                p,
                                "transient",
                                error="ESME_RSYSERR: system error (simulated)",
                            )
                        )
                    continue
                if tokens < len(pending):
                    for p in pending:
                        append(
                            PartResult(
                                m.message_id,
                                p,
                                "throttled",
                                error="ESME_RTHROTTLED (simulated)",
                                retry_after=1.0 / self.rate,
                            )
                        )
                    continue
                tokens -= len(pending)
                mid = m.message_id
                for p in pending:
                    append(PartResult(mid, p, "accepted", f"sim-{mid}-{p + 1}"))
                    if m.register_delivery:
                        push(
                            heap,
                            (
                                now + delay[i] + _PART_SPACING * p * self.time_scale,
                                next(seq),
                                _REPORT,
                                mid,
                                p,
                                state_code[i],
                            ),
                        )
                if (stop[i] or reply[i]) and 0 in pending:
                    pool = STOP_TEXTS if stop[i] else REPLY_TEXTS
                    text = pool[int(text_u[i] * len(pool))]
                    push(heap, (now + reply_delay[i], next(seq), _REPLY, mid, m.to, m.sender, text))
                self.accepted_parts += len(pending)
            if self.throttle:
                self._tokens = tokens
        return results

    def _refusal(self, m: OutboundMessage, valid: bool, reject: bool) -> str | None:
        if not valid:
            return f"ESME_RINVDSTADR: {m.to!r} is not an E.164 number (simulated)"
        if len(m.parts) > self.max_parts:
            return f"too many parts ({len(m.parts)} > {self.max_parts})"
        if m.shift_table is not None and m.shift_table not in SHIFT_TABLES:
            return f"shift table {m.shift_table!r} not supported"
        if any(not 0 <= p < len(m.parts) for p in m.pending_parts()):
            raise ValueError(f"message {m.message_id}: part index out of range")
        if reject:
            return "ESME_RINVDSTADR: destination barred by operator (simulated)"
        return None

    def _refill(self, now: float) -> float:
        if self._tokens_at is None:
            self._tokens_at = now
        self._tokens = min(self.rate, self._tokens + (now - self._tokens_at) * self.rate)
        self._tokens_at = now
        return self._tokens

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        deadline = self._clock() + max(timeout, 0.0)
        while True:
            with self._lock:
                now = self._clock()
                due: list[tuple[Any, ...]] = []
                heap = self._heap
                while heap and heap[0][0] <= now and len(due) < _MAX_BATCH:
                    due.append(heapq.heappop(heap))
                next_due = heap[0][0] if heap else None
            if due:
                break
            remaining = deadline - now
            if remaining <= 0 or self._closed or self._sleep is None:
                return 0
            wait = remaining if next_due is None else min(remaining, max(next_due - now, 0.0))
            self._sleep(max(wait, 0.001))
            if self._closed:
                return 0
        events = [self._event(entry) for entry in due]
        try:
            handler(events)
        except BaseException:
            with self._lock:  # not acknowledged: offer them again
                for entry in due:
                    heapq.heappush(self._heap, entry)
            raise
        return len(events)

    @staticmethod
    def _event(entry: tuple[Any, ...]) -> InboundEvent:
        at = datetime.fromtimestamp(entry[0], UTC)
        if entry[2] == _REPORT:
            _, _, _, mid, part, code = entry
            if code < 0:
                return DeliveryReport(f"sim-{mid}-{part + 1}", "delivered", None, at)
            return DeliveryReport(
                f"sim-{mid}-{part + 1}",
                REASON_STATES[code],
                REASONS[code],
                at,  # type: ignore[arg-type]
            )
        _, _, _, mid, to, sender, text = entry
        return InboundMessage(
            sender=to, recipient=sender, text=text, at=at, provider_id=f"sim-mo-{mid}"
        )

    @property
    def pending(self) -> int:
        """Reports and replies not yet due or not yet handed out."""
        with self._lock:
            return len(self._heap)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
