"""Crash safety with real processes: SIGKILL the worker in the middle of a mailing.

A standalone SMPP server process records every part it receives (one JSON line each); the
worker (`python -m core.worker`) sends a 20,000-message mailing to it and is killed with
SIGKILL part-way. A new worker resumes and finishes. Then the server's record and the ledger
must agree: nothing received twice, nothing the ledger calls sent missing, nothing left
queued, and at most one batch of `unknown` messages for the one crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from core.studio import Studio

ROOT = Path(__file__).resolve().parent.parent
N = 20_000
WINDOW = 20
BATCH = 200  # messages per submit call: the most a crash may leave unknown


def start_smsc(record: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "smsc.py"), "--port", "0", "--record",
         str(record)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening" in line, line
    return proc, int(line.rsplit(":", 1)[1])


def start_worker(db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SMS_STUDIO_SMPP_PASSWORD": "secret"}
    url = f"smpp://studio@127.0.0.1:{port}?window={WINDOW}&rate=100000"
    return subprocess.Popen(
        [sys.executable, "-m", "core.worker", "--db", str(db), "--gateway", url,
         "--until-done", "--report-timeout", "1", "--batch-size", str(BATCH)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
    )  # fmt: skip


def lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


@pytest.mark.slow
def test_a_killed_worker_resumes_and_nothing_is_sent_twice_or_forgotten(tmp_path: Path) -> None:
    db, record, log = tmp_path / "crash.duckdb", tmp_path / "received.jsonl", tmp_path / "w.log"
    contacts = pd.DataFrame({
        "id": range(N), "name": [f"N{i}" for i in range(N)], "consent": "yes",
        "mobile": [f"+3162{i:07d}" for i in range(N)],
    })  # fmt: skip
    contacts.to_csv(tmp_path / "c.csv", index=False)
    with Studio(db) as studio:
        studio.import_contacts(tmp_path / "c.csv", database="people", mobile_field="mobile",
                               key_field="id", consent_field="consent", consent_yes=["yes"])
        mid = studio.create_mailing(sender="Studio", body="Hi {{ name }}", database="people",
                                    accept_rules=True)  # fmt: skip
        studio.launch_mailing(mid)

    smsc, port = start_smsc(record)
    try:
        first = start_worker(db, port, log)
        deadline = time.monotonic() + 90
        while lines(record) < N // 3 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, f"the worker ended early: {log.read_text()[-2000:]}"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = lines(record)
        assert N // 3 <= at_kill < N

        second = start_worker(db, port, log)
        assert second.wait(120) == 0, log.read_text()[-3000:]
    finally:
        smsc.terminate()
        smsc.wait(10)

    parts = [json.loads(line) for line in record.read_text().splitlines()]
    received = Counter(p["destination"] for p in parts)
    assert max(received.values()) == 1, "a message was sent twice"

    with Studio(db) as studio:
        results = studio.mailing_results(mid)
        assert studio.get_mailing(mid)["state"] == "finished"
    status = dict(zip(results["e164"].str.lstrip("+"), results["status"], strict=True))
    counts = Counter(status.values())
    assert counts["queued"] == 0 and counts["failed"] == 0 and counts["skipped"] == 0
    assert counts["unknown"] <= BATCH  # at most the batch in flight when the process died
    sent = {n for n, s in status.items() if s in ("submitted", "delivered")}
    assert len(sent) + counts["unknown"] == N
    assert sent <= set(received), "the ledger says sent but the server never got it"
    assert set(received) <= set(status), "the server got a message the ledger does not know"
    unknown_received = sum(1 for n, s in status.items() if s == "unknown" and n in received)
    assert unknown_received <= counts["unknown"]
    assert sum(1 for p in parts if p["status"] == 0) == len(sent) + unknown_received


def test_sigterm_stops_the_worker_cleanly_after_recording_the_batch_in_flight(
    tmp_path: Path,
) -> None:  # fmt: skip
    n = 3000
    db, record, log = tmp_path / "term.duckdb", tmp_path / "received.jsonl", tmp_path / "w.log"
    pd.DataFrame({
        "id": range(n), "name": "x", "consent": "yes",
        "mobile": [f"+3163{i:07d}" for i in range(n)],
    }).to_csv(tmp_path / "c.csv", index=False)  # fmt: skip
    with Studio(db) as studio:
        studio.import_contacts(tmp_path / "c.csv", database="people", mobile_field="mobile",
                               key_field="id", consent_field="consent", consent_yes=["yes"])
        mid = studio.create_mailing(sender="Studio", body="Hi", database="people",
                                    accept_rules=True)  # fmt: skip
        studio.launch_mailing(mid)
    smsc, port = start_smsc(record)
    try:
        env = {**os.environ, "SMS_STUDIO_SMPP_PASSWORD": "secret"}
        worker = subprocess.Popen(
            [sys.executable, "-m", "core.worker", "--db", str(db), "--gateway",
             f"smpp://studio@127.0.0.1:{port}?window=10&rate=400"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while lines(record) < 500 and time.monotonic() < deadline:
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()[-2000:]
    finally:
        smsc.terminate()
        smsc.wait(10)
    received = Counter(json.loads(line)["destination"] for line in record.read_text().splitlines())
    with Studio(db) as studio:
        results = studio.mailing_results(mid)
        pending = studio.storage.one(
            "SELECT count(*) FROM message_events WHERE event = 'submitting'")
        outcomes = studio.storage.one(
            "SELECT count(*) FROM message_events WHERE event IN ('submitted', 'retry', "
            "'rejected', 'unknown')")
    counts = Counter(results["status"])
    assert counts["unknown"] == 0  # nothing was left in flight
    assert pending == outcomes  # every `submitting` has its outcome
    assert 500 <= counts["submitted"] + counts["delivered"] < n  # it stopped part-way
    sent = set(results.loc[results["status"].isin(["submitted", "delivered"]), "e164"]
               .str.lstrip("+"))  # fmt: skip
    assert sent == set(received) and max(received.values()) == 1
