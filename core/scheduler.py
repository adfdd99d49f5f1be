"""Scheduled mailings: the ticker that starts them, and the rules for editing and cancelling.

A scheduled mailing lives in the database, not in memory, so it survives a restart: every tick
(the `schedule` package, once a second) reads the mailings that are due and starts them. One
that became due while nothing was running starts at the first tick after the app or the worker
starts, and records how late it was (`mailings.late_seconds`). Until it starts, a mailing can
be edited or cancelled; once it is sending it cannot be cancelled (recipients may already
have their message), and nothing about it can be changed.

Launch, edit and cancel cannot race: all three hold the database's launch lock (one per file
in this process, and only one process can open the file), and each writes with
`WHERE state = 'scheduled'`, so a mailing is either cancelled or started, never both.

One ticker per database per process, however many `Studio` objects or Streamlit reruns
there are: `start_scheduler` keeps a process-wide registry keyed by the database path.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import schedule

from core.errors import InvalidInput, NotFound, StudioError
from core.storage import Storage

log = logging.getLogger(__name__)

EDITABLE_STATES = ("scheduled",)
CANNOT_CANCEL_SENDING = (
    "Mailing {id} is already sending and can no longer be cancelled: recipients may already "
    "have their message."
)


def _db_key(storage: Storage) -> str:
    return storage.path if storage.path == ":memory:" else str(Path(storage.path).resolve())


def _launch_lock(storage: Storage) -> threading.Lock:
    """The lock `launch_mailing` holds while it snapshots (shared with edit and cancel)."""
    from core.mailings import _launch_lock as lock_for

    return lock_for(storage)


class Scheduler:
    """Starts due mailings; `tick()` is the whole job, so tests call it with their own clock."""

    MAX_ATTEMPTS = 5

    def __init__(self, studio: Any, *, clock: Callable[[], datetime] | None = None,
                 interval_seconds: int = 1) -> None:  # fmt: skip
        self.studio = studio
        self.clock = clock or studio.clock
        self.interval_seconds = interval_seconds
        self._jobs = schedule.Scheduler()
        self._jobs.every(interval_seconds).seconds.do(self.tick)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: list[int] = []
        self.errors: list[str] = []
        self.last_tick: datetime | None = None
        self._attempts: dict[int, int] = {}

    def tick(self) -> list[int]:
        """Start every mailing that is due now; returns their ids.

        A mailing that cannot start (its text no longer fits the database, say) is marked
        `failed` with the reason. An unexpected error (the database busy, a conflict) is
        retried at the next ticks and marks the mailing failed only after `MAX_ATTEMPTS`.
        """
        started = []
        self.last_tick = self.clock()
        for mailing_id in self.studio.due_mailings(self.last_tick):
            try:
                self.studio.launch_mailing(mailing_id)
                started.append(mailing_id)
                self._attempts.pop(mailing_id, None)
            except StudioError as exc:
                self._failed(mailing_id, exc)
            except Exception as exc:  # one bad mailing must not stop the others
                attempts = self._attempts.get(mailing_id, 0) + 1
                self._attempts[mailing_id] = attempts
                log.warning("mailing %s did not start (attempt %s): %s", mailing_id,
                            attempts, exc)  # fmt: skip
                if attempts >= self.MAX_ATTEMPTS:
                    self._failed(mailing_id, exc)
        self.started.extend(started)
        return started

    def _failed(self, mailing_id: int, exc: Exception) -> None:
        message = f"mailing {mailing_id} could not start: {exc}"
        log.error(message)
        self.errors = [*self.errors[-19:], message]
        self._attempts.pop(mailing_id, None)
        with contextlib.suppress(Exception):
            self.studio.mark_mailing_failed(mailing_id, str(exc))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Tick at once (overdue mailings start now, not a second later), then every second."""
        if self.running:
            return
        self._stop.clear()
        try:
            self.tick()
        except StudioError as exc:
            self.errors.append(str(exc))
        self._thread = threading.Thread(target=self._run, name="sms-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._jobs.run_pending()
            except Exception as exc:  # keep ticking; the error is logged and shown
                log.exception("scheduler tick failed")
                self.errors = [*self.errors[-19:], str(exc)]

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def status(self) -> dict[str, Any]:
        return {"running": self.running, "last_tick": self.last_tick,
                "started": list(self.started), "errors": list(self.errors)}  # fmt: skip


_schedulers: dict[str, Scheduler] = {}
_schedulers_lock = threading.Lock()


def running_scheduler(key: str) -> Scheduler | None:
    """The ticker running in this process for a database (its resolved path), if any."""
    with _schedulers_lock:
        found = _schedulers.get(key)
        return found if found is not None and found.running else None


class SchedulingMixin:
    """Edit and cancel scheduled mailings; start the scheduler thread. Mixed into Studio."""

    storage: Storage
    clock: Callable[[], datetime]

    def start_scheduler(self) -> Scheduler:
        """Start the ticker for this database, once per process (a rerun of the app, or a
        second Studio on the same file, gets the running one); `close()` stops it."""
        key = _db_key(self.storage)
        with _schedulers_lock:
            current = _schedulers.get(key)
            if current is not None and current.running:
                return current
            scheduler = Scheduler(self)
            _schedulers[key] = scheduler

        def stop() -> None:
            scheduler.stop()
            with _schedulers_lock:
                if _schedulers.get(key) is scheduler:
                    del _schedulers[key]

        self._background.append(stop)  # type: ignore[attr-defined]
        scheduler.start()
        return scheduler

    def scheduler_status(self) -> dict[str, Any] | None:
        """The running ticker's state in this process (None when none runs)."""
        running = running_scheduler(_db_key(self.storage))
        return None if running is None else running.status()

    def _mailing_state(self, mailing_id: int) -> str:
        state = self.storage.one("SELECT state FROM mailings WHERE id = ?", [int(mailing_id)])
        if state is None:
            raise NotFound(f"There is no mailing {mailing_id}.")
        return str(state)

    def can_cancel(self, mailing_id: int) -> tuple[bool, str]:
        """Whether a mailing can still be cancelled and, if not, why (for the page)."""
        state = self._mailing_state(mailing_id)
        if state in EDITABLE_STATES:
            return True, ""
        if state == "sending":
            return False, CANNOT_CANCEL_SENDING.format(id=mailing_id)
        return False, f"Mailing {mailing_id} is {state}; only a scheduled mailing can be cancelled."

    def cancel_mailing(self, mailing_id: int) -> None:
        """Cancel a scheduled mailing; a sending or finished one cannot be cancelled."""
        with _launch_lock(self.storage):
            rows = self.storage.rows(
                "UPDATE mailings SET state = 'cancelled', finished_at = ? "
                "WHERE id = ? AND state = 'scheduled' RETURNING id",
                [self.clock(), int(mailing_id)],
            )
        if rows:
            return
        _, why = self.can_cancel(mailing_id)
        raise InvalidInput(why or f"Mailing {mailing_id} cannot be cancelled.")

    def edit_mailing(self, mailing_id: int, *, at: datetime | None = None,
                     document: str | None = None, selection: str | None = None,
                     database: str | None = None, split_max_parts: int | None = None,
                     sender: str | None = None, body: str | None = None) -> None:
        """Change a scheduled mailing's time, document (or text), recipients or parts limit.

        Only what is given changes. A `selection` replaces the recipients; `database` alone
        makes them the whole database. The message is checked against the (new) database's
        fields as when it was created, and the stored estimate is recomputed. Refused as a
        whole, changing nothing, when anything is wrong or the mailing has started.
        """
        with _launch_lock(self.storage):
            mailing = self.get_mailing(mailing_id)  # type: ignore[attr-defined]
            if mailing["state"] not in EDITABLE_STATES:
                raise InvalidInput(f"Mailing {mailing_id} is {mailing['state']}; only a "
                                   "scheduled mailing can be edited.")  # fmt: skip
            sets = self._edit_changes(mailing, at=at, document=document, selection=selection,
                                      database=database, split_max_parts=split_max_parts,
                                      sender=sender, body=body)  # fmt: skip
            if not sets:
                return
            if set(sets) - {"scheduled_at"}:
                sets["estimate"] = None  # recomputed below for the new content
            assignments = ", ".join(f"{col} = ?" for col in sets)
            rows = self.storage.rows(
                f"UPDATE mailings SET {assignments} WHERE id = ? AND state = 'scheduled' "
                "RETURNING id",
                [*sets.values(), int(mailing_id)],
            )
        if not rows:  # cannot happen while we hold the lock, but never write blindly
            raise InvalidInput(f"Mailing {mailing_id} started meanwhile and can no longer be "
                               "edited.")  # fmt: skip
        if "estimate" in sets:
            self._refresh_estimate(mailing_id)

    def _edit_changes(self, mailing: dict[str, Any], *, at: datetime | None,
                      document: str | None, selection: str | None, database: str | None,
                      split_max_parts: int | None, sender: str | None, body: str | None
                      ) -> dict[str, Any]:  # fmt: skip
        """The columns to update, every change validated first."""
        sets: dict[str, Any] = {}
        if at is not None:
            sets["scheduled_at"] = self.check_send_time(at)  # type: ignore[attr-defined]
        if split_max_parts is not None:
            sets["split_max_parts"] = self._mailing_split_limit(  # type: ignore[attr-defined]
                split_max_parts)
        new_sender, new_body = mailing["sender"], mailing["body"]
        if document is not None:
            doc = self.get_document(document)  # type: ignore[attr-defined]
            sets["document_id"] = doc.id
            new_sender, new_body = doc.sender, doc.body
        if sender is not None:
            new_sender = sender
        if body is not None:
            new_body = body
        if new_sender != mailing["sender"]:
            sets["sender"] = new_sender
        if new_body != mailing["body"]:
            sets["body"] = new_body
        info = self.get_database_by_id(int(mailing["database_id"]))  # type: ignore[attr-defined]
        if selection is not None:
            self.require_sms_usable(selection)  # type: ignore[attr-defined]
            sel = self.get_selection(selection)  # type: ignore[attr-defined]
            info = self.get_database(sel.database)  # type: ignore[attr-defined]
            if sel.id != mailing["selection_id"]:
                sets.update(selection_id=sel.id, database_id=info.id)
        elif database is not None:
            self.require_sms_usable(database=database)  # type: ignore[attr-defined]
            info = self.get_database(database)  # type: ignore[attr-defined]
            if mailing["selection_id"] is not None or info.id != mailing["database_id"]:
                sets.update(selection_id=None, database_id=info.id)
        if {"sender", "body", "database_id"} & set(sets):
            # the same checks as creating a mailing: the sender rule, every field exists
            self._validate_message(new_sender or "", new_body or "", info)  # type: ignore[attr-defined]
        return sets

    def _refresh_estimate(self, mailing_id: int) -> None:
        """Re-plan an edited mailing so Statistics compares against what will be sent."""
        mailing = self.get_mailing(mailing_id)  # type: ignore[attr-defined]
        try:
            plan = self.plan_mailing(  # type: ignore[attr-defined]
                sender=mailing["sender"], body=mailing["body"], selection=mailing["selection"],
                database=None if mailing["selection"] else mailing["database"],
                split_max_parts=mailing["split_max_parts"],
            )
        except StudioError as exc:  # the estimate is advice; Statistics computes one instead
            log.warning("no estimate for edited mailing %s: %s", mailing_id, exc)
            return
        plan.document = mailing["document"]
        if self._mailing_state(mailing_id) in EDITABLE_STATES:
            self.save_estimate(mailing_id, plan)  # type: ignore[attr-defined]
