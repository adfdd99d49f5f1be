"""`Studio`: the service layer through which pages, the CLI and tests do everything.

One `Studio` per database file per process (`get_studio` keeps a registry keyed by the
resolved path), because DuckDB allows one process per file and because the dispatcher and
scheduler that a Studio may run in the background must exist once per database, however
often Streamlit reruns a script or rebuilds a cached resource.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.contacts import ContactsMixin
from core.settings import SettingsMixin
from core.storage import DEFAULT_DB, Storage, open_storage, release_storage
from core.suppression import SuppressionMixin


def _optional_mixin(module: str, name: str) -> type:
    """A service mixin from its own module (each capability keeps its methods in one file)."""
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return type(name, (), {})


SelectionsMixin = _optional_mixin("core.selection_service", "SelectionsMixin")
AudienceMixin = _optional_mixin("core.audience", "AudienceMixin")
DocumentsMixin = _optional_mixin("core.documents", "DocumentsMixin")
MailingsMixin = _optional_mixin("core.mailings", "MailingsMixin")
StatsMixin = _optional_mixin("core.stats", "StatsMixin")
SchedulingMixin = _optional_mixin("core.scheduler", "SchedulingMixin")
PlanMixin = _optional_mixin("core.mailing_plan", "PlanMixin")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


class Studio(
    ContactsMixin, SuppressionMixin, SelectionsMixin, AudienceMixin, DocumentsMixin,
    MailingsMixin, SchedulingMixin, PlanMixin, StatsMixin, SettingsMixin,
):
    """Everything a user can do, on one database file."""

    def __init__(self, db_path: str | Path = DEFAULT_DB, *, clock: Clock = utc_now) -> None:
        self.db_path = str(db_path)
        self.storage: Storage = open_storage(db_path)
        from core.ledger import event_journal  # here: core.ledger needs this module

        event_journal(self.storage)  # stores what a crash left in the ledger's journal only
        self.clock = clock
        self._import_lock = threading.Lock()
        self._background: list[Callable[[], None]] = []  # stop functions of background work
        self._closed = False

    def start_background(self, gateway_url: str | None = None) -> None:
        """Run the dispatcher and the scheduler as threads of this process (once per database;
        `close()` stops them after the batches in flight are recorded)."""
        from core.worker import start_background

        start_background(self, gateway_url)

    def close(self) -> None:
        """Stop background threads and release the database."""
        if self._closed:
            return
        self._closed = True
        for stop in reversed(self._background):
            with contextlib.suppress(Exception):
                stop()
        self._background.clear()
        release_storage(self.storage)

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_studios: dict[str, Studio] = {}
_studios_lock = threading.Lock()


def get_studio(db_path: str | Path = DEFAULT_DB) -> Studio:
    """The process's one Studio for this database file."""
    key = str(Path(db_path).resolve())
    with _studios_lock:
        studio = _studios.get(key)
        if studio is None or studio._closed:
            studio = Studio(db_path)
            _studios[key] = studio
        return studio


@atexit.register
def _close_all() -> None:
    with _studios_lock:
        for studio in list(_studios.values()):
            with contextlib.suppress(Exception):
                studio.close()
        _studios.clear()
