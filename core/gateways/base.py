"""The contract between the dispatcher and every SMS gateway.

The dispatcher never knows which provider it talks to: it hands a gateway a batch of
messages already split into parts, learns per part whether the provider accepted it, and
receives delivery reports and inbound replies through a handler it supplies. A gateway
acknowledges an inbound event to its provider only after that handler has returned, so an
event the provider believes delivered is always stored first (a crash never loses a STOP).

Rules every implementation follows (the tests in tests/test_gateway_*.py check them):

- `submit` never raises for a provider problem: every part handed in gets exactly one
  `PartResult`. Only a programming error (for example a part index out of range) raises.
- A part is reported `transient` or `throttled` only when it was certainly NOT handed to the
  provider (or the provider certainly refused it), so the dispatcher may resend it. When the
  gateway cannot know (request written, connection lost before the answer) it says `unknown`
  and the part must never be resent.
- Provider ids are unique per part: a delivery report names exactly one part through
  `DeliveryReport.provider_id`, and the dispatcher matches on that id.
- Inbound events (delivery reports, replies) that arrive while `submit` runs are held
  unacknowledged and handed to the handler of a `receive` call: one running concurrently
  in another thread gets them within ~50 ms (the recommended set-up: a receiver thread
  looping on `receive`), otherwise the next call does. Call `receive` at least every few
  seconds: SMPP centres resend an unacknowledged deliver_sm after 30-60 s (harmless, noisy)
  and some stop sending more until the earlier ones are acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

Encoding = Literal["GSM-7", "UCS-2"]

# Outcome of submitting one part.
#  accepted   the provider took the part and gave it an id
#  throttled  the provider asked us to slow down (ESME_RTHROTTLED, ESME_RMSGQFUL, HTTP 429),
#             or the part was not sent because the provider was throttling: retry later
#  transient  a temporary failure (system error, 5xx, "not connected"): retry later
#  permanent  the provider refused the part for good (bad number, barred...): final
#  unknown    the request was sent but no answer came before the connection dropped:
#             the part may or may not have been sent, so it is never resent
SubmitStatus = Literal["accepted", "throttled", "transient", "permanent", "unknown"]
SUBMIT_STATUSES: tuple[SubmitStatus, ...] = (
    "accepted", "throttled", "transient", "permanent", "unknown",
)  # fmt: skip

# States a delivery report can carry, per part. All are final except "enroute" (an
# intermediate notification some providers send; the dispatcher may ignore it).
DeliveryState = Literal["delivered", "undelivered", "expired", "failed", "unknown", "enroute"]
DELIVERY_STATES: tuple[DeliveryState, ...] = (
    "delivered", "undelivered", "expired", "failed", "unknown", "enroute",
)  # fmt: skip


@dataclass(frozen=True)
class Capabilities:
    """What a gateway can do; the wizard and the dispatcher read these."""

    max_parts: int = 10
    alphanumeric_senders: bool = True
    shift_tables: tuple[str, ...] = ()  # national language single shift tables it supports
    throughput: float = 100.0  # segments per second the provider allows (the dispatcher paces)
    window: int = 1  # requests the gateway keeps outstanding; submit batches >= this pay off
    delivery_reports: bool = True  # whether DeliveryReports will arrive at all
    inbound: bool = True  # whether replies (InboundMessage) can arrive
    # Whether `submit` takes `on_results` (see Gateway.submit): results handed over as the
    # provider answers, so delivery reports that overtake the end of a long call can be
    # matched to their part at once.
    early_results: bool = False


@dataclass(frozen=True)
class OutboundMessage:
    """One recipient's message, split into parts by core.segments.

    `parts_to_send` lists the part indexes (0-based) to submit in this call; a part the
    provider already accepted is never in it, so a retried message resends only the parts
    that were refused, with the same `concat_ref`. Empty means every part.

    `shift_table` names the GSM national language single shift table ("turkish",
    "spanish", "portuguese") the parts were counted with, or None for the default
    extension table; only meaningful with encoding "GSM-7" and only if the gateway lists
    it in `Capabilities.shift_tables` (otherwise the parts are refused as `permanent`).
    """

    message_id: int  # the ledger's id of this recipient's message
    to: str  # E.164 with '+'
    sender: str
    parts: tuple[str, ...]
    encoding: Encoding
    concat_ref: int  # 0..255, identical for every part of this message
    parts_to_send: tuple[int, ...] = ()
    register_delivery: bool = True
    shift_table: str | None = None

    def pending_parts(self) -> tuple[int, ...]:
        return self.parts_to_send or tuple(range(len(self.parts)))


@dataclass(frozen=True)
class PartResult:
    message_id: int
    part_index: int
    status: SubmitStatus
    provider_id: str | None = None  # set when status == "accepted"
    error: str | None = None  # provider's error code or text, for the ledger's reason
    retry_after: float | None = None  # seconds the provider asked us to wait, when it said


@dataclass(frozen=True)
class DeliveryReport:
    provider_id: str  # the id `submit` returned for exactly one part
    state: DeliveryState
    reason: str | None = None  # e.g. "absent subscriber", "err:001"
    at: datetime | None = None  # when the provider says it happened (UTC)
    raw: str | None = None  # the provider's text, for troubleshooting


@dataclass(frozen=True)
class InboundMessage:
    """A mobile-originated message: a reply such as STOP."""

    sender: str  # as the provider gives it: with or without '+', '00' or a national prefix
    recipient: str  # our sender id / short code it was sent to
    text: str
    at: datetime | None = None
    provider_id: str | None = None  # unique id when the provider gives one (dedup on it)


InboundEvent = DeliveryReport | InboundMessage
InboundHandler = Callable[[Sequence[InboundEvent]], None]
ResultsHandler = Callable[[Sequence[PartResult]], None]


class GatewayError(Exception):
    """A gateway could not be built or reached; the message says what to change.

    Never carries a password or token: messages show URLs through `redact`.
    """


@runtime_checkable
class Gateway(Protocol):
    """What the dispatcher needs from a provider.

    Threading: every method may be called from any thread; implementations serialise
    access to their connection internally, so the dispatcher may run `submit` in one
    thread and `receive` in another. None of them start threads of their own that
    outlive `close`.
    """

    name: str
    capabilities: Capabilities

    def connect(self) -> None:
        """Open the connection (bind, authenticate). Raises GatewayError when it cannot.

        Optional: `submit` and `receive` connect (and reconnect, with backoff) on their
        own; calling `connect` first just surfaces a wrong address or password early.
        """

    def submit(self, messages: Sequence[OutboundMessage]) -> list[PartResult]:
        """Submit the pending parts of each message; return one result per part submitted.

        Parts of one message are submitted in order (different messages may be in flight
        together, up to the gateway's window). When a part is refused, the remaining parts
        of that message are still attempted only if the refusal is retryable
        (throttled/transient); after a `permanent` refusal the remaining parts are not sent
        and are reported `permanent` with error "not sent: part N refused (...)"; after an
        `unknown` none of its remaining parts are sent and they are reported as `unknown`
        too (sending them would produce half a message). When the gateway is not connected
        and cannot reconnect yet, every part is `transient` with error "not connected: ...".
        Results come back in no particular order; match them on (message_id, part_index).

        A gateway whose `capabilities.early_results` is true also accepts a keyword
        `on_results` (a `ResultsHandler`): it is called with the results known so far, each
        result once, at the latest before an inbound event read after them is handed to a
        `receive` handler and before `submit` returns. It may run in another thread (the
        one reading for this call, or a `receive` caller) while the gateway holds its lock,
        so it must be quick and must not call the gateway. Every result is still in the
        returned list.
        """

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        """Wait up to `timeout` seconds for delivery reports and inbound messages.

        Calls `handler` with one batch (a non-empty sequence) and acknowledges the batch to
        the provider only after the handler returned; returns how many events were handled
        (0 when nothing arrived within `timeout`). Returns right after the first batch, so
        the dispatcher keeps control. If the handler raises, nothing in the batch is
        acknowledged as received (the provider will offer the events again: SMPP answers
        ESME_RX_T_APPN, the simulator puts them back, HTTP does not advance its cursor) and
        the exception propagates to the caller.
        """

    def close(self) -> None:
        """Release the connection; safe to call twice."""


@dataclass
class SubmitTotals:
    """Counts for progress reporting; kept by callers, handy in tests."""

    accepted: int = 0
    refused: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def add(self, results: Sequence[PartResult]) -> None:
        for r in results:
            self.by_status[r.status] = self.by_status.get(r.status, 0) + 1
            if r.status == "accepted":
                self.accepted += 1
            else:
                self.refused += 1
