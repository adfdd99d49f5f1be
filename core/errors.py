"""Errors a user can act on.

Every error raised to a page or the CLI is a `StudioError` whose message says what is wrong
and what to change, in one sentence, so the UI and the CLI can show it as it is.
"""

from __future__ import annotations


class StudioError(Exception):
    """A problem the user can fix; the message is shown as it is."""


class DatabaseInUse(StudioError):
    """Another process holds the DuckDB file (DuckDB allows one writing process per file)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"The database {path} is in use by another process ({holder}); "
            "stop that process or use another --db."
        )


class NotFound(StudioError):
    """A named thing (database, selection, document, mailing) does not exist."""


class InvalidInput(StudioError):
    """Input the user gave cannot be used; nothing was changed."""
