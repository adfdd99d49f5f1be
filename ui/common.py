"""What every page needs: the one Studio of this process, pickers, and friendly errors.

The Studio is a `st.cache_resource`, so every session and rerun of the app shares one
database connection and one dispatcher (DuckDB allows one process per file).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import Any

import streamlit as st

from core.errors import StudioError
from core.studio import Studio, get_studio


def db_path() -> str:
    return os.environ.get("SMS_STUDIO_DB", "data/studio.duckdb")


_background_errors: dict[str, str] = {}


@st.cache_resource(show_spinner="Opening the database…")
def _studio(path: str) -> Studio:
    """Open the database and start its dispatcher and scheduler, once per process.

    Both starts are idempotent per database (process-wide registries in `core`), so a
    rebuilt cache never runs a second dispatcher or ticker. A dispatcher that cannot start
    (a bad gateway URL in Settings, another process holding the lease) does not keep the
    pages from opening: the scheduler still starts mailings, and `background_error()` says
    why nothing is sent.
    """
    studio = get_studio(path)
    if os.environ.get("SMS_STUDIO_BACKGROUND", "1") == "1":
        try:
            studio.start_background()
        except StudioError as exc:
            _background_errors[path] = str(exc)
        if hasattr(studio, "start_scheduler"):
            studio.start_scheduler()
    return studio


def background_enabled() -> bool:
    """Whether this app process runs the dispatcher and scheduler (SMS_STUDIO_BACKGROUND)."""
    return os.environ.get("SMS_STUDIO_BACKGROUND", "1") == "1"


def background_error() -> str | None:
    """Why the dispatcher of this process did not start, if it did not."""
    return _background_errors.get(db_path())


def user_time_zone() -> str:
    """The browser's time zone (st.context.timezone), else the `time_zone` setting."""
    from core.timeutil import local_zone

    zone = None
    with contextlib.suppress(Exception):
        zone = st.context.timezone
    if zone:
        try:
            local_zone(zone)
            return str(zone)
        except StudioError:
            pass
    return str(studio().get_setting("time_zone") or "UTC")


def studio() -> Studio:
    """The process's Studio (opened once, shared by all sessions)."""
    try:
        return _studio(db_path())
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
        raise  # unreachable; st.stop() raises


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Show a StudioError as a red message instead of a stack trace."""
    try:
        yield
    except StudioError as exc:
        st.error(str(exc))
    except ValueError as exc:  # validation errors of pure modules (templates, selections)
        st.error(str(exc))


def pick_database(label: str = "Contact database", key: str = "database") -> str | None:
    """A select box of databases, remembered across pages; None when there are none."""
    names = studio().database_names()
    if not names:
        st.info("There is no contact database yet: upload contacts on the **Contacts** page first.")
        return None
    current = st.session_state.get("current_database")
    index = names.index(current) if current in names else 0
    choice = st.selectbox(label, names, index=index, key=key)
    st.session_state["current_database"] = choice
    return choice


def fmt_int(value: int | float | None) -> str:
    """Numbers formatted for people: 1,234,567."""
    if value is None:
        return "–"
    return f"{int(value):,}"


def fmt_pct(part: float, whole: float) -> str:
    if not whole:
        return "–"
    return f"{100.0 * part / whole:.1f}%"


def table_columns(types: dict[str, str] | None = None, counts: Iterable[str] = ()
                  ) -> dict[str, Any]:
    """`column_config` for st.dataframe so a table reads like the rest of the page: DATE
    columns as 2024-05-01 (pandas would show 2024-05-01 00:00:00), TIMESTAMP columns to the
    second, and the named count columns with thousands separators like `fmt_int`.

    `types` maps column → DuckDB type (`Studio.get_database(...).columns`); columns a table
    does not have are ignored by Streamlit.
    """
    config: dict[str, Any] = {}
    for name, kind in (types or {}).items():
        kind = kind.upper()
        if kind == "DATE":
            config[name] = st.column_config.DateColumn(format="YYYY-MM-DD")
        elif kind.startswith("TIMESTAMP"):
            config[name] = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")
    for name in counts:
        config[name] = st.column_config.NumberColumn(format="localized")
    return config
