"""Mailings: create, launch (the snapshot), test sends, progress and the per-recipient ledger.

A mailing's life: `create_mailing` checks everything that can be checked without sending
(the sending rules were accepted, the sender follows the GSM rule, every field of the text
exists) and stores it `scheduled` with a UTC time (now, when none is given). When it is due,
`launch_mailing` writes its snapshot once: the recipients after the reconciliation (selection
∧ valid mobile ∧ consent ∧ not suppressed, one per E.164 number), each with the rendered
text, sender, encoding and number of parts, as `messages` rows; messages needing more parts
than the mailing allows are stored `skipped` with the reason, never cut short. From then on
the mailing is `sending` and the dispatcher owns it; it becomes `finished` when every message
has a final submit outcome (delivery reports may still arrive afterwards and are recorded).

States: scheduled → sending → finished, or cancelled (before it started), or failed (it could
not start: the reason is stored in `error`).

Everything heavy is vectorised: one query for the recipients, `render_many` for the texts,
`analyze_many` for the parts, one Arrow append for the rows; a million recipients take
seconds, not minutes.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from core import ledger
from core.errors import InvalidInput, NotFound, StudioError
from core.segments import analyze_many
from core.senders import validate_sender
from core.storage import Storage
from core.templates import TemplateError, prepare
from core.values import plain

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.contacts import DatabaseInfo

KINDS = ("bulk", "test")
STATES = ("scheduled", "sending", "finished", "cancelled", "failed")
MAX_SPLIT = 10  # the most parts a mailing may allow per message (the Settings range)
RATE_WINDOW = timedelta(seconds=10)
RATE_MIN_WINDOW = timedelta(seconds=1)

_launch_locks: dict[str, threading.Lock] = {}
_launch_locks_guard = threading.Lock()


def _launch_lock(storage: Storage) -> threading.Lock:
    """One lock per database file: two threads never snapshot the same mailing at once."""
    with _launch_locks_guard:
        return _launch_locks.setdefault(storage.path, threading.Lock())


def _as_utc(at: datetime | None, now: datetime) -> datetime:
    if at is None:
        return now
    if not isinstance(at, datetime):
        raise InvalidInput(f"The send time must be a date and time, not {at!r}.")
    if at.tzinfo is not None:
        return at.astimezone(UTC).replace(tzinfo=None)
    return at  # naive times are UTC, like every stored time


def _is_template(text: str) -> bool:
    return "{" in (text or "")


def _text(values: pd.Series) -> pa.Array:
    """A column as Arrow text, missing values kept missing, numbers written as text."""
    if not len(values):
        return pa.array([], pa.string())
    return pa.array(values.astype("string"), from_pandas=True).cast(pa.string())




class MailingsMixin:
    """Mailing lifecycle and results; mixed into `core.studio.Studio`.

    Other capabilities build on these methods: the scheduler calls `due_mailings` and
    `launch_mailing`; edit and cancel change `scheduled` mailings only.
    """

    storage: Storage
    clock: Callable[[], datetime]
    db_path: str

    # -- creating -------------------------------------------------------------------------
    def create_mailing(
        self,
        *,
        sender: str,
        body: str,
        selection: str | None = None,
        database: str | None = None,
        document: str | None = None,
        at: datetime | None = None,
        split_max_parts: int | None = None,
        accept_rules: bool = False,
        kind: str = "bulk",
    ) -> int:
        """Store a mailing, `scheduled` at `at` (UTC; None: now), and return its id.

        Refuses, storing nothing, unless the sending rules are accepted, the sender is valid,
        the recipients (a selection, or a whole database) can be used for SMS and every
        field the text (or a personalised sender) uses exists.
        """
        if not accept_rules:
            raise InvalidInput(
                "Accept the sending rules first: the recipients opted in, the numbers were "
                "obtained lawfully, and every STOP is honoured."
            )
        if kind not in KINDS:
            raise InvalidInput(f"A mailing's kind is one of {', '.join(KINDS)}, not {kind!r}.")
        info, selection_id = self._mailing_target(selection, database)
        if kind == "bulk" and hasattr(self, "require_sms_usable"):
            self.require_sms_usable(selection, database=None if selection else info.name)
        self._validate_message(sender, body, info)
        split = self._mailing_split_limit(split_max_parts)
        document_id = None
        if document:
            row = self.storage.rows("SELECT id FROM documents WHERE name = ?", [document])
            if not row:
                raise NotFound(f"There is no document named {document!r}.")
            document_id = int(row[0][0])
        now = self.clock()
        return self._insert_mailing(
            kind=kind, document_id=document_id, selection_id=selection_id, database_id=info.id,
            sender=sender, body=body, scheduled_at=_as_utc(at, now), split=split,
        )

    def _insert_mailing(self, *, kind: str, document_id: int | None, selection_id: int | None,
                        database_id: int, sender: str, body: str, scheduled_at: datetime,
                        split: int) -> int:  # fmt: skip
        return int(self.storage.one(
            "INSERT INTO mailings (kind, document_id, selection_id, database_id, sender, body, "
            "state, scheduled_at, split_max_parts, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'scheduled', ?, ?, ?) RETURNING id",
            [kind, document_id, selection_id, database_id, sender, body, scheduled_at, split,
             self.clock()],
        ))  # fmt: skip

    def _mailing_target(self, selection: str | None, database: str | None
                        ) -> tuple[DatabaseInfo, int | None]:  # fmt: skip
        if selection:
            sel = self.get_selection(selection)  # type: ignore[attr-defined]
            if database and database != sel.database:
                raise InvalidInput(
                    f"Selection {selection!r} belongs to database {sel.database!r}, "
                    f"not {database!r}."
                )
            return self.get_database(sel.database), int(sel.id)  # type: ignore[attr-defined]
        if not database:
            raise InvalidInput("Name the selection or the contact database to send to.")
        return self.get_database(database), None  # type: ignore[attr-defined]

    def _validate_message(self, sender: str, body: str, info: DatabaseInfo) -> None:
        """The sender rule and the template's fields, before anything is stored."""
        if not (body or "").strip():
            raise InvalidInput("The message text is empty.")
        fields = info.user_columns
        try:
            prepare(body, fields)
        except TemplateError as exc:
            raise InvalidInput(f"The message text cannot be used: {exc}") from None
        if _is_template(sender):
            try:
                prepare(sender, fields)
            except TemplateError as exc:
                raise InvalidInput(f"The personalised sender cannot be used: {exc}") from None
            return
        check = validate_sender(sender)
        if not check.ok:
            raise InvalidInput(check.error or f"The sender {sender!r} cannot be used.")

    def _mailing_split_limit(self, split_max_parts: int | None) -> int:
        value = split_max_parts
        if value is None:
            value = self.get_setting("split_max_parts") or 4  # type: ignore[attr-defined]
        try:
            split = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"The most parts per message must be a number, not {value!r}.") \
                from None
        if not 1 <= split <= MAX_SPLIT:
            raise InvalidInput(f"The most parts per message must be between 1 and {MAX_SPLIT}.")
        return split

    # -- starting -------------------------------------------------------------------------
    def due_mailings(self, now: datetime | None = None) -> list[int]:
        """Ids of `scheduled` mailings whose time has come (scheduled_at <= now, UTC)."""
        moment = _as_utc(now, self.clock())
        return [int(r[0]) for r in self.storage.rows(
            "SELECT id FROM mailings WHERE state = 'scheduled' AND scheduled_at <= ? "
            "ORDER BY scheduled_at, id",
            [moment],
        )]  # fmt: skip

    def launch_due_mailings(self, now: datetime | None = None) -> list[int]:
        """Launch every due mailing (what the scheduler's tick does); returns those started.

        A mailing that cannot start is marked `failed` with the reason; the others go on.
        """
        started = []
        for mailing_id in self.due_mailings(now):
            try:
                self.launch_mailing(mailing_id)
                started.append(mailing_id)
            except StudioError:
                continue  # already marked failed by launch_mailing
        return started

    def launch_mailing(self, mailing_id: int) -> None:
        """Snapshot the recipients and start sending; does nothing if already started.

        Raises InvalidInput (and marks the mailing `failed` with the reason) when the
        snapshot cannot be made, for example because the template no longer matches the
        database's fields.
        """
        with _launch_lock(self.storage):
            mailing = self.get_mailing(mailing_id)
            if mailing["state"] != "scheduled":
                return
            try:
                table, reconciliation = self._mailing_snapshot(mailing)
            except (StudioError, TemplateError) as exc:
                message = str(exc)
                self.mark_mailing_failed(mailing_id, message)
                raise InvalidInput(f"Mailing {mailing_id} could not start: {message}") from None
            started = self.clock()
            late = max((started - mailing["scheduled_at"]).total_seconds(), 0.0) \
                if mailing["scheduled_at"] else 0.0
            queued = reconciliation["queued"]
            ledger.write_snapshot(
                self.storage, mailing_id, table, started_at=started, late_seconds=late,
                reconciliation=reconciliation, state="sending" if queued else "finished",
            )
        self._wake_dispatcher()

    def mark_mailing_failed(self, mailing_id: int, error: str) -> None:
        """A mailing that could not start: `failed`, with the reason (only from scheduled)."""
        self.storage.execute(
            "UPDATE mailings SET state = 'failed', error = ?, finished_at = ? "
            "WHERE id = ? AND state = 'scheduled'",
            [str(error), self.clock(), int(mailing_id)],
        )

    def _snapshot_recipients(self, mailing: dict[str, Any], info: DatabaseInfo
                             ) -> tuple[pd.DataFrame, dict[str, Any]]:  # fmt: skip
        """The reconciled recipients and the counts of who was left out at each step."""
        selection = mailing["selection"]
        database = None if selection else info.name
        result = self.audience(selection=selection, database=database)  # type: ignore[attr-defined]
        frame = self.audience_frame(selection=selection, database=database)  # type: ignore[attr-defined]
        steps = {name: int(n) for name, n in result.steps}
        return frame, steps

    def _mailing_snapshot(self, mailing: dict[str, Any]) -> tuple[pa.Table, dict[str, Any]]:
        """The messages of a mailing as an Arrow table, and its reconciliation."""
        if mailing["database_id"] is None:
            raise InvalidInput("The mailing names no contact database.")
        info = self.get_database_by_id(int(mailing["database_id"]))  # type: ignore[attr-defined]
        frame, steps = self._snapshot_recipients(mailing, info)
        table, counts = self._mailing_messages(mailing, info, frame)
        return table, {"steps": steps, "recipients": len(frame), **counts}

    def _mailing_messages(self, mailing: dict[str, Any], info: DatabaseInfo,
                          frame: pd.DataFrame) -> tuple[pa.Table, dict[str, int]]:
        """Render, count parts and lay out the `messages` rows (vectorised)."""
        mailing_id, split = int(mailing["id"]), int(mailing["split_max_parts"])
        fields = info.user_columns
        n = len(frame)
        frame = frame.reset_index(drop=True)
        texts = prepare(mailing["body"], fields).render_many(frame) if n else \
            pd.Series([], dtype="str")
        national = self.national_shift() if hasattr(self, "national_shift") else None
        stats = analyze_many(texts, national=national)
        parts = stats["segments"].to_numpy(dtype=np.int64)
        sender_text = mailing["sender"] or ""
        if _is_template(sender_text) and n:
            senders = prepare(sender_text, fields).render_many(frame).astype(str)
            verdicts = {s: validate_sender(s) for s in senders.unique()}
            bad_sender = senders.map(lambda s: verdicts[s].error or "").to_numpy(dtype=object)
        else:
            senders = pd.Series(np.full(n, sender_text, dtype=object), dtype="str")
            bad_sender = np.full(n, "", dtype=object)
        too_long = parts > split
        sender_bad = bad_sender != ""
        skipped = too_long | sender_bad
        reason = np.full(n, None, dtype=object)
        if too_long.any():
            reason[too_long] = (
                "needs " + pd.Series(parts[too_long]).astype(str)
                + f" parts, the limit is {split}"
            ).to_numpy(dtype=object)
        only_sender = sender_bad & ~too_long
        if only_sender.any():
            reason[only_sender] = ("invalid sender: " + pd.Series(bad_sender[only_sender])
                                   ).to_numpy(dtype=object)  # fmt: skip
        ids = ledger.allocate_message_ids(self.storage, n)
        if info.key_field and info.key_field in frame.columns:
            keys = frame[info.key_field]
        else:
            keys = frame["_row_id"] if "_row_id" in frame.columns else pd.Series([None] * n)
        shift = stats["national"].to_numpy(dtype=object) if "national" in stats else \
            np.full(n, None, dtype=object)
        table = pa.table({
            "id": pa.array(ids, pa.int64()),
            "mailing_id": pa.array(np.full(n, mailing_id, dtype=np.int64)),
            "contact_key": _text(keys),
            "e164": _text(frame["_e164"] if n else pd.Series([], dtype="str")),
            "country": _text(frame["_country"] if n else pd.Series([], dtype="str")),
            "sender": _text(senders),
            "body": _text(texts),
            "encoding": _text(stats["encoding"].astype("str")),
            "parts": pa.array(parts.astype(np.int32), pa.int32()),
            "concat_ref": pa.array((ids % 256).astype(np.int32), pa.int32()),
            "initial_status": pa.array(np.where(skipped, "skipped", "queued"), pa.string()),
            "skip_reason": pa.array(reason, pa.string()),
            "shift_table": pa.array(shift, pa.string()),
        })  # fmt: skip
        counts = {
            "queued": int((~skipped).sum()),
            "skipped_too_many_parts": int(too_long.sum()),
            "skipped_invalid_sender": int(only_sender.sum()),
            "segments": int(parts[~skipped].sum()),
        }
        return table, counts

    # -- test sends -------------------------------------------------------------------------
    def test_send(self, *, sender: str, body: str, database: str,
                  contact: dict[str, Any] | None = None) -> int:  # fmt: skip
        """Send one message to the database's default destination, through the dispatcher
        like any mailing (kind `test`, started at once); returns the mailing id.

        The text is rendered for `contact` when given (e.g. the contact being previewed),
        else for the default destination itself.
        """
        info = self.get_database(database)  # type: ignore[attr-defined]
        destination = self.default_destination(database)  # type: ignore[attr-defined]
        if not destination or not destination.get("_e164"):
            raise InvalidInput(
                f"Database {database!r} has no default destination yet; "
                "choose one on the Contacts or Selections page."
            )
        self._validate_message(sender, body, info)
        fields = dict(destination)
        if contact:
            fields.update({k: v for k, v in contact.items() if k in info.user_columns})
        record = {c: fields.get(c) for c in info.user_columns}
        record.update({"_row_id": destination.get("_row_id"), "_e164": destination["_e164"],
                       "_country": destination.get("_country")})  # fmt: skip
        frame = pd.DataFrame([record])
        split = self._mailing_split_limit(None)
        now = self.clock()
        with _launch_lock(self.storage):
            mailing_id = self._insert_mailing(
                kind="test", document_id=None, selection_id=None, database_id=info.id,
                sender=sender, body=body, scheduled_at=now, split=split,
            )
            mailing = self.get_mailing(mailing_id)
            try:
                table, counts = self._mailing_messages(mailing, info, frame)
            except (StudioError, TemplateError) as exc:
                self.mark_mailing_failed(mailing_id, str(exc))
                raise InvalidInput(f"The test message cannot be sent: {exc}") from None
            reconciliation = {"steps": {"test_destination": 1}, "recipients": 1, **counts}
            ledger.write_snapshot(
                self.storage, mailing_id, table, started_at=now, late_seconds=0.0,
                reconciliation=reconciliation,
                state="sending" if counts["queued"] else "finished",
            )
        self._wake_dispatcher()
        return mailing_id

    # -- reading ------------------------------------------------------------------------------
    def get_mailing(self, mailing_id: int) -> dict[str, Any]:
        """Every stored field of a mailing, with names for its database, selection and
        document and the reconciliation as a dict."""
        frame = self.storage.df(
            "SELECT g.*, d.name AS database, s.name AS selection, doc.name AS document "
            "FROM mailings g LEFT JOIN databases d ON d.id = g.database_id "
            "LEFT JOIN selections s ON s.id = g.selection_id "
            "LEFT JOIN documents doc ON doc.id = g.document_id WHERE g.id = ?",
            [int(mailing_id)],
        )
        if frame.empty:
            raise NotFound(f"There is no mailing {mailing_id}.")
        row = {k: plain(v) for k, v in frame.iloc[0].to_dict().items()}
        for key in ("reconciliation", "estimate"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return row

    def list_mailings(self) -> pd.DataFrame:
        """One row per mailing, newest first, with its counts.

        `submitted` counts messages the provider accepted (whatever their report says),
        `failed` those failed, undelivered or expired, `segments` the parts to send.
        """
        mailings = self.storage.df(
            "SELECT g.id, g.kind, g.state, g.sender, d.name AS database, s.name AS selection, "
            "doc.name AS document, g.scheduled_at, g.started_at, g.finished_at, "
            "g.late_seconds, g.split_max_parts, g.created_at, g.error "
            "FROM mailings g LEFT JOIN databases d ON d.id = g.database_id "
            "LEFT JOIN selections s ON s.id = g.selection_id "
            "LEFT JOIN documents doc ON doc.id = g.document_id ORDER BY g.id DESC"
        )
        counts = ledger.mailing_counts(self.storage).rename(columns={"mailing_id": "id"})
        frame = mailings.merge(counts, on="id", how="left")
        for col in ("recipients", "queued", "submitted", "delivered", "failed", "unknown",
                    "skipped", "segments"):
            frame[col] = frame[col].fillna(0).astype("int64")
        return frame

    def mailing_progress(self, mailing_id: int) -> dict[str, Any]:
        """Counts per status, parts delivered, segments, the recent send rate and an ETA.

        Statuses partition `total`: queued (not yet accepted, including retries),
        submitted (accepted, no final report yet), delivered, failed, undelivered,
        expired, unknown, skipped. `rate_segments_per_s` is measured over the last 10 s, or
        over the time since the start when the mailing started less than 10 s ago (dividing
        a young mailing's parts by the whole window would understate its pace several times
        over). `eta_seconds` is the segments still to submit / that rate: 0 when nothing is
        queued, None while the rate is 0 (no pace to extrapolate from).
        """
        mailing = self.get_mailing(mailing_id)
        counts = ledger.status_counts(self.storage, mailing_id)
        now = self.clock()
        window = _rate_window(mailing.get("started_at"), now)
        recent = ledger.submitted_parts_since(self.storage, mailing_id, now - window) \
            if window else 0
        rate = recent / window.total_seconds() if window else 0.0
        left = counts.pop("segments_left")
        eta = 0.0 if not counts["queued"] else (left / rate if rate > 0 else None)
        return {
            "mailing_id": int(mailing_id), "state": mailing["state"], **counts,
            "rate_segments_per_s": round(rate, 2),
            "eta_seconds": None if eta is None else round(eta, 1),
        }  # fmt: skip

    def mailing_results(self, mailing_id: int) -> pd.DataFrame:
        """The per-recipient ledger: e164, contact_key, parts, encoding, status,
        parts_delivered, reason, submitted_at, done_at (snapshot order)."""
        self.get_mailing(mailing_id)  # NotFound for an unknown id
        return ledger.results_frame(self.storage, mailing_id)

    def dispatcher_status(self) -> dict[str, Any] | None:
        """The dispatcher's state in this process: counters, pace, `last_error`; when it
        could not start, {"running": False, "last_error": why}; None when none was started."""
        from core.dispatcher import running_dispatcher
        from core.worker import background_errors

        key = _db_key(self.storage)
        running = running_dispatcher(key)
        if running is not None:
            return running.status()
        if key in background_errors:
            return {"running": False, "last_error": background_errors[key]}
        return None

    def _wake_dispatcher(self) -> None:
        from core.dispatcher import running_dispatcher

        running = running_dispatcher(_db_key(self.storage))
        if running is not None:
            running.wake()


def _rate_window(started_at: datetime | None, now: datetime) -> timedelta | None:
    """The span the send rate is measured over: the last RATE_WINDOW, or the time since the
    start when that is shorter, but at least RATE_MIN_WINDOW (a few parts sent within the
    first milliseconds are no pace). None before the mailing has started."""
    if started_at is None:
        return None
    elapsed = now - started_at
    return max(min(elapsed, RATE_WINDOW), RATE_MIN_WINDOW)


def _db_key(storage: Storage) -> str:
    """The key under which a database's dispatcher is registered (its resolved path)."""
    from pathlib import Path

    return storage.path if storage.path == ":memory:" else str(Path(storage.path).resolve())


__all__ = ["KINDS", "MAX_SPLIT", "STATES", "MailingsMixin"]
