"""`python -m core send|mailings|results|edit|cancel|worker`, run as real subprocesses on real
database files, with the embedded simulator as the gateway (instant delivery reports)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core import ledger
from core.studio import Studio
from tests.conftest import ROOT, import_csv, write_csv

CSV = """customer_id,first_name,city,consent,mobile
1,Anna,Amsterdam,yes,06-12345678
2,Bram,Rotterdam,no,+31 6 1234 5679
3,Chloé,Utrecht,yes,0031612345680
4,Dirk,Gent,yes,+32 470 12 34 56
5,Eva,Berlin,yes,+49 151 23456789
6,Finn,Den Haag,yes,020-1234567
"""
GATEWAY = "simulator://?seed=1&instant=1&rate=1000"
MAILING_FIELDS = ["id", "state", "recipients", "submitted", "delivered", "failed", "unknown",
                  "skipped", "segments", "scheduled_at", "started_at", "finished_at"]
RESULT_COLUMNS = ["e164", "contact_key", "parts", "encoding", "status", "parts_delivered",
                  "reason", "submitted_at", "done_at"]
FINAL = {"delivered", "undelivered", "failed", "expired", "unknown", "skipped"}


def cli(db: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMS_STUDIO_BACKGROUND": "0", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "core", "--db", str(db), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path, CSV)


@pytest.fixture
def db(tmp_path: Path, csv: Path) -> Path:
    """A database built in-process (the end-to-end test builds its own with the CLI)."""
    path = tmp_path / "cli.duckdb"
    with Studio(path) as app:
        import_csv(app, csv, database="shop")
        app.create_selection("everyone", spec={"all": []}, database="shop", sms=True)
        app.create_document("promo", sender="Shop", body="Hi {{ first_name }}!")
    return path


@pytest.mark.parametrize("command", ["send", "mailings", "results", "edit", "cancel", "worker"])
def test_every_mailing_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert f"python -m core {command}" in capsys.readouterr().out


def test_end_to_end_import_select_send_wait_list_and_results(tmp_path: Path, csv: Path) -> None:
    db = tmp_path / "e2e.duckdb"
    ok(cli(db, "import", str(csv), "--database", "shop", "--key-field", "customer_id",
           "--consent-field", "consent", "--consent-yes", "yes"))
    ok(cli(db, "selection", "create", "adults", "--database", "shop", "--spec",
           '{"field": "city", "op": "ne", "value": "Gent"}', "--sms"))
    long_for_berlin = "{% if city == 'Berlin' %}" + "x" * 200 + "{% endif %}"
    sent = ok(cli(db, "send", "--sender", "Shop", "--body",
                  "Hi {{ first_name }}" + long_for_berlin, "--selection", "adults",
                  "--split", "1", "--accept-rules", "--wait", "--gateway", GATEWAY,
                  "--report-timeout", "20"))
    mailing_id = int(sent.stdout.split()[0])
    assert "Skipped (not truncated) 1 recipients" in sent.stderr
    assert "needs 2 parts, the limit is 1" in sent.stderr

    rows = json_lines(ok(cli(db, "mailings", "--json")).stdout)
    assert [list(r) for r in rows] == [MAILING_FIELDS]
    row = rows[0]
    assert row["id"] == mailing_id and row["state"] == "finished"
    assert (row["recipients"], row["skipped"], row["segments"]) == (3, 1, 2)
    assert row["submitted"] == 2 and row["delivered"] + row["failed"] == 2
    assert row["started_at"].endswith("+00:00") and row["finished_at"]

    results = json_lines(ok(cli(db, "results", str(mailing_id), "--format", "json")).stdout)
    assert [list(r) for r in results] == [RESULT_COLUMNS] * 3
    by_key = {r["contact_key"]: r for r in results}
    assert set(by_key) == {"1", "3", "5"}  # Bram: no consent, Finn: landline, Dirk: Gent
    assert by_key["5"]["status"] == "skipped" and by_key["5"]["parts"] == 2
    assert all(r["status"] in FINAL for r in results)
    assert by_key["1"]["submitted_at"].endswith("Z")

    csv_out = ok(cli(db, "results", str(mailing_id), "--format", "csv")).stdout
    frame = pd.read_csv(io.StringIO(csv_out.lstrip("\ufeff")), dtype=str)
    assert list(frame.columns) == RESULT_COLUMNS and len(frame) == 3

    parquet = tmp_path / "results.parquet"
    ok(cli(db, "results", str(mailing_id), "--format", "parquet", "--output", str(parquet)))
    table = pd.read_parquet(parquet)
    assert list(table.columns) == RESULT_COLUMNS
    assert sorted(table["e164"]) == ["+31612345678", "+31612345680", "+4915123456789"]


def test_scheduled_send_can_be_edited_and_cancelled_but_not_twice(db: Path) -> None:
    sent = ok(cli(db, "send", "--document", "promo", "--database", "shop", "--at",
                  "2031-07-01 10:00", "--accept-rules"))
    mailing_id = int(sent.stdout.strip())
    assert "scheduled for 2031-07-01 10:00 CEST" in sent.stderr
    ok(cli(db, "edit", str(mailing_id), "--at", "2031-07-02 09:30+00:00", "--split", "2"))
    row = json_lines(ok(cli(db, "mailings", "--json")).stdout)[0]
    assert row["state"] == "scheduled"
    assert row["scheduled_at"] == "2031-07-02T09:30:00+00:00"  # stored and printed in UTC
    assert ok(cli(db, "cancel", str(mailing_id))).stdout.strip() == \
        f"Mailing {mailing_id} cancelled."
    again = cli(db, "cancel", str(mailing_id))
    assert again.returncode != 0
    assert again.stderr.strip() == (f"error: Mailing {mailing_id} is cancelled; only a "
                                    "scheduled mailing can be cancelled.")


def test_send_refuses_without_the_rules_or_with_a_past_time(db: Path) -> None:
    no_rules = cli(db, "send", "--document", "promo", "--selection", "everyone")
    assert no_rules.returncode != 0 and "--accept-rules" in no_rules.stderr
    past = cli(db, "send", "--document", "promo", "--selection", "everyone", "--at",
               "2020-01-01 09:00", "--accept-rules")
    assert past.returncode != 0 and "already passed" in past.stderr
    assert ok(cli(db, "mailings", "--json")).stdout == ""


def test_send_while_another_process_holds_the_database_says_who_and_writes_nothing(
    db: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from core.studio import Studio; s = Studio(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        refused = cli(db, "send", "--document", "promo", "--selection", "everyone",
                      "--accept-rules")
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another process" in lines[0]
    assert f"PID {holder.pid}" in lines[0]
    assert refused.stdout == ""
    assert ok(cli(db, "mailings", "--json")).stdout == ""  # nothing half-written


def test_worker_stops_cleanly_on_sigterm_and_a_new_worker_resumes(tmp_path: Path) -> None:
    many = "customer_id,first_name,consent,mobile\n" + "".join(
        f"{i},P{i},yes,0612{i:06d}\n" for i in range(1, 301))
    db = tmp_path / "worker.duckdb"
    with Studio(db) as app:
        import_csv(app, write_csv(tmp_path, many, "many.csv"), database="many")
    mailing_id = int(ok(cli(db, "send", "--sender", "Shop", "--body", "Hi {{ first_name }}",
                            "--database", "many", "--accept-rules")).stdout)
    env = {**os.environ, "SMS_STUDIO_BACKGROUND": "0", "PYTHONWARNINGS": "ignore"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "core", "--db", str(db), "worker", "--gateway",
         "simulator://?seed=1&instant=1&rate=25"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert worker.stderr is not None
    assert "Worker running" in worker.stderr.readline()
    time.sleep(3)  # some batches go out, at 25 segments per second
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert "Worker stopped" in worker.stderr.read()

    row = json_lines(ok(cli(db, "mailings", "--json")).stdout)[0]
    assert row["state"] == "sending" and row["submitted"] < 300, row  # stopped part-way
    with Studio(db) as app:  # the batches in flight were recorded: nothing is uncertain
        assert ledger.in_flight_parts(app.storage) == []

    # reports of parts the first worker's (in-memory) simulator accepted never come: the
    # report timeout bounds the wait for them
    ok(cli(db, "worker", "--until-done", "--gateway", GATEWAY, "--report-timeout", "5"))
    row = json_lines(ok(cli(db, "mailings", "--json")).stdout)[0]
    assert row["state"] == "finished", row
    assert row["submitted"] == 300, row  # the rest was sent by the second worker
    results = json_lines(ok(cli(db, "results", str(mailing_id), "--format", "json")).stdout)
    assert len(results) == 300 and not [r for r in results if r["status"] == "queued"]
    with Studio(db) as app:
        # every part was submitted exactly once, and none was given up as unknown
        assert app.storage.one(
            "SELECT count(*) FROM (SELECT message_id, part FROM message_events "
            "WHERE event = 'submitted' GROUP BY ALL HAVING count(*) > 1)") == 0
        assert app.storage.one("SELECT count(*) FROM message_events WHERE event = 'unknown'") == 0
