"""SMPP 3.4 transceiver gateway.

Library choice: smpplib 2.2.4 connects and binds (bind_transceiver, optionally over TLS);
the socket loop is ours, and the PDUs exchanged by the thousand (submit_sm and responses out,
deliver_sm/data_sm in) are packed and parsed in smpp_wire. smpp34's client was ruled out
because its Rust core acknowledges every deliver_sm before Python sees it, so a STOP could be
acknowledged and then lost in a crash. smpplib's own `listen()`/`read_once()` loop does
acknowledge only after its handler returns, but it runs the handler inside the reading loop
and has no notion of a window; driving the socket ourselves lets `receive` acknowledge after
*the dispatcher's* handler stored the batch, and lets `submit` keep a window of requests
outstanding. aiosmpplib (asyncio) would need a loop thread inside the gateway for no gain.
TCP_NODELAY is set on the socket: without it Nagle's algorithm holds small PDUs back.
For the same reason, while only answers are awaited (the end of a batch) received segments
are acknowledged at once (TCP_QUICKACK): an SMSC using Nagle's algorithm would otherwise hold
its last answers for our delayed ACK, 40 ms at the end of every batch.

How a batch goes out (`submit`): parts of one message go one after the other (the next part
is sent when the previous one's response came), different messages interleave up to
`window` outstanding submit_sm, and a token bucket keeps to `rate` segments per second
(burst: the window). The submit_sm of one round go out in one write; while requests are
outstanding the window is refilled once a fifth of it is free, not after every answer
(fewer, larger writes and reads on both sides: each one wakes a thread). Responses are
matched by sequence number. Concurrent `submit` calls share the window: one thread at a
time drives the connection and fills the window from every call, oldest first, so a second
call keeps the window full while the first waits for its last answers (the dispatcher
keeps two calls running for that). The lock is not held while waiting for the socket.
`on_results` (`capabilities.early_results`) hands a call's results over while it runs, so
receipts overtaking the end of a long call can be matched to their part at once. Events
that arrive meanwhile (receipts, replies) are parsed and held *unacknowledged* until
`receive` hands them to its handler; only then is the deliver_sm_resp sent (ESME_ROK, or
ESME_RX_T_APPN if the handler raised, so the SMSC delivers it again later).

When the connection drops: parts whose submit_sm was written but not answered are
`unknown` (never resent), as are the later parts of their messages; parts not yet written
are `transient` "not connected". The next call reconnects, with exponential backoff
(0.5 s doubling up to `reconnect_max`). A silent link is probed with enquire_link and
declared dead after `timeout` seconds without an answer.

The password only ever reaches the bind PDU; smpplib's wire logger (which would hex-dump
that PDU at DEBUG) is pinned above DEBUG.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from smpplib import client as smpp_client
from smpplib import consts as smpp_consts
from smpplib import exceptions as smpp_exc

from . import gsm_codec, smpp_wire
from .base import (
    Capabilities,
    GatewayError,
    InboundEvent,
    InboundHandler,
    InboundMessage,
    OutboundMessage,
    PartResult,
    ResultsHandler,
    SubmitStatus,
)
from .config import GatewayConfig, Secret, redact
from .udh import build_udh, split_udh

log = logging.getLogger(__name__)

_WIRE_LOGGER = "core.gateways.smpp.wire"
_wire_log = logging.getLogger(_WIRE_LOGGER)
_wire_log.setLevel(logging.INFO)  # smpplib hex-dumps PDUs (the bind holds the password)
_wire_log.addFilter(lambda record: record.levelno > logging.DEBUG)

_SHIFT_BY_NLI = {nli: name for name, nli in gsm_codec.NATIONAL_LANGUAGE_IDS.items()}
_MAX_PDU = 64 * 1024
_RECEIPT_TYPES = (0x04, 0x08, 0x10, 0x20)  # esm_class message types that carry a receipt
# While a submit() in another thread reads the socket, a receive() lets held events gather
# this long (or up to this many) before taking them: one handler call and one write of
# acknowledgements for many events, instead of a thread hand-over per read.
_GATHER_SECONDS = 0.02
_GATHER_MAX = 2000
_QUICKACK = getattr(socket, "TCP_QUICKACK", 0)
_HEADER_UNPACK = struct.Struct(">IIII").unpack_from
_LENGTH_UNPACK = struct.Struct(">I").unpack_from


class _Dropped(Exception):
    """The connection is gone (or unusable); the text says why."""


class _Refused(Exception):
    """A part cannot be sent at all (encoding, length, address): permanent."""


class _Msg:
    """Submission state of one message within a `submit` call."""

    __slots__ = ("msg", "queue")

    def __init__(self, msg: OutboundMessage, queue: deque[int]) -> None:
        self.msg = msg
        self.queue = queue


class _Call:
    """State of one `submit` call: its results, what is left to send, what is in flight."""

    __slots__ = ("halted", "inflight", "notified", "on_results", "results", "todo")

    def __init__(self, on_results: ResultsHandler | None = None) -> None:
        self.results: list[PartResult] = []
        self.todo: deque[_Msg] = deque()
        self.halted: str | None = None  # why no more parts are sent (throttling)
        self.inflight = 0
        self.on_results = on_results
        self.notified = 0  # results handed to `on_results` so far

    def done(self) -> bool:
        return self.inflight == 0 and (not self.todo or self.halted is not None)

    def sendable(self) -> bool:
        return bool(self.todo) and self.halted is None


class SmppGateway:
    """An SMPP 3.4 transceiver; see the module docstring. Thread-safe."""

    name = "smpp"

    def __init__(
        self,
        config: GatewayConfig,
        password: Secret,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if config.kind != "smpp":
            raise GatewayError(f"not an SMPP gateway URL: {redact(config.url)!r}")
        o = config.options
        self.config = config
        self.url = redact(config.url)
        self.host, self.port, self.system_id = config.host, int(config.port or 0), config.username
        self._password = password
        self.window: int = o["window"]
        self.rate: float = o["rate"]
        self.timeout: float = o["timeout"]
        self.enquire_interval: float = o["enquire_link"]
        self.reconnect_max: float = o["reconnect_max"]
        self.registered_delivery: bool = o["registered_delivery"]
        self._opts = o
        shifts = tuple(s for s in o["shift"].split(",") if s)
        self.capabilities = Capabilities(
            max_parts=o["max_parts"],
            alphanumeric_senders=o["alphanumeric"],
            shift_tables=shifts,
            throughput=self.rate,
            window=self.window,
            delivery_reports=self.registered_delivery,
            inbound=True,
            early_results=True,
        )
        self._clock = clock
        self._lock = threading.RLock()
        # Notified when events are held or the connection changes: receive() waits on it
        # while a submit() in another thread is the one reading the socket.
        self._cond = threading.Condition(self._lock)
        # Notified when a call is done or the driving thread leaves: the threads of other
        # concurrent submit() calls wait on it (not on `_cond`, which every read wakes).
        self._calls_cond = threading.Condition(self._lock)
        self._waiting: dict[int, tuple[_Call, _Msg, int]] = {}  # submit_sm seq -> its part
        self._submitting = 0
        self._calls: list[_Call] = []  # submit calls running, oldest first
        self._driver: _Call | None = None  # the call whose thread drives the connection now
        self._opened = 0.0  # when the window last went from empty to non-empty
        self._heads: dict[str, bytes | str] = {}  # sender -> submit_sm head, or refusal
        # While requests are outstanding, the window is refilled once a fifth of it is free
        # rather than after every answer: fewer, larger writes and reads on both sides
        # (each costs a wake-up), at the same throughput.
        self._min_fill = max(1, self.window // 5)
        self._receivers = 0
        self._client: smpp_client.Client | None = None
        self._sock: socket.socket | None = None
        self._rbuf = bytearray()
        self._unacked: list[tuple[int, int, InboundEvent]] = []  # (command_id, seq, event)
        self._held_at = 0.0  # when the oldest held event was read
        self._generation = 0
        self._retry_at = 0.0
        self._backoff = 0.0
        self.last_error = ""
        self._last_rx = 0.0
        self._enquire_sent: float | None = None
        self._tokens = float(min(self.window, max(self.rate, 1.0)))
        self._tokens_at = clock()
        self.binds = 0
        self.enquire_links = 0  # sent so far (introspection)

    def __repr__(self) -> str:
        return f"SmppGateway({self.url!r})"

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> None:
        with self._lock:
            if self._sock is None:
                self._connect()

    def _connect(self) -> None:
        where = f"SMPP centre {self.host}:{self.port} (system_id {self.system_id!r})"
        client = smpp_client.Client(
            self.host,
            self.port,
            timeout=self.timeout,
            logger_name=_WIRE_LOGGER,
            allow_unknown_opt_params=True,
        )
        try:
            if self._opts["tls"]:
                ctx = ssl.create_default_context()
                raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
                client._socket = ctx.wrap_socket(raw, server_hostname=self.host)
                client.state = smpp_consts.SMPP_CLIENT_STATE_OPEN
            else:
                client.connect()
            sock = client._socket
            assert sock is not None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.bind_transceiver(
                system_id=self.system_id,
                password=self._password.reveal(),
                system_type=self._opts["system_type"],
            )
        except smpp_exc.PDUError as exc:
            self._discard(client)
            status = exc.args[1] if len(exc.args) > 1 else None
            what = smpp_wire.status_text(status) if isinstance(status, int) else "refused"
            raise GatewayError(f"{where} refused the bind: {what}") from None
        except (smpp_exc.ConnectionError, OSError, ssl.SSLError) as exc:
            self._discard(client)
            detail = str(exc) or type(exc).__name__
            raise GatewayError(f"cannot reach {where}: {detail}") from None
        sock.settimeout(self.timeout)
        self._client, self._sock = client, sock
        self._rbuf.clear()
        self._unacked.clear()  # un-acked events of the old session will be redelivered
        self._generation += 1
        self._last_rx = self._clock()
        self._enquire_sent = None
        self._backoff = 0.0
        self.binds += 1
        log.info("bound to %s", self.url)

    @staticmethod
    def _discard(client: smpp_client.Client) -> None:
        sock = client._socket
        client._socket = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        client.state = smpp_consts.SMPP_CLIENT_STATE_CLOSED

    def _ensure_connected(self) -> bool:
        if self._sock is not None:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        try:
            self._connect()
            return True
        except GatewayError as exc:
            self.last_error = str(exc)
            self._backoff = min(self.reconnect_max, max(0.5, self._backoff * 2))
            self._retry_at = now + self._backoff
            log.warning("%s; next attempt in %.1f s", exc, self._backoff)
            return False

    def _lost(self, reason: str) -> None:
        """Forget the connection; the next call reconnects (first attempt at once).

        Parts whose submit_sm was written but not answered become `unknown`, and so do the
        later parts of their messages (never half a message).
        """
        self._fail_waiting(reason)
        if self._client is not None:
            self._discard(self._client)
        self._client, self._sock = None, None
        self._rbuf.clear()
        self._unacked.clear()  # never acknowledged: the SMSC will deliver them again
        self.last_error = reason
        self._retry_at = self._clock() if self._backoff == 0 else self._clock() + self._backoff
        self._cond.notify_all()
        self._calls_cond.notify_all()
        log.warning("SMPP connection to %s lost: %s", self.url, reason)

    def _fail_waiting(self, reason: str) -> None:
        for call, st, p in self._waiting.values():
            call.inflight -= 1
            mid = st.msg.message_id
            error = f"no response before the connection was lost ({reason})"
            call.results.append(PartResult(mid, p, "unknown", error=error))
            why = f"not sent: part {p + 1} is unknown"
            call.results.extend(PartResult(mid, q, "unknown", error=why) for q in st.queue)
            st.queue.clear()
        self._waiting.clear()

    def close(self) -> None:
        with self._lock:
            sock, client = self._sock, self._client
            if sock is None or client is None:
                return
            try:
                sock.sendall(smpp_wire.unbind(client.next_sequence()))
                deadline = self._clock() + min(self.timeout, 2.0)
                while self._clock() < deadline:
                    pdus, dropped = self._read(0.1)
                    done = False
                    for raw in pdus:
                        if smpp_wire.header(raw)[1] == smpp_wire.UNBIND_RESP:
                            done = True
                        else:
                            self._handle_incoming(raw)
                    if dropped or done:
                        break
            except (OSError, _Dropped):
                pass
            self._fail_waiting("the gateway was closed")
            self._discard(client)
            self._client, self._sock = None, None
            self._unacked.clear()
            self._cond.notify_all()
            self._calls_cond.notify_all()

    # -- reading -----------------------------------------------------------------------------

    def _read(
        self, timeout: float, *, ack_now: bool = False, ready: bool = False
    ) -> tuple[list[bytes], str | None]:
        """Complete PDUs available within `timeout`, and a reason if the link dropped.
        `ready`: the caller saw the socket readable (no need to wait for it).

        `ack_now`: acknowledge the received TCP segments at once (TCP_QUICKACK) rather than
        up to 40 ms later. Used when only answers are awaited: with nothing of ours to carry
        the ACK, a peer using Nagle's algorithm holds its last small PDUs until it comes, and
        the end of every batch would stall for the delayed-ACK timer.
        """
        sock = self._sock
        if sock is None:
            return [], "not connected"
        dropped: str | None = None
        if not self._has_pdu():
            pending_tls = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            try:
                readable = ready or pending_tls or \
                    bool(select.select([sock], [], [], max(timeout, 0))[0])  # fmt: skip
                if readable:
                    data = sock.recv(1 << 18)
                    if ack_now and _QUICKACK and data:
                        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    if not data:
                        dropped = "connection closed by the SMSC"
                    else:
                        self._rbuf += data
                        self._last_rx = self._clock()
            except (ssl.SSLWantReadError, BlockingIOError, TimeoutError):
                pass
            except (OSError, ValueError) as exc:
                dropped = f"read failed: {exc}"
        pdus: list[bytes] = []
        buf = self._rbuf
        size = len(buf)
        if size < 16:
            return pdus, dropped
        data = bytes(buf)  # one copy; each PDU is then one slice of it
        pos = 0
        while size - pos >= 16:
            length = _LENGTH_UNPACK(data, pos)[0]
            if not 16 <= length <= _MAX_PDU:
                dropped = f"malformed PDU (command_length {length})"
                break
            if size - pos < length:
                break
            pdus.append(data[pos : pos + length])
            pos += length
        del buf[:pos]
        return pdus, dropped

    def _has_pdu(self) -> bool:
        buf = self._rbuf
        return len(buf) >= 16 and len(buf) >= int.from_bytes(buf[:4], "big")

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise _Dropped("not connected")
        try:
            sock.sendall(data)
        except (OSError, ValueError) as exc:
            raise _Dropped(f"write failed: {exc}") from None

    def _handle_all(self, pdus: list[bytes]) -> None:
        """Act on PDUs read together; wake a waiting receive() once if events were held,
        and the threads of calls that are now done."""
        held = len(self._unacked)
        unpack = _HEADER_UNPACK
        for raw in pdus:
            _, command_id, status, seq = unpack(raw)
            if command_id == smpp_wire.SUBMIT_SM_RESP:  # the two by the thousand first
                self._on_response(command_id, status, seq, raw)
            elif command_id == smpp_wire.DELIVER_SM:
                self._on_deliver(raw, command_id, seq)
            else:
                self._handle_incoming(raw)
        wake = False
        for call in self._calls:
            if call is not self._driver and call.done():
                wake = True
        if wake:
            self._calls_cond.notify_all()
        now_held = len(self._unacked)
        if now_held > held and (held == 0 or held < _GATHER_MAX <= now_held):
            self._cond.notify_all()

    @staticmethod
    def _hand_over(call: _Call) -> None:
        """Give `on_results` the results it has not seen yet."""
        if call.on_results is not None and len(call.results) > call.notified:
            fresh = call.results[call.notified :]
            call.notified = len(call.results)
            try:
                call.on_results(fresh)
            except Exception:  # the caller's bug must not break the connection
                log.exception("on_results failed")

    def _handle_incoming(self, raw: bytes) -> None:
        """Act on one PDU from the SMSC, whichever thread read it."""
        _, command_id, status, seq = smpp_wire.header(raw)
        if command_id in (smpp_wire.SUBMIT_SM_RESP, smpp_wire.GENERIC_NACK):
            self._on_response(command_id, status, seq, raw)
        elif command_id in (smpp_wire.DELIVER_SM, smpp_wire.DATA_SM):
            self._on_deliver(raw, command_id, seq)
        elif command_id == smpp_wire.ENQUIRE_LINK:
            self._send(smpp_wire.response(smpp_wire.ENQUIRE_LINK_RESP, 0, seq))
        elif command_id == smpp_wire.ENQUIRE_LINK_RESP:
            self._enquire_sent = None
        elif command_id == smpp_wire.UNBIND:
            with contextlib.suppress(_Dropped):
                self._send(smpp_wire.response(smpp_wire.UNBIND_RESP, 0, seq))
            raise _Dropped("the SMSC unbound the session")
        elif command_id == smpp_wire.ALERT_NOTIFICATION or command_id & 0x80000000:
            pass  # alert_notification needs no answer; other responses are not ours
        else:
            self._send(smpp_wire.response(smpp_wire.GENERIC_NACK, smpp_wire.ESME_RINVCMDID, seq))

    def _on_deliver(self, raw: bytes, command_id: int, seq: int) -> None:
        is_data_sm = command_id == smpp_wire.DATA_SM
        try:
            event = self._event(smpp_wire.parse_deliver(raw))
        except Exception as exc:  # unreadable: acknowledge, or the SMSC resends it forever
            log.warning("unreadable deliver_sm acknowledged and skipped: %s", exc)
            event = None
        if event is None:
            self._send(smpp_wire.deliver_sm_resp(seq, data_sm=is_data_sm))
            return
        if not self._unacked:
            self._held_at = self._clock()
        self._unacked.append((command_id, seq, event))

    def _event(self, f: smpp_wire.DeliverFields) -> InboundEvent | None:
        is_receipt = (f.esm_class & 0x3C) in _RECEIPT_TYPES or (
            f.receipted_message_id is not None and f.message_state is not None
        )
        udh_nli = None
        payload = f.short_message
        if f.esm_class & 0x40 and payload:
            udh, payload = split_udh(payload)
            udh_nli = udh.national_language
        if is_receipt:
            text = payload.decode("latin-1")
            report = smpp_wire.delivery_report(
                text,
                receipted_message_id=f.receipted_message_id,
                message_state=f.message_state,
                network_error=f.network_error,
            )
            if report is None:
                log.warning("delivery receipt without a message id skipped: %r", text[:80])
            return report
        sender = f.source_addr
        if f.source_ton == 1 and sender.isdigit():
            sender = "+" + sender
        return InboundMessage(
            sender=sender,
            recipient=f.destination_addr,
            text=_decode_text(f.data_coding, payload, _SHIFT_BY_NLI.get(udh_nli or -1)),
        )

    # -- keepalive -------------------------------------------------------------------------

    def _keepalive(self) -> None:
        if self._sock is None or self._client is None:
            return
        now = self._clock()
        if self._enquire_sent is not None:
            if now - self._enquire_sent > self.timeout:
                raise _Dropped(f"no answer to enquire_link within {self.timeout:g} s")
        elif now - self._last_rx > self.enquire_interval:
            self._send(smpp_wire.enquire_link(self._client.next_sequence()))
            self._enquire_sent = now
            self.enquire_links += 1

    # -- submit ------------------------------------------------------------------------------

    def submit(
        self, messages: Sequence[OutboundMessage], *, on_results: ResultsHandler | None = None
    ) -> list[PartResult]:
        """See `Gateway.submit`. Concurrent calls share the window: whichever call's thread
        holds the connection fills the window from every call, oldest call first, so a
        second call keeps the window full while the first waits for its last answers.
        `on_results` gets results as the SMSC answers (see `Gateway.submit`)."""
        call = _Call(on_results)
        for m in messages:
            pending = m.pending_parts()
            if any(not 0 <= p < len(m.parts) for p in pending):
                raise ValueError(f"message {m.message_id}: part index out of range {pending}")
            problem = self._message_problem(m)
            if problem:
                call.results.extend(
                    PartResult(m.message_id, p, "permanent", error=problem) for p in pending
                )
            else:
                call.todo.append(_Msg(m, deque(pending)))
        if not call.todo:
            return call.results
        with self._lock:
            if not self._ensure_connected():
                self._finish(call, "transient", f"not connected: {self.last_error}")
                return call.results
            self._submitting += 1
            self._calls.append(call)
        try:
            self._run(call)
        finally:
            with self._lock:
                self._hand_over(call)  # the rest (refusals, unknowns), before returning
                self._submitting -= 1
                self._calls.remove(call)
                if self._driver is call:
                    self._driver = None
                self._cond.notify_all()
                self._calls_cond.notify_all()
        return call.results

    def _run(self, call: _Call) -> None:
        """Send and read in rounds of at most ~50 ms. The lock is held while sending and
        while handling what was read, not while waiting for the socket, so a receive() in
        another thread can hand over and acknowledge events at any moment.

        One thread at a time drives the connection (fills the window for every call, reads
        every answer): only it reads the socket while calls run. The threads of other calls
        wait on `_calls_cond` until their call is done or the driver leaves.
        """
        first = True
        while True:
            with self._lock:
                if call.done():
                    break
                sock = self._sock
                if sock is None:  # lost, here or in another thread
                    self._finish(call, "transient", f"not connected: {self.last_error}")
                    return
                if self._driver is not None and self._driver is not call:
                    self._calls_cond.wait(0.05)  # notified when a call is done or the driver leaves
                    continue
                self._driver = call
                try:
                    if first:
                        self._keepalive()
                        first = False
                    self._fill()
                except _Dropped as exc:
                    self._lost(str(exc))
                    self._finish(call, "transient", f"not connected: {exc}")
                    return
                if call.done():
                    break
                sendable = any(c.sendable() for c in self._calls)
                wait = 0.05 if self._waiting or not sendable else \
                    min(self._token_wait(), 0.05)  # fmt: skip
                tail = bool(self._waiting) and not sendable
                ready = self._has_pdu() or (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0)
            if not ready:
                with contextlib.suppress(OSError, ValueError):  # closed meanwhile: see below
                    ready = bool(select.select([sock], [], [], wait)[0])
            with self._lock:
                if self._sock is not sock:  # lost (and perhaps reconnected) meanwhile
                    continue
                try:
                    pdus, why = self._read(0.0, ack_now=tail, ready=ready)
                    self._handle_all(pdus)
                    if why:
                        raise _Dropped(why)
                    silent = self._clock() - max(self._last_rx, self._opened)
                    if self._waiting and silent > self.timeout:
                        raise _Dropped(f"no response within {self.timeout:g} s")
                except _Dropped as exc:
                    self._lost(str(exc))
                    self._finish(call, "transient", f"not connected: {exc}")
                    return
        if call.halted is not None:
            self._finish(call, "throttled", call.halted)

    def _fill(self) -> None:
        """Send parts while the window and the rate allow, in one write, from every call
        (oldest first). Raises _Dropped.

        One write per round, not one per PDU: on loopback a send costs about as much as
        building the PDU. If the write fails part-way, the PDUs written completely count as
        in flight (their answer is `unknown`), the others go back to be sent later.
        """
        room = self.window - len(self._waiting)
        if room <= 0 or (room < self._min_fill and self._waiting):
            return  # refill in chunks: fewer, larger writes, for us and for the SMSC
        room = min(room, self._tokens_now())  # the rate: one token per part
        out: list[tuple[_Call, _Msg, int, int, bytes]] = []  # (call, message, part, seq, PDU)
        for call in self._calls:
            todo = call.todo
            while todo and call.halted is None and len(out) < room:
                st = todo.popleft()
                p = st.queue.popleft()
                try:
                    pdu, seq = self._encode(st.msg, p)
                except _Refused as exc:
                    mid = st.msg.message_id
                    call.results.append(PartResult(mid, p, "permanent", error=str(exc)))
                    why = f"not sent: part {p + 1} refused ({exc})"
                    call.results.extend(
                        PartResult(mid, q, "permanent", error=why) for q in st.queue
                    )
                    st.queue.clear()
                    continue
                out.append((call, st, p, seq, pdu))
            if len(out) >= room:
                break
        if not out:
            return
        self._tokens -= len(out)
        waiting = self._waiting
        if not waiting:  # the response timeout runs from the first request
            self._opened = self._clock()
        written, failure = self._write([entry[4] for entry in out])
        for call, st, p, seq, _ in out[:written]:
            waiting[seq] = (call, st, p)
            call.inflight += 1
        if failure is not None:
            self._tokens += len(out) - written
            for call, st, p, _, _ in reversed(out[written:]):  # not written whole: resendable
                st.queue.appendleft(p)
                call.todo.appendleft(st)
            raise _Dropped(failure)

    def _write(self, pdus: list[bytes]) -> tuple[int, str | None]:
        """Write PDUs back to back: (how many were handed over completely, why it failed).

        Unlike sendall, counts what went out before a failure, so the caller knows which
        requests the SMSC may have seen.
        """
        sock = self._sock
        if sock is None:
            return 0, "not connected"
        data = pdus[0] if len(pdus) == 1 else b"".join(pdus)
        sent = 0
        try:
            sent = sock.send(data)  # the whole batch, nearly always
            if sent < len(data):
                view = memoryview(data)
                while sent < len(data):
                    sent += sock.send(view[sent:])
        except (OSError, ValueError) as exc:
            complete, end = 0, 0
            for pdu in pdus:
                end += len(pdu)
                if end > sent:
                    break
                complete += 1
            return complete, f"write failed: {exc}"
        return len(pdus), None

    def _on_response(self, command_id: int, status: int, seq: int, raw: bytes) -> None:
        entry = self._waiting.pop(seq, None)
        if entry is None:
            log.info("response for unknown sequence %d ignored", seq)
            return
        call, st, p = entry
        call.inflight -= 1
        mid = st.msg.message_id
        results = call.results
        if status == 0 and command_id == smpp_wire.SUBMIT_SM_RESP and len(raw) > 16:
            end = raw.find(b"\0", 16)  # the message_id, the common case inline
            pid = raw[16 : end if end >= 0 else len(raw)].decode("ascii", errors="replace")
            if pid:
                results.append(PartResult(mid, p, "accepted", pid))
                if st.queue:
                    call.todo.appendleft(st)
                return
        verdict: SubmitStatus = smpp_wire.classify_status(status)  # type: ignore[assignment]
        if verdict == "accepted" and command_id == smpp_wire.SUBMIT_SM_RESP:
            pid = smpp_wire.submit_sm_resp_id(raw)
            if pid:
                results.append(PartResult(mid, p, "accepted", pid))
            else:  # accepted without an id: its receipts could never be matched
                error = "SMSC returned no message_id"
                results.append(PartResult(mid, p, "accepted", f"noid-{mid}-{p + 1}", error=error))
        elif verdict == "accepted":  # generic_nack with status 0: a malformed answer
            verdict = "transient"
            results.append(PartResult(mid, p, verdict, error="generic_nack"))
        else:
            results.append(PartResult(mid, p, verdict, error=smpp_wire.status_text(status)))
        name = smpp_wire.STATUS_NAMES.get(status, hex(status))
        if verdict == "throttled":
            call.halted = f"not sent: provider throttling ({name})"
        if verdict == "permanent":
            why = f"not sent: part {p + 1} refused ({name})"
            results.extend(PartResult(mid, q, "permanent", error=why) for q in st.queue)
            st.queue.clear()
        elif st.queue:
            call.todo.appendleft(st)

    @staticmethod
    def _finish(call: _Call, status: SubmitStatus, error: str) -> None:
        for st in call.todo:
            call.results.extend(
                PartResult(st.msg.message_id, q, status, error=error) for q in st.queue
            )
            st.queue.clear()
        call.todo.clear()

    def _message_problem(self, m: OutboundMessage) -> str | None:
        if len(m.parts) > self.capabilities.max_parts:
            return f"too many parts ({len(m.parts)} > max_parts {self.capabilities.max_parts})"
        if len(m.parts) > 1 and not 0 <= m.concat_ref <= 255:
            return f"concat_ref {m.concat_ref} is not 0..255"
        if m.shift_table is not None:
            if m.encoding != "GSM-7":
                return "a shift table only applies to GSM-7"
            if m.shift_table not in self.capabilities.shift_tables:
                return (
                    f"shift table {m.shift_table!r} is not enabled for this SMPP account "
                    f"(add shift={m.shift_table} to the gateway URL if the route supports it)"
                )
        return None

    # -- encoding ----------------------------------------------------------------------------

    def _addresses(self, m: OutboundMessage) -> tuple[int, int, str, str]:
        o = self._opts
        sender = m.sender
        digits = sender.lstrip("+")
        if o["source_ton"] >= 0:
            ton = o["source_ton"]
            npi = o["source_npi"] if o["source_npi"] >= 0 else (1 if ton == 1 else 0)
            src = digits if ton == 1 else sender
        elif digits.isdigit() and digits.isascii() and (sender.startswith("+") or len(digits) > 8):
            ton, npi, src = 1, 1, digits
        elif digits.isdigit() and digits.isascii():
            ton, npi, src = 3, 0, digits  # short code
        else:
            if not self.capabilities.alphanumeric_senders:
                raise _Refused(f"alphanumeric sender {sender!r} not allowed on this account")
            if len(sender) > 11:
                raise _Refused(f"alphanumeric sender {sender!r} is longer than 11 characters")
            ton, npi, src = 5, 0, sender
        dest = m.to.lstrip("+")
        return ton, npi, src, dest

    def _encode(self, m: OutboundMessage, index: int) -> tuple[bytes, int]:
        text = m.parts[index]
        total = len(m.parts)
        nli = None
        try:
            if m.encoding == "GSM-7":
                payload = gsm_codec.encode(text, m.shift_table)
                data_coding = 0
                if m.shift_table is not None:
                    nli = gsm_codec.NATIONAL_LANGUAGE_IDS[m.shift_table]
            elif m.encoding == "UCS-2":
                payload = text.encode("utf-16-be")
                data_coding = 8
            else:
                raise _Refused(f"unknown encoding {m.encoding!r}")
        except gsm_codec.GsmEncodeError as exc:
            raise _Refused(f"part {index + 1} is not GSM-7: {exc}") from None
        udh = b"" if total == 1 and nli is None else build_udh(
            ref=m.concat_ref if total > 1 else None,
            total=total,
            seq=index + 1,
            national_language=nli,
        )  # fmt: skip
        if data_coding == 0:
            limit = 160 - math.ceil(len(udh) * 8 / 7)
            if len(payload) > limit:
                raise _Refused(f"part {index + 1} has {len(payload)} septets (max {limit})")
        elif len(payload) + len(udh) > 140:
            raise _Refused(f"part {index + 1} has {len(payload)} octets (max {140 - len(udh)})")
        head = self._heads.get(m.sender)
        if head is None:
            head = self._head(m)
        if isinstance(head, str):
            raise _Refused(head)
        assert self._client is not None
        seq = self._client.next_sequence()
        try:
            pdu = smpp_wire.submit_sm_from_head(
                seq,
                head,
                m.to.lstrip("+"),
                udh + payload if udh else payload,
                esm_class=0x40 if udh else 0x00,
                data_coding=data_coding,
                registered_delivery=1 if (m.register_delivery and self.registered_delivery) else 0,
            )
        except ValueError as exc:  # UnicodeEncodeError included
            raise _Refused(str(exc)) from None
        return pdu, seq

    def _head(self, m: OutboundMessage) -> bytes | str:
        """The submit_sm octets that depend on the sender only, or why the sender cannot be
        used: built once per sender (a mailing has one)."""
        head: bytes | str
        try:
            ton, npi, src, _ = self._addresses(m)
            head = smpp_wire.submit_sm_head(
                source_addr=src,
                source_ton=ton,
                source_npi=npi,
                dest_ton=self._opts["dest_ton"],
                dest_npi=self._opts["dest_npi"],
                service_type=self._opts["service_type"],
            )
        except (_Refused, ValueError) as exc:  # UnicodeEncodeError included
            head = str(exc)
        if len(self._heads) >= 1000:
            self._heads.clear()
        self._heads[m.sender] = head
        return head

    # -- pacing ------------------------------------------------------------------------------

    def _tokens_now(self) -> int:
        """Whole tokens available now (the bucket refilled at `rate`, up to the burst)."""
        now = self._clock()
        burst = float(min(self.window, max(self.rate, 1.0)))
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * self.rate)
        self._tokens_at = now
        return int(self._tokens + 1e-9)

    def _token_wait(self) -> float:
        return max((1.0 - self._tokens) / self.rate, 0.0005)

    # -- receive -----------------------------------------------------------------------------

    def receive(self, handler: InboundHandler, timeout: float) -> int:
        deadline = self._clock() + max(timeout, 0.0)
        self._receivers += 1
        try:
            while True:
                with self._lock:
                    batch, generation = self._collect(deadline)
                if batch:
                    break
                if self._clock() >= deadline:
                    return 0
                self._await_input(deadline)
        finally:
            self._receivers -= 1
        events = [ev for _, _, ev in batch]
        try:
            handler(events)
        except BaseException:
            with self._lock:
                self._ack(batch, generation, smpp_wire.ESME_RX_T_APPN)
            raise
        with self._lock:
            self._ack(batch, generation, smpp_wire.ESME_ROK)
        return len(events)

    def _collect(self, deadline: float) -> tuple[list[tuple[int, int, InboundEvent]], int]:
        """Take the held events. While a submit() reads the socket, wait up to ~50 ms on the
        condition for some (then let them gather for `_GATHER_SECONDS`); otherwise read what
        the socket holds right now, without waiting (called holding the lock)."""
        if self._submitting:
            wait = min(0.05, max(deadline - self._clock(), 0.0))
            if not self._unacked:
                self._cond.wait(wait)  # notified when the first event is held
            if self._unacked and self._submitting and len(self._unacked) < _GATHER_MAX:
                now = self._clock()
                pause = min(self._held_at + _GATHER_SECONDS, deadline) - now
                if pause > 0:
                    self._cond.wait(pause)  # notified early only at _GATHER_MAX or the end
        elif not self._unacked and self._ensure_connected():
            try:
                self._keepalive()
                while True:
                    pdus, why = self._read(0.0)
                    self._handle_all(pdus)
                    if why:
                        raise _Dropped(why)
                    if not pdus or len(self._unacked) >= 5000:
                        break
            except _Dropped as exc:
                self._lost(str(exc))
        if self._unacked:
            for call in self._calls:  # the results read before these events, first
                self._hand_over(call)
        batch, self._unacked = self._unacked, []
        return batch, self._generation

    def _await_input(self, deadline: float) -> None:
        """Wait up to ~50 ms for the socket to become readable, *without* the lock: a
        submit() starting meanwhile must not queue behind an idle receive()."""
        wait = min(0.05, max(deadline - self._clock(), 0.0))
        sock = self._sock
        if self._submitting or wait <= 0:
            return  # _collect waits on the condition instead
        if sock is None:  # waiting for the reconnect backoff
            time.sleep(wait)
            return
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile: look again
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0):
                select.select([sock], [], [], wait)

    def _ack(
        self, batch: list[tuple[int, int, InboundEvent]], generation: int, status: int
    ) -> None:
        if generation != self._generation or self._sock is None:
            return  # that session is gone; the SMSC will deliver these again
        try:
            self._send(
                b"".join(
                    smpp_wire.deliver_sm_resp(seq, status, data_sm=cid == smpp_wire.DATA_SM)
                    for cid, seq, _ in batch
                )
            )
        except _Dropped as exc:
            self._lost(str(exc))

    # -- introspection for tests and pages ---------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def held_events(self) -> int:
        """Events read but not yet handed to a handler (and so not acknowledged)."""
        return len(self._unacked)


def _decode_text(data_coding: int, payload: bytes, shift: str | None) -> str:
    """Text of an MO message by data_coding (SMPP 3.4 5.2.19 / TS 23.038 section 4)."""
    dc = data_coding
    if (
        dc in (0, 1)
        or (dc & 0xF0 == 0xF0 and not dc & 0x04)
        or (dc & 0xC0 == 0x00 and dc & 0x0C == 0x00 and dc & 0x10)
    ):
        if dc == 1:
            return payload.decode("ascii", errors="replace")
        return gsm_codec.decode(payload, shift)
    if dc == 8 or (dc & 0xC0 == 0x00 and dc & 0x0C == 0x08):
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")
