"""REST gateway in the shape of Twilio's Messages API (stdlib only).

    POST {root}/Messages.json            To, From, Body (form), basic auth SID:token -> sid
    GET  {root}/Messages/{sid}.json      status polling (an analyst's laptop has no public
                                         URL for status callbacks)
    GET  {root}/Messages.json?To=NUMBER  inbound replies to our numbers (direction inbound)

with root = /2010-04-01/Accounts/{AccountSid}.

The provider splits long messages and chooses the encoding itself, so a message goes out
as ONE request with its pending parts joined, and the result applies to every part. Each
part still gets its own provider id (`SID` for a one-part message, `SID/1`, `SID/2`... for
longer ones) and its own DeliveryReport, so the dispatcher's one-id-one-part matching holds.

Outcomes: 2xx accepted; 429 (or error 20429/14107) throttled; 5xx, 401/403/404 (wrong
credentials or account: fixing the configuration makes a retry succeed) transient; other
4xx permanent with Twilio's code and message (e.g. "21211: The 'To' number ... is not a valid
phone number"); a connection that failed before the request was fully written transient;
no response after it was written unknown (the message may exist: never resent).

Status tracking is in memory: after a restart, call `track(provider_ids)` with the ids
still waiting for a report to resume polling them.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from .base import (
    Capabilities,
    DeliveryReport,
    DeliveryState,
    GatewayError,
    InboundEvent,
    InboundHandler,
    InboundMessage,
    OutboundMessage,
    PartResult,
)
from .config import GatewayConfig, Secret, redact

log = logging.getLogger(__name__)

_KEEPALIVE_REUSE = 2.0  # seconds a kept-alive connection may idle before we open a new one
_MAX_POLLS_PER_CALL = 200
_SEEN_LIMIT = 100_000

_FINAL: dict[str, DeliveryState] = {
    "delivered": "delivered", "read": "delivered",
    "undelivered": "undelivered", "failed": "failed", "canceled": "failed",
}  # fmt: skip
_THROTTLE_CODES = {20429, 14107}
_TRANSIENT_CODES = {20500, 20503}
#: Human reasons for Twilio's delivery error codes.
ERROR_REASONS = {
    30001: "queue overflow", 30002: "account suspended", 30003: "absent subscriber",
    30004: "blocked", 30005: "unknown subscriber", 30006: "landline or unreachable carrier",
    30007: "blocked (carrier filtering)", 30008: "unknown error",
    21610: "recipient unsubscribed (STOP)",
}  # fmt: skip


class _NotSent(Exception):
    """The request was certainly not (completely) sent."""


class _NoAnswer(Exception):
    """The request was sent; no (readable) response came back."""


@dataclass
class _Track:
    ids: tuple[str, ...]
    next_poll: float
    since: float
    tries: int = 0
    last_status: str = "queued"


@dataclass
class _Pending:
    """Events produced but not yet handed to a handler, with what to do once they are."""

    ready: list[InboundEvent] = field(default_factory=list)  # known since submit
    polled: list[InboundEvent] = field(default_factory=list)  # found by this poll
    finals: list[str] = field(default_factory=list)  # sids to stop tracking
    inbound: list[str] = field(default_factory=list)  # inbound sids to mark seen

    @property
    def events(self) -> list[InboundEvent]:
        return [*self.ready, *self.polled]


class HttpGateway:
    """Twilio-shaped REST gateway; see the module docstring. Thread-safe."""

    name = "http"

    def __init__(
        self,
        config: GatewayConfig,
        token: Secret,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.kind != "http":
            raise GatewayError(f"not an HTTP gateway URL: {redact(config.url)!r}")
        o = config.options
        self.config = config
        self.url = redact(config.url)
        self.account = config.username
        self._https = config.scheme == "https"
        self._host = config.host
        self._port = config.port
        self._root = f"/2010-04-01/Accounts/{self.account}"
        creds = f"{self.account}:{token.reveal()}".encode()
        self._auth = Secret("Basic " + base64.b64encode(creds).decode("ascii"))
        self.rate: float = o["rate"]
        self.window: int = o["window"]
        self.poll: float = o["poll"]
        self.timeout: float = o["timeout"]
        self.track_seconds: float = o["track_hours"] * 3600
        self.capabilities = Capabilities(
            max_parts=o["max_parts"],
            alphanumeric_senders=o["alphanumeric"],
            shift_tables=(),
            throughput=self.rate,
            window=self.window,
            delivery_reports=True,
            inbound=True,
        )
        self._clock = clock
        self._lock = threading.RLock()
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._tracked: dict[str, _Track] = {}
        self._ready: list[InboundEvent] = []  # reports known at submit time
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._numbers: set[str] = {o["from"]} if o["from"] else set()
        self._next_inbound = 0.0
        self._inbound_since = datetime.now(UTC) - timedelta(days=1)
        self._next_slot = 0.0
        self._slot_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpGateway({self.url!r})"

    # -- HTTP plumbing -----------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        used: float = getattr(self._local, "used", 0.0)
        if conn is not None and time.monotonic() - used > _KEEPALIVE_REUSE:
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_conn(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if params:
            path = f"{path}?{urlencode(params)}"
        body = urlencode(form).encode() if form is not None else None
        headers = {"Authorization": self._auth.reveal(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = self._conn()
        try:
            conn.request(method, path, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            raise _NotSent(f"{type(exc).__name__}: {exc}") from None
        try:
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop_conn()
            raise _NoAnswer(f"{type(exc).__name__}: {exc}") from None
        self._local.used = time.monotonic()
        if resp.will_close:
            self._drop_conn()
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            data = {"message": raw[:200].decode("utf-8", errors="replace")}
        if not isinstance(data, dict):
            data = {"message": str(data)[:200]}
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.window == 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.window, thread_name_prefix="http-gateway")
        return list(self._pool.map(fn, items))

    def _pace(self, parts: int) -> None:
        """Keep to `rate` segments per second across the worker threads."""
        with self._slot_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + parts / self.rate
        if slot > now:
            time.sleep(slot - now)

    # -- Gateway protocol ------------------------------------------------------------------

    def connect(self) -> None:
        """Check the account and token with one GET of the account's messages."""
        try:
            status, _, data = self._request(
                "GET", f"{self._root}/Messages.json", params={"PageSize": "1"}
            )
        except (_NotSent, _NoAnswer) as exc:
            raise GatewayError(f"cannot reach {self.url}: {exc}") from None
        if status in (401, 403):
            raise GatewayError(
                f"{self.url} refused the credentials (HTTP {status}): check the account SID "
                "and SMS_STUDIO_HTTP_TOKEN"
            )
        if status >= 400:
            raise GatewayError(f"{self.url} answered HTTP {status}: {_error_text(data)}")

    def submit(self, messages: Sequence[OutboundMessage]) -> list[PartResult]:
        results: list[PartResult] = []
        jobs: list[OutboundMessage] = []
        for m in messages:
            pending = m.pending_parts()
            if any(not 0 <= p < len(m.parts) for p in pending):
                raise ValueError(f"message {m.message_id}: part index out of range {pending}")
            if len(m.parts) > self.capabilities.max_parts:
                error = f"too many parts ({len(m.parts)} > {self.capabilities.max_parts})"
                results.extend(
                    PartResult(m.message_id, p, "permanent", error=error) for p in pending
                )
            else:
                jobs.append(m)
            if m.sender.startswith("+") and m.sender[1:].isdigit():
                self._numbers.add(m.sender)
        for chunk in self._map(self._submit_one, jobs):
            results.extend(chunk)
        return results

    def _submit_one(self, m: OutboundMessage) -> list[PartResult]:
        pending = m.pending_parts()
        mid = m.message_id
        form = {"To": m.to, "From": m.sender, "Body": "".join(m.parts[p] for p in pending)}
        self._pace(len(pending))
        try:
            status, headers, data = self._request("POST", f"{self._root}/Messages.json", form)
        except _NotSent as exc:
            return [PartResult(mid, p, "transient", error=f"not connected: {exc}") for p in pending]
        except _NoAnswer as exc:
            return [PartResult(mid, p, "unknown", error=f"no response: {exc}") for p in pending]
        code = _error_code(data)
        if 200 <= status < 300 and data.get("sid"):
            sid = str(data["sid"])
            ids = tuple(sid if len(m.parts) == 1 else f"{sid}/{p + 1}" for p in pending)
            self._on_accepted(sid, ids, data)
            return [
                PartResult(mid, p, "accepted", pid) for p, pid in zip(pending, ids, strict=True)
            ]
        if 200 <= status < 300:
            return [PartResult(mid, p, "unknown", error="accepted without a sid") for p in pending]
        text = f"HTTP {status} " + _error_text(data)
        if status == 429 or code in _THROTTLE_CODES:
            retry = _retry_after(headers.get("retry-after"))
            return [PartResult(mid, p, "throttled", error=text, retry_after=retry) for p in pending]
        if status >= 500 or status in (401, 403, 404, 408, 409) or code in _TRANSIENT_CODES:
            return [PartResult(mid, p, "transient", error=text) for p in pending]
        return [PartResult(mid, p, "permanent", error=text) for p in pending]

    def _on_accepted(self, sid: str, ids: tuple[str, ...], data: dict[str, Any]) -> None:
        events = _reports(ids, data)
        with self._lock:
            if events:
                self._ready.extend(events)
            else:
                now = self._clock()
                self._tracked[sid] = _Track(ids, now + self.poll, now)

    def track(self, provider_ids: Iterable[str]) -> int:
        """Resume status polling for ids returned by an earlier run; returns sids tracked."""
        by_sid: dict[str, list[str]] = {}
        for pid in provider_ids:
            by_sid.setdefault(pid.split("/", 1)[0], []).append(pid)
        now = self._clock()
        with self._lock:
            for sid, ids in by_sid.items():
                self._tracked[sid] = _Track(tuple(sorted(ids)), now, now)
        return len(by_sid)

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        deadline = self._clock() + max(timeout, 0.0)
        while True:
            pending = self._gather()
            if pending.events:
                break
            now = self._clock()
            if now >= deadline or self._closed:
                return 0
            with self._lock:
                dues = [t.next_poll for t in self._tracked.values()]
            next_due = min([*dues, self._next_inbound if self._numbers else deadline])
            time.sleep(min(max(next_due - now, 0.01), deadline - now, 0.25))
        events = pending.events
        try:
            handler(events)
        except BaseException:
            with self._lock:  # offer everything again: re-poll at once, keep the ready ones
                now = self._clock()
                for sid in pending.finals:
                    if sid in self._tracked:
                        self._tracked[sid].next_poll = now
                self._ready[:0] = pending.ready
                self._next_inbound = now
            raise
        with self._lock:
            for sid in pending.finals:
                self._tracked.pop(sid, None)
            for sid in pending.inbound:
                self._remember(sid)
        return len(events)

    def _gather(self) -> _Pending:
        pending = _Pending()
        with self._lock:
            pending.ready, self._ready = self._ready, []
            now = self._clock()
            due = sorted(
                (sid for sid, t in self._tracked.items() if t.next_poll <= now),
                key=lambda s: self._tracked[s].next_poll,
            )[:_MAX_POLLS_PER_CALL]
            poll_inbound = bool(self._numbers) and self._next_inbound <= now
        for sid, outcome in zip(due, self._map(self._poll_status, due), strict=True):
            if outcome is not None:
                pending.polled.extend(outcome)
                pending.finals.append(sid)
        if poll_inbound:
            pending.polled.extend(self._poll_inbound(pending))
        return pending

    def _poll_status(self, sid: str) -> list[InboundEvent] | None:
        with self._lock:
            track = self._tracked.get(sid)
        if track is None:
            return None
        try:
            status, _, data = self._request("GET", f"{self._root}/Messages/{sid}.json")
        except (_NotSent, _NoAnswer):
            status, data = 0, {}
        now = self._clock()
        if status == 404:
            return [
                DeliveryReport(pid, "unknown", "message not found at the provider")
                for pid in track.ids
            ]
        if status == 200:
            events = _reports(track.ids, data)
            if events:
                return list(events)
            track.last_status = str(data.get("status", track.last_status))
        if now - track.since > self.track_seconds:
            why = f"no final status after {self.track_seconds / 3600:g} h ({track.last_status})"
            return [DeliveryReport(pid, "unknown", why) for pid in track.ids]
        with self._lock:
            track.tries += 1
            track.next_poll = now + min(max(self.poll, 0.0) * (1.5 ** min(track.tries, 10)), 300.0)
        return None

    def _poll_inbound(self, pending: _Pending) -> list[InboundEvent]:
        with self._lock:
            numbers = sorted(self._numbers)
            self._next_inbound = self._clock() + self.poll
        since = self._inbound_since.strftime("%Y-%m-%d")
        events: list[InboundEvent] = []
        for number in numbers:
            path: str | None = f"{self._root}/Messages.json"
            params: dict[str, str] | None = {"To": number, "DateSent>": since, "PageSize": "100"}
            for _ in range(20):  # pages
                assert path is not None
                try:
                    status, _, data = self._request("GET", path, params=params)
                except (_NotSent, _NoAnswer) as exc:
                    log.warning("inbound poll of %s failed: %s", number, exc)
                    break
                if status != 200:
                    log.warning("inbound poll of %s: HTTP %s %s", number, status, _error_text(data))
                    break
                for msg in data.get("messages") or []:
                    sid = str(msg.get("sid", ""))
                    if (
                        not str(msg.get("direction", "")).startswith("inbound")
                        or not sid
                        or sid in self._seen
                        or sid in pending.inbound
                    ):
                        continue
                    pending.inbound.append(sid)
                    events.append(
                        InboundMessage(
                            sender=str(msg.get("from", "")),
                            recipient=str(msg.get("to", number)),
                            text=str(msg.get("body", "")),
                            at=_parse_date(msg.get("date_sent") or msg.get("date_created")),
                            provider_id=sid,
                        )
                    )
                path, params = data.get("next_page_uri"), None
                if not path:
                    break
        return events

    def _remember(self, sid: str) -> None:
        self._seen.add(sid)
        self._seen_order.append(sid)
        while len(self._seen_order) > _SEEN_LIMIT:
            self._seen.discard(self._seen_order.popleft())

    @property
    def tracked(self) -> int:
        """Messages still waiting for a final status."""
        with self._lock:
            return len(self._tracked)

    def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self._drop_conn()


def _reports(ids: tuple[str, ...], data: dict[str, Any]) -> list[InboundEvent]:
    """One DeliveryReport per part id when `data` carries a final status, else []."""
    status = str(data.get("status", "")).lower()
    state = _FINAL.get(status)
    if state is None:
        return []
    code = data.get("error_code")
    reason = None
    if code not in (None, "", 0, "0"):
        try:
            reason = f"{int(code)} {ERROR_REASONS.get(int(code), 'error')}"
        except (TypeError, ValueError):
            reason = str(code)
    if state != "delivered" and reason is None:
        reason = status
    at = _parse_date(data.get("date_updated") or data.get("date_sent"))
    raw = json.dumps({k: data.get(k) for k in ("sid", "status", "error_code", "error_message")})
    return [DeliveryReport(pid, state, reason, at, raw) for pid in ids]


def _error_code(data: dict[str, Any]) -> int | None:
    try:
        return int(data["code"])
    except (KeyError, TypeError, ValueError):
        return None


def _error_text(data: dict[str, Any]) -> str:
    code = data.get("code")
    message = str(data.get("message", "")).strip()
    return f"{code}: {message}" if code is not None else (message or "no details")


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _parse_date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
