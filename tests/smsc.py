"""A test SMSC: smpp34's SMPP 3.4 server, with knobs for the behaviours a client must survive.

The protocol is handled by smpp34 (written by someone else, so our client is not tested
against its own assumptions); this module only decides what the SMSC does: which numbers
fail, when to throttle, when to cut the connection, which receipts to send. It runs an
asyncio loop in a daemon thread, on 127.0.0.1, with a small TCP relay in front whose
connections can be aborted (smpp34's `unbind()` does not end a session).

In a test:

    with TestSMSC() as smsc:
        gw = SmppGateway(parse_gateway_url(smsc.url(window=10)), Secret("pw"))
        ...
        smsc.wait_for(lambda: len(smsc.received) == 3)
        assert smsc.texts("31612345678") == ["hello"]

Standalone (crash tests run the client in another process and compare with the record):

    python tests/smsc.py --port 2775 --record received.jsonl [--drop-after N] ...

writes one JSON object per received part (flushed per line) and prints
"SMSC listening on 127.0.0.1:PORT" once ready; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import smpp34

if __package__ in (None, ""):  # run as a script: make `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.gateways import gsm_codec
from core.gateways.udh import split_udh

ESME_ROK = 0x00
ESME_RMSGQFUL = 0x14
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RTHROTTLED = 0x58

_MESSAGE_STATES = {
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
    "ENROUTE": 1,
}
_SHIFT_BY_NLI = {nli: name for name, nli in gsm_codec.NATIONAL_LANGUAGE_IDS.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ReceivedPart:
    """One submit_sm as the SMSC saw it."""

    n: int  # 1-based order of arrival
    at: float  # time.time() on arrival
    session: str
    source: str
    destination: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    source_ton: int
    source_npi: int
    dest_ton: int
    dest_npi: int
    short_message: bytes
    udh: bytes | None
    ref: int | None
    total: int
    part: int
    national_language: int | None
    text: str
    status: int = ESME_ROK  # what the SMSC answered (or would have, see `answered`)
    message_id: str | None = None
    answered: bool = True  # False when the connection was cut instead of answering

    def to_json(self) -> str:
        d = asdict(self)
        d["short_message"] = self.short_message.hex()
        d["udh"] = self.udh.hex() if self.udh is not None else None
        return json.dumps(d, ensure_ascii=False)


def decode_part(data_coding: int, esm_class: int, short_message: bytes) -> dict[str, Any]:
    """UDH fields and text of a short_message, as a handset would read them."""
    udh = None
    ref, total, part, nli = None, 1, 1, None
    payload = short_message
    if esm_class & 0x40:
        parsed, payload = split_udh(short_message)
        udh = short_message[: parsed.length]
        ref, total, part, nli = parsed.ref, parsed.total, parsed.seq, parsed.national_language
    if data_coding in (0, 1):
        text = gsm_codec.decode(payload, _SHIFT_BY_NLI.get(nli) if nli is not None else None)
    elif data_coding == 8:
        text = payload.decode("utf-16-be", errors="replace")
    elif data_coding == 3:
        text = payload.decode("latin-1")
    else:
        text = payload.hex()
    return {
        "udh": udh,
        "ref": ref,
        "total": total,
        "part": part,
        "national_language": nli,
        "text": text,
    }


class _Pipe(asyncio.Protocol):
    """One direction-agnostic end of the relay; forwards bytes to its peer."""

    def __init__(self, relay: _Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.relay.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        if self.relay.blackhole:
            return  # a link that went silent: nothing arrives, nothing is answered
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.relay.transports.discard(self.transport)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


class _Relay:
    """TCP relay in front of the SMPP server, so tests can cut connections abruptly."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.transports: set[asyncio.Transport] = set()
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.blackhole = False
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._accept, "127.0.0.1", port)
        return int(self.server.sockets[0].getsockname()[1])

    def _accept(self) -> _Pipe:
        self.connections += 1
        down = _Pipe(self)
        task = asyncio.ensure_future(self._connect_upstream(down))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return down

    async def _connect_upstream(self, down: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        up = _Pipe(self)
        try:
            await loop.create_connection(lambda: up, "127.0.0.1", self.target_port)
        except OSError:
            if down.transport is not None:
                down.transport.abort()
            return
        up.peer, down.peer = down, up
        assert up.transport is not None
        for chunk in down.pending:
            up.transport.write(chunk)
        down.pending.clear()

    def abort_all(self) -> int:
        victims = list(self.transports)
        for t in victims:
            t.abort()
        return len(victims)


@dataclass
class _Knobs:
    receipts: bool = True
    receipt_tlvs: bool = True
    receipt_delay: float = 0.0
    undeliverable: set[str] = field(default_factory=set)
    reject: dict[str, int] = field(default_factory=dict)
    throttle_first: int = 0
    throttle_until: float = 0.0  # time.monotonic() deadline
    drop_after: int | None = None
    redeliver_delay: float = 0.3  # resend a deliver_sm answered with an error, after this
    redeliver_max: int = 3
    hold_responses: bool = False  # keep submits unanswered until release()
    status_hook: Callable[[ReceivedPart], int | None] | None = None


class TestSMSC:
    """An SMSC on 127.0.0.1 for tests; see the module docstring. Knobs are attributes.

    Knobs: `receipts` (send receipts when registered_delivery asks), `receipt_tlvs` (add the
    receipted_message_id and message_state TLVs), `receipt_delay` (seconds),
    `undeliverable` (numbers whose receipts say UNDELIV), `reject` ({number: status}),
    `throttle_first` (answer ESME_RTHROTTLED to that many submits), `throttle_until`
    (time.monotonic() until which every submit is throttled), `drop_after` (cut every
    connection when that many submits have arrived in total; the submit that triggers it
    is recorded but never answered; fires once), `hold_responses` (answer nothing until
    `release()`), `status_hook` (f(part) -> status or None). `blackhole` (property) makes the
    relay swallow all traffic silently, like a link that died without a reset.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        relay: bool = True,
        port: int = 0,
        record: IO[str] | None = None,
        system_id: str = "TESTSMSC",
        **knobs: Any,
    ) -> None:
        self.knobs = _Knobs(**knobs)
        self.use_relay = relay
        self.requested_port = port
        self.system_id = system_id
        self.record_file = record
        self.received: list[ReceivedPart] = []
        self.deliveries: list[dict[str, Any]] = []  # every deliver_sm sent and its answer
        self.sessions: dict[str, smpp34.Esme] = {}
        self.binds = 0
        self.port = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: smpp34.Server | None = None
        self._relay: _Relay | None = None
        self._cond = threading.Condition()
        self._held: list[tuple[smpp34.SubmitSmEvent, ReceivedPart]] = []
        self._tasks: set[asyncio.Task[Any]] = set()  # deliver_sm in progress
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._serve_task: asyncio.Task[None] | None = None

    # knobs as attributes: smsc.throttle_first = 5
    def __getattr__(self, name: str) -> Any:
        knobs = self.__dict__.get("knobs")
        if knobs is not None and hasattr(knobs, name):
            return getattr(knobs, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        knobs = self.__dict__.get("knobs")
        if knobs is not None and name in _Knobs.__dataclass_fields__:
            setattr(knobs, name, value)
        else:
            super().__setattr__(name, value)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TestSMSC:
        self._thread = threading.Thread(target=self._run, name="test-smsc", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test SMSC did not start within 10 s")
        if self._error is not None:
            raise RuntimeError(f"test SMSC failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> TestSMSC:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, system_id: str = "studio", **params: Any) -> str:
        query = "&".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in params.items())
        return f"smpp://{system_id}@127.0.0.1:{self.port}" + (f"?{query}" if query else "")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_servers())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._serve_task = loop.create_task(self._serve())
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start_servers(self) -> None:
        self._stop_event = asyncio.Event()
        inner_port = free_port() if self.use_relay or not self.requested_port else 0
        if not self.use_relay and self.requested_port:
            inner_port = self.requested_port
        self._server = smpp34.Server("127.0.0.1", inner_port, system_id=self.system_id)
        await self._server.start()
        if self.use_relay:
            self._relay = _Relay(inner_port)
            self.port = await self._relay.start(self.requested_port)
        else:
            self.port = inner_port

    async def _shutdown(self) -> None:
        # smpp34's deliver_sm futures live in its Rust runtime: let them finish (they fail
        # fast once the sessions are gone) instead of cancelling them, or the runtime may
        # call back into Python while the interpreter is shutting down.
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        if self._relay is not None:
            self._relay.abort_all()
            if self._relay.server is not None:
                self._relay.server.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    # -- the SMSC's behaviour ----------------------------------------------------------------

    async def _serve(self) -> None:
        assert self._server is not None
        while True:
            try:
                ev = await self._server.next()
            except Exception:  # server stopped
                return
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
                self.binds += 1
            elif isinstance(ev, smpp34.Unbound):
                self.sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                self._on_submit(ev)
            self._notify()

    def _on_submit(self, ev: smpp34.SubmitSmEvent) -> None:
        k = self.knobs
        fields = decode_part(ev.data_coding, ev.esm_class, ev.short_message)
        part = ReceivedPart(
            n=len(self.received) + 1,
            at=time.time(),
            session=ev.session_id,
            source=ev.source_addr,
            destination=ev.destination_addr,
            data_coding=ev.data_coding,
            esm_class=ev.esm_class,
            registered_delivery=ev.registered_delivery,
            source_ton=ev.source_addr_ton,
            source_npi=ev.source_addr_npi,
            dest_ton=ev.dest_addr_ton,
            dest_npi=ev.dest_addr_npi,
            short_message=bytes(ev.short_message),
            **fields,
        )
        status = self._decide(part)
        drop = k.drop_after is not None and part.n >= k.drop_after
        part.status = status
        if status == ESME_ROK:
            part.message_id = f"{next(self._ids):08X}"
        part.answered = not drop
        self.received.append(part)
        if self.record_file is not None:
            self.record_file.write(part.to_json() + "\n")
            self.record_file.flush()
        if drop:
            k.drop_after = None
            self.drop_connections()
            return
        if k.hold_responses:
            self._held.append((ev, part))
            return
        self._answer(ev, part)

    def _answer(self, ev: smpp34.SubmitSmEvent, part: ReceivedPart) -> None:
        k = self.knobs
        status = part.status
        try:
            if status == ESME_ROK:
                ev.accept(part.message_id)
            else:
                ev.reject(status)
        except Exception:  # session gone (dropped): the client will call it unknown
            part.answered = False
            return
        if status == ESME_ROK and k.receipts and ev.registered_delivery & 0x01:
            self._spawn(self._send_receipt(ev.session_id, part))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _decide(self, part: ReceivedPart) -> int:
        k = self.knobs
        if k.status_hook is not None and (hooked := k.status_hook(part)) is not None:
            return hooked
        if part.destination in k.reject:
            return k.reject[part.destination]
        if k.throttle_first > 0:
            k.throttle_first -= 1
            return ESME_RTHROTTLED
        if time.monotonic() < k.throttle_until:
            return ESME_RTHROTTLED
        return ESME_ROK

    async def _send_receipt(self, session_id: str, part: ReceivedPart) -> None:
        k = self.knobs
        if k.receipt_delay:
            await self._pause(k.receipt_delay)
            if self._stopping:
                return
        stat = "UNDELIV" if part.destination in k.undeliverable else "DELIVRD"
        err = "001" if stat == "UNDELIV" else "000"
        now = datetime.now(UTC).strftime("%y%m%d%H%M")
        text = (
            f"id:{part.message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{now} done date:{now} stat:{stat} err:{err} text:{part.text[:20]}"
        )
        tlvs = []
        if k.receipt_tlvs:
            assert part.message_id is not None
            tlvs = [
                smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, part.message_id.encode() + b"\0"),
                smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([_MESSAGE_STATES[stat]])),
            ]
        await self._deliver(
            session_id,
            "receipt",
            part.source,
            text.encode("ascii", errors="replace"),
            source_addr=part.destination,
            esm_class=0x04,
            tlvs=tlvs,
            message_id=part.message_id,
        )

    async def _deliver(
        self, session_id: str | None, kind: str, destination: str, payload: bytes, **kw: Any
    ) -> int | None:
        """Send a deliver_sm; resend it (like a real SMSC) while it is answered with an error."""
        message_id = kw.pop("message_id", None)
        for attempt in range(1 + self.knobs.redeliver_max):
            if self._stopping:
                return None
            esme = self._session(session_id)
            if esme is None:
                self._log_delivery(kind, destination, None, attempt, message_id, "no session")
                return None
            try:
                resp = await esme.deliver_sm(destination, payload, **kw)
            except smpp34.SmppError as exc:
                self._log_delivery(kind, destination, None, attempt, message_id, str(exc))
                session_id = None  # try whichever session is bound now
                await self._pause(self.knobs.redeliver_delay)
                continue
            self._log_delivery(kind, destination, resp.command_status, attempt, message_id)
            if resp.command_status == ESME_ROK:
                return ESME_ROK
            await self._pause(self.knobs.redeliver_delay)
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the SMSC stops."""
        assert self._stop_event is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), seconds)

    def _session(self, session_id: str | None) -> smpp34.Esme | None:
        if session_id is not None and session_id in self.sessions:
            return self.sessions[session_id]
        bound = [s for s in self.sessions.values() if s.can_receive]
        return bound[-1] if bound else None

    def _log_delivery(
        self,
        kind: str,
        destination: str,
        status: int | None,
        attempt: int,
        message_id: str | None,
        error: str | None = None,
    ) -> None:
        self.deliveries.append(
            {
                "kind": kind,
                "to": destination,
                "status": status,
                "attempt": attempt,
                "message_id": message_id,
                "error": error,
            }
        )
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- controls for tests ------------------------------------------------------------------

    def release(self) -> None:
        """Answer every held submit and stop holding."""
        assert self._loop is not None

        async def go() -> None:
            self.knobs.hold_responses = False
            held, self._held = self._held, []
            for ev, part in held:
                self._answer(ev, part)

        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    @property
    def blackhole(self) -> bool:
        return self._relay is not None and self._relay.blackhole

    @blackhole.setter
    def blackhole(self, value: bool) -> None:
        if self._relay is None:
            raise RuntimeError("blackhole needs the relay (TestSMSC(relay=True))")
        self._relay.blackhole = value

    def drop_connections(self) -> int:
        """Abort every client connection at once (no unbind). Call from any thread."""
        if self._relay is None:
            raise RuntimeError("drop_connections needs the relay (TestSMSC(relay=True))")
        if self._loop is not None and threading.current_thread() is not self._thread:
            fut = asyncio.run_coroutine_threadsafe(self._abort_async(), self._loop)
            return int(fut.result(5))
        return self._relay.abort_all()

    async def _abort_async(self) -> int:
        assert self._relay is not None
        return self._relay.abort_all()

    def send_mo(
        self,
        sender: str,
        recipient: str,
        text: str,
        *,
        timeout: float = 5.0,
        data_coding: int | None = None,
    ) -> int | None:
        """Send a mobile-originated message to the bound client; returns the final status of
        its deliver_sm_resp (after redeliveries), None if it was never acknowledged."""
        if data_coding is None:
            data_coding = 0 if gsm_codec.is_gsm7(text) else 8
        payload = gsm_codec.encode(text) if data_coding == 0 else text.encode("utf-16-be")
        assert self._loop is not None
        coro = self._deliver(
            None,
            "mo",
            recipient,
            payload,
            source_addr=sender,
            source_addr_ton=1,
            source_addr_npi=1,
            data_coding=data_coding,
            esm_class=0x00,
        )
        return asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop).result(timeout)

    async def _tracked(self, coro: Any) -> Any:
        return await self._spawn(coro)

    def send_mo_async(self, sender: str, recipient: str, text: str) -> None:
        """Like send_mo, without waiting for the answer."""
        payload = gsm_codec.encode(text)
        assert self._loop is not None
        coro = self._deliver(
            None,
            "mo",
            recipient,
            payload,
            source_addr=sender,
            source_addr_ton=1,
            source_addr_npi=1,
            esm_class=0x00,
        )
        asyncio.run_coroutine_threadsafe(self._tracked(coro), self._loop)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until `predicate()` is true (re-checked on every SMSC event)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def wait_bound(self, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda: any(s.can_receive for s in self.sessions.values()), timeout)

    def parts_to(self, destination: str) -> list[ReceivedPart]:
        return [p for p in self.received if p.destination == destination]

    def texts(self, destination: str) -> list[str]:
        """Complete messages the SMSC accepted for a destination, reassembled from their
        parts (by reference and part number) as a handset would."""
        singles: list[tuple[int, str]] = []
        groups: dict[tuple[str, int], dict[int, ReceivedPart]] = {}
        for p in self.parts_to(destination):
            if p.status != ESME_ROK:
                continue
            if p.ref is None or p.total == 1:
                singles.append((p.n, p.text))
            else:
                groups.setdefault((p.source, p.ref), {})[p.part] = p
        for parts in groups.values():
            total = next(iter(parts.values())).total
            if set(parts) == set(range(1, total + 1)):
                first = min(p.n for p in parts.values())
                singles.append((first, "".join(parts[i].text for i in range(1, total + 1))))
        return [t for _, t in sorted(singles)]

    def receipt_deliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.deliveries if d["kind"] == "receipt"]


def _parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="A test SMSC on 127.0.0.1 (smpp34 server).")
    ap.add_argument("--port", type=int, default=2775, help="port (0: any free port)")
    ap.add_argument("--record", type=Path, help="append one JSON line per received part")
    ap.add_argument("--no-receipts", action="store_true", help="never send delivery receipts")
    ap.add_argument("--receipt-delay", type=float, default=0.0)
    ap.add_argument("--undeliverable", action="append", default=[], metavar="NUMBER")
    ap.add_argument(
        "--reject",
        action="append",
        default=[],
        metavar="NUMBER",
        help="answer ESME_RINVDSTADR for this destination",
    )
    ap.add_argument("--throttle-first", type=int, default=0)
    ap.add_argument(
        "--drop-after",
        type=int,
        default=None,
        help="cut the connection when this many submits have arrived",
    )
    ap.add_argument(
        "--relay", action="store_true", help="put the TCP relay in front (implied by --drop-after)"
    )
    return ap.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> int:
    args = _parse_args(argv)
    record = args.record.open("a", encoding="utf-8") if args.record else None
    smsc = TestSMSC(
        relay=args.relay or args.drop_after is not None,
        port=args.port,
        record=record,
        receipts=not args.no_receipts,
        receipt_delay=args.receipt_delay,
        undeliverable=set(args.undeliverable),
        reject={n: ESME_RINVDSTADR for n in args.reject},
        throttle_first=args.throttle_first,
        drop_after=args.drop_after,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    smsc.start()
    print(f"SMSC listening on 127.0.0.1:{smsc.port}", flush=True)
    while not stop.wait(0.2):
        pass
    smsc.stop()
    if record is not None:
        record.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without interpreter finalisation: smpp34's runtime threads may still call back
    # into Python while it shuts down (a rare crash at exit). The record is closed already.
    os._exit(code)
