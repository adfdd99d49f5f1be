"""The database file: migrations, cursors per thread, and one owning process."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from core.storage import MIGRATIONS, Storage, open_storage, quote_ident, release_storage

ROOT = Path(__file__).resolve().parent.parent


def test_migrations_run_once_and_record_their_version(tmp_path):
    path = tmp_path / "m.duckdb"
    first = Storage(path)
    assert first.schema_version() == MIGRATIONS[-1][0]
    first.close()
    again = Storage(path)  # re-opening does not re-run DDL (it would fail on CREATE TABLE)
    assert again.schema_version() == MIGRATIONS[-1][0]
    again.close()


def test_each_thread_gets_its_own_cursor(tmp_path):
    storage = Storage(tmp_path / "t.duckdb")
    seen = []
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        seen.append(storage.cursor())
        barrier.wait()  # all four alive at once, so none can reuse another's thread
        storage.execute("INSERT INTO settings VALUES (?, '1')", [f"k{n}"])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in seen}) == 4
    assert storage.one("SELECT count(*) FROM settings") == 4
    storage.close()


def test_open_storage_shares_one_connection_per_file(tmp_path):
    a = open_storage(tmp_path / "s.duckdb")
    b = open_storage(tmp_path / "s.duckdb")
    assert a is b
    release_storage(a)
    assert not b.closed
    release_storage(b)
    assert b.closed


def test_transaction_rolls_back_on_error(tmp_path):
    storage = Storage(tmp_path / "r.duckdb")
    try:
        with storage.transaction() as tx:
            tx.execute("INSERT INTO settings VALUES ('a', '1')")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert storage.one("SELECT count(*) FROM settings") == 0
    storage.close()


def test_quote_ident_handles_odd_names():
    assert quote_ident('a "b" c') == '"a ""b"" c"'


def test_a_second_process_gets_one_clear_line(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = Storage(path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "core", "--db", str(path), "import", "x.csv",
             "--database", "d"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
    finally:
        holder.close()
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "in use by another process" in lines[0] and "PID" in lines[0]
    assert "Traceback" not in result.stderr
