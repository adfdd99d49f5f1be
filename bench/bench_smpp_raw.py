"""How fast can SMPP go on this machine, before any bookkeeping? And the simulator?

Measures, against the test SMSC (smpp34's server, run in its own process so it does not
share our GIL) on 127.0.0.1:

  raw       the gateway's wire code (smpplib bind, packed submit_sm, window of outstanding
            requests, receipts acknowledged every 20 ms) with no bookkeeping: the ceiling;
            also with every read's receipts acknowledged at once (the former ceiling,
            10-20% lower: the SMSC wakes up for each little write);
  smpplib   the same loop building PDUs with smpplib's generic make_pdu, for reference;
  gateway   SmppGateway.submit in batches (per-part results, pacing, ordering of parts);
  simulator SimulatorGateway.submit (target: well over 20,000 messages per second).

With receipts the test SMSC is the bottleneck (smpp34's accept/deliver_sm cost ~100 µs each
in its process), so each line also shows the client's CPU per message: the client's own
ceiling is 1 / that.

`raw_throughput(n, window)` is importable so the dispatcher benchmark can print its ratio to
the raw ceiling in the same run. Usage: python bench/bench_smpp_raw.py [--quick] [-n N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from smpplib import client as smpp_client  # noqa: E402
from smpplib import smpp as smpp_codec  # noqa: E402

from core.gateways import OutboundMessage, parse_gateway_url  # noqa: E402
from core.gateways import smpp_wire as wire  # noqa: E402
from core.gateways.config import Secret  # noqa: E402
from core.gateways.simulator import SimulatorGateway  # noqa: E402
from core.gateways.smpp import SmppGateway  # noqa: E402

ACK_INTERVAL = 0.02  # seconds receipts wait to be acknowledged together (SmppGateway: 0.02)


def split_cpus() -> tuple[set[int], set[int]] | None:
    """(a CPU for the test SMSC, the CPUs left for the client), or None with fewer than 2.

    The SMSC stands in for a provider on another machine: on its own CPU it does not take
    the client's CPU time, nor the client its time, as they would not in production. Every
    measurement in a run gets the same split, the ceiling as well as the dispatcher."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


def pin_client(cpus: set[int]) -> None:
    """Run this process (its threads started from now on) on `cpus`."""
    os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def smsc_process(receipts: bool = True, cpus: set[int] | None = None) -> Iterator[int]:
    """Run tests/smsc.py in its own process (on `cpus`, if given); yield its port."""
    args = [sys.executable, str(ROOT / "tests" / "smsc.py"), "--port", "0"]
    if not receipts:
        args.append("--no-receipts")
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"test SMSC did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _bind(port: int) -> tuple[smpp_client.Client, socket.socket]:
    client = smpp_client.Client("127.0.0.1", port, timeout=10, allow_unknown_opt_params=True)
    client.connect()
    sock = client._socket
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.bind_transceiver(system_id="bench", password="bench")
    return client, sock


def _raw_loop(
    port: int,
    n: int,
    window: int,
    use_smpplib: bool,
    receipts_expected: bool = True,
    ack_interval: float = ACK_INTERVAL,
) -> tuple[float, float, int, float]:
    """Submit n single-part messages; return (seconds to all responses, seconds to all
    receipts, receipts seen, client CPU seconds).

    Receipts are acknowledged in one write every `ack_interval` seconds (0: after every
    read), as SmppGateway's receiver does: acknowledging each read's few receipts at once
    costs the test SMSC enough wake-ups to lower its throughput by 10-20%, which would make
    this ceiling too low."""
    client, sock = _bind(port)
    cpu0 = time.process_time()
    sent = answered = receipts = 0
    outstanding = 0
    buf = bytearray()
    acks: list[bytes] = []
    acks_since = 0.0
    t0 = time.perf_counter()
    t_answers = 0.0
    deadline = t0 + 600
    want_receipts = n if receipts_expected else 0
    while (answered < n or receipts < want_receipts) and time.perf_counter() < deadline:
        out = []
        while sent < n and outstanding < window:
            seq = client.next_sequence()
            if use_smpplib:
                pdu = smpp_codec.make_pdu(
                    "submit_sm",
                    client=client,
                    source_addr="Bench",
                    source_addr_ton=5,
                    destination_addr=f"3161{sent:07d}",
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    short_message=b"Hello from the benchmark",
                    registered_delivery=1,
                )
                out.append(pdu.generate())
            else:
                out.append(
                    wire.submit_sm(
                        seq,
                        source_addr="Bench",
                        source_ton=5,
                        source_npi=0,
                        destination_addr=f"3161{sent:07d}",
                        dest_ton=1,
                        dest_npi=1,
                        short_message=b"Hello from the benchmark",
                        registered_delivery=1,
                    )
                )
            sent += 1
            outstanding += 1
        if out:
            sock.sendall(b"".join(out))
        now = time.perf_counter()
        if acks and (now - acks_since >= ack_interval or answered >= n):
            sock.sendall(b"".join(acks))
            acks = []
        wait = max(acks_since + ack_interval - now, 0.0) if acks else 5.0
        if not select.select([sock], [], [], wait)[0]:
            if acks:
                continue
            break
        data = sock.recv(1 << 18)
        if not data:
            break
        buf += data
        pos = 0
        while len(buf) - pos >= 16:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if len(buf) - pos < length:
                break
            _, cid, _, seq = wire.header(buf[pos : pos + 16])
            if cid == wire.SUBMIT_SM_RESP:
                answered += 1
                outstanding -= 1
                if answered == n:
                    t_answers = time.perf_counter() - t0
            elif cid == wire.DELIVER_SM:
                receipts += 1
                if not acks:
                    acks_since = time.perf_counter()
                acks.append(wire.deliver_sm_resp(seq))
            elif cid == wire.ENQUIRE_LINK:
                if not acks:
                    acks_since = time.perf_counter()
                acks.append(wire.response(wire.ENQUIRE_LINK_RESP, 0, seq))
            pos += length
        del buf[:pos]
        if ack_interval <= 0 and acks:
            sock.sendall(b"".join(acks))
            acks = []
    t_all = time.perf_counter() - t0
    if acks:
        sock.sendall(b"".join(acks))
    cpu = time.process_time() - cpu0
    with contextlib.suppress(Exception):
        sock.close()
    client._socket = None
    return t_answers or t_all, t_all, receipts, cpu


def raw_throughput(n: int, window: int, *, port: int | None = None) -> float:
    """Single-part submits per second with no bookkeeping (receipts requested and acked).

    Starts its own test SMSC process unless `port` names a running one.
    """
    if port is not None:
        return n / _raw_loop(port, n, window, use_smpplib=False)[0]
    with smsc_process() as p:
        return n / _raw_loop(p, n, window, use_smpplib=False)[0]


def gateway_throughput(
    port: int, n: int, window: int, batch: int = 1000, threaded: bool = True
) -> tuple[float, int, float]:
    """SmppGateway.submit over n single-part messages while receipts are handled, either by
    a second thread calling receive() (as the dispatcher does) or between batches; returns
    (msgs/s to the last submit result, receipts handled, client CPU seconds)."""
    url = f"smpp://bench@127.0.0.1:{port}?window={window}&rate=1000000"
    gw = SmppGateway(parse_gateway_url(url), Secret("bench"))
    gw.connect()
    msgs = [
        OutboundMessage(i, f"+3161{i:07d}", "Bench", ("Hello from the benchmark",), "GSM-7", 0)
        for i in range(n)
    ]
    events = 0
    stop = threading.Event()

    def handler(batch: object) -> None:
        nonlocal events
        events += len(batch)  # type: ignore[arg-type]

    def receiver() -> None:
        while not stop.is_set():
            gw.receive(handler, 0.1)

    worker = threading.Thread(target=receiver) if threaded else None
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if worker is not None:
        worker.start()
    accepted = 0
    for k in range(0, n, batch):
        results = gw.submit(msgs[k : k + batch])
        accepted += sum(r.status == "accepted" for r in results)
        if worker is None:
            gw.receive(handler, 0)
    elapsed = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while events < accepted and time.monotonic() < deadline:
        if worker is None:
            gw.receive(handler, 0.2)
        else:
            time.sleep(0.05)
    stop.set()
    if worker is not None:
        worker.join()
    cpu = time.process_time() - cpu0
    gw.close()
    if accepted != n:
        print(f"  warning: only {accepted} of {n} accepted")
    return n / elapsed, events, cpu


def simulator_throughput(n: int, batch: int = 1000) -> float:
    gw = SimulatorGateway(seed=1)
    msgs = [
        OutboundMessage(i, f"+3161{i:07d}", "Bench", ("Hello from the benchmark",), "GSM-7", 0)
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        gw.submit(msgs[k : k + batch])
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 messages instead of 100,000")
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--window", type=int, default=50)
    args = ap.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    w = args.window

    def us(cpu: float, count: int) -> str:
        return f"client CPU {cpu / count * 1e6:5.0f} µs/msg (ceiling {count / cpu:,.0f}/s)"

    print(f"SMPP on 127.0.0.1, {n:,} single-part messages, window {w}, registered_delivery=1")
    with smsc_process() as port:
        t_resp, t_all, receipts, cpu = _raw_loop(port, n, w, use_smpplib=False)
        raw = n / t_resp
        print(
            f"  raw (packed PDUs)   {raw:10,.0f} msg/s to all responses, "
            f"{n / t_all:,.0f} msg/s incl. {receipts:,} receipts; {us(cpu, n)}"
        )
    with smsc_process() as port:
        t_resp, _, _, cpu = _raw_loop(port, n, w, use_smpplib=False, ack_interval=0)
        print(f"  raw, acks per read  {n / t_resp:10,.0f} msg/s; {us(cpu, n)}")
    with smsc_process(receipts=False) as port:
        t_resp, _, _, cpu = _raw_loop(port, n, w, use_smpplib=False, receipts_expected=False)
        print(f"  raw, no receipts    {n / t_resp:10,.0f} msg/s; {us(cpu, n)}")
    m = min(n, 20_000)
    with smsc_process() as port:
        t_resp, _, _, cpu = _raw_loop(port, m, w, use_smpplib=True)
        print(f"  raw, smpplib PDUs   {m / t_resp:10,.0f} msg/s ({m:,} messages); {us(cpu, m)}")
    for threaded, label in ((True, "2 threads"), (False, "1 thread ")):
        with smsc_process() as port:
            rate, events, cpu = gateway_throughput(port, n, w, threaded=threaded)
            print(
                f"  SmppGateway {label} {rate:10,.0f} msg/s, {events:,} receipts handled; "
                f"{us(cpu, n)}; ratio to raw {rate / raw:.2f}"
            )
    sim_n = max(n, 100_000)
    sim = simulator_throughput(sim_n)
    print(f"  simulator submit    {sim:10,.0f} msg/s ({sim_n:,} messages; target >= 20,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
