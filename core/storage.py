"""The DuckDB file: connection, one cursor per thread, numbered schema migrations.

This is the only module with DDL. DuckDB allows one process per database file, so a process
opens a file once (`open_storage` keeps a process-wide registry keyed by the resolved path)
and every thread works through its own cursor of that one connection. A second process that
finds the file locked gets `DatabaseInUse`, naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from core.errors import DatabaseInUse, StudioError

DEFAULT_DB = "data/studio.duckdb"

# Each migration runs once, in order, inside a transaction; never edit one that has shipped,
# add a new one instead.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE SEQUENCE seq_databases START 1;
        CREATE TABLE databases (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_databases'),
            name VARCHAR NOT NULL UNIQUE,
            table_name VARCHAR NOT NULL UNIQUE,
            mobile_field VARCHAR,
            key_field VARCHAR,
            consent_field VARCHAR,
            consent_values VARCHAR[],
            default_region VARCHAR NOT NULL DEFAULT 'NL',
            default_destination JSON,
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            updated_at TIMESTAMP NOT NULL DEFAULT now()
        );

        CREATE SEQUENCE seq_imports START 1;
        CREATE TABLE imports (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_imports'),
            database_id BIGINT NOT NULL,
            file_name VARCHAR,
            imported_at TIMESTAMP NOT NULL DEFAULT now(),
            rows BIGINT,
            inserted BIGINT,
            updated BIGINT,
            report JSON
        );

        CREATE TABLE suppressions (
            e164 VARCHAR PRIMARY KEY,
            reason VARCHAR NOT NULL,
            source VARCHAR,
            mailing_id BIGINT,
            added_at TIMESTAMP NOT NULL DEFAULT now()
        );
        -- Every add and remove, so the list's growth can be charted and audited.
        CREATE TABLE suppression_log (
            e164 VARCHAR NOT NULL,
            action VARCHAR NOT NULL,  -- 'add' or 'remove'
            reason VARCHAR,
            source VARCHAR,
            mailing_id BIGINT,
            ts TIMESTAMP NOT NULL DEFAULT now()
        );

        CREATE SEQUENCE seq_selections START 1;
        CREATE TABLE selections (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_selections'),
            name VARCHAR NOT NULL UNIQUE,
            database_id BIGINT NOT NULL,
            parent_id BIGINT,
            spec JSON NOT NULL,
            sms_enabled BOOLEAN NOT NULL DEFAULT false,
            last_count BIGINT,
            counted_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            updated_at TIMESTAMP NOT NULL DEFAULT now()
        );

        CREATE SEQUENCE seq_documents START 1;
        CREATE TABLE documents (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_documents'),
            name VARCHAR NOT NULL UNIQUE,
            sender VARCHAR NOT NULL DEFAULT '',
            body VARCHAR NOT NULL DEFAULT '',
            settings JSON,
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            updated_at TIMESTAMP NOT NULL DEFAULT now()
        );

        CREATE TABLE settings (
            key VARCHAR PRIMARY KEY,
            value JSON
        );

        CREATE SEQUENCE seq_mailings START 1;
        CREATE TABLE mailings (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_mailings'),
            kind VARCHAR NOT NULL DEFAULT 'bulk',      -- 'bulk' or 'test'
            document_id BIGINT,
            selection_id BIGINT,
            database_id BIGINT,
            sender VARCHAR,
            body VARCHAR,
            state VARCHAR NOT NULL,  -- scheduled, sending, finished, cancelled, failed
            scheduled_at TIMESTAMP,                    -- UTC
            split_max_parts INTEGER NOT NULL DEFAULT 4,
            created_at TIMESTAMP NOT NULL DEFAULT now(),
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            late_seconds DOUBLE,
            reconciliation JSON,                       -- who was left out, and why
            estimate JSON,                             -- segments and cost at confirmation
            error VARCHAR
        );

        -- The outbox and ledger: one row per recipient, written once when a mailing starts.
        CREATE TABLE messages (
            id BIGINT NOT NULL,
            mailing_id BIGINT NOT NULL,
            contact_key VARCHAR,
            e164 VARCHAR NOT NULL,
            country VARCHAR,
            sender VARCHAR NOT NULL,
            body VARCHAR NOT NULL,
            encoding VARCHAR NOT NULL,
            parts INTEGER NOT NULL,
            part_texts VARCHAR[],                      -- filled lazily by the dispatcher
            concat_ref INTEGER NOT NULL,
            initial_status VARCHAR NOT NULL,           -- 'queued' or 'skipped'
            skip_reason VARCHAR
        );
        CREATE SEQUENCE seq_messages START 1;

        -- Status changes, appended in batches; a message's status is its latest event.
        CREATE TABLE message_events (
            message_id BIGINT NOT NULL,
            mailing_id BIGINT NOT NULL,
            part INTEGER,                              -- NULL: the whole message
            event VARCHAR NOT NULL,
            provider_id VARCHAR,
            reason VARCHAR,
            ts TIMESTAMP NOT NULL
        );

        CREATE SEQUENCE seq_inbound START 1;
        CREATE TABLE inbound (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_inbound'),
            received_at TIMESTAMP NOT NULL,
            sender_raw VARCHAR,
            e164 VARCHAR,
            recipient VARCHAR,
            text VARCHAR,
            kind VARCHAR,                              -- 'stop', 'start' or NULL
            mailing_id BIGINT,
            provider_id VARCHAR
        );

        -- Exactly one dispatcher per database: the holder renews its heartbeat.
        CREATE TABLE dispatcher_lease (
            name VARCHAR PRIMARY KEY,
            owner VARCHAR NOT NULL,
            heartbeat TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        2,
        """
        -- The national single shift table a message's parts were counted with (NULL: none).
        ALTER TABLE messages ADD COLUMN shift_table VARCHAR;

        -- Each message's rolled-up state, folded from message_events by core.ledger with one
        -- batched UPDATE per batch of events (never one per message), so statistics read one
        -- row per message instead of grouping millions of events. Folding is idempotent;
        -- after a crash the events of sending mailings are folded again.
        -- Masks have bit p set for part p (0-based); severity is the worst delivery report:
        -- 0 none, 1 unknown, 2 expired, 3 undelivered, 4 failed.
        CREATE TABLE message_state (
            message_id BIGINT NOT NULL,
            mailing_id BIGINT NOT NULL,
            submitted_mask BIGINT NOT NULL DEFAULT 0,
            delivered_mask BIGINT NOT NULL DEFAULT 0,
            report_severity TINYINT NOT NULL DEFAULT 0,
            rejected BOOLEAN NOT NULL DEFAULT false,
            unknown BOOLEAN NOT NULL DEFAULT false,
            skipped BOOLEAN NOT NULL DEFAULT false,
            reason VARCHAR,
            submitted_at TIMESTAMP,
            done_at TIMESTAMP
        );

        -- Delivery reports whose provider id matched no submitted part yet (a report can
        -- overtake the recording of its submit); matched and moved by the dispatcher.
        CREATE TABLE unmatched_reports (
            provider_id VARCHAR NOT NULL,
            event VARCHAR NOT NULL,
            reason VARCHAR,
            ts TIMESTAMP NOT NULL
        );

        -- One row per message: its status in the words of the results export.
        CREATE VIEW message_status AS
        SELECT message_id, mailing_id, e164, contact_key, parts, encoding, country, status,
               parts_submitted, parts_delivered, reason, submitted_at,
               CASE WHEN status IN ('queued', 'submitted') THEN NULL ELSE done_at END
                   AS done_at
        FROM (
            SELECT m.id AS message_id, m.mailing_id, m.e164, m.contact_key, m.parts,
                   m.encoding, m.country,
                   CASE
                       WHEN m.initial_status = 'skipped' THEN 'skipped'
                       WHEN s.rejected THEN 'failed'
                       WHEN s.unknown THEN 'unknown'
                       WHEN bit_count(s.submitted_mask) >= m.parts THEN
                           CASE
                               WHEN s.report_severity = 4 THEN 'failed'
                               WHEN s.report_severity = 3 THEN 'undelivered'
                               WHEN s.report_severity = 2 THEN 'expired'
                               WHEN bit_count(s.delivered_mask) >= m.parts THEN 'delivered'
                               WHEN s.report_severity = 1 THEN 'unknown'
                               ELSE 'submitted'
                           END
                       WHEN s.skipped THEN 'skipped'
                       ELSE 'queued'
                   END AS status,
                   CAST(bit_count(s.submitted_mask) AS INTEGER) AS parts_submitted,
                   CAST(bit_count(s.delivered_mask) AS INTEGER) AS parts_delivered,
                   coalesce(s.reason, m.skip_reason) AS reason,
                   s.submitted_at, s.done_at
            FROM messages m
            JOIN message_state s ON s.message_id = m.id AND s.mailing_id = m.mailing_id
        );

        -- Past SMS results per number, for selections ("received mailing X", "delivered",
        -- "failed", "replied STOP"). Test sends are not part of anyone's history.
        CREATE VIEW sms_history AS
        SELECT s.e164, s.mailing_id, s.status,
               (r.e164 IS NOT NULL) AS replied_stop
        FROM message_status s
        JOIN mailings g ON g.id = s.mailing_id AND g.kind <> 'test'
        LEFT JOIN (
            SELECT DISTINCT e164, mailing_id FROM inbound
            WHERE kind = 'stop' AND e164 IS NOT NULL
        ) r ON r.e164 = s.e164 AND r.mailing_id = s.mailing_id;
        """,
    ),
    (
        3,
        """
        -- Statistics: each mailing's messages counted per status, country, reason and parts
        -- (a few hundred rows per mailing), so the overall statistics read thousands of rows
        -- instead of joining millions. core.stats recomputes a mailing's rows when its
        -- number of message_events or its state differs from the version they were made at.
        CREATE TABLE stats_rollup (
            mailing_id BIGINT NOT NULL,
            status VARCHAR NOT NULL,
            country VARCHAR NOT NULL,                  -- 'unknown' when the number had none
            reason VARCHAR,                            -- failures, unknown and skipped only
            parts INTEGER NOT NULL,
            parts_submitted INTEGER NOT NULL,
            parts_delivered INTEGER NOT NULL,
            messages BIGINT NOT NULL
        );
        CREATE TABLE stats_rollup_version (
            mailing_id BIGINT NOT NULL,
            events BIGINT NOT NULL,
            state VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        4,
        """
        -- The event journal (core.journal, a file next to this database): the dispatcher
        -- writes events there first, durably, and core.ledger appends them here in one
        -- transaction per group commit, storing with them how far into the journal it got.
        -- journal_id ties the file to this database; a restart replays what lies beyond
        -- (generation, position).
        CREATE TABLE ledger_journal (
            journal_id VARCHAR NOT NULL,
            generation BIGINT NOT NULL,
            position BIGINT NOT NULL
        );
        INSERT INTO ledger_journal VALUES (uuid()::VARCHAR, 0, 0);
        """,
    ),
]


_SAFE_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB; embedded double quotes are doubled."""
    return '"' + str(name).replace('"', '""') + '"'


def _holder_from_lock_error(message: str) -> str:
    match = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", message)
    if not match:
        return "another process"
    return f"{Path(match.group(1)).name}, PID {match.group(2)}"


class Storage:
    """One DuckDB connection for this process and a cursor per thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseInUse(self.path, _holder_from_lock_error(str(exc))) from None
            raise StudioError(f"Cannot open the database {self.path}: {exc}") from None
        self._local = threading.local()
        self._lock = threading.RLock()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        # Objects that live as long as this connection (the ledger's event journal): closed
        # with it, before it.
        self.resources: dict[str, Any] = {}
        self.closed = False
        self.migrate()

    # -- connections -------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with self._lock:
                cur = self._con.cursor()
                self._cursors.append(cur)
            self._local.cursor = cur
        return cur

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> duckdb.DuckDBPyConnection:
        return self.cursor().execute(sql, params or [])

    def df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """A query's result as pandas, through Arrow: with pandas 3 DuckDB's own `.df()` is
        several times slower on text columns (1M rows × 5 columns: 2.8 s against 0.4 s)."""
        return self.arrow(sql, params).to_pandas()

    def arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """A query's result as one Arrow table (chunks combined, so callers can index it)."""
        table = self.cursor().sql(sql, params=list(params or [])).to_arrow_table()
        return table.combine_chunks()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        # fetchall, not fetchone: DuckDB keeps a half-read result open on the cursor and
        # refuses the next register() on it.
        rows = self.cursor().execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.cursor().execute(sql, params or []).fetchall()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All or nothing: bad input must leave stored data unchanged."""
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")

    def append_df(self, table: str, frame: pd.DataFrame) -> None:
        """Bulk append a DataFrame whose columns are a subset of the table's, by name."""
        if frame.empty:
            return
        cur = self.cursor()
        view = f"_append_{threading.get_ident()}"
        cur.register(view, frame)
        try:
            cols = ", ".join(quote_ident(c) for c in frame.columns)
            cur.execute(f"INSERT INTO {quote_ident(table)} ({cols}) SELECT {cols} FROM {view}")
        finally:
            cur.unregister(view)

    def table_exists(self, table: str) -> bool:
        return bool(
            self.one(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            )
        )

    def columns(self, table: str) -> dict[str, str]:
        """Column name → DuckDB type, in table order."""
        rows = self.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        )
        return {name: dtype for name, dtype in rows}

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> int:
        cur = self.cursor()
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMP DEFAULT now())"
        )
        done = {row[0] for row in cur.execute("SELECT version FROM schema_version").fetchall()}
        for version, ddl in MIGRATIONS:
            if version in done:
                continue
            with self.transaction() as tx:
                tx.execute(ddl)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
        return max([v for v, _ in MIGRATIONS], default=0)

    def schema_version(self) -> int:
        return int(self.one("SELECT max(version) FROM schema_version") or 0)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            for resource in self.resources.values():
                with contextlib.suppress(Exception):
                    resource.close()
            self.resources.clear()
            for cur in self._cursors:
                with contextlib.suppress(Exception):
                    cur.close()
            self._con.close()


_registry: dict[str, tuple[Storage, int]] = {}
_registry_lock = threading.Lock()


def _key(path: str | Path) -> str:
    return ":memory:" if str(path) == ":memory:" else str(Path(path).resolve())


def open_storage(path: str | Path = DEFAULT_DB) -> Storage:
    """The process's one Storage for this file, opened on first use (reference counted)."""
    key = _key(path)
    with _registry_lock:
        if key in _registry and key != ":memory:":
            storage, count = _registry[key]
            if not storage.closed:
                _registry[key] = (storage, count + 1)
                return storage
        storage = Storage(path)
        if key != ":memory:":
            _registry[key] = (storage, 1)
        return storage


def release_storage(storage: Storage) -> None:
    """Drop one reference; the connection closes when the last user releases it."""
    key = _key(storage.path)
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None or entry[0] is not storage:
            storage.close()
            return
        count = entry[1] - 1
        if count <= 0:
            del _registry[key]
            storage.close()
        else:
            _registry[key] = (storage, count)
