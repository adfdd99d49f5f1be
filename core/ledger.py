"""The send ledger: every SQL statement about messages, their events and inbound replies.

The ledger is three tables. `messages` is the snapshot a mailing writes once when it starts:
one row per recipient with the rendered text. `message_events` is append-only: every status
change of a message (or of one of its parts) is a row, written in batches. `message_state`
holds one row per message summarising its events, folded in with one set-based UPDATE per
batch (never one per message), so statistics read one row per message instead of grouping
millions of events. Folding is idempotent (bit sets, flags, maxima): the sender appends a
batch's outcomes in the same commit as the next batch's `submitting`, the dispatcher appends
delivery reports as they arrive, the recorder folds both a moment later, and after a crash
`refold_sending` folds everything of the sending mailings again and `refold_reported` every
mailing with a report its state does not show yet. The views `message_status` and
`sms_history` (migration 2) turn that into the words users see.

Event vocabulary (`message_events.event`), per part unless noted:

    submitting        about to be handed to the provider (committed before the network call)
    submitted         accepted by the provider; `provider_id` is its id for this part
    retry             refused for now (throttled, transient); will be submitted again
    rejected          refused for good; `reason` says why
    unknown           no answer before the link or the process died: never resent
    skipped           (whole message, part NULL) not sent, e.g. suppressed meanwhile
    delivered, undelivered, expired, failed, report_unknown     delivery reports

Every outcome (submitted, retry, rejected, unknown) answers exactly one `submitting`, so a
part whose `submitting` count exceeds its outcome count was in flight when the process
stopped: that is how a restart finds the only uncertain messages.

DuckDB specifics (Arrow registration for bulk appends, `bit_count`, `bit_or`) stay inside
this module behind plain function names, so another store (PostgreSQL, with workers taking
windows by `FOR UPDATE SKIP LOCKED`) can replace it without touching the dispatcher.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.dispatcher import EventBatch, PartRef, PendingMessage
from core.journal import Journal, Mark
from core.optout import classify_reply, normalize_address
from core.storage import Storage

if TYPE_CHECKING:
    from core.gateways.base import InboundMessage
    from core.studio import Studio

log = logging.getLogger(__name__)

SUBMITTING = "submitting"
OUTCOMES = ("submitted", "retry", "rejected", "unknown")
STATUSES = (
    "queued", "submitted", "delivered", "undelivered", "failed", "expired", "unknown", "skipped",
)  # fmt: skip
RESULT_COLUMNS = (
    "e164", "contact_key", "parts", "encoding", "status", "parts_delivered", "reason",
    "submitted_at", "done_at",
)  # fmt: skip
MAX_PARTS = 62  # part masks are BIGINT bit sets

_EVENT_SCHEMA = pa.schema([
    ("message_id", pa.int64()),
    ("mailing_id", pa.int64()),
    ("part", pa.int32()),
    ("event", pa.string()),
    ("provider_id", pa.string()),
    ("reason", pa.string()),
    ("ts", pa.timestamp("us")),
])  # fmt: skip
_STATE_GAP = 500_000  # message ids further apart than this are updated in separate statements
_view_names = itertools.count()


# -- helpers ---------------------------------------------------------------------------------
def _view() -> str:
    return f"_ledger_{threading.get_ident()}_{next(_view_names)}"


def _register_insert(cur: Any, table: str, data: pa.Table, columns: Sequence[str]) -> None:
    """Append an Arrow table (DuckDB reads it in place: millions of rows per second)."""
    name = _view()
    cur.register(name, data)
    try:
        cols = ", ".join(columns)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
    finally:
        cur.unregister(name)


def _append_rows(cur: Any, table: str, data: pa.Table) -> None:
    """Append an Arrow table whose columns are exactly `table`'s, in order: one statement
    (atomic on its own). DuckDB reads the local variable by name (a replacement scan):
    about 0.6 ms less per statement than `from_arrow(...).insert_into` or registering a
    view, which counts for small batches written many times a second."""
    ledger_rows = data  # noqa: F841  (read by name in the statement below)
    cur.execute(f"INSERT INTO {table} SELECT * FROM ledger_rows")


def events_table(batch: EventBatch) -> pa.Table:
    """The batch as an Arrow table with message_events' columns."""
    return pa.table(
        [
            pa.array(batch.message_id, pa.int64()),
            pa.array(batch.mailing_id, pa.int64()),
            pa.array(batch.part, pa.int32()),
            pa.array(batch.event, pa.string()),
            pa.array(batch.provider_id, pa.string()),
            pa.array(batch.reason, pa.string()),
            pa.array(batch.ts, pa.timestamp("us")),
        ],
        schema=_EVENT_SCHEMA,
    )


# -- the snapshot ------------------------------------------------------------------------------
def allocate_message_ids(storage: Storage, n: int) -> np.ndarray:
    """`n` new message ids from `seq_messages`, ascending (unique across threads)."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    ids = storage.cursor().execute(
        "SELECT nextval('seq_messages') AS id FROM range(?)", [int(n)]
    ).fetchnumpy()["id"]
    return np.sort(np.asarray(ids, dtype=np.int64))


_MESSAGE_COLUMNS = (
    "id", "mailing_id", "contact_key", "e164", "country", "sender", "body", "encoding", "parts",
    "concat_ref", "initial_status", "skip_reason", "shift_table",
)  # fmt: skip


def write_snapshot(
    storage: Storage,
    mailing_id: int,
    messages: pa.Table,
    *,
    started_at: datetime,
    late_seconds: float | None,
    reconciliation: dict[str, Any],
    state: str = "sending",
) -> bool:
    """Store a mailing's messages and mark it started, all in one transaction.

    `messages` has the columns of `messages` (ids already allocated). Returns False, having
    written nothing, when the mailing is no longer `scheduled` (launched by someone else, or
    cancelled): a mailing is never snapshotted twice.
    """
    with storage.transaction() as cur:
        current = cur.execute(
            "SELECT state FROM mailings WHERE id = ?", [int(mailing_id)]
        ).fetchall()
        if not current or current[0][0] != "scheduled":
            return False
        if messages.num_rows:
            _register_insert(cur, "messages", messages, _MESSAGE_COLUMNS)
            name = _view()
            cur.register(name, messages)
            try:
                cur.execute(
                    "INSERT INTO message_state (message_id, mailing_id, skipped, reason, done_at) "
                    f"SELECT id, mailing_id, initial_status = 'skipped', skip_reason, "
                    f"CASE WHEN initial_status = 'skipped' THEN ?::TIMESTAMP END FROM {name}",
                    [started_at],
                )
            finally:
                cur.unregister(name)
        cur.execute(
            "UPDATE mailings SET state = ?, started_at = ?, late_seconds = ?, "
            "reconciliation = ?, finished_at = CASE WHEN ? = 'finished' THEN ?::TIMESTAMP END "
            "WHERE id = ?",
            [state, started_at, late_seconds, json.dumps(reconciliation), state, started_at,
             int(mailing_id)],
        )
    return True


# -- writing events ----------------------------------------------------------------------------
def append_events(storage: Storage, batch: EventBatch) -> None:
    """Append events and commit, without folding them into `message_state`.

    The dispatcher's sending thread writes each batch's `submitting` events this way (before
    the parts go out), together with the previous batch's outcomes, whose fold the recorder
    does next. Folding is idempotent, so a crash between the two is repaired by
    `refold_sending` at the next start.
    """
    if not len(batch):
        return
    _append_rows(storage.cursor(), "message_events", events_table(batch))


_STATE_DELTA = """
    SELECT message_id,
        bit_or(CASE WHEN event = 'submitted' THEN (1::BIGINT << part) ELSE 0 END) AS sub_mask,
        bit_or(CASE WHEN event = 'delivered' THEN (1::BIGINT << part) ELSE 0 END) AS del_mask,
        max(CASE event WHEN 'failed' THEN 4 WHEN 'undelivered' THEN 3 WHEN 'expired' THEN 2
                       WHEN 'report_unknown' THEN 1 ELSE 0 END) AS severity,
        bool_or(event = 'rejected') AS rejected,
        bool_or(event = 'unknown') AS unknown,
        bool_or(event = 'skipped') AS skipped,
        arg_max(reason, ts) FILTER (WHERE reason IS NOT NULL) AS reason,
        max(ts) FILTER (WHERE event = 'submitted') AS submitted_at,
        max(ts) FILTER (WHERE event IN ('rejected', 'unknown', 'skipped', 'delivered',
            'undelivered', 'expired', 'failed', 'report_unknown')) AS done_at
    FROM {view} WHERE event <> 'submitting' AND message_id BETWEEN ? AND ?
    GROUP BY message_id
"""

_STATE_UPDATE = """
    UPDATE message_state AS s SET
        submitted_mask = s.submitted_mask | d.sub_mask,
        delivered_mask = s.delivered_mask | d.del_mask,
        report_severity = greatest(s.report_severity, d.severity),
        rejected = s.rejected OR d.rejected,
        unknown = s.unknown OR d.unknown,
        skipped = s.skipped OR d.skipped,
        reason = CASE WHEN d.reason IS NOT NULL THEN d.reason
                      WHEN d.sub_mask <> 0 THEN NULL ELSE s.reason END,
        submitted_at = greatest(s.submitted_at, d.submitted_at),
        done_at = greatest(s.done_at, d.done_at)
    FROM ({delta}) AS d
    WHERE s.message_id = d.message_id AND s.message_id BETWEEN ? AND ?
"""


def _id_clusters(ids: np.ndarray, gap: int = _STATE_GAP) -> list[tuple[int, int]]:
    """Ranges of nearby ids, so each UPDATE touches few row groups (zone maps skip the rest)."""
    ids = np.unique(ids)
    if ids.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(ids) > gap) + 1
    return [(int(chunk[0]), int(chunk[-1])) for chunk in np.split(ids, cuts)]


def _fold(cur: Any, view: str, ids: np.ndarray) -> None:
    """Fold the events in `view` into `message_state` (idempotent: bits, flags, maxima);
    `ids` are the message ids concerned."""
    for lo, hi in _id_clusters(np.asarray(ids, dtype=np.int64)):
        delta = _STATE_DELTA.format(view=view)
        cur.execute(_STATE_UPDATE.format(delta=delta), [lo, hi, lo, hi])


def record_events(
    storage: Storage,
    batch: EventBatch,
    *,
    fold: EventBatch | None = None,
    resolved_unmatched: Sequence[str] = (),
    journaled: Sequence[pa.Table] = (),
    journal_mark: Mark | None = None,
) -> None:
    """Append `batch` and fold it, plus `fold` (events already appended), into
    `message_state`, in one transaction.

    `resolved_unmatched` names provider ids of `unmatched_reports` rows that this batch
    now records against their message; they are deleted in the same transaction.
    `journaled`: events the journal holds that the table does not yet, appended first (not
    folded: `fold` names what to fold); `journal_mark` is stored with them, so a restart
    replays only what comes after.
    """
    journaled = [t for t in journaled if t.num_rows]
    if not len(batch) and not (fold and len(fold)) and not resolved_unmatched \
            and not journaled and journal_mark is None:  # fmt: skip
        return
    with storage.transaction() as cur:
        _store_journaled(cur, journaled, journal_mark)
        tables = []
        if len(batch):
            new = events_table(batch)
            _append_rows(cur, "message_events", new)
            tables.append(new)
        if fold is not None and len(fold):
            tables.append(events_table(fold))
        everything = pa.concat_tables(tables) if tables else None
        if everything is not None:
            changed = everything.column("message_id").filter(
                pc.not_equal(everything.column("event"), SUBMITTING))
            if len(changed):
                name = _view()
                cur.register(name, everything)
                try:
                    _fold(cur, name, changed.to_numpy())
                finally:
                    cur.unregister(name)
        if resolved_unmatched:
            cur.execute(
                "DELETE FROM unmatched_reports WHERE provider_id IN (SELECT unnest(?))",
                [list(resolved_unmatched)],
            )


# -- the event journal ---------------------------------------------------------------------------
JOURNAL_RESTART_SIZE = 16 << 20  # octets: past this, a journal all stored is emptied
_journal_lock = threading.Lock()


def event_journal(storage: Storage) -> Journal | None:
    """The event journal of this database, `<database file>.journal` (see core.journal):
    opened once per connection, storing at once whatever a crash left only there. None for
    an in-memory database, whose events go to the table directly."""
    if storage.path == ":memory:":
        return None
    journal = storage.resources.get("event_journal")
    if journal is not None:
        return journal  # type: ignore[no-any-return]
    with _journal_lock:
        journal = storage.resources.get("event_journal")
        if journal is None:
            jid, generation, position = storage.rows(
                "SELECT journal_id, generation, position FROM ledger_journal")[0]
            journal = Journal(f"{storage.path}.journal", str(jid),
                              Mark(int(generation), int(position)))  # fmt: skip
            _replay(storage, journal)
            storage.resources["event_journal"] = journal
    return journal  # type: ignore[no-any-return]


def _replay(storage: Storage, journal: Journal) -> None:
    """Store the events a crash left in the journal only, and fold their mailings again
    (some of those events may never have been folded)."""
    tables, mark = journal.pending()
    if not tables:
        return
    events = pa.concat_tables(tables)
    mailings = sorted(int(m) for m in pc.unique(events.column("mailing_id")).to_pylist())
    with storage.transaction() as cur:
        _store_journaled(cur, [events], mark)
        if mailings:
            _refold(cur, ", ".join(str(m) for m in mailings))
    journal.stored(len(tables))
    log.warning("stored %d events that were only in the journal %s (the process stopped "
                "before storing them)", events.num_rows, journal.path)  # fmt: skip


def _store_journaled(cur: Any, tables: Sequence[pa.Table], mark: Mark | None) -> None:
    """Append events the journal holds to `message_events` and store `mark` (how far into
    the journal the table now goes), inside the caller's transaction."""
    if tables:
        _append_rows(cur, "message_events", pa.concat_tables(tables))
    if mark is not None:
        cur.execute("UPDATE ledger_journal SET generation = ?, position = ?",
                    [mark.generation, mark.position])  # fmt: skip


def _parts_in(tables: Sequence[pa.Table], provider_ids: Sequence[str]) -> dict[str, PartRef]:
    """Like `find_parts`, over events still only in the journal (the newest wins)."""
    if not tables:
        return {}
    events = pa.concat_tables(tables)
    mask = pc.and_(pc.equal(events.column("event"), "submitted"),
                   pc.is_in(events.column("provider_id"), pa.array(list(provider_ids),
                                                                   pa.string())))  # fmt: skip
    hits = events.filter(mask).select(["provider_id", "message_id", "mailing_id", "part"])
    return {pid: (int(mid), int(mg), int(part))
            for pid, mid, mg, part in zip(*(c.to_pylist() for c in hits.columns), strict=True)}


def _refold(cur: Any, mailings_sql: str) -> None:
    """Fold every event of the mailings `mailings_sql` selects (ids) again (a view cannot
    take parameters: only constant SQL or integers go in)."""
    cur.execute(
        "CREATE OR REPLACE TEMP VIEW _refold AS SELECT * FROM message_events "
        f"WHERE mailing_id IN ({mailings_sql})"
    )
    try:
        bounds = cur.execute("SELECT min(message_id), max(message_id) FROM _refold").fetchall()
        if bounds and bounds[0][0] is not None:
            lo, hi = int(bounds[0][0]), int(bounds[0][1])
            delta = _STATE_DELTA.format(view="_refold")
            cur.execute(_STATE_UPDATE.format(delta=delta), [lo, hi, lo, hi])
    finally:
        cur.execute("DROP VIEW IF EXISTS _refold")


def refold_sending(storage: Storage) -> None:
    """Fold every event of the mailings still sending into their messages' state again.

    After a crash some outcomes may be stored but not yet folded; folding is idempotent,
    so folding everything again makes the state exact.
    """
    with storage.transaction() as cur:
        _refold(cur, "SELECT id FROM mailings WHERE state = 'sending'")


_REPORT_EVENTS = ("delivered", "undelivered", "expired", "failed", "report_unknown")


def refold_reported(storage: Storage) -> list[int]:
    """Fold again the events of every mailing with a delivery report that its messages'
    state does not show yet; returns those mailings.

    The dispatcher appends delivery reports as they arrive (so the provider can be told at
    once that they were stored) and folds them a moment later; a crash in between leaves
    them unfolded, in finished mailings too. Only the day before the newest event is
    searched: what a crash leaves unfolded is seconds old.
    """
    events = ", ".join(f"'{e}'" for e in _REPORT_EVENTS)
    with storage.transaction() as cur:
        rows = cur.execute(
            "WITH recent AS (SELECT message_id, mailing_id, part, event, ts FROM message_events "
            f"  WHERE event IN ({events}) AND ts >= "
            "  (SELECT max(ts) FROM message_events) - INTERVAL 1 DAY) "
            "SELECT DISTINCT r.mailing_id FROM recent r "
            "JOIN message_state s ON s.message_id = r.message_id "
            "WHERE (r.event = 'delivered' AND (s.delivered_mask >> r.part) & 1 = 0) "
            "   OR s.report_severity < CASE r.event WHEN 'failed' THEN 4 "
            "      WHEN 'undelivered' THEN 3 WHEN 'expired' THEN 2 "
            "      WHEN 'report_unknown' THEN 1 ELSE 0 END "
            "   OR s.done_at IS NULL OR s.done_at < r.ts "
            "ORDER BY 1"
        ).fetchall()
        mailings = [int(r[0]) for r in rows]
        if mailings:
            _refold(cur, ", ".join(str(m) for m in mailings))
    return mailings


def save_unmatched(storage: Storage, reports: EventBatch) -> None:
    """Store delivery reports whose part is not known yet (durably: they are acknowledged)."""
    if not len(reports):
        return
    frame = pa.table({
        "provider_id": pa.array(reports.provider_id, pa.string()),
        "event": pa.array(reports.event, pa.string()),
        "reason": pa.array(reports.reason, pa.string()),
        "ts": pa.array(reports.ts, pa.timestamp("us")),
    })  # fmt: skip
    _append_rows(storage.cursor(), "unmatched_reports", frame)


def load_unmatched(storage: Storage, since: datetime) -> EventBatch:
    batch = EventBatch()
    for pid, event, reason, ts in storage.rows(
        "SELECT provider_id, event, reason, ts FROM unmatched_reports WHERE ts >= ? ORDER BY ts",
        [since],
    ):
        batch.add(-1, -1, None, event, pid, reason, ts)
    return batch


def find_parts(storage: Storage, provider_ids: Sequence[str]) -> dict[str, PartRef]:
    """Which part each provider id was returned for (the latest, should an id repeat)."""
    if not provider_ids:
        return {}
    rows = storage.rows(
        "SELECT provider_id, arg_max(message_id, ts), arg_max(mailing_id, ts), "
        "arg_max(part, ts) FROM message_events WHERE event = 'submitted' "
        "AND provider_id IN (SELECT unnest(?)) GROUP BY provider_id",
        [list(dict.fromkeys(provider_ids))],
    )
    return {pid: (int(mid), int(mg), int(part)) for pid, mid, mg, part in rows}


def in_flight_parts(storage: Storage) -> list[PartRef]:
    """Parts recorded as `submitting` with no outcome, in mailings that are not finished."""
    rows = storage.rows(
        "SELECT message_id, any_value(mailing_id), part FROM message_events "
        "WHERE event IN ('submitting', 'submitted', 'retry', 'rejected', 'unknown') "
        "AND mailing_id IN (SELECT id FROM mailings WHERE state <> 'finished') "
        "GROUP BY message_id, part "
        "HAVING count(*) FILTER (WHERE event = 'submitting') "
        "     > count(*) FILTER (WHERE event <> 'submitting') "
        "ORDER BY message_id, part"
    )
    return [(int(m), int(g), int(p)) for m, g, p in rows]


# -- reading the outbox ------------------------------------------------------------------------
def sending_mailings(storage: Storage) -> list[tuple[int, str]]:
    """(id, kind) of every mailing in state `sending`: test sends first, then oldest first."""
    return [
        (int(i), str(k))
        for i, k in storage.rows(
            "SELECT id, kind FROM mailings WHERE state = 'sending' "
            "ORDER BY kind = 'test' DESC, id"
        )
    ]


def message_id_bounds(storage: Storage, mailing_id: int) -> tuple[int, int] | None:
    row = storage.rows(
        "SELECT min(id), max(id) FROM messages WHERE mailing_id = ?", [int(mailing_id)]
    )[0]
    return None if row[0] is None else (int(row[0]), int(row[1]))


def pending_messages(
    storage: Storage, mailing_id: int, after_id: int, upto_id: int
) -> list[PendingMessage]:
    """Messages of a mailing with ids in (after_id, upto_id] that still need a submit.

    A message needs one when it was queued at the snapshot, has no final outcome (rejected,
    unknown, skipped) and not every part was accepted; `accepted` lists the parts that were.
    """
    table = storage.cursor().sql(
        "SELECT m.id, m.e164, m.sender, m.body, m.encoding, m.parts, m.concat_ref, "
        "m.shift_table, s.submitted_mask FROM messages m "
        "JOIN message_state s ON s.message_id = m.id AND s.mailing_id = m.mailing_id "
        "WHERE m.mailing_id = ? AND m.id > ? AND m.id <= ? AND s.message_id > ? "
        "AND s.message_id <= ? AND m.initial_status = 'queued' "
        "AND NOT (s.rejected OR s.unknown OR s.skipped) "
        "AND bit_count(s.submitted_mask) < m.parts ORDER BY m.id",
        params=[int(mailing_id), int(after_id), int(upto_id), int(after_id), int(upto_id)],
    ).to_arrow_table()
    cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
    out = []
    empty: frozenset[int] = frozenset()
    mg = int(mailing_id)
    for mid, e164, sender, body, enc, parts, ref, shift, mask in zip(*cols, strict=True):
        accepted = frozenset(p for p in range(parts) if mask >> p & 1) if mask else empty
        out.append(PendingMessage(mid, mg, e164, sender, body, enc, parts, ref, shift, accepted))
    return out


def suppressed_numbers(storage: Storage, numbers: Iterable[str]) -> dict[str, str]:
    """The numbers that are on the suppression list now, with the reason."""
    unique = list(dict.fromkeys(numbers))
    if not unique:
        return {}
    return dict(storage.rows(
        "SELECT e164, reason FROM suppressions WHERE e164 IN (SELECT unnest(?))", [unique]
    ))  # fmt: skip


_SCREEN_GAP = 10_000  # message ids further apart than this are looked up as separate ranges


def screening(storage: Storage, messages: Iterable[tuple[int, int]]
              ) -> tuple[set[int], dict[str, str]]:  # fmt: skip
    """What the dispatcher checks right before a batch goes out, in one query: the ids of
    the mailings sending now, and the suppressed numbers (with the reason) among the
    messages given as (mailing id, message id).

    The numbers are looked up through the messages' id ranges rather than passed as a
    list (a batch is nearly always a run of consecutive ids of one mailing): five times
    cheaper with a large suppression list. The answer may name numbers of messages in those
    ranges that are not in the batch; callers only look up their own.
    """
    by_mailing: dict[int, list[int]] = {}
    for mailing_id, message_id in messages:
        by_mailing.setdefault(int(mailing_id), []).append(int(message_id))
    ranges: list[tuple[int, int, int]] = []
    for mailing_id, ids in by_mailing.items():
        for lo, hi in _id_clusters(np.asarray(ids, dtype=np.int64), _SCREEN_GAP):
            ranges.append((mailing_id, lo, hi))
    where = " OR ".join("(mailing_id = ? AND id BETWEEN ? AND ?)" for _ in ranges) or "false"
    sending, suppressed = storage.rows(
        "SELECT (SELECT list(id) FROM mailings WHERE state = 'sending'), "
        "(SELECT list({'e164': e164, 'reason': reason}) FROM suppressions "
        f" WHERE e164 IN (SELECT e164 FROM messages WHERE {where}))",
        [v for r in ranges for v in r],
    )[0]
    return ({int(i) for i in sending or ()},
            {r["e164"]: r["reason"] for r in suppressed or ()})  # fmt: skip


def pending_count(storage: Storage, mailing_id: int) -> int:
    """Messages of a mailing without a final submit outcome (queued, in flight, retrying)."""
    return int(storage.one(
        "SELECT count(*) FROM message_status WHERE mailing_id = ? AND status = 'queued'",
        [int(mailing_id)],
    ))  # fmt: skip


def complete_mailing(storage: Storage, mailing_id: int, now: datetime) -> bool:
    """Mark a sending mailing finished if every message has a final submit outcome."""
    if pending_count(storage, mailing_id):
        return False
    rows = storage.rows(
        "UPDATE mailings SET state = 'finished', finished_at = ? "
        "WHERE id = ? AND state = 'sending' RETURNING id",
        [now, int(mailing_id)],
    )
    return bool(rows)


# -- inbound -----------------------------------------------------------------------------------
def latest_mailing_for(storage: Storage, numbers: Iterable[str]) -> dict[str, int]:
    """For each number, the latest mailing that handed it a message (any part submitted).

    Read from the `submitting` events, which are committed before a part goes out, so a
    reply can never arrive before the message it answers is visible here.
    """
    unique = [n for n in dict.fromkeys(numbers) if n]
    if not unique:
        return {}
    rows = storage.rows(
        "WITH cand AS (SELECT id, mailing_id, e164 FROM messages "
        "  WHERE e164 IN (SELECT unnest(?)) AND initial_status = 'queued') "
        "SELECT c.e164, max(c.mailing_id) FROM cand c WHERE c.id IN ("
        "  SELECT message_id FROM message_events WHERE event = 'submitting' "
        "  AND message_id IN (SELECT id FROM cand)) GROUP BY c.e164",
        [unique],
    )
    return {e: int(m) for e, m in rows}


def known_inbound_ids(storage: Storage, provider_ids: Iterable[str | None]) -> set[str]:
    ids = [p for p in dict.fromkeys(provider_ids) if p]
    if not ids:
        return set()
    return {r[0] for r in storage.rows(
        "SELECT DISTINCT provider_id FROM inbound WHERE provider_id IN (SELECT unnest(?))", [ids]
    )}  # fmt: skip


def store_inbound(storage: Storage, rows: Sequence[dict[str, Any]]) -> None:
    """Append inbound messages (received_at, sender_raw, e164, recipient, text, kind,
    mailing_id, provider_id) and commit."""
    if not rows:
        return
    frame = pa.Table.from_pylist(
        [dict(r) for r in rows],
        schema=pa.schema([
            ("received_at", pa.timestamp("us")), ("sender_raw", pa.string()),
            ("e164", pa.string()), ("recipient", pa.string()), ("text", pa.string()),
            ("kind", pa.string()), ("mailing_id", pa.int64()), ("provider_id", pa.string()),
        ]),
    )  # fmt: skip
    with storage.transaction() as cur:
        _register_insert(cur, "inbound", frame, frame.column_names)


# -- statistics ----------------------------------------------------------------------------
def status_counts(storage: Storage, mailing_id: int) -> dict[str, Any]:
    """Messages per status, plus parts delivered and segments, for one mailing."""
    counts: dict[str, Any] = dict.fromkeys(STATUSES, 0)
    segments = parts_delivered = parts_submitted = queued_segments = 0
    for status, n, parts, delivered, submitted in storage.rows(
        "SELECT status, count(*), sum(parts), sum(parts_delivered), sum(parts_submitted) "
        "FROM message_status WHERE mailing_id = ? GROUP BY status",
        [int(mailing_id)],
    ):
        counts[status] = int(n)
        if status != "skipped":
            segments += int(parts or 0)
        parts_delivered += int(delivered or 0)
        parts_submitted += int(submitted or 0)
        if status == "queued":
            queued_segments += int(parts or 0) - int(submitted or 0)
    counts["total"] = sum(counts[s] for s in STATUSES)
    counts["parts_delivered"] = parts_delivered
    counts["parts_submitted"] = parts_submitted
    counts["segments"] = segments
    counts["segments_left"] = queued_segments
    return counts


def submitted_parts_since(storage: Storage, mailing_id: int, since: datetime) -> int:
    return int(storage.one(
        "SELECT count(*) FROM message_events WHERE mailing_id = ? AND event = 'submitted' "
        "AND ts >= ?",
        [int(mailing_id), since],
    ))  # fmt: skip


def results_frame(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """The per-recipient ledger of a mailing, in snapshot order (RESULT_COLUMNS)."""
    cols = ", ".join(RESULT_COLUMNS)
    return storage.df(
        f"SELECT {cols} FROM message_status WHERE mailing_id = ? ORDER BY message_id",
        [int(mailing_id)],
    )


def mailing_counts(storage: Storage) -> pd.DataFrame:
    """Per mailing: recipients, queued, submitted (accepted by the provider), delivered,
    failed (failed, undelivered or expired), unknown, skipped and segments."""
    return storage.df(
        "SELECT mailing_id, count(*) AS recipients, "
        "count(*) FILTER (WHERE status = 'queued') AS queued, "
        "count(*) FILTER (WHERE parts_submitted >= parts) AS submitted, "
        "count(*) FILTER (WHERE status = 'delivered') AS delivered, "
        "count(*) FILTER (WHERE status IN ('failed', 'undelivered', 'expired')) AS failed, "
        "count(*) FILTER (WHERE status = 'unknown') AS unknown, "
        "count(*) FILTER (WHERE status = 'skipped') AS skipped, "
        "coalesce(sum(parts) FILTER (WHERE status <> 'skipped'), 0) AS segments "
        "FROM message_status GROUP BY mailing_id"
    )


# -- the dispatcher lease ------------------------------------------------------------------
LEASE_NAME = "dispatcher"


def lease_holder(storage: Storage) -> tuple[str, datetime] | None:
    rows = storage.rows(
        "SELECT owner, heartbeat FROM dispatcher_lease WHERE name = ?", [LEASE_NAME]
    )
    return (rows[0][0], rows[0][1]) if rows else None


def take_lease(storage: Storage, owner: str, now: datetime, *, replace: str | None) -> bool:
    """Write `owner` as the holder if the row still names `replace` (None: no row)."""
    with storage.transaction() as cur:
        current = cur.execute(
            "SELECT owner FROM dispatcher_lease WHERE name = ?", [LEASE_NAME]
        ).fetchall()
        if (current[0][0] if current else None) != replace:
            return False
        cur.execute(
            "INSERT OR REPLACE INTO dispatcher_lease (name, owner, heartbeat) VALUES (?, ?, ?)",
            [LEASE_NAME, owner, now],
        )
    return True


def renew_lease(storage: Storage, owner: str, now: datetime) -> bool:
    rows = storage.rows(
        "UPDATE dispatcher_lease SET heartbeat = ? WHERE name = ? AND owner = ? RETURNING owner",
        [now, LEASE_NAME, owner],
    )
    return bool(rows)


def release_lease(storage: Storage, owner: str) -> None:
    storage.execute(
        "DELETE FROM dispatcher_lease WHERE name = ? AND owner = ?", [LEASE_NAME, owner]
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder_gone(owner: str) -> bool:
    """Whether a lease owner ("host:pid:tag") certainly no longer runs.

    Only this host's processes can be checked. Our own pid means a dispatcher of this
    process that did not release the lease: the process-wide registry, consulted before the
    lease, already knows no dispatcher of this process is running for the database.
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not _pid_alive(pid)


class LedgerSource:
    """The dispatcher's `DispatchSource` on a Studio's DuckDB ledger."""

    LEASE_STALE = timedelta(seconds=60)
    UNMATCHED_DAYS = 2

    def __init__(self, studio: Studio, *, region: str | None = None) -> None:
        self.studio = studio
        self.storage: Storage = studio.storage
        self.region = region
        self._bounds: dict[int, tuple[int, int] | None] = {}

    def _now(self) -> datetime:
        return self.studio.clock()

    # -- the outbox --
    def sending_mailings(self) -> list[tuple[int, str]]:
        return sending_mailings(self.storage)

    def next_messages(self, mailing_id: int, after_id: int, limit: int
                      ) -> tuple[list[PendingMessage], int | None]:  # fmt: skip
        if mailing_id not in self._bounds:  # the snapshot never changes once written
            self._bounds[mailing_id] = message_id_bounds(self.storage, mailing_id)
        bounds = self._bounds[mailing_id]
        if bounds is None:
            return [], None
        lo, hi = bounds
        after = max(int(after_id), lo - 1)
        while after < hi:
            upto = min(after + max(int(limit), 1), hi)
            found = pending_messages(self.storage, mailing_id, after, upto)
            after = upto
            if found:
                return found, (after if after < hi else None)
        return [], None

    def blocked(self, messages: Sequence[PendingMessage]) -> dict[int, str | None]:
        fresh = [m for m in messages if not m.accepted]
        if not fresh:
            return {}
        sending, suppressed = screening(self.storage, ((m.mailing_id, m.message_id)
                                                       for m in fresh))  # fmt: skip
        out: dict[int, str | None] = {}
        for m in fresh:
            if m.mailing_id not in sending:
                out[m.message_id] = None
            elif m.e164 in suppressed:
                out[m.message_id] = (
                    f"not sent: the number was suppressed ({suppressed[m.e164]}) "
                    "after the mailing started"
                )
        return out

    # -- recording --
    @property
    def cheap_appends(self) -> bool:
        """True when `append` is a journal write (a file database): thread-safe and cheap,
        so the dispatcher stores from the thread that needs it stored."""
        return event_journal(self.storage) is not None

    def append(self, batch: EventBatch) -> None:
        """Durably, in the journal (a DuckDB commit costs ~20 times more CPU); the table
        gets them with the next `record`."""
        journal = event_journal(self.storage)
        if journal is None:
            append_events(self.storage, batch)
        elif len(batch):
            journal.append(events_table(batch))

    def record(self, batch: EventBatch, *, fold: EventBatch | None = None,
               resolved_unmatched: Sequence[str] = ()) -> None:  # fmt: skip
        journal = event_journal(self.storage)
        if journal is None:
            record_events(self.storage, batch, fold=fold, resolved_unmatched=resolved_unmatched)
            return
        tables, mark = journal.pending()
        record_events(self.storage, batch, fold=fold, resolved_unmatched=resolved_unmatched,
                      journaled=tables, journal_mark=mark if tables else None)  # fmt: skip
        journal.stored(len(tables))
        journal.restart(above=JOURNAL_RESTART_SIZE)

    def find_parts(self, provider_ids: Sequence[str]) -> dict[str, PartRef]:
        found = find_parts(self.storage, provider_ids)
        journal = event_journal(self.storage)
        if journal is not None:
            found.update(_parts_in(journal.pending()[0], provider_ids))
        return found

    def save_unmatched(self, reports: EventBatch) -> None:
        save_unmatched(self.storage, reports)

    def load_unmatched(self) -> EventBatch:
        return load_unmatched(self.storage, self._now() - timedelta(days=self.UNMATCHED_DAYS))

    def record_inbound(self, messages: Sequence[InboundMessage], received_at: datetime
                       ) -> None:  # fmt: skip
        """Apply STOP and START to the suppression list, then store the replies (all
        committed before returning; a reply offered again is stored once)."""
        region = self.region or str(self.studio.get_setting("default_region") or "NL")
        known = known_inbound_ids(self.storage, (m.provider_id for m in messages))
        rows: list[dict[str, Any]] = []
        for m in messages:
            if m.provider_id:
                if m.provider_id in known:
                    continue  # offered again after a lost acknowledgement
                known.add(m.provider_id)
            rows.append({
                "received_at": received_at, "sender_raw": m.sender,
                "e164": normalize_address(m.sender, region), "recipient": m.recipient,
                "text": m.text, "kind": classify_reply(m.text), "mailing_id": None,
                "provider_id": m.provider_id,
            })  # fmt: skip
        if not rows:
            return
        answered = latest_mailing_for(self.storage, (r["e164"] for r in rows if r["e164"]))
        for r in rows:
            r["mailing_id"] = answered.get(r["e164"]) if r["e164"] else None
        last: dict[str, tuple[str, int | None]] = {}
        for r in rows:  # the last word of each number in this batch counts
            if r["kind"] and r["e164"]:
                last.pop(r["e164"], None)
                last[r["e164"]] = (r["kind"], r["mailing_id"])
        stops: dict[int | None, list[str]] = {}
        starts: list[str] = []
        for e164, (kind, mailing_id) in last.items():
            if kind == "stop":
                stops.setdefault(mailing_id, []).append(e164)
            else:
                starts.append(e164)
        if starts:
            self.studio.unsuppress(starts, source="reply", only_reason="stop_reply")
        for mailing_id, numbers in stops.items():  # the suppression first: it is what counts
            self.studio.suppress(numbers, reason="stop_reply", source="reply",
                                 mailing_id=mailing_id)  # fmt: skip
        store_inbound(self.storage, rows)

    # -- recovery and completion --
    def recover(self) -> list[PartRef]:
        self.record(EventBatch())  # what the journal holds, stored first
        refold_sending(self.storage)
        refold_reported(self.storage)
        return in_flight_parts(self.storage)

    def complete_mailing(self, mailing_id: int) -> bool:
        return complete_mailing(self.storage, mailing_id, self._now())

    # -- the lease --
    def acquire_lease(self, owner: str) -> str | None:
        now = self._now()
        holder = lease_holder(self.storage)
        if holder is None:
            replace = None
        else:
            current, beat = holder
            if current != owner and now - beat < self.LEASE_STALE and not _holder_gone(current):
                return f"{current}, last heartbeat {beat:%Y-%m-%d %H:%M:%S} UTC"
            replace = current
        if take_lease(self.storage, owner, now, replace=replace):
            return None
        return "another dispatcher took the lease at the same moment"

    def renew_lease(self, owner: str) -> bool:
        return renew_lease(self.storage, owner, self._now())

    def release_lease(self, owner: str) -> None:
        release_lease(self.storage, owner)
