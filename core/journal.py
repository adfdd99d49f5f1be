"""A durable append-only journal of Arrow tables, in a file next to the database.

Why it exists: the dispatcher stores things before it acts on them, dozens of times a second
(a batch's `submitting` events before its parts go out, delivery receipts before the provider
is told they arrived). A DuckDB commit costs about 2 ms of CPU whatever its size; a frame
written here and flushed to disk with `fdatasync` costs about 0.2 ms of CPU. So the ledger
writes such events here first and appends everything the journal holds to DuckDB in one
transaction per group commit, together with the journal position it reached. After a crash,
`Journal.pending()` gives exactly the frames no such transaction stored.

File layout:

    header  MAGIC (8 octets), journal id (16 octets, a UUID), generation (8, big-endian)
    frames  length (4, big-endian), CRC-32 of the payload (4), payload (an Arrow IPC stream)

The journal id ties the file to one database (a journal found next to another or a restored
database is set aside, never replayed into it). The generation grows each time the file is
emptied (`restart`), so a position stored in the database always names one file's contents.
A frame that is cut short or whose CRC does not match ends the journal: the process died
while writing it, so nobody acted on it, and it is cut off when the file is opened.

This module knows nothing of the tables the frames go to; `core.ledger` does.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import threading
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

log = logging.getLogger(__name__)

MAGIC = b"SMSJRNL1"
_HEADER = struct.Struct(">8s16sQ")
_FRAME = struct.Struct(">II")
HEADER_SIZE = _HEADER.size
_MAX_FRAME = 1 << 30  # a length beyond this is damage, not a frame
# fdatasync where the platform has it (Linux); macOS and Windows have fsync only.
_flush_to_disk = getattr(os, "fdatasync", os.fsync)


class JournalError(Exception):
    """The journal file cannot be used (unreadable, or not a journal)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A point in the journal: everything before `position` of `generation` is stored."""

    generation: int
    position: int


def _encode(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _decode(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(payload).read_all()


def _read_frames(data: bytes, start: int) -> tuple[list[pa.Table], int]:
    """The complete, intact frames from `start`, and where they end."""
    tables: list[pa.Table] = []
    pos = start
    while len(data) - pos >= _FRAME.size:
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > _MAX_FRAME or end > len(data):
            break
        payload = data[pos + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            break
        try:
            tables.append(_decode(payload))
        except (pa.ArrowInvalid, OSError):
            break
        pos = end
    return tables, pos


class Journal:
    """One journal file. Thread-safe; one instance per file per process (the database lock
    already makes the process the only writer)."""

    def __init__(self, path: str | Path, journal_id: str, stored: Mark) -> None:
        """Open the journal of the database whose journal id is `journal_id` and whose last
        stored point is `stored`, creating or repairing the file as needed; `pending()`
        then returns what the database lacks."""
        self.path = Path(path)
        self.journal_id = uuid.UUID(journal_id)
        self._lock = threading.Lock()
        self._pending: list[pa.Table] = []  # frames the database lacks, oldest first
        self._fd = -1
        self._open(stored)

    # -- opening -------------------------------------------------------------------------------
    def _open(self, stored: Mark) -> None:
        data = self.path.read_bytes() if self.path.exists() else b""
        if len(data) >= HEADER_SIZE:
            magic, raw_id, generation = _HEADER.unpack_from(data, 0)
            if magic == MAGIC and raw_id == self.journal_id.bytes and \
                    generation >= stored.generation:  # fmt: skip
                start = stored.position if generation == stored.generation else HEADER_SIZE
                start = max(start, HEADER_SIZE)
                if start > len(data):  # shorter than what was stored: nothing to replay
                    log.warning("journal %s is shorter than the position the database "
                                "stored; starting a new one", self.path)  # fmt: skip
                    self.generation = generation + 1
                    self._create()
                    return
                self._pending, end = _read_frames(data, start)
                if end < len(data):
                    # Nearly always a write the process did not finish (nobody acted on it);
                    # a copy is kept in case it was damage further in.
                    copy = self._copy_aside("damaged")
                    log.warning("journal %s: %d unreadable octets at its end cut off (a write "
                                "the process did not finish); the whole file was kept as %s",
                                self.path, len(data) - end, copy.name)  # fmt: skip
                self.generation = generation
                self.position = end
                self._fd = os.open(self.path, os.O_RDWR)
                os.ftruncate(self._fd, end)
                os.lseek(self._fd, end, os.SEEK_SET)
                return
            self._set_aside("it belongs to another database or an older copy of this one")
        elif data:
            self._set_aside("its header is incomplete")
        self.generation = stored.generation + 1
        self._create()

    def _aside(self, what: str) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        return self.path.with_name(f"{self.path.name}.{what}-{stamp}")

    def _set_aside(self, why: str) -> None:
        target = self._aside("set-aside")
        os.replace(self.path, target)
        log.warning("journal %s set aside as %s: %s", self.path, target.name, why)

    def _copy_aside(self, what: str) -> Path:
        target = self._aside(what)
        shutil.copyfile(self.path, target)
        return target

    def _create(self) -> None:
        """A new, empty file of `self.generation` (replacing any other)."""
        tmp = self.path.with_name(self.path.name + ".new")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, _HEADER.pack(MAGIC, self.journal_id.bytes, self.generation))
        os.fsync(fd)
        os.replace(tmp, self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.position = HEADER_SIZE
        _sync_directory(self.path.parent)

    # -- writing -------------------------------------------------------------------------------
    def append(self, table: pa.Table) -> Mark:
        """Write `table` as one frame, durably (on disk when this returns)."""
        payload = _encode(table)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._fd < 0:
                raise JournalError(f"journal {self.path} is closed")
            written = 0
            try:
                while written < len(frame):
                    written += os.write(self._fd, frame[written:])
                _flush_to_disk(self._fd)
            except OSError as exc:
                # Leave no partial frame behind: later frames must stay readable.
                os.ftruncate(self._fd, self.position)
                os.lseek(self._fd, self.position, os.SEEK_SET)
                raise JournalError(f"journal {self.path} cannot be written: {exc}") from exc
            self.position += len(frame)
            self._pending.append(table)
            return Mark(self.generation, self.position)

    # -- what the database lacks ---------------------------------------------------------------
    def pending(self) -> tuple[list[pa.Table], Mark]:
        """Frames not yet stored in the database (found at opening, then written since),
        and the mark to store with them."""
        with self._lock:
            return list(self._pending), Mark(self.generation, self.position)

    def stored(self, count: int) -> None:
        """The first `count` tables `pending()` returned are in the database now."""
        with self._lock:
            del self._pending[:count]

    def restart(self, *, above: int = 0) -> bool:
        """Empty the file (next generation) if everything in it is stored and it is larger
        than `above` octets; True if it was emptied."""
        with self._lock:
            if self._fd < 0 or self._pending or self.position <= above:
                return False
            if self.position == HEADER_SIZE:
                return False
            self.generation += 1
            self._create()
            return True

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
