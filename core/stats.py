"""Statistics: what happened to a mailing, and to all of them, computed in DuckDB.

Every figure is an aggregate computed by one small SQL statement below (the `q_*`
functions), so only a few hundred numbers ever leave the database, whatever the size of the
ledger: the page plots aggregates, never a point per message. Status semantics are the
ledger's own: everything reads the `message_status` view (one row per message, its status
rolled up from its events by `core.ledger` into `message_state`), so the Statistics page,
the Mailings page and the results export can never disagree about a message.

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
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import carrier as _carrier

from core import pricing
from core.errors import InvalidInput
from core.exports import to_safe_csv
from core.storage import Storage, quote_ident

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "FAILURE_STATUSES",
    "LATENCY_EDGES",
    "OUTCOME_ORDER",
    "StatsMixin",
]

FAILURE_STATUSES = ("failed", "undelivered", "expired")
REPORTED_STATUSES = ("delivered", "undelivered", "expired", "failed")
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

FailureDimension = Literal["reason", "country", "operator"]
ExportFormat = Literal["csv", "parquet"]

_FAILED_IN = "('failed', 'undelivered', 'expired')"
_REPORTED_IN = "('delivered', 'undelivered', 'expired', 'failed')"


# =============================================================================================
# Query functions: one SQL statement each, aggregates only.
# =============================================================================================
def q_mailing_row(storage: Storage, mailing_id: int) -> dict[str, Any] | None:
    """The mailing's own fields the statistics need (None when there is no such mailing)."""
    frame = storage.df(
        "SELECT g.id, g.kind, g.state, g.sender, g.created_at, g.scheduled_at, g.started_at, "
        "g.finished_at, g.reconciliation, g.estimate, g.error, doc.name AS document, "
        "s.name AS selection, d.name AS database FROM mailings g "
        "LEFT JOIN documents doc ON doc.id = g.document_id "
        "LEFT JOIN selections s ON s.id = g.selection_id "
        "LEFT JOIN databases d ON d.id = g.database_id WHERE g.id = ?",
        [int(mailing_id)],
    )
    if frame.empty:
        return None
    row = {k: _py(v) for k, v in frame.iloc[0].to_dict().items()}
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


def q_status_rollup(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per status: messages, parts, fully submitted messages, and for multi-part messages
    with a part accepted, how many had all, some or none of their parts delivered."""
    return storage.df(
        "SELECT status, count(*) AS messages, "
        "coalesce(sum(parts), 0) AS parts, "
        "coalesce(sum(parts_submitted), 0) AS parts_submitted, "
        "coalesce(sum(parts_delivered), 0) AS parts_delivered, "
        "count(*) FILTER (WHERE parts_submitted >= parts) AS submitted, "
        "count(*) FILTER (WHERE parts > 1 AND parts_submitted > 0) AS multipart, "
        "count(*) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "                 AND parts_delivered >= parts) AS multipart_all, "
        "count(*) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "                 AND parts_delivered > 0 AND parts_delivered < parts) AS multipart_some, "
        "count(*) FILTER (WHERE parts > 1 AND parts_submitted > 0 "
        "                 AND parts_delivered = 0) AS multipart_none "
        "FROM message_status WHERE mailing_id = ? GROUP BY status",
        [int(mailing_id)],
    )


def q_time_span(storage: Storage, mailing_id: int) -> datetime | None:
    """The latest moment anything happened to the mailing's messages."""
    return storage.one(
        "SELECT max(greatest(submitted_at, done_at)) FROM message_status WHERE mailing_id = ?",
        [int(mailing_id)],
    )


def q_timeline(storage: Storage, mailing_id: int, origin: datetime, step: int) -> pd.DataFrame:
    """Per time bucket of `step` seconds since `origin`: messages submitted (last part
    accepted), delivered, and failed (final not-delivered report or refusal)."""
    return storage.df(
        "WITH t AS (SELECT status, submitted_at, done_at FROM message_status "
        "           WHERE mailing_id = ?), "
        "e AS (SELECT submitted_at AS ts, 'submitted' AS what FROM t "
        "      WHERE submitted_at IS NOT NULL "
        "      UNION ALL "
        "      SELECT done_at, CASE WHEN status = 'delivered' THEN 'delivered' "
        "                           ELSE 'failed' END FROM t "
        f"     WHERE done_at IS NOT NULL AND status IN ('delivered', {_FAILED_IN[1:-1]})) "
        "SELECT CAST(greatest(floor((epoch_us(ts) - epoch_us(?::TIMESTAMP)) / 1e6 / ?), 0) "
        "            AS BIGINT) AS bucket, "
        "       count(*) FILTER (WHERE what = 'submitted') AS submitted, "
        "       count(*) FILTER (WHERE what = 'delivered') AS delivered, "
        "       count(*) FILTER (WHERE what = 'failed') AS failed "
        "FROM e GROUP BY 1 ORDER BY 1",
        [int(mailing_id), origin, float(step)],
    )


def q_latency(storage: Storage, mailing_id: int, edges: Sequence[float]) -> tuple[Any, ...]:
    """(count, median, p90, p99, mean, max, histogram map) of the report latency in seconds."""
    rows = storage.rows(
        "WITH l AS (SELECT (epoch_us(done_at) - epoch_us(submitted_at)) / 1e6 AS s "
        "           FROM message_status WHERE mailing_id = ? "
        f"          AND status IN {_REPORTED_IN} AND parts_submitted >= parts "
        "           AND submitted_at IS NOT NULL AND done_at IS NOT NULL) "
        "SELECT count(*), quantile_cont(greatest(s, 0), [0.5, 0.9, 0.99]), "
        "       avg(greatest(s, 0)), max(greatest(s, 0)), "
        "       histogram(greatest(s, 0), ?::DOUBLE[]) FROM l",
        [int(mailing_id), list(edges)],
    )
    return rows[0]


def q_failures_by_reason(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Failed, undelivered and expired messages per reason (the status when none is given)."""
    return storage.df(
        "SELECT coalesce(nullif(trim(reason), ''), status) AS reason, "
        "       string_agg(DISTINCT status, ', ' ORDER BY status) AS statuses, "
        "       count(*) AS failures "
        f"FROM message_status WHERE mailing_id = ? AND status IN {_FAILED_IN} "
        "GROUP BY 1 ORDER BY failures DESC, reason",
        [int(mailing_id)],
    )


def q_failures_by_country(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per destination country: messages that were not skipped, and failures among them."""
    return storage.df(
        f"SELECT coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}') AS country, "
        "       count(*) AS recipients, "
        f"      count(*) FILTER (WHERE status IN {_FAILED_IN}) AS failures "
        "FROM message_status WHERE mailing_id = ? AND status <> 'skipped' "
        "GROUP BY 1 ORDER BY failures DESC, recipients DESC, country",
        [int(mailing_id)],
    )


def q_number_ranges(storage: Storage, mailing_id: int, codes: Sequence[str],
                    lengths: Sequence[int]) -> pd.DataFrame:  # fmt: skip
    """Messages grouped by number range: the first `length` digits after the country code's
    `+` (per calling code, the longest prefix phonenumbers' carrier data uses), and the
    number's length. All numbers of a group share one carrier entry, so one sample each is
    looked up instead of every number."""
    return storage.df(
        "WITH m AS (SELECT e164, country, status FROM message_status "
        "           WHERE mailing_id = ? AND status <> 'skipped'), "
        "cc AS (SELECT unnest(?::VARCHAR[]) AS cc, unnest(?::INTEGER[]) AS l), "
        "k AS (SELECT m.*, coalesce(c1.l, c2.l, c3.l, 9) AS l FROM m "
        "      LEFT JOIN cc c1 ON c1.cc = substr(m.e164, 2, 1) "
        "      LEFT JOIN cc c2 ON c2.cc = substr(m.e164, 2, 2) "
        "      LEFT JOIN cc c3 ON c3.cc = substr(m.e164, 2, 3)) "
        "SELECT substr(e164, 1, 1 + l) AS prefix, length(e164) AS len, "
        "       min(e164) AS sample, "
        f"      coalesce(nullif(any_value(country), ''), '{UNKNOWN_COUNTRY}') AS country, "
        "       count(*) AS recipients, "
        f"      count(*) FILTER (WHERE status IN {_FAILED_IN}) AS failures "
        "FROM k GROUP BY 1, 2",
        [int(mailing_id), list(codes), [int(x) for x in lengths]],
    )


def q_segments_by_country(storage: Storage, mailing_id: int) -> pd.DataFrame:
    """Per country: recipients and segments planned (not skipped), segments accepted by the
    provider, and messages delivered."""
    return storage.df(
        f"SELECT coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}') AS country, "
        "       count(*) FILTER (WHERE status <> 'skipped') AS recipients, "
        "       coalesce(sum(parts) FILTER (WHERE status <> 'skipped'), 0) AS planned_segments, "
        "       coalesce(sum(parts_submitted), 0) AS segments, "
        "       count(*) FILTER (WHERE status = 'delivered') AS delivered "
        "FROM message_status WHERE mailing_id = ? GROUP BY 1 ORDER BY 1",
        [int(mailing_id)],
    )


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


_PER_MAILING_SQL = f"""
    WITH prices AS (
        SELECT unnest(?::VARCHAR[]) AS country, unnest(?::DOUBLE[]) AS price
    ),
    per_country AS (
        SELECT mailing_id, coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}') AS country,
               count(*) AS recipients,
               count(*) FILTER (WHERE status <> 'skipped') AS sendable,
               count(*) FILTER (WHERE parts_submitted >= parts) AS submitted,
               count(*) FILTER (WHERE status = 'delivered') AS delivered,
               count(*) FILTER (WHERE status IN {_FAILED_IN}) AS failed,
               count(*) FILTER (WHERE status = 'unknown') AS unknown,
               count(*) FILTER (WHERE status IN ('queued', 'submitted')) AS pending,
               coalesce(sum(parts_submitted), 0) AS segments
        FROM message_status GROUP BY 1, 2
    ),
    per_mailing AS (
        SELECT c.mailing_id, sum(recipients) AS recipients, sum(sendable) AS sendable,
               sum(submitted) AS submitted, sum(delivered) AS delivered,
               sum(failed) AS failed, sum(unknown) AS unknown, sum(pending) AS pending,
               sum(segments) AS segments,
               sum(segments * coalesce(p.price, ?)) AS cost
        FROM per_country c LEFT JOIN prices p ON p.country = c.country
        GROUP BY c.mailing_id
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
    """Mailings grouped by the period they started in, with summed counts and cost."""
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
    if not tables:
        return pd.DataFrame()
    union = " UNION ALL ".join(
        f"SELECT ? AS database, _country AS country, _phone_status AS status "
        f"FROM {quote_ident(table)}"
        for _, table in tables
    )
    return storage.df(
        f"WITH c AS ({union}) "
        "SELECT database, "
        f"      CASE WHEN grouping(country) = 1 THEN '(all)' "
        f"           ELSE coalesce(nullif(country, ''), '{UNKNOWN_COUNTRY}') END AS country, "
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
# Carrier (mobile operator) names, per number range.
# =============================================================================================
@lru_cache(maxsize=1)
def carrier_prefix_lengths() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Per calling code, the longest prefix (in digits, calling code included) that
    phonenumbers' carrier data distinguishes. Calling codes are prefix-free, so a number's
    code is the one of its first 1, 2 or 3 digits found here."""
    from phonenumbers.carrierdata import CARRIER_DATA

    codes = {str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
    longest = {c: len(c) for c in codes}
    for key in CARRIER_DATA:
        for n in (1, 2, 3):
            if key[:n] in codes:
                longest[key[:n]] = max(longest[key[:n]], len(key))
                break
    ordered = sorted(longest)
    return tuple(ordered), tuple(longest[c] for c in ordered)


@lru_cache(maxsize=65536)
def operator_name(e164: str) -> str:
    """The mobile operator the number range was allocated to ('' when unknown).

    Ported numbers keep the original operator: that is what the number range tells.
    """
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ""
    return _carrier.name_for_number(number, "en") or ""


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

    def _stats_mailing(self, mailing_id: int) -> dict[str, Any]:
        row = q_mailing_row(self.storage, int(mailing_id))
        if row is None:
            from core.errors import NotFound

            raise NotFound(f"There is no mailing {mailing_id}.")
        return row

    def mailing_live(self, mailing_id: int) -> bool:
        """Whether the mailing's figures can still change soon: it is scheduled or sending,
        or it finished less than REPORT_WAIT_HOURS ago with reports still outstanding."""
        row = self._stats_mailing(mailing_id)
        if row["state"] in LIVE_STATES:
            return True
        if row["state"] != "finished" or row["finished_at"] is None:
            return False
        age = (self.clock() - row["finished_at"]).total_seconds()
        if age > REPORT_WAIT_HOURS * 3600:
            return False
        waiting = self.storage.one(
            "SELECT count(*) FROM message_status WHERE mailing_id = ? AND status = 'submitted'",
            [int(mailing_id)],
        )
        return bool(waiting)

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
        rollup = q_status_rollup(self.storage, int(mailing_id))
        counts = {s: 0 for s in OUTCOME_ORDER}
        for status, n in zip(rollup["status"], rollup["messages"], strict=True):
            counts[str(status)] = int(n)
        recipients = int(rollup["messages"].sum()) if len(rollup) else 0
        submitted = int(rollup["submitted"].sum()) if len(rollup) else 0
        recon = row["reconciliation"] if isinstance(row["reconciliation"], dict) else {}
        selection, left_out = _reconciliation(recon)
        stage_rows = []
        if selection is not None:
            stage_rows.append(("selection", selection))
        stage_rows += [("recipients", recipients), ("submitted", submitted),
                       ("delivered", counts["delivered"])]  # fmt: skip
        stages = pd.DataFrame(stage_rows, columns=["stage", "count"])
        first = stages["count"].iloc[0] if len(stages) else 0
        stages["pct_of_first"] = _pct(stages["count"], first)
        stages["pct_of_previous"] = _pct(stages["count"], stages["count"].shift(1))
        stages.loc[0, "pct_of_previous"] = 100.0 if first else math.nan
        outcomes = pd.DataFrame({
            "status": list(OUTCOME_ORDER),
            "messages": [counts[s] for s in OUTCOME_ORDER],
        })  # fmt: skip
        outcomes["pct"] = _pct(outcomes["messages"], recipients)
        multi = rollup[["multipart", "multipart_all", "multipart_some", "multipart_none"]].sum()
        parts = {
            "multipart": int(multi["multipart"]), "all": int(multi["multipart_all"]),
            "some": int(multi["multipart_some"]), "none": int(multi["multipart_none"]),
            "parts": int(rollup["parts"].sum()) if len(rollup) else 0,
            "parts_submitted": int(rollup["parts_submitted"].sum()) if len(rollup) else 0,
            "parts_delivered": int(rollup["parts_delivered"].sum()) if len(rollup) else 0,
        }  # fmt: skip
        failures = sum(counts[s] for s in FAILURE_STATUSES)
        return {
            "mailing_id": int(mailing_id), "state": row["state"], "kind": row["kind"],
            "started_at": row["started_at"], "finished_at": row["finished_at"],
            "selection": selection, "left_out": left_out, "recipients": recipients,
            "submitted": submitted, "delivered": counts["delivered"],
            "undelivered": counts["undelivered"], "failed": counts["failed"],
            "expired": counts["expired"], "unknown": counts["unknown"],
            "skipped": counts["skipped"], "queued": counts["queued"],
            "awaiting_report": counts["submitted"], "failures": failures,
            "status_counts": counts,
            "delivery_rate": _ratio(counts["delivered"], submitted),
            "stages": stages, "outcomes": outcomes, "parts": parts,
        }  # fmt: skip

    def mailing_timeline(self, mailing_id: int, step: int | None = None) -> pd.DataFrame:
        """Deliveries over time since the start, in buckets of `step` seconds (chosen from
        BUCKET_STEPS for at most MAX_BUCKETS buckets when None).

        Columns: at (bucket start), seconds (since the start), submitted, delivered, failed,
        and the running totals submitted_total, delivered_total, failed_total. Empty buckets
        are present with zeros, so the curves are continuous.
        """
        row = self._stats_mailing(mailing_id)
        columns = ["at", "seconds", "submitted", "delivered", "failed", "submitted_total",
                   "delivered_total", "failed_total"]  # fmt: skip
        origin = row["started_at"]
        last = q_time_span(self.storage, int(mailing_id))
        if origin is None or last is None:
            return pd.DataFrame(columns=columns)
        if step is None:
            step = choose_step((last - origin).total_seconds())
        step = max(int(step), 1)
        frame = q_timeline(self.storage, int(mailing_id), origin, step)
        buckets = int(frame["bucket"].max()) + 1 if len(frame) else 1
        full = (
            frame.set_index("bucket").reindex(range(buckets), fill_value=0)
            .rename_axis("bucket").reset_index()
        )
        full["seconds"] = full["bucket"].astype("int64") * step
        full["at"] = pd.Timestamp(origin) + pd.to_timedelta(full["seconds"], unit="s")
        for col in ("submitted", "delivered", "failed"):
            full[col] = full[col].astype("int64")
            full[f"{col}_total"] = full[col].cumsum()
        return full[columns]

    def delivery_latency(self, mailing_id: int) -> dict[str, Any]:
        """Time from submission to delivery report: count, median, p90, p99, mean and max
        (seconds, None when there are no reports) and `histogram` DataFrame [bin, lo, hi,
        messages] over LATENCY_EDGES (bins include their upper bound)."""
        self._stats_mailing(mailing_id)
        count, quantiles, mean, top, hist = q_latency(self.storage, int(mailing_id),
                                                      LATENCY_EDGES)  # fmt: skip
        lows = (0.0, *LATENCY_EDGES)
        highs = (*LATENCY_EDGES, math.inf)
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
        failures (0..1).

        reason: [reason, statuses, failures, share]; country: [country, recipients,
        failures, share, failure_rate]; operator: [operator, country, recipients, failures,
        share, failure_rate] (the operator the number range belongs to, from phonenumbers'
        carrier data; '(unknown)' where it has none). `recipients` counts messages that were
        not skipped; `failure_rate` = failures / recipients.
        """
        self._stats_mailing(mailing_id)
        if by == "reason":
            frame = q_failures_by_reason(self.storage, int(mailing_id))
        elif by == "country":
            frame = q_failures_by_country(self.storage, int(mailing_id))
        elif by == "operator":
            frame = self._failures_by_operator(int(mailing_id))
        else:
            raise InvalidInput(f"Failures can be grouped by reason, country or operator, "
                               f"not {by!r}.")  # fmt: skip
        total = frame["failures"].sum() if len(frame) else 0
        frame["failures"] = frame["failures"].astype("int64")
        frame["share"] = frame["failures"] / total if total else 0.0
        if "recipients" in frame:
            frame["recipients"] = frame["recipients"].astype("int64")
            frame["failure_rate"] = frame["failures"] / frame["recipients"].where(
                frame["recipients"] > 0)
        return frame.reset_index(drop=True)

    def _failures_by_operator(self, mailing_id: int) -> pd.DataFrame:
        codes, lengths = carrier_prefix_lengths()
        ranges = q_number_ranges(self.storage, mailing_id, codes, lengths)
        columns = ["operator", "country", "recipients", "failures"]
        if ranges.empty:
            return pd.DataFrame(columns=columns).astype({"recipients": "int64",
                                                         "failures": "int64"})
        names = {s: operator_name(s) for s in ranges["sample"].unique()}
        ranges["operator"] = ranges["sample"].map(names).replace("", "(unknown)")
        return (
            ranges.groupby(["operator", "country"], as_index=False)[["recipients", "failures"]]
            .sum()
            .sort_values(["failures", "recipients", "operator"], ascending=[False, False, True])
            [columns]
        )

    def cost_actual_vs_estimate(self, mailing_id: int) -> dict[str, Any]:
        """Segments and cost estimated at confirmation against the actual ones, per country.

        The estimate is the one stored with the mailing (`mailings.estimate`); when there is
        none (older or command-line mailings) it is computed now from the planned messages
        × the price table (`estimate_source` says which). Actual: segments the provider
        accepted × the price table in use. Keys: by_country DataFrame [country,
        estimated_recipients, estimated_segments, estimated_cost, recipients, segments,
        cost, segments_diff, cost_diff], estimate_source ('confirmation' or 'computed'),
        currency, estimated_segments, estimated_cost, segments, cost, delivered,
        cost_per_delivered.
        """
        row = self._stats_mailing(mailing_id)
        prices = self._price_table()
        actual = q_segments_by_country(self.storage, int(mailing_id))
        priced = pricing.estimate_cost(actual[["country", "recipients", "segments"]], prices)
        actual = actual.merge(priced[["country", "price", "cost"]], on="country", how="left")
        stored = _estimate_frame(row["estimate"])
        if stored is not None:
            estimate, source = stored, "confirmation"
        else:
            planned = actual[["country", "recipients", "planned_segments"]].rename(
                columns={"planned_segments": "segments"})
            estimate = pricing.estimate_cost(planned, prices)[
                ["country", "recipients", "segments", "cost"]]
            source = "computed"
        estimate = estimate.rename(columns={
            "recipients": "estimated_recipients", "segments": "estimated_segments",
            "cost": "estimated_cost",
        })  # fmt: skip
        merged = estimate.merge(
            actual[["country", "recipients", "segments", "cost", "delivered"]],
            on="country", how="outer",
        )
        for col in ("estimated_recipients", "estimated_segments", "recipients", "segments",
                    "delivered"):
            merged[col] = pd.to_numeric(merged[col], errors="coerce").fillna(0).astype("int64")
        for col in ("estimated_cost", "cost"):
            merged[col] = pd.to_numeric(merged[col], errors="coerce").fillna(0.0)
        merged["segments_diff"] = merged["segments"] - merged["estimated_segments"]
        merged["cost_diff"] = merged["cost"] - merged["estimated_cost"]
        merged = merged.sort_values(["estimated_cost", "cost", "country"],
                                    ascending=[False, False, True]).reset_index(drop=True)
        delivered = int(merged["delivered"].sum())
        cost = float(merged["cost"].sum())
        currency = (row["estimate"] or {}).get("currency") if source == "confirmation" else None
        return {
            "by_country": merged.drop(columns="delivered"), "estimate_source": source,
            "currency": str(currency or pricing.currency_of(prices)),
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
        stops, stop_msgs, starts, other, numbers = q_replies(self.storage, int(mailing_id))
        delivered = int(self.storage.one(
            "SELECT count(*) FROM message_status WHERE mailing_id = ? AND status = 'delivered'",
            [int(mailing_id)],
        ) or 0)  # fmt: skip
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
        frame = q_mailings_overview(self.storage, self._price_arrays(), include_tests)
        return _with_rates(frame)

    def trends(self, period: str = "day", include_tests: bool = False) -> pd.DataFrame:
        """The overview summed per `period` (hour, day, week, month) of the mailings' start:
        period, mailings, recipients, submitted, delivered, failed, stops, segments, cost
        and the rates of `mailings_overview`."""
        if period not in PERIODS:
            raise InvalidInput(f"The period is one of {', '.join(PERIODS)}, not {period!r}.")
        frame = q_trends(self.storage, self._price_arrays(), period, include_tests)
        return _with_rates(frame)

    def suppression_growth(self, period: str = "day") -> pd.DataFrame:
        """The suppression list per period: added, stop_replies (added by a STOP reply),
        removed, and total (the list's size at the end of the period)."""
        if period not in PERIODS:
            raise InvalidInput(f"The period is one of {', '.join(PERIODS)}, not {period!r}.")
        frame = q_suppression_growth(self.storage, period)
        for col in ("added", "stop_replies", "removed", "total"):
            frame[col] = frame[col].astype("int64")
        return frame

    def phone_quality(self) -> pd.DataFrame:
        """Per contact database and country, and per database in total (country '(all)'):
        contacts, valid_mobile, not_mobile, invalid, missing and share_valid_mobile (0..1).

        Numbers that cannot be parsed have no country, so they sit under 'unknown'.
        """
        columns = ["database", "country", "contacts", "valid_mobile", "not_mobile",
                   "invalid", "missing", "share_valid_mobile"]  # fmt: skip
        frame = q_phone_quality(self.storage, q_contact_tables(self.storage))
        if frame.empty:
            return pd.DataFrame(columns=columns)
        for col in ("contacts", "valid_mobile", "not_mobile", "invalid", "missing"):
            frame[col] = frame[col].astype("int64")
        frame["share_valid_mobile"] = frame["valid_mobile"] / frame["contacts"].where(
            frame["contacts"] > 0)
        return frame[columns]

    # -- export -----------------------------------------------------------------------------
    def export_results(self, mailing_id: int, fmt: ExportFormat = "csv") -> bytes:
        """The mailing's per-recipient results (`mailing_results`) as file bytes.

        CSV: UTF-8 with BOM, every cell a spreadsheet would run as a formula (=, +, -, @)
        quoted (E.164 numbers included: spreadsheets hide the quote). Parquet: typed columns
        (timestamps in UTC), for pandas, DuckDB or the explore_results notebook.
        """
        if fmt not in ("csv", "parquet"):
            raise InvalidInput(f"Results export as csv or parquet, not {fmt!r}.")
        frame = self.mailing_results(int(mailing_id))  # type: ignore[attr-defined]
        if fmt == "csv":
            return to_safe_csv(frame)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    # -- helpers ----------------------------------------------------------------------------
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
    """The smallest bucket size from BUCKET_STEPS giving at most `max_buckets` buckets."""
    for step in BUCKET_STEPS:
        if span_seconds / step < max_buckets:
            return step
    return int(math.ceil(span_seconds / max_buckets / 86400) * 86400)


def _reconciliation(recon: dict[str, Any]) -> tuple[int | None, pd.DataFrame]:
    """The selection's size and the left-out counts from a stored reconciliation.

    Its `steps` map is ordered: the first entry is the starting population (e.g.
    in_selection), every later one a number of contacts left out, and why.
    """
    left = pd.DataFrame(columns=["reason", "contacts", "pct"]).astype(
        {"reason": "str", "contacts": "int64", "pct": "float64"})
    steps = recon.get("steps") if isinstance(recon, dict) else None
    if not isinstance(steps, dict) or not steps:
        return None, left
    items = [(str(k), _int(v)) for k, v in steps.items()]
    selection = items[0][1]
    rest = [(k.replace("_", " "), v) for k, v in items[1:]]
    if rest:
        left = pd.DataFrame(rest, columns=["reason", "contacts"])
        left["contacts"] = left["contacts"].astype("int64")
        left["pct"] = _pct(left["contacts"], selection)
    return selection, left


def _estimate_frame(estimate: Any) -> pd.DataFrame | None:
    """The per-country estimate stored at confirmation, as [country, recipients, segments,
    cost]; None when there is none or it cannot be read.

    Accepted shapes: a list of row objects under `by_country`, `cost_by_country`,
    `countries` or `per_country` (each with country, segments and cost or price; recipients
    optional), or a mapping country → {segments, cost}; without a per-country part, the
    totals (`segments`/`total_segments`, `cost`/`total_cost`) as one row '(all)'.
    """
    if not isinstance(estimate, dict) or not estimate:
        return None
    rows: Any = None
    for key in ("by_country", "cost_by_country", "countries", "per_country"):
        if key in estimate:
            rows = estimate[key]
            break
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
        if col not in frame:
            frame[col] = math.nan
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
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


def _py(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
