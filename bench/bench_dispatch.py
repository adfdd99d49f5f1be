"""How fast does a mailing go out with the whole ledger written?

Sends N single-part messages (default 100,000; `--quick`: 20,000) through the real
dispatcher threads, recording `submitting`, every outcome and every delivery report in DuckDB:

  smpp       to the test SMSC (tests/smsc.py, in its own process) on 127.0.0.1, next to
             `raw_throughput` (bench_smpp_raw.py): the same wire code against the same
             server in the same run, with no bookkeeping. Target: ratio >= 0.80.
  simulator  through `simulator://` (no network). Target: >= 20,000 messages per second.

Each SMPP measurement runs twice, alternating, and the better of the two counts (the machine
is shared). The test SMSC stands in for a provider on another machine, so by default it runs
on a CPU of its own and the client on the others (`--shared-cpus`: everything shares every
CPU, and the client's CPU time is taken from the SMSC's). Besides messages per second it
prints this process's CPU time per message, which shows the cost of the bookkeeping even
when the server is the bottleneck. Also printed: the snapshot time (render + parts +
append) and the progress query on the finished ledger.
Exits non-zero only on a crash.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import pandas as pd  # noqa: E402

WINDOW = 50


def make_contacts(path: Path, n: int) -> None:
    frame = pd.DataFrame({
        "customer_id": [f"C{i:07d}" for i in range(n)],
        "first_name": [f"Name{i % 997}" for i in range(n)],
        "consent": "yes",
        "mobile": [f"+3161{i:07d}" for i in range(n)],
    })  # fmt: skip
    frame.to_csv(path, index=False)


def prepare_studio(db: Path, csv: Path) -> Any:
    from core.studio import Studio

    studio = Studio(db)
    studio.import_contacts(csv, database="bench", mobile_field="mobile",
                           key_field="customer_id", consent_field="consent",
                           consent_yes=["yes"])  # fmt: skip
    return studio


def send_mailing(studio: Any, url: str, label: str, batch_size: int | None = None,
                 quiet: bool = False) -> dict[str, float]:  # fmt: skip
    """Create and launch a mailing, run the dispatcher threads until it is finished (every
    message has its submit outcome) and then until every report is recorded."""
    from core.dispatcher import DispatcherConfig
    from core.worker import start_dispatcher

    mid = studio.create_mailing(sender="Bench", body="Hi {{ first_name }}, your code is ready",
                                database="bench", accept_rules=True)  # fmt: skip
    t0 = time.perf_counter()
    studio.launch_mailing(mid)
    launch = time.perf_counter() - t0
    total = studio.mailing_progress(mid)["total"]
    dispatcher = start_dispatcher(studio, gateway_url=url,
                                  config=DispatcherConfig(batch_size=batch_size))  # fmt: skip
    t0, cpu0 = time.perf_counter(), time.process_time()
    state = "SELECT state FROM mailings WHERE id = ?"
    try:
        # Look in memory 20 times a second (the dispatcher counts a mailing as finished
        # right after marking it so in the database): a query each time would put this
        # loop's own CPU into the measurement.
        while not dispatcher.counters["finished_mailings"]:
            time.sleep(0.05)
            if not dispatcher.running:
                raise RuntimeError(f"dispatcher died: {dispatcher.last_error}")
        sent, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if studio.storage.one(state, [mid]) != "finished":
            raise RuntimeError("the dispatcher counted a mailing as finished that is not")
        deadline = time.monotonic() + 60
        while dispatcher.recorder.reports < total and time.monotonic() < deadline:
            time.sleep(0.05)
        with_reports = time.perf_counter() - t0
    finally:
        dispatcher.stop()
    t1 = time.perf_counter()
    progress = studio.mailing_progress(mid)
    progress_s = time.perf_counter() - t1
    reports = dispatcher.status()["reports"]
    if not quiet:
        print(f"  {label:<18} {total / sent:8,.0f} msg/s, CPU {cpu / total * 1e6:4.0f} µs/msg "
              f"({total:,} in {sent:.2f} s; {total / with_reports:,.0f} msg/s incl. "
              f"{reports:,} reports); launch {launch:.2f} s; progress query "
              f"{progress_s * 1000:.0f} ms; delivered {progress['delivered']:,}")
    return {"rate": total / sent, "launch": launch, "cpu": cpu / total}


def raw(n: int, port: int) -> tuple[float, float]:
    from bench_smpp_raw import raw_throughput

    cpu0 = time.process_time()
    rate = raw_throughput(n, WINDOW, port=port)
    return rate, (time.process_time() - cpu0) / n


def gateway_alone(n: int, port: int, batch: int) -> tuple[float, float] | None:
    """SmppGateway.submit alone (bench_smpp_raw's loop): where the rest of the gap is."""
    try:
        from bench_smpp_raw import gateway_throughput
    except ImportError:
        return None
    rate, _, cpu = gateway_throughput(port, n, WINDOW, batch=batch)
    return rate, cpu / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 messages instead of 100,000")
    ap.add_argument("-n", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=2, help="SMPP measurements of each kind")
    ap.add_argument("--shared-cpus", action="store_true",
                    help="the test SMSC and the client share every CPU (by default the SMSC, "
                         "a stand-in for a remote provider, gets a CPU of its own)")  # fmt: skip
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    from bench_smpp_raw import pin_client, smsc_process, split_cpus

    os.environ.setdefault("SMS_STUDIO_SMPP_PASSWORD", "bench")
    split = None if args.shared_cpus else split_cpus()
    if split is not None:
        pin_client(split[1])
        where = f"SMSC on CPU {min(split[0])}, client on CPUs {sorted(split[1])}"
    else:
        where = "SMSC and client sharing all CPUs"
    print(f"Dispatcher with the full ledger, {n:,} single-part messages, SMPP window {WINDOW}; "
          f"{where}")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "contacts.csv"
        make_contacts(csv, n)
        raws, ours, gateways = [], [], []
        with smsc_process(cpus=split[0] if split else None) as port:
            for k in range(max(args.rounds, 1)):
                rate, cpu = raw(n, port)
                raws.append(rate)
                print(f"  raw SMPP           {rate:8,.0f} msg/s, CPU {cpu * 1e6:4.0f} µs/msg "
                      "(no bookkeeping)")
                alone = gateway_alone(n, port, batch=WINDOW * 10)
                if alone is not None:
                    gateways.append(alone[0])
                    print(f"  gateway alone      {alone[0]:8,.0f} msg/s, CPU "
                          f"{alone[1] * 1e6:4.0f} µs/msg (SmppGateway.submit, no ledger)")
                studio = prepare_studio(Path(tmp) / f"smpp{k}.duckdb", csv)
                try:
                    url = f"smpp://bench@127.0.0.1:{port}?window={WINDOW}&rate=1000000"
                    ours.append(send_mailing(studio, url, "dispatcher, smpp")["rate"])
                finally:
                    studio.close()
        print(f"  SMPP: best dispatcher {max(ours):,.0f} / best raw {max(raws):,.0f} msg/s = "
              f"ratio {max(ours) / max(raws):.2f} (target >= 0.80)")
        if gateways:
            print(f"        best gateway alone {max(gateways):,.0f} msg/s: ratio to raw "
                  f"{max(gateways) / max(raws):.2f}; dispatcher to gateway alone "
                  f"{max(ours) / max(gateways):.2f}")
        studio = prepare_studio(Path(tmp) / "sim.duckdb", csv)
        try:
            url = "simulator://?seed=1&rate=10000000&median_delay=0.5&p99_delay=2"
            sim = send_mailing(studio, url, "dispatcher, sim")
        finally:
            studio.close()
        print(f"  simulator: {sim['rate']:,.0f} msg/s (target >= 20,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
