"""Statistics: what happened to a mailing, and to all of them, computed in DuckDB.

Every figure is an aggregate computed by a small SQL statement below (the `q_*` functions),
so only a few hundred numbers ever leave the database, whatever the size of the ledger: the
page plots aggregates, never a point per message. Status semantics are the ledger's own:
everything starts from the `message_status` view (one row per message, rolled up from its
events by `core.ledger` into `message_state`), so the Statistics page, the Mailings page and
the results export never disagree about a message.

Counts per status, country, reason and parts are kept per mailing in `stats_rollup`
(migration 3): a few hundred rows per mailing, recomputed for a mailing only when its number
of events or its state changed since they were made. The overview of fifty mailings then
sums thousands of rows instead of joining millions of messages with their state, and a
finished mailing's funnel costs a lookup. Timelines, latencies and operators read the
mailing's messages directly (one filtered scan each).

Definitions used throughout (also shown on the page):

* **recipients**: the messages of the mailing's snapshot (one per E.164 number), skipped
  ones included; the reconciliation stored at launch says who was left out before that.
* **submitted**: every part of the message was accepted by the provider.
* **failures**: status `failed` (refused, or reported failed), `undelivered` or `expired`.
  `unknown` (no answer, or an unknown report) is counted apart: it may have arrived.
* **delivery rate**: delivered / submitted. **Opt-out rate**: STOP replies / delivered
  (only a recipient who got the message can answer it).
* **latency**: per message, from the acceptance of its last part to its last delivery
  report, over submitted messages with a report. Percentiles interpolate linearly, like
  numpy's default.
* **actual cost**: accepted segments (what a provider bills) × the price table in use.
"""

from __future__ import annotations

import io
import json
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import pandas as pd
import phonenumbers
import pyarrow as pa

from core import pricing
from core.errors import InvalidInput, NotFound
from core.exports import to_safe_csv
from core.storage import Storage, quote_ident
from core.values import plain

__all__ = [
    "FAILURE_STATUSES",
    "LATENCY_EDGES",
    "OUTCOME_ORDER",
    "StatsMixin",
    "choose_step",
    "operator_name",
]

FAILURE_STATUSES = ("failed", "undelivered", "expired")
OUTCOME_ORDER = (
    "delivered", "undelivered", "failed", "expired", "unknown", "submitted", "queued", "skipped",
)  # fmt: skip
#: Upper bounds (seconds) of the latency histogram's bins; the last bin is open.
LATENCY_EDGES = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                 7200.0, 21600.0, 86400.0)  # fmt: skip
#: Timeline bucket sizes (seconds) to choose from: the smallest giving at most MAX_BUCKETS.
BUCKET_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                43200, 86400, 604800)  # fmt: skip
MAX_BUCKETS = 150
PERIODS = ("hour", "day", "week", "month")
LIVE_STATES = ("scheduled", "sending")
REPORT_WAIT_HOURS = 48  # after finishing, reports may still arrive for this long
UNKNOWN_COUNTRY = "unknown"
UNKNOWN_OPERATOR = "(unknown)"

FailureDimension = Literal["reason", "country", "operator"]
ExportFormat = Literal["csv", "parquet"]

_FAILED_IN = "('failed', 'undelivered', 'expired')"
_REPORTED_IN = "('delivered', 'undelivered', 'expired', 'failed')"
_COUNTRY = f"coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}')"
_CARRIER_LENGTHS = range(9, 2, -1)  # prefix lengths in phonenumbers' carrier data, longest first

_refresh_locks: dict[str, threading.Lock] = {}
_refresh_guard = threading.Lock()


def _refresh_lock(storage: Storage) -> threading.Lock:
    """One lock per database file: two sessions never rebuild the same rollup at once."""
    with _refresh_guard:
        return _refresh_locks.setdefault(storage.path, threading.Lock())


class _ScanMemo:
    """The last results of the per-mailing scans (timeline, latency, operators), keyed by
    the mailing's version (its number of events and its state).

    Every widget change on the Statistics page reruns it; a finished mailing's version does
    not change, so its scans of hundreds of thousands of messages run once, not per click.
    A mailing that is still sending has a new version at every batch and is recomputed.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return _copied(self._items[key])
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return _copied(value)


_memos: weakref.WeakKeyDictionary[Storage, _ScanMemo] = weakref.WeakKeyDictionary()
_memos_guard = threading.Lock()


def _memo_for(storage: Storage) -> _ScanMemo:
    """The memo of one open database (it goes when the Storage goes)."""
    with _memos_guard:
        memo = _memos.get(storage)
        if memo is None:
            memo = _memos[storage] = _ScanMemo()
        return memo


def _copied(value: Any) -> Any:
    """Callers may change a frame they get; the memo keeps its own."""
    return value.copy() if isinstance(value, pd.DataFrame) else value


# =============================================================================================
# Query functions: one SQL statement each, aggregates only.
# =============================================================================================
def q_mailing_row(storage: Storage, mailing_id: int) -> dict[str, Any] | None:
    """The mailing's own fields the statistics need (None when there is no such mailing)."""
    frame = storage.df(
        "SELECT g.id, g.kind, g.state, g.created_at, g.started_at, g.finished_at, "
        "g.reconciliation, g.estimate FROM mailings g WHERE g.id = ?",
        [int(mailing_id)],
    )
    if frame.empty:
        return None
    row = {k: plain(v) for k, v in frame.iloc[0].to_dict().items()}
    for key in ("reconciliation", "estimate"):
        row[key] = _json(row.get(key))
    return row


def q_mailing_choices(storage: Storage) -> pd.DataFrame:
    """Every mailing, newest first, with what a picker shows (no ledger scan)."""
    return storage.df(
        "SELECT g.id, g.kind, g.state, g.created_at, g.started_at, g.finished_at, "
        "doc.name AS document, s.name AS selection, d.name AS database FROM mailings g "
        "LEFT JOIN documents doc ON doc.id = g.document_id "
        "LEFT JOIN selections s ON s.id = g.selection_id "
        "LEFT JOIN databases d ON d.id = g.database_id ORDER BY g.id DESC"
    )


# -- the rollup --------------------------------------------------------------------------------
def q_rollup_versions(storage: Storage, mailing_id: int | None = None) -> list[tuple[Any, ...]]:
    """(mailing id, state, events now, events and state the rollup was made at) per mailing."""
    if mailing_id is None:
        where_events, where_mailing, params = "", "", []
    else:
        where_events, where_mailing = "WHERE mailing_id = ?", "WHERE g.id = ?"
        params = [int(mailing_id), int(mailing_id)]
    return storage.rows(
        "SELECT g.id, g.state, coalesce(e.events, 0), v.events, v.state FROM mailings g "
        "LEFT JOIN (SELECT mailing_id, count(*) AS events FROM message_events "
        f"           {where_events} GROUP BY mailing_id) e ON e.mailing_id = g.id "
        f"LEFT JOIN stats_rollup_version v ON v.mailing_id = g.id {where_mailing}",
        params,
    )


def q_mailing_version(storage: Storage, mailing_id: int) -> tuple[int, str]:
    """(number of events, state) of one mailing: what its figures depend on."""
    rows = storage.rows(
        "SELECT (SELECT count(*) FROM message_events WHERE mailing_id = ?), "
        "(SELECT state FROM mailings WHERE id = ?)",
        [int(mailing_id), int(mailing_id)],
    )
    return int(rows[0][0]), str(rows[0][1])


def q_refresh_rollup(cur: Any, mailing_id: int, now: datetime) -> None:
    """Recompute one mailing's rollup rows and their version (inside the caller's
    transaction, so the rows and the event count they were made at are one snapshot)."""
    mid = int(mailing_id)
    cur.execute("DELETE FROM stats_rollup WHERE mailing_id = ?", [mid])
    cur.execute("DELETE FROM stats_rollup_version WHERE mailing_id = ?", [mid])
    cur.execute(
        "INSERT INTO stats_rollup (mailing_id, status, country, reason, parts, "
        "                          parts_submitted, parts_delivered, messages) "
        f"SELECT mailing_id, status, {_COUNTRY}, "
        f"       CASE WHEN status IN {_FAILED_IN} THEN coalesce(nullif(trim(reason), ''), status) "
        "            WHEN status IN ('unknown', 'skipped') THEN nullif(trim(reason), '') END, "
        "       parts, coalesce(parts_submitted, 0), coalesce(parts_delivered, 0), count(*) "
        "FROM message_status WHERE mailing_id = ? GROUP BY ALL",
        [mid],
    )
    cur.execute(
        "INSERT INTO stats_rollup_version (mailing_id, events, state, computed_at) "
        "SELECT id, (SELECT count(*) FROM message_events WHERE mailing_id = ?), state, ? "
        "FROM mailings WHERE id = ?",
        [mid, now, mid],
    )


def q_status_rollup(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per status: messages, parts, fully submitted messages, and for multi-part messages
    with a part accepted, how many had all, some or none of their parts delivered."""
    return storage.df(
        "SELECT status, sum(messages) AS messages, "
        "sum(parts * messages) AS parts, "
        "sum(parts_submitted * messages) AS parts_submitted, "
        "sum(parts_delivered * messages) AS parts_delivered, "
        "coalesce(sum(messages) FILTER (WHERE parts_submitted >= parts), 0) AS submitted, "
        "coalesce(sum(messages) FILTER (WHERE parts > 1 AND parts_submitted > 0), 0) "
        "    AS multipart, "
        "coalesce(sum(messages) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "    AND parts_delivered >= parts), 0) AS multipart_all, "
        "coalesce(sum(messages) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "    AND parts_delivered > 0 AND parts_delivered < parts), 0) AS multipart_some, "
        "coalesce(sum(messages) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "    AND parts_delivered = 0), 0) AS multipart_none "
        "FROM stats_rollup WHERE mailing_id = ? GROUP BY status",
        [int(mailing_id)],
    )


def q_failures_by_reason(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Failed, undelivered and expired messages per reason (the status when none is given)."""
    return storage.df(
        "SELECT reason, string_agg(DISTINCT status, ', ' ORDER BY status) AS statuses, "
        "       sum(messages) AS failures "
        f"FROM stats_rollup WHERE mailing_id = ? AND status IN {_FAILED_IN} "
        "GROUP BY reason ORDER BY failures DESC, reason",
        [int(mailing_id)],
    )


def q_failures_by_country(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per destination country: messages that were not skipped, and failures among them."""
    return storage.df(
        "SELECT country, sum(messages) AS recipients, "
        f"      coalesce(sum(messages) FILTER (WHERE status IN {_FAILED_IN}), 0) AS failures "
        "FROM stats_rollup WHERE mailing_id = ? AND status <> 'skipped' "
        "GROUP BY country ORDER BY failures DESC, recipients DESC, country",
        [int(mailing_id)],
    )


def q_segments_by_country(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per country: recipients and segments planned (not skipped), segments accepted by the
    provider, and messages delivered."""
    return storage.df(
        "SELECT country, "
        "  coalesce(sum(messages) FILTER (WHERE status <> 'skipped'), 0) AS recipients, "
        "  coalesce(sum(parts * messages) FILTER (WHERE status <> 'skipped'), 0) "
        "      AS planned_segments, "
        "  sum(parts_submitted * messages) AS segments, "
        "  coalesce(sum(messages) FILTER (WHERE status = 'delivered'), 0) AS delivered "
        "FROM stats_rollup WHERE mailing_id = ? GROUP BY country ORDER BY country",
        [int(mailing_id)],
    )


def q_status_count(storage: Storage, mailing_id: int, status: str) -> int:
    return int(storage.one(
        "SELECT coalesce(sum(messages), 0) FROM stats_rollup WHERE mailing_id = ? AND status = ?",
        [int(mailing_id), status],
    ) or 0)  # fmt: skip


# -- straight from the mailing's messages ------------------------------------------------------
def q_time_span(storage: Storage, mailing_id: int) -> datetime | None:
    """The latest moment anything happened to the mailing's messages (message_state alone:
    it only sizes the timeline's buckets)."""
    return storage.one(
        "SELECT max(greatest(submitted_at, done_at)) FROM message_state WHERE mailing_id = ?",
        [int(mailing_id)],
    )


def q_timeline(storage: Storage, mailing_id: int, origin: datetime, step: int) -> pd.DataFrame:
    """Per time bucket of `step` seconds since `origin`: messages submitted (last part
    accepted), delivered, and failed (final not-delivered report or refusal).

    One scan: messages are first counted per (submit bucket, done bucket, outcome), a few
    thousand groups at most, which are then spread over the buckets.
    """
    # (greatest() skips NULLs: a message never submitted must stay out of every bucket)
    bucket = ("CASE WHEN {col} IS NOT NULL THEN CAST(greatest(floor((epoch_us({col}) "
              "- epoch_us(?::TIMESTAMP)) / 1e6 / ?), 0) AS BIGINT) END")  # fmt: skip
    return storage.df(
        f"WITH t AS (SELECT {bucket.format(col='submitted_at')} AS sb, "
        f"                  {bucket.format(col='done_at')} AS db, "
        "                   CASE WHEN status = 'delivered' THEN 1 "
        f"                       WHEN status IN {_FAILED_IN} THEN 2 ELSE 0 END AS outcome, "
        "                   count(*) AS n "
        "           FROM message_status WHERE mailing_id = ? GROUP BY ALL), "
        "e AS (SELECT sb AS bucket, n AS submitted, 0 AS delivered, 0 AS failed FROM t "
        "      WHERE sb IS NOT NULL "
        "      UNION ALL "
        "      SELECT db, 0, CASE WHEN outcome = 1 THEN n ELSE 0 END, "
        "             CASE WHEN outcome = 2 THEN n ELSE 0 END FROM t "
        "      WHERE db IS NOT NULL AND outcome > 0) "
        "SELECT bucket, sum(submitted) AS submitted, sum(delivered) AS delivered, "
        "       sum(failed) AS failed FROM e GROUP BY bucket ORDER BY bucket",
        [origin, float(step), origin, float(step), int(mailing_id)],
    )


def q_latency(storage: Storage, mailing_id: int, edges: Sequence[float]) -> tuple[Any, ...]:
    """(count, [median, p90, p99], mean, max, histogram map) of the report latency, seconds."""
    rows = storage.rows(
        "WITH l AS (SELECT greatest((epoch_us(done_at) - epoch_us(submitted_at)) / 1e6, 0) AS s "
        "           FROM message_status WHERE mailing_id = ? "
        f"          AND status IN {_REPORTED_IN} AND parts_submitted >= parts "
        "           AND submitted_at IS NOT NULL AND done_at IS NOT NULL) "
        "SELECT count(*), quantile_cont(s, [0.5, 0.9, 0.99]), avg(s), max(s), "
        "       histogram(s, ?::DOUBLE[]) FROM l",
        [int(mailing_id), list(edges)],
    )
    return rows[0]


def q_operators(storage: Storage, mailing_id: int, carriers: pa.Table,
                cut: tuple[list[str], list[int]]) -> pd.DataFrame:  # fmt: skip
    """Messages (not skipped) and failures per mobile operator and country.

    The operator is phonenumbers' carrier name for the number's longest matching prefix in
    `carriers` (prefix, name). Numbers are first cut to the longest prefix their calling
    code has carrier data for (`cut`: first three digits → length) and grouped, so the
    prefix match runs on hundreds of groups instead of every message.
    """
    cur = storage.cursor()
    name = f"_carriers_{threading.get_ident()}"
    matches = " ".join(
        f"LEFT JOIN {name} c{n} ON c{n}.prefix = substr(g.digits, 1, {n})"
        for n in _CARRIER_LENGTHS
    )
    operator = "coalesce(" + ", ".join(f"c{n}.name" for n in _CARRIER_LENGTHS) + ", '')"
    cur.register(name, carriers)
    try:
        return cur.execute(
            "WITH cut AS (SELECT unnest(?::VARCHAR[]) AS p3, unnest(?::INTEGER[]) AS l), "
            "g AS (SELECT substr(m.e164, 2, coalesce(cut.l, 9)) AS digits, "
            f"            {_COUNTRY} AS country, count(*) AS recipients, "
            f"            count(*) FILTER (WHERE status IN {_FAILED_IN}) AS failures "
            "      FROM message_status m LEFT JOIN cut ON cut.p3 = substr(m.e164, 2, 3) "
            "      WHERE m.mailing_id = ? AND m.status <> 'skipped' GROUP BY 1, 2) "
            f"SELECT coalesce(nullif({operator}, ''), '{UNKNOWN_OPERATOR}') AS operator, "
            "       g.country, sum(g.recipients) AS recipients, sum(g.failures) AS failures "
            f"FROM g {matches} GROUP BY 1, 2 "
            "ORDER BY failures DESC, recipients DESC, operator, country",
            [cut[0], cut[1], int(mailing_id)],
        ).df()
    finally:
        cur.unregister(name)


# -- replies -----------------------------------------------------------------------------------
_STOPS_SQL = """
    SELECT mailing_id, e164 FROM inbound
    WHERE kind = 'stop' AND mailing_id IS NOT NULL AND e164 IS NOT NULL
    UNION
    SELECT mailing_id, e164 FROM suppression_log
    WHERE action = 'add' AND mailing_id IS NOT NULL
"""


def q_replies(storage: Storage, mailing_id: int) -> tuple[Any, ...]:
    """(stop numbers, stop messages, start messages, other replies, replying numbers) for one
    mailing. A STOP counts whether it was stored as a reply or only as a suppression."""
    rows = storage.rows(
        f"WITH stops AS ({_STOPS_SQL}) "
        "SELECT (SELECT count(DISTINCT e164) FROM stops WHERE mailing_id = ?), "
        "       count(*) FILTER (WHERE kind = 'stop'), "
        "       count(*) FILTER (WHERE kind = 'start'), "
        "       count(*) FILTER (WHERE kind IS NULL), "
        "       count(DISTINCT e164) "
        "FROM inbound WHERE mailing_id = ?",
        [int(mailing_id), int(mailing_id)],
    )
    return rows[0]


def q_reply_texts(storage: Storage, mailing_id: int, limit: int = 10) -> pd.DataFrame:
    """The most frequent reply texts of a mailing (trimmed, case kept), with their kind."""
    return storage.df(
        "SELECT trim(text) AS text, coalesce(kind, 'other') AS kind, count(*) AS replies "
        "FROM inbound WHERE mailing_id = ? GROUP BY 1, 2 ORDER BY replies DESC, text "
        f"LIMIT {int(limit)}",
        [int(mailing_id)],
    )


# -- all mailings ------------------------------------------------------------------------------
_PER_MAILING_SQL = f"""
    WITH prices AS (
        SELECT unnest(?::VARCHAR[]) AS country, unnest(?::DOUBLE[]) AS price
    ),
    per_mailing AS (
        SELECT r.mailing_id,
               sum(messages) AS recipients,
               sum(messages) FILTER (WHERE parts_submitted >= parts) AS submitted,
               sum(messages) FILTER (WHERE status = 'delivered') AS delivered,
               sum(messages) FILTER (WHERE status IN {_FAILED_IN}) AS failed,
               sum(messages) FILTER (WHERE status = 'unknown') AS unknown,
               sum(messages) FILTER (WHERE status IN ('queued', 'submitted')) AS pending,
               sum(parts_submitted * messages) AS segments,
               sum(parts_submitted * messages * coalesce(p.price, ?)) AS cost
        FROM stats_rollup r LEFT JOIN prices p ON p.country = r.country
        GROUP BY r.mailing_id
    ),
    stops AS (
        SELECT mailing_id, count(DISTINCT e164) AS stops FROM ({_STOPS_SQL}) GROUP BY 1
    )
    SELECT g.id AS mailing_id, g.kind, g.state, doc.name AS document,
           s.name AS selection, d.name AS database,
           coalesce(g.started_at, g.scheduled_at, g.created_at) AS started_at,
           g.finished_at,
           coalesce(m.recipients, 0)::BIGINT AS recipients,
           coalesce(m.submitted, 0)::BIGINT AS submitted,
           coalesce(m.delivered, 0)::BIGINT AS delivered,
           coalesce(m.failed, 0)::BIGINT AS failed,
           coalesce(m.unknown, 0)::BIGINT AS unknown,
           coalesce(m.pending, 0)::BIGINT AS pending,
           coalesce(st.stops, 0)::BIGINT AS stops,
           coalesce(m.segments, 0)::BIGINT AS segments,
           coalesce(m.cost, 0)::DOUBLE AS cost
    FROM mailings g
    LEFT JOIN per_mailing m ON m.mailing_id = g.id
    LEFT JOIN stops st ON st.mailing_id = g.id
    LEFT JOIN documents doc ON doc.id = g.document_id
    LEFT JOIN selections s ON s.id = g.selection_id
    LEFT JOIN databases d ON d.id = g.database_id
    WHERE (? OR g.kind <> 'test')
"""


def q_mailings_overview(storage: Storage, prices: tuple[list[str], list[float], float],
                        include_tests: bool) -> pd.DataFrame:  # fmt: skip
    """One row per mailing with its counts, STOP replies, accepted segments and cost."""
    countries, values, default = prices
    return storage.df(
        f"SELECT * FROM ({_PER_MAILING_SQL}) ORDER BY mailing_id DESC",
        [countries, values, default, bool(include_tests)],
    )


def q_trends(storage: Storage, prices: tuple[list[str], list[float], float], period: str,
             include_tests: bool) -> pd.DataFrame:  # fmt: skip
    """Mailings that sent something, grouped by the period they started in."""
    countries, values, default = prices
    return storage.df(
        "SELECT date_trunc(?, started_at) AS period, count(*) AS mailings, "
        "       sum(recipients)::BIGINT AS recipients, sum(submitted)::BIGINT AS submitted, "
        "       sum(delivered)::BIGINT AS delivered, sum(failed)::BIGINT AS failed, "
        "       sum(stops)::BIGINT AS stops, sum(segments)::BIGINT AS segments, "
        "       sum(cost)::DOUBLE AS cost "
        f"FROM ({_PER_MAILING_SQL}) WHERE recipients > 0 GROUP BY 1 ORDER BY 1",
        [period, countries, values, default, bool(include_tests)],
    )


def q_suppression_growth(storage: Storage, period: str) -> pd.DataFrame:
    """Per period: numbers added (and how many of them by STOP reply) and removed, and the
    list's size at the end of the period (running sum of adds minus removes)."""
    return storage.df(
        "WITH p AS ("
        "  SELECT date_trunc(?, ts) AS period, "
        "         count(*) FILTER (WHERE action = 'add') AS added, "
        "         count(*) FILTER (WHERE action = 'add' AND reason = 'stop_reply') "
        "             AS stop_replies, "
        "         count(*) FILTER (WHERE action = 'remove') AS removed "
        "  FROM suppression_log GROUP BY 1) "
        "SELECT period, added, stop_replies, removed, "
        "       (sum(added - removed) OVER (ORDER BY period))::BIGINT AS total "
        "FROM p ORDER BY period",
        [period],
    )


def q_contact_tables(storage: Storage) -> list[tuple[str, str]]:
    """(database name, contacts table) of every database whose table exists."""
    return [
        (str(name), str(table)) for name, table in storage.rows(
            "SELECT d.name, d.table_name FROM databases d JOIN information_schema.tables t "
            "ON t.table_name = d.table_name ORDER BY d.name"
        )
    ]  # fmt: skip


def q_phone_quality(storage: Storage, tables: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """Per database and country (plus a total per database, country '(all)'): contacts and
    their phone status counts, in one statement over every contacts table."""
    union = " UNION ALL ".join(
        f"SELECT ? AS database, _country AS country, _phone_status AS status "
        f"FROM {quote_ident(table)}"
        for _, table in tables
    )
    return storage.df(
        f"WITH c AS ({union}) "
        "SELECT database, "
        "      CASE WHEN grouping(country) = 1 THEN '(all)' "
        f"          ELSE coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}') END AS country, "
        "       count(*) AS contacts, "
        "       count(*) FILTER (WHERE status = 'valid_mobile') AS valid_mobile, "
        "       count(*) FILTER (WHERE status = 'not_mobile') AS not_mobile, "
        "       count(*) FILTER (WHERE status = 'invalid') AS invalid, "
        "       count(*) FILTER (WHERE status = 'missing') AS missing "
        "FROM c GROUP BY GROUPING SETS ((database, country), (database)) "
        "ORDER BY database, grouping(country) DESC, contacts DESC, country",
        [name for name, _ in tables],
    )


# =============================================================================================
# Mobile operators, from phonenumbers' carrier data.
# =============================================================================================
@lru_cache(maxsize=1)
def carrier_table() -> tuple[pa.Table, tuple[list[str], list[int]]]:
    """phonenumbers' carrier prefixes as a table (prefix digits; English name, or '' when
    the prefix has none in English, as `name_for_number` answers), and for every three
    first digits of a number, the longest prefix length its calling code's data uses
    (calling codes are prefix-free, so three digits determine the code)."""
    from phonenumbers.carrierdata import CARRIER_DATA

    prefixes = list(CARRIER_DATA)
    names = [CARRIER_DATA[p].get("en", "") for p in prefixes]
    codes = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    longest = {c: len(c) for c in codes}
    for key in prefixes:
        code = next((key[:n] for n in (1, 2, 3) if key[:n] in codes), None)
        if code is not None:
            longest[code] = max(longest[code], len(key))
    firsts = [str(p) for p in range(100, 1000)]
    lengths = [next((longest[f[:n]] for n in (1, 2, 3) if f[:n] in longest), 9) for f in firsts]
    table = pa.table({"prefix": pa.array(prefixes, pa.string()),
                      "name": pa.array(names, pa.string())})  # fmt: skip
    return table, (firsts, lengths)


def operator_name(e164: str) -> str:
    """The operator phonenumbers names for one number ('' when unknown): the reference the
    grouped SQL lookup of `failures_by(..., "operator")` agrees with."""
    from phonenumbers import carrier

    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    return carrier.name_for_number(number, "en") or ""


# =============================================================================================
# The service mixin.
# =============================================================================================
class StatsMixin:
    """Per-mailing and overall results; mixed into `core.studio.Studio`. No streamlit."""

    storage: Storage
    clock: Callable[[], datetime]

    # -- which mailing ----------------------------------------------------------------------
    def stats_mailings(self) -> pd.DataFrame:
        """Mailings to choose from, newest first: id, kind, state, times, document,
        selection, database and a `label` for pickers."""
        frame = q_mailing_choices(self.storage)
        if frame.empty:
            frame["label"] = pd.Series(dtype="str")
            return frame
        when = frame["started_at"].fillna(frame["created_at"]).dt.strftime("%Y-%m-%d %H:%M")
        what = frame["document"].fillna(frame["selection"]).fillna(frame["database"]).fillna("")
        test = frame["kind"].map({"test": " (test)"}).fillna("")
        frame["label"] = (
            "#" + frame["id"].astype(str) + " · " + what.astype(str) + test + " · "
            + when.fillna("") + " · " + frame["state"].astype(str)
        )
        return frame

    def mailing_live(self, mailing_id: int) -> bool:
        """Whether the mailing's figures can still change soon: it is scheduled or sending,
        or it finished less than REPORT_WAIT_HOURS ago with reports still outstanding."""
        row = self._stats_mailing(mailing_id)
        if row["state"] in LIVE_STATES:
            return True
        if row["state"] != "finished" or row["finished_at"] is None:
            return False
        if (self.clock() - row["finished_at"]).total_seconds() > REPORT_WAIT_HOURS * 3600:
            return False
        self.refresh_rollups(mailing_id)
        return q_status_count(self.storage, mailing_id, "submitted") > 0

    # -- per mailing ------------------------------------------------------------------------
    def mailing_funnel(self, mailing_id: int) -> dict[str, Any]:
        """Selection → recipients → submitted → delivered, with who was left out and the
        final outcome of every recipient.

        Keys: mailing_id, state, kind, started_at, finished_at; `selection` (contacts the
        selection held at launch, None when unknown); `left_out` DataFrame [reason, contacts,
        pct] (the reconciliation); `recipients`; `submitted` (every part accepted);
        delivered, undelivered, failed, expired, unknown, skipped, queued and
        `awaiting_report` (status `submitted`: accepted, no final report yet);
        `status_counts` (the ledger's status → messages); `failures` (failed + undelivered +
        expired); `delivery_rate` (delivered / submitted, None before any submit); `stages`
        DataFrame [stage, count, pct_of_first, pct_of_previous]; `outcomes` DataFrame
        [status, messages, pct of recipients]; `parts` dict (multipart, all, some, none:
        multi-part recipients with at least one part accepted, by parts delivered; and the
        mailing's parts, parts_submitted, parts_delivered).
        """
        row = self._stats_mailing(mailing_id)
        self.refresh_rollups(mailing_id)
        rollup = q_status_rollup(self.storage, int(mailing_id))
        counts = dict.fromkeys(OUTCOME_ORDER, 0)
        for status, n in zip(rollup["status"], rollup["messages"], strict=True):
            counts[str(status)] = int(n)
        totals = {c: int(rollup[c].sum()) if len(rollup) else 0 for c in rollup.columns
                  if c != "status"}  # fmt: skip
        recipients, submitted = totals.get("messages", 0), totals.get("submitted", 0)
        selection, left_out = _reconciliation(row["reconciliation"])
        stage_rows = [("selection", selection)] if selection is not None else []
        stage_rows += [("recipients", recipients), ("submitted", submitted),
                       ("delivered", counts["delivered"])]  # fmt: skip
        stages = pd.DataFrame(stage_rows, columns=["stage", "count"])
        stages["pct_of_first"] = _pct(stages["count"], stages["count"].iloc[0])
        stages["pct_of_previous"] = _pct(stages["count"], stages["count"].shift(1))
        stages.loc[0, "pct_of_previous"] = 100.0 if stages["count"].iloc[0] else math.nan
        outcomes = pd.DataFrame({"status": list(OUTCOME_ORDER),
                                 "messages": [counts[s] for s in OUTCOME_ORDER]})  # fmt: skip
        outcomes["pct"] = _pct(outcomes["messages"], recipients)
        parts = {
            "multipart": totals.get("multipart", 0), "all": totals.get("multipart_all", 0),
            "some": totals.get("multipart_some", 0), "none": totals.get("multipart_none", 0),
            "parts": totals.get("parts", 0), "parts_submitted": totals.get("parts_submitted", 0),
            "parts_delivered": totals.get("parts_delivered", 0),
        }  # fmt: skip
        return {
            "mailing_id": int(mailing_id), "state": row["state"], "kind": row["kind"],
            "started_at": row["started_at"], "finished_at": row["finished_at"],
            "selection": selection, "left_out": left_out, "recipients": recipients,
            "submitted": submitted, "delivered": counts["delivered"],
            "undelivered": counts["undelivered"], "failed": counts["failed"],
            "expired": counts["expired"], "unknown": counts["unknown"],
            "skipped": counts["skipped"], "queued": counts["queued"],
            "awaiting_report": counts["submitted"],
            "failures": sum(counts[s] for s in FAILURE_STATUSES), "status_counts": counts,
            "delivery_rate": _ratio(counts["delivered"], submitted),
            "stages": stages, "outcomes": outcomes, "parts": parts,
        }  # fmt: skip

    def mailing_timeline(self, mailing_id: int, step: int | None = None) -> pd.DataFrame:
        """Deliveries over time since the start, in buckets of `step` seconds (chosen from
        BUCKET_STEPS for at most MAX_BUCKETS buckets when None).

        Columns: at (bucket start, UTC), seconds (since the start), submitted, delivered,
        failed, and the running totals submitted_total, delivered_total, failed_total.
        Empty buckets are present with zeros, so the curves are continuous.
        """
        row = self._stats_mailing(mailing_id)
        columns = ["at", "seconds", "submitted", "delivered", "failed", "submitted_total",
                   "delivered_total", "failed_total"]  # fmt: skip
        origin = row["started_at"]
        last = self._scan("span", mailing_id, lambda: q_time_span(self.storage, mailing_id))
        if origin is None or last is None:
            return pd.DataFrame(columns=columns)
        step = max(int(step), 1) if step else choose_step((last - origin).total_seconds())
        frame = self._scan(("timeline", step), mailing_id,
                           lambda: q_timeline(self.storage, mailing_id, origin, step))
        buckets = int(frame["bucket"].max()) + 1 if len(frame) else 1
        full = (frame.set_index("bucket").reindex(range(buckets), fill_value=0)
                .rename_axis("bucket").reset_index())  # fmt: skip
        full["seconds"] = full["bucket"].astype("int64") * step
        full["at"] = pd.Timestamp(origin) + pd.to_timedelta(full["seconds"], unit="s")
        for col in ("submitted", "delivered", "failed"):
            full[col] = full[col].astype("int64")
            full[f"{col}_total"] = full[col].cumsum()
        return full[columns]

    def delivery_latency(self, mailing_id: int) -> dict[str, Any]:
        """Time from submission to delivery report: count, median, p90, p99, mean and max
        (seconds; None without reports) and `histogram` DataFrame [bin, lo, hi, messages]
        over LATENCY_EDGES (a bin holds lo < latency <= hi; the first includes 0)."""
        self._stats_mailing(mailing_id)
        count, quantiles, mean, top, hist = self._scan(
            "latency", mailing_id, lambda: q_latency(self.storage, mailing_id, LATENCY_EDGES))
        lows, highs = (0.0, *LATENCY_EDGES), (*LATENCY_EDGES, math.inf)
        hist = hist or {}
        histogram = pd.DataFrame({
            "bin": [_bin_label(lo, hi) for lo, hi in zip(lows, highs, strict=True)],
            "lo": lows, "hi": highs,
            "messages": [int(hist.get(hi, 0)) for hi in highs],
        })  # fmt: skip
        q = [None, None, None] if quantiles is None else [float(x) for x in quantiles]
        return {
            "count": int(count), "median": q[0], "p90": q[1], "p99": q[2],
            "mean": None if mean is None else float(mean),
            "max": None if top is None else float(top), "histogram": histogram,
        }  # fmt: skip

    def failures_by(self, mailing_id: int, by: FailureDimension = "reason") -> pd.DataFrame:
        """Failures (failed, undelivered, expired) grouped by `by`, with `share` of all
        failures (0..1), most failures first.

        reason: [reason, statuses, failures, share]; country: [country, recipients,
        failures, share, failure_rate]; operator: [operator, country, recipients, failures,
        share, failure_rate]: the operator the number range was allocated to, from
        phonenumbers' carrier data ('(unknown)' where it has none). `recipients` counts
        the messages that were not skipped; failure_rate = failures / recipients.
        """
        self._stats_mailing(mailing_id)
        if by == "reason":
            self.refresh_rollups(mailing_id)
            frame = q_failures_by_reason(self.storage, int(mailing_id))
        elif by == "country":
            self.refresh_rollups(mailing_id)
            frame = q_failures_by_country(self.storage, int(mailing_id))
        elif by == "operator":
            carriers, cut = carrier_table()
            frame = self._scan("operators", mailing_id,
                               lambda: q_operators(self.storage, mailing_id, carriers, cut))
        else:
            raise InvalidInput(f"Failures can be grouped by reason, country or operator, "
                               f"not {by!r}.")  # fmt: skip
        frame["failures"] = frame["failures"].astype("int64")
        total = int(frame["failures"].sum())
        frame["share"] = frame["failures"] / total if total else 0.0
        if "recipients" in frame:
            frame["recipients"] = frame["recipients"].astype("int64")
            frame["failure_rate"] = frame["failures"] / frame["recipients"].where(
                frame["recipients"] > 0)
        return frame.reset_index(drop=True)

    def cost_actual_vs_estimate(self, mailing_id: int) -> dict[str, Any]:
        """Segments and cost estimated at confirmation against the actual ones, per country.

        The estimate is the one stored with the mailing (`mailings.estimate`); when there is
        none (older or command-line mailings) it is computed now from the planned messages
        × the price table (`estimate_source` says which). Actual: segments the provider
        accepted × the price table in use. Keys: by_country DataFrame [country,
        estimated_recipients, estimated_segments, estimated_cost, recipients, segments,
        cost, segments_diff, cost_diff], estimate_source ('confirmation' or 'computed'),
        currency, estimated_segments, estimated_cost, segments, cost, delivered,
        cost_per_delivered (None without deliveries).
        """
        row = self._stats_mailing(mailing_id)
        self.refresh_rollups(mailing_id)
        prices = self._price_table()
        actual = q_segments_by_country(self.storage, int(mailing_id))
        priced = pricing.estimate_cost(actual[["country", "recipients", "segments"]], prices)
        actual = actual.merge(priced[["country", "cost"]], on="country", how="left")
        estimate = _estimate_frame(row["estimate"])
        source = "confirmation"
        if estimate is None:
            planned = actual[["country", "recipients", "planned_segments"]].rename(
                columns={"planned_segments": "segments"})
            estimate = pricing.estimate_cost(planned, prices)[
                ["country", "recipients", "segments", "cost"]]
            source = "computed"
        merged = estimate.rename(columns={
            "recipients": "estimated_recipients", "segments": "estimated_segments",
            "cost": "estimated_cost",
        }).merge(actual[["country", "recipients", "segments", "cost", "delivered"]],
                 on="country", how="outer")  # fmt: skip
        for col in ("estimated_recipients", "estimated_segments", "recipients", "segments",
                    "delivered"):
            merged[col] = pd.to_numeric(merged[col], errors="coerce").fillna(0).astype("int64")
        for col in ("estimated_cost", "cost"):
            merged[col] = pd.to_numeric(merged[col], errors="coerce").fillna(0.0)
        merged["segments_diff"] = merged["segments"] - merged["estimated_segments"]
        merged["cost_diff"] = merged["cost"] - merged["estimated_cost"]
        merged = merged.sort_values(["estimated_cost", "cost", "country"],
                                    ascending=[False, False, True]).reset_index(drop=True)
        delivered, cost = int(merged["delivered"].sum()), float(merged["cost"].sum())
        stored_currency = (row["estimate"] or {}).get("currency") if source == "confirmation" \
            else None
        return {
            "by_country": merged.drop(columns="delivered"), "estimate_source": source,
            "currency": str(stored_currency or pricing.currency_of(prices)),
            "estimated_segments": int(merged["estimated_segments"].sum()),
            "estimated_cost": float(merged["estimated_cost"].sum()),
            "segments": int(merged["segments"].sum()), "cost": cost, "delivered": delivered,
            "cost_per_delivered": _ratio(cost, delivered),
        }  # fmt: skip

    def mailing_replies(self, mailing_id: int) -> dict[str, Any]:
        """STOP opt-outs caused by the mailing and its other replies.

        Keys: stops (distinct numbers that opted out: a STOP reply, or a suppression added
        with this mailing's id), stop_messages, start_messages, other_replies,
        replying_numbers, delivered, opt_out_rate (stops / delivered, None without
        deliveries), texts DataFrame [text, kind, replies] (the most frequent replies).
        """
        self._stats_mailing(mailing_id)
        self.refresh_rollups(mailing_id)
        stops, stop_msgs, starts, other, numbers = q_replies(self.storage, int(mailing_id))
        delivered = q_status_count(self.storage, int(mailing_id), "delivered")
        return {
            "stops": int(stops), "stop_messages": int(stop_msgs), "start_messages": int(starts),
            "other_replies": int(other), "replying_numbers": int(numbers),
            "delivered": delivered, "opt_out_rate": _ratio(int(stops), delivered),
            "texts": q_reply_texts(self.storage, int(mailing_id)),
        }  # fmt: skip

    # -- overall ----------------------------------------------------------------------------
    def mailings_overview(self, include_tests: bool = False) -> pd.DataFrame:
        """Mailings side by side, newest first: mailing_id, kind, state, document,
        selection, database, started_at, finished_at, recipients, submitted, delivered,
        failed, unknown, pending, stops, segments (accepted), cost, delivery_rate
        (delivered / submitted), opt_out_rate (stops / delivered), cost_per_delivered."""
        self.refresh_rollups()
        frame = q_mailings_overview(self.storage, self._price_arrays(), include_tests)
        return _with_rates(frame)

    def trends(self, period: str = "day", include_tests: bool = False) -> pd.DataFrame:
        """The overview summed per `period` (hour, day, week, month) of the mailings' start,
        over mailings that sent something: period, mailings, recipients, submitted,
        delivered, failed, stops, segments, cost and the rates of `mailings_overview`."""
        _check_period(period)
        self.refresh_rollups()
        frame = q_trends(self.storage, self._price_arrays(), period, include_tests)
        return _with_rates(frame)

    def suppression_growth(self, period: str = "day") -> pd.DataFrame:
        """The suppression list per period: added, stop_replies (added by a STOP reply),
        removed, and total (the list's size at the end of the period)."""
        _check_period(period)
        frame = q_suppression_growth(self.storage, period)
        for col in ("added", "stop_replies", "removed", "total"):
            frame[col] = frame[col].astype("int64")
        return frame

    def phone_quality(self) -> pd.DataFrame:
        """Per contact database and country, and per database in total (country '(all)'):
        contacts, valid_mobile, not_mobile, invalid, missing and share_valid_mobile (0..1).

        Numbers that cannot be parsed have no country, so they count under 'unknown'.
        """
        columns = ["database", "country", "contacts", "valid_mobile", "not_mobile",
                   "invalid", "missing", "share_valid_mobile"]  # fmt: skip
        tables = q_contact_tables(self.storage)
        if not tables:
            return pd.DataFrame(columns=columns)
        frame = q_phone_quality(self.storage, tables)
        for col in ("contacts", "valid_mobile", "not_mobile", "invalid", "missing"):
            frame[col] = frame[col].astype("int64")
        frame["share_valid_mobile"] = frame["valid_mobile"] / frame["contacts"].where(
            frame["contacts"] > 0)
        return frame[columns]

    # -- export -----------------------------------------------------------------------------
    def export_results(self, mailing_id: int, fmt: ExportFormat = "csv") -> bytes:
        """The mailing's per-recipient results (`mailing_results`) as file bytes.

        CSV: UTF-8 with BOM, every cell a spreadsheet would run as a formula (=, +, -, @)
        quoted, E.164 numbers included (spreadsheets hide the quote). Parquet: typed columns
        (timestamps in UTC) for pandas, DuckDB or docs/explore_results.ipynb.
        """
        if fmt not in ("csv", "parquet"):
            raise InvalidInput(f"Results export as csv or parquet, not {fmt!r}.")
        frame = self.mailing_results(int(mailing_id))  # type: ignore[attr-defined]
        if fmt == "csv":
            return to_safe_csv(frame)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    # -- the rollup ---------------------------------------------------------------------------
    def refresh_rollups(self, mailing_id: int | None = None) -> list[int]:
        """Bring `stats_rollup` up to date for one mailing (or all); returns the mailings
        whose rows were recomputed (those with new events or a new state)."""
        lock = _refresh_lock(self.storage)
        with lock:
            stale = [
                int(mid) for mid, state, events, done_events, done_state
                in q_rollup_versions(self.storage, mailing_id)
                if done_events is None or int(done_events) != int(events) or done_state != state
            ]  # fmt: skip
            if stale:
                now = self.clock()
                with self.storage.transaction() as cur:
                    for mid in stale:
                        q_refresh_rollup(cur, mid, now)
        return stale

    # -- helpers ----------------------------------------------------------------------------
    def _scan(self, kind: Any, mailing_id: int, compute: Callable[[], Any]) -> Any:
        """A per-mailing scan's result, computed again only when the mailing changed."""
        version = q_mailing_version(self.storage, mailing_id)
        return _memo_for(self.storage).get((kind, int(mailing_id), version), compute)

    def _stats_mailing(self, mailing_id: int) -> dict[str, Any]:
        row = q_mailing_row(self.storage, int(mailing_id))
        if row is None:
            raise NotFound(f"There is no mailing {mailing_id}.")
        return row

    def _price_table(self) -> pd.DataFrame:
        table = getattr(self, "price_table", None)
        return table() if callable(table) else pricing.load_prices(None)

    def _price_arrays(self) -> tuple[list[str], list[float], float]:
        table = self._price_table()
        named = table[table["country"] != pricing.DEFAULT_COUNTRY]
        default = float(table.loc[table["country"] == pricing.DEFAULT_COUNTRY,
                                  "price_per_segment"].iloc[0])  # fmt: skip
        return (named["country"].astype(str).tolist(),
                named["price_per_segment"].astype(float).tolist(), default)  # fmt: skip


# =============================================================================================
# Small pure helpers.
# =============================================================================================
def choose_step(span_seconds: float, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest bucket size from BUCKET_STEPS giving fewer than `max_buckets` buckets."""
    for step in BUCKET_STEPS:
        if span_seconds / step < max_buckets:
            return step
    return int(math.ceil(span_seconds / max_buckets / 86400) * 86400)


def _check_period(period: str) -> None:
    if period not in PERIODS:
        raise InvalidInput(f"The period is one of {', '.join(PERIODS)}, not {period!r}.")


def _reconciliation(recon: Any) -> tuple[int | None, pd.DataFrame]:
    """The selection's size and the left-out counts from a stored reconciliation.

    Its `steps` map is ordered: the first entry is the starting population (in_selection,
    or test_destination), every later one a number of contacts left out, and why.
    """
    empty = pd.DataFrame({"reason": pd.Series(dtype="str"),
                          "contacts": pd.Series(dtype="int64"),
                          "pct": pd.Series(dtype="float64")})  # fmt: skip
    steps = recon.get("steps") if isinstance(recon, dict) else None
    if not isinstance(steps, dict) or not steps:
        return None, empty
    items = [(str(k), _int(v)) for k, v in steps.items()]
    selection = items[0][1]
    if len(items) == 1:
        return selection, empty
    left = pd.DataFrame([(k.replace("_", " "), v) for k, v in items[1:]],
                        columns=["reason", "contacts"])  # fmt: skip
    left["contacts"] = left["contacts"].astype("int64")
    left["pct"] = _pct(left["contacts"], selection)
    return selection, left


def _estimate_frame(estimate: Any) -> pd.DataFrame | None:
    """The per-country estimate stored at confirmation, as [country, recipients, segments,
    cost]; None when there is none or it cannot be read.

    Accepted shapes: a list of row objects under `by_country`, `cost_by_country`,
    `countries` or `per_country` (each with country, segments and cost or price;
    recipients optional), or a mapping country → {segments, cost}; without a per-country
    part, the totals (`total_segments`/`segments`, `total_cost`/`cost`) as one row '(all)'.
    """
    if not isinstance(estimate, dict) or not estimate:
        return None
    rows: Any = next((estimate[k] for k in ("by_country", "cost_by_country", "countries",
                                             "per_country") if k in estimate), None)  # fmt: skip
    if isinstance(rows, dict):
        rows = [{"country": k, **(v if isinstance(v, dict) else {"cost": v})}
                for k, v in rows.items()]  # fmt: skip
    if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
        frame = pd.DataFrame(rows)
    else:
        segments = estimate.get("total_segments", estimate.get("segments"))
        cost = estimate.get("total_cost", estimate.get("cost"))
        if segments is None and cost is None:
            return None
        frame = pd.DataFrame([{"country": "(all)", "segments": segments, "cost": cost,
                               "recipients": estimate.get("recipients")}])  # fmt: skip
    if "country" not in frame:
        return None
    frame["country"] = (frame["country"].astype("string").fillna("").str.strip()
                        .replace("", UNKNOWN_COUNTRY).astype(str))  # fmt: skip
    for col in ("recipients", "segments", "cost"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce") if col in frame else math.nan
    if frame["cost"].isna().all() and "price" in frame:
        frame["cost"] = frame["segments"] * pd.to_numeric(frame["price"], errors="coerce")
    return (frame.groupby("country", as_index=False)[["recipients", "segments", "cost"]]
            .sum(min_count=1))  # fmt: skip


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["delivery_rate"] = frame["delivered"] / frame["submitted"].where(frame["submitted"] > 0)
    frame["opt_out_rate"] = frame["stops"] / frame["delivered"].where(frame["delivered"] > 0)
    frame["cost_per_delivered"] = frame["cost"] / frame["delivered"].where(frame["delivered"] > 0)
    return frame


def _bin_label(lo: float, hi: float) -> str:
    if math.isinf(hi):
        return f"> {_duration(lo)}"
    if lo == 0:
        return f"≤ {_duration(hi)}"
    return f"{_duration(lo)}–{_duration(hi)}"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _pct(values: pd.Series, whole: Any) -> pd.Series:
    whole_s = whole if isinstance(whole, pd.Series) else pd.Series(whole, index=values.index)
    whole_s = pd.to_numeric(whole_s, errors="coerce").astype("float64")
    return (100.0 * values.astype("float64") / whole_s.where(whole_s > 0)).astype("float64")


def _ratio(part: float, whole: float) -> float | None:
    return float(part) / float(whole) if whole else None


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


