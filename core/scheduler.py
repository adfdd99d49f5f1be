"""Scheduled mailings: the ticker that starts them, and the rules for editing and cancelling.

A scheduled mailing lives in the database, not in memory, so it survives a restart: every tick
(the `schedule` package, once a second) reads the mailings that are due and starts them. One
that became due while nothing was running starts at the first tick after the app or the worker
starts, and records how late it was. Until it starts, a mailing can be edited or cancelled;
once it is sending it cannot be cancelled (the recipients may already have messages).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import schedule

from core.errors import InvalidInput, NotFound
from core.storage import Storage

log = logging.getLogger(__name__)

EDITABLE_STATES = ("scheduled",)


class Scheduler:
    """Starts due mailings; `tick()` is the whole job, so tests call it with their own clock."""

    def __init__(self, studio: Any, *, clock: Callable[[], datetime] | None = None,
                 interval_seconds: int = 1) -> None:
        self.studio = studio
        self.clock = clock or studio.clock
        self._jobs = schedule.Scheduler()
        self._jobs.every(interval_seconds).seconds.do(self.tick)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: list[int] = []
        self.errors: list[str] = []

    def tick(self) -> list[int]:
        """Start every mailing that is due now; returns their ids."""
        started = []
        for mailing_id in self.studio.due_mailings(self.clock()):
            try:
                self.studio.launch_mailing(mailing_id)
                started.append(mailing_id)
            except Exception as exc:  # one bad mailing must not stop the others
                message = f"mailing {mailing_id} could not start: {exc}"
                log.error(message)
                self.errors.append(message)
                with contextlib.suppress(Exception):
                    self.studio.mark_mailing_failed(mailing_id, str(exc))
        self.started.extend(started)
        return started

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self.tick()  # overdue mailings start at once, not a second later
        self._thread = threading.Thread(target=self._run, name="sms-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._jobs.run_pending()
            except Exception as exc:  # keep ticking; the error is logged and shown
                log.exception("scheduler tick failed")
                self.errors.append(str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)


class SchedulingMixin:
    """Edit and cancel scheduled mailings; start the scheduler thread. Mixed into Studio."""

    storage: Storage
    _scheduler: Scheduler | None = None

    def start_scheduler(self) -> Scheduler:
        """Start the ticker once per Studio (a rerun of the app does not start a second)."""
        if self._scheduler is None:
            self._scheduler = Scheduler(self)
            self._scheduler.start()
            self._background.append(self._scheduler.stop)  # type: ignore[attr-defined]
        return self._scheduler

    def _mailing_state(self, mailing_id: int) -> str:
        state = self.storage.one("SELECT state FROM mailings WHERE id = ?", [int(mailing_id)])
        if state is None:
            raise NotFound(f"There is no mailing {mailing_id}.")
        return str(state)

    def cancel_mailing(self, mailing_id: int) -> None:
        """Cancel a scheduled mailing; a sending or finished one cannot be cancelled."""
        rows = self.storage.rows(
            "UPDATE mailings SET state = 'cancelled', finished_at = now() "
            "WHERE id = ? AND state = 'scheduled' RETURNING id",
            [int(mailing_id)],
        )
        if rows:
            return
        state = self._mailing_state(mailing_id)
        if state == "sending":
            raise InvalidInput(
                f"Mailing {mailing_id} is already sending and can no longer be cancelled: "
                "recipients may already have their message."
            )
        raise InvalidInput(f"Mailing {mailing_id} is {state}; only a scheduled mailing can be "
                           "cancelled.")

    def edit_mailing(self, mailing_id: int, *, at: datetime | None = None,
                     document: str | None = None, selection: str | None = None,
                     database: str | None = None, split_max_parts: int | None = None,
                     sender: str | None = None, body: str | None = None) -> None:
        """Change a scheduled mailing's time, document, selection or split policy."""
        state = self._mailing_state(mailing_id)
        if state not in EDITABLE_STATES:
            raise InvalidInput(f"Mailing {mailing_id} is {state}; only a scheduled mailing can "
                               "be edited.")
        sets: dict[str, Any] = {}
        if at is not None:
            sets["scheduled_at"] = at
        if split_max_parts is not None:
            if not 1 <= int(split_max_parts) <= 10:
                raise InvalidInput("The most parts per message must be between 1 and 10.")
            sets["split_max_parts"] = int(split_max_parts)
        if document is not None:
            doc = self.get_document(document)  # type: ignore[attr-defined]
            sets.update(document_id=doc.id, sender=doc.sender, body=doc.body)
        if sender is not None:
            sets["sender"] = sender
        if body is not None:
            sets["body"] = body
        if selection is not None:
            self.require_sms_usable(selection)  # type: ignore[attr-defined]
            sel = self.get_selection(selection)  # type: ignore[attr-defined]
            sets.update(selection_id=sel.id, database_id=sel.database_id)
        elif database is not None:
            self.require_sms_usable(database=database)  # type: ignore[attr-defined]
            info = self.get_database(database)  # type: ignore[attr-defined]
            sets.update(selection_id=None, database_id=info.id)
        if "sender" in sets or "body" in sets:
            self._check_message(sets.get("sender"), sets.get("body"), mailing_id)
        if not sets:
            return
        assignments = ", ".join(f"{col} = ?" for col in sets)
        rows = self.storage.rows(
            f"UPDATE mailings SET {assignments} WHERE id = ? AND state = 'scheduled' RETURNING id",
            [*sets.values(), int(mailing_id)],
        )
        if not rows:  # it started between our read and our write
            raise InvalidInput(f"Mailing {mailing_id} started meanwhile and can no longer be "
                               "edited.")

    def _check_message(self, sender: str | None, body: str | None, mailing_id: int) -> None:
        """Validate a new sender/body the way creating a mailing does."""
        from core.senders import validate_sender

        if sender is not None:
            check = validate_sender(sender)
            if not check.ok:
                raise InvalidInput(check.error or "invalid sender")
        if body is not None and not body.strip():
            raise InvalidInput(f"Mailing {mailing_id}: the message body is empty.")
