"""The event journal: durable frames in a file, replayed exactly once after a crash.

The file format on its own (core.journal), then the ledger that stores what the journal
holds (core.ledger): events written through `LedgerSource.append` reach `message_events`
with the next group commit, or when the database is opened again after a crash, and
never twice.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from core import journal as journal_module
from core import ledger
from core.dispatcher import EventBatch
from core.journal import HEADER_SIZE, Journal, JournalError, Mark
from core.ledger import LedgerSource
from core.studio import Studio
from tests.conftest import import_csv

JID = str(uuid.uuid4())


def table(*values: int) -> pa.Table:
    return pa.table({"n": pa.array(values, pa.int64())})


def numbers(tables: list[pa.Table]) -> list[int]:
    return [v for t in tables for v in t.column("n").to_pylist()]


def fresh(path: Path) -> Journal:
    return Journal(path, JID, Mark(0, 0))


# -- the file --------------------------------------------------------------------------------


def test_frames_written_are_pending_until_stored_and_found_again_after_a_restart(
    tmp_path: Path,
) -> None:  # fmt: skip
    path = tmp_path / "db.journal"
    journal = fresh(path)
    first = journal.append(table(1, 2))
    journal.append(table(3))
    tables, mark = journal.pending()
    assert numbers(tables) == [1, 2, 3] and mark.position == path.stat().st_size
    journal.close()  # the process dies: nothing was stored in the database
    again = Journal(path, JID, Mark(0, 0))
    assert numbers(again.pending()[0]) == [1, 2, 3]
    again.close()
    # The database stored the first frame (its mark says so): only the second comes back.
    assert numbers(Journal(path, JID, first).pending()[0]) == [3]


def test_stored_frames_leave_the_pending_list_and_later_ones_stay(tmp_path: Path) -> None:
    journal = fresh(tmp_path / "db.journal")
    journal.append(table(1))
    tables, _ = journal.pending()
    journal.append(table(2))  # written while the first was being stored
    journal.stored(len(tables))
    assert numbers(journal.pending()[0]) == [2]


def test_a_frame_cut_short_by_a_crash_is_cut_off_and_the_file_stays_usable(
    tmp_path: Path,
) -> None:  # fmt: skip
    path = tmp_path / "db.journal"
    journal = fresh(path)
    journal.append(table(1))
    journal.close()
    good = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\x00\x00\x01\x00\x12\x34")  # a frame header promising 256 octets, then death
    reopened = Journal(path, JID, Mark(0, 0))
    assert numbers(reopened.pending()[0]) == [1]
    assert path.stat().st_size == good
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("db.journal.damaged-")]
    assert len(kept) == 1 and kept[0].stat().st_size == good + 6  # the file as it was
    reopened.append(table(2))
    reopened.close()
    assert numbers(Journal(path, JID, Mark(0, 0)).pending()[0]) == [1, 2]


def test_a_frame_whose_checksum_does_not_match_ends_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "db.journal"
    journal = fresh(path)
    journal.append(table(1))
    journal.append(table(2))
    journal.close()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # damage inside the last frame's payload
    path.write_bytes(bytes(data))
    assert numbers(Journal(path, JID, Mark(0, 0)).pending()[0]) == [1]


def test_a_journal_of_another_database_is_set_aside_and_never_replayed(tmp_path: Path) -> None:
    path = tmp_path / "db.journal"
    other = Journal(path, str(uuid.uuid4()), Mark(0, 0))
    other.append(table(9))
    other.close()
    journal = Journal(path, JID, Mark(0, 0))
    assert journal.pending()[0] == []
    assert [p.name.startswith("db.journal.set-aside-") for p in tmp_path.iterdir()].count(True) == 1
    journal.append(table(1))
    journal.close()
    assert numbers(Journal(path, JID, Mark(0, 0)).pending()[0]) == [1]


def test_an_older_journal_than_the_database_is_set_aside(tmp_path: Path) -> None:
    """A database restored from a copy newer than the journal (or the other way round)
    must not take frames of another history."""
    path = tmp_path / "db.journal"
    journal = fresh(path)  # generation 1
    journal.append(table(1))
    journal.close()
    newer = Journal(path, JID, Mark(5, HEADER_SIZE))
    assert newer.pending()[0] == [] and newer.generation == 6


def test_restart_empties_a_journal_only_once_everything_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "db.journal"
    journal = fresh(path)
    journal.append(table(1))
    assert not journal.restart()  # not stored yet
    tables, mark = journal.pending()
    journal.stored(len(tables))
    assert not journal.restart(above=path.stat().st_size)  # not large enough
    assert journal.restart()
    assert path.stat().st_size == HEADER_SIZE and journal.generation == mark.generation + 1
    journal.append(table(2))
    journal.close()
    # The database still holds the old generation's mark: all of the new one comes back.
    assert numbers(Journal(path, JID, mark).pending()[0]) == [2]


def test_a_file_shorter_than_the_stored_position_replays_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.journal"
    journal = fresh(path)
    mark = journal.append(table(1))
    journal.close()
    path.write_bytes(path.read_bytes()[:HEADER_SIZE])
    again = Journal(path, JID, mark)
    assert again.pending()[0] == [] and again.generation == mark.generation + 1


# -- the ledger on top -------------------------------------------------------------------------

@pytest.fixture
def db(tmp_path: Path, contacts_csv: Path) -> Path:
    """A database whose mailings go to three recipients."""
    path = tmp_path / "ledger.duckdb"
    with Studio(path) as app:
        import_csv(app, contacts_csv, database="people")
    return path


def launch(app: Studio) -> tuple[int, list[int]]:
    mid = app.create_mailing(sender="Studio", body="Hi {{ first_name }}", database="people",
                             accept_rules=True)  # fmt: skip
    app.launch_mailing(mid)
    ids = [int(r[0]) for r in app.storage.rows(
        "SELECT id FROM messages WHERE mailing_id = ? ORDER BY id", [mid])]  # fmt: skip
    return mid, ids


def sent(mid: int, ids: list[int], app: Studio) -> EventBatch:
    batch = EventBatch()
    for k, i in enumerate(ids):
        batch.add(i, mid, 0, "submitting", None, None, app.clock())
        batch.add(i, mid, 0, "submitted", f"pid-{k}", None, app.clock())
    return batch


def events(app: Studio, mid: int) -> int:
    return int(app.storage.one("SELECT count(*) FROM message_events WHERE mailing_id = ?",
                               [mid]))  # fmt: skip


def test_appended_events_reach_the_table_with_the_next_group_commit(db: Path) -> None:
    app = Studio(db)
    try:
        mid, ids = launch(app)
        source = LedgerSource(app)
        batch = sent(mid, ids, app)
        source.append(batch)
        assert events(app, mid) == 0  # in the journal only, durably
        assert source.find_parts(["pid-1"]) == {"pid-1": (ids[1], mid, 0)}
        source.record(EventBatch(), fold=batch)
        assert events(app, mid) == 6
        assert set(app.mailing_results(mid)["status"]) == {"submitted"}
        _jid, generation, position = app.storage.rows(
            "SELECT journal_id, generation, position FROM ledger_journal")[0]  # fmt: skip
        assert position == Path(f"{db}.journal").stat().st_size and generation >= 1
        assert ledger.event_journal(app.storage).pending()[0] == []  # type: ignore[union-attr]
    finally:
        app.close()


def test_events_only_in_the_journal_when_the_process_died_are_stored_once_at_the_next_open(
    db: Path,
) -> None:  # fmt: skip
    app = Studio(db)
    mid, ids = launch(app)
    source = LedgerSource(app)
    source.append(sent(mid, ids[:2], app))
    source.record(EventBatch(), fold=sent(mid, ids[:2], app))  # stored and folded
    source.append(sent(mid, ids[2:], app))  # then the process dies before the next commit
    app.close()
    for _ in range(2):  # opened twice: stored once
        app = Studio(db)
        try:
            assert events(app, mid) == 6
            assert set(app.mailing_results(mid)["status"]) == {"submitted"}  # folded too
        finally:
            app.close()


def test_a_journal_larger_than_the_limit_is_emptied_once_stored(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    monkeypatch.setattr(ledger, "JOURNAL_RESTART_SIZE", 1)
    app = Studio(db)
    mid, ids = launch(app)
    source = LedgerSource(app)
    batch = sent(mid, ids, app)
    source.append(batch)
    source.record(EventBatch(), fold=batch)
    assert Path(f"{db}.journal").stat().st_size == HEADER_SIZE
    app.close()
    app = Studio(db)
    try:
        assert events(app, mid) == 6
    finally:
        app.close()


def test_an_in_memory_database_has_no_journal_and_appends_to_the_table(
    contacts_csv: Path,
) -> None:  # fmt: skip
    app = Studio(":memory:")
    try:
        import_csv(app, contacts_csv, database="people")
        mid, ids = launch(app)
        assert ledger.event_journal(app.storage) is None
        LedgerSource(app).append(sent(mid, ids, app))
        assert events(app, mid) == 6
    finally:
        app.close()


def test_a_write_that_fails_leaves_no_partial_frame_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    """A full disk cannot be made here: the write is made to fail half-way instead."""
    path = tmp_path / "db.journal"
    journal = fresh(path)
    journal.append(table(1))
    size = path.stat().st_size
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 8:
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(journal_module.os, "write", half_then_full)
    with pytest.raises(JournalError, match="No space left on device"):
        journal.append(table(2))
    monkeypatch.setattr(journal_module.os, "write", real_write)
    assert path.stat().st_size == size and numbers(journal.pending()[0]) == [1]
    journal.append(table(3))  # space again: the journal goes on
    journal.close()
    assert numbers(Journal(path, JID, Mark(0, 0)).pending()[0]) == [1, 3]
