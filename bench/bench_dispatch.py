"""How fast does a mailing go out with the whole ledger written?

Sends N single-part messages (default 100,000; `--quick`: 20,000) through the real
dispatcher threads, recording `submitting`, the outcomes and every delivery report in DuckDB:

  smpp       to the test SMSC (tests/smsc.py, its own process) on 127.0.0.1, compared with
             `raw_throughput` (bench_smpp_raw.py): the same wire code against the same
             server in the same run without any bookkeeping. Target: ratio >= 0.80.
  simulator  through `simulator://` (no network). Target: >= 20,000 messages per second.

Also prints the snapshot time (launch: render + parts + append) and how long the progress
query takes on the finished ledger. Exits non-zero only on a crash.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

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


def prepare_studio(db: Path, csv: Path) -> object:
    from core.studio import Studio

    studio = Studio(db)
    studio.import_contacts(csv, database="bench", mobile_field="mobile",
                           key_field="customer_id", consent_field="consent",
                           consent_yes=["yes"])  # fmt: skip
    return studio


def send_mailing(studio: object, url: str, label: str, batch_size: int | None = None
                 ) -> dict[str, float]:
    """Create and launch a mailing, run the dispatcher threads until it is finished and
    every report is recorded; returns timings."""
    from core.dispatcher import DispatcherConfig
    from core.worker import start_dispatcher

    mid = studio.create_mailing(  # type: ignore[attr-defined]
        sender="Bench", body="Hi {{ first_name }}, your code is ready", database="bench",
        accept_rules=True,
    )
    t0 = time.perf_counter()
    studio.launch_mailing(mid)  # type: ignore[attr-defined]
    launch = time.perf_counter() - t0
    total = studio.mailing_progress(mid)["total"]  # type: ignore[attr-defined]
    dispatcher = start_dispatcher(studio, gateway_url=url,
                                  config=DispatcherConfig(batch_size=batch_size))
    t0 = time.perf_counter()
    try:
        while studio.get_mailing(mid)["state"] != "finished":  # type: ignore[attr-defined]
            time.sleep(0.02)
            if not dispatcher.running:
                raise RuntimeError(f"dispatcher died: {dispatcher.last_error}")
        sent = time.perf_counter() - t0
        deadline = time.monotonic() + 60
        while dispatcher.recorder.reports < total and time.monotonic() < deadline:
            time.sleep(0.05)
        with_reports = time.perf_counter() - t0
    finally:
        dispatcher.stop()
    t1 = time.perf_counter()
    progress = studio.mailing_progress(mid)  # type: ignore[attr-defined]
    progress_s = time.perf_counter() - t1
    status = dispatcher.status()
    print(f"  {label:<10} {total / sent:10,.0f} msg/s to all submitted "
          f"({total:,} in {sent:.2f} s); {total / with_reports:,.0f} msg/s incl. "
          f"{status['reports']:,} reports; launch {launch:.2f} s; "
          f"progress query {progress_s * 1000:.0f} ms; delivered {progress['delivered']:,}")
    return {"rate": total / sent, "launch": launch}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 messages instead of 100,000")
    ap.add_argument("-n", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (20_000 if args.quick else 100_000)
    from bench_smpp_raw import raw_throughput, smsc_process

    os.environ.setdefault("SMS_STUDIO_SMPP_PASSWORD", "bench")
    print(f"Dispatcher with the full ledger, {n:,} single-part messages, SMPP window {WINDOW}")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "contacts.csv"
        make_contacts(csv, n)
        with smsc_process() as port:
            raw = raw_throughput(n, WINDOW, port=port)
            print(f"  raw SMPP   {raw:10,.0f} msg/s (same server, no bookkeeping)")
            studio = prepare_studio(Path(tmp) / "smpp.duckdb", csv)
            try:
                url = f"smpp://bench@127.0.0.1:{port}?window={WINDOW}&rate=1000000"
                smpp = send_mailing(studio, url, "smpp")
            finally:
                studio.close()  # type: ignore[attr-defined]
        print(f"  ratio to raw SMPP: {smpp['rate'] / raw:.2f} (target >= 0.80)")
        studio = prepare_studio(Path(tmp) / "sim.duckdb", csv)
        try:
            url = "simulator://?seed=1&rate=10000000&median_delay=0.5&p99_delay=2"
            sim = send_mailing(studio, url, "simulator")
        finally:
            studio.close()  # type: ignore[attr-defined]
        print(f"  simulator: {sim['rate']:,.0f} msg/s (target >= 20,000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
