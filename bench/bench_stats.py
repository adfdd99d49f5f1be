"""Statistics at scale: every query behind the Statistics page, and the page itself.

Target: with 10,000,000 message events across 50 mailings, every query behind the
Statistics page answers in at most 300 ms, and the page renders in at most 2 seconds.
Beside it, the naive method: each message's status rolled up from its events at query time
(arg_max per message over message_events) instead of reading the `message_state` rows the
ledger keeps in step with the events.

    .venv/bin/python bench/bench_stats.py            # 10,000,000 events, 50 mailings
    .venv/bin/python bench/bench_stats.py --quick    # 1,000,000 events

The ledger is generated with DuckDB SQL straight into the tables (a tiny CSV import makes
the contact database the normal way): mailings one day apart, a fifth of all messages in
the largest one, 1-3 parts per message, realistic outcomes (delivered, undelivered with a
reason, expired, failed, refused at submit, no report yet), lognormal report delays, STOP
replies with their suppressions; the newest mailing is still sending. `message_state` is
derived from the generated events with the same roll-up the ledger applies per batch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("SMS_STUDIO_BACKGROUND", "0")

from core import stats  # noqa: E402
from core.studio import Studio  # noqa: E402

QUERY_TARGET_MS = 300.0
PAGE_TARGET_S = 2.0
EVENTS_PER_MESSAGE = 3.6  # about: 1.25 parts x (submitting, submitted, report), minus refusals
SEED_CSV = "customer_id,first_name,consent,mobile\n1,Anna,yes,0612345678\n"
# (country, E.164 prefix, digits after it, share of contacts)
NUMBER_PLAN = [("NL", "+316", 8, 0.82), ("BE", "+3247", 7, 0.06), ("DE", "+49151", 8, 0.05),
               ("GB", "+447", 9, 0.05), ("US", "+1201", 7, 0.02)]  # fmt: skip


def _country_case(key: str) -> tuple[str, str]:
    """SQL expressions for a country and a number derived from the integer `key`."""
    bounds, acc = [], 0.0
    for country, prefix, digits, share in NUMBER_PLAN:
        acc += share
        bounds.append((acc, country, prefix, digits))
    u = f"((hash({key} * 3 + 1) % 1000000) / 1e6)"
    country = "CASE " + " ".join(f"WHEN {u} < {b:.4f} THEN '{c}'" for b, c, _, _ in bounds[:-1])
    country += f" ELSE '{bounds[-1][1]}' END"
    number = "CASE " + " ".join(
        f"WHEN {u} < {b:.4f} THEN '{p}' || lpad(CAST(hash({key} * 5 + 2) % {10**d} AS VARCHAR), "
        f"{d}, '0')" for b, _, p, d in bounds[:-1]
    )
    _, _, p, d = bounds[-1]
    number += f" ELSE '{p}' || lpad(CAST(hash({key} * 5 + 2) % {10**d} AS VARCHAR), {d}, '0') END"
    return country, number


def build(studio: Studio, events: int, mailings: int, contacts: int, work: Path) -> dict:
    """Generate the contacts, mailings, messages, events, state, replies and suppressions."""
    seed = work / "seed.csv"
    seed.write_text(SEED_CSV, encoding="utf-8")
    studio.import_contacts(seed, database="bench", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes"], region="NL")  # fmt: skip
    info = studio.get_database("bench")
    table = info.table
    sql = studio.storage.execute
    country, number = _country_case("i")
    sql(f"DELETE FROM {table}")
    sql(f"""
        INSERT INTO {table} (_row_id, customer_id, first_name, consent, mobile, _e164, _country,
                             _number_type, _phone_status, _phone_reason)
        SELECT i, 'C' || i, 'Name', 'yes', '',
               CASE WHEN s < 0.97 THEN {number} ELSE '' END,
               CASE WHEN s < 0.97 THEN {country} END,
               CASE WHEN s < 0.96 THEN 'mobile' WHEN s < 0.97 THEN 'fixed_line' END,
               CASE WHEN s < 0.96 THEN 'valid_mobile' WHEN s < 0.97 THEN 'not_mobile'
                    WHEN s < 0.99 THEN 'invalid' ELSE 'missing' END,
               CASE WHEN s >= 0.97 AND s < 0.99 THEN 'too short' ELSE '' END
        FROM (SELECT i, (hash(i * 11) % 1000) / 1000.0 AS s FROM range({contacts}) t(i))
    """)

    # -- mailings: one a day; the largest holds a fifth of all messages ------------------------
    total = int(events / EVENTS_PER_MESSAGE)
    weights = [1.0 + (i % 5) for i in range(mailings - 1)]
    sizes = [int(total * 0.2)] + [int(total * 0.8 * w / sum(weights)) for w in weights]
    sizes = sizes[::-1]  # the biggest is the newest finished one... then one still sending
    sizes[-2], sizes[-1] = sizes[-1], sizes[-2]
    first = 1
    plan = []
    for i, n in enumerate(sizes):
        plan.append((i + 1, n, first))
        first += n
    values = ", ".join(
        f"({mid}, {n}, {fid}, TIMESTAMP '2025-01-01 08:00:00' + INTERVAL {mid - 1} DAY)"
        for mid, n, fid in plan
    )
    sql(f"CREATE TEMP TABLE plan AS SELECT * FROM (VALUES {values}) t(mailing_id, n, first_id, "
        "started_at)")  # fmt: skip
    sql(f"""
        INSERT INTO mailings (id, kind, database_id, sender, body, state, scheduled_at,
                              created_at, started_at, finished_at, split_max_parts)
        SELECT mailing_id, 'bulk', {info.id}, 'Shop', 'Hello {{first_name}}',
               CASE WHEN mailing_id = {mailings} THEN 'sending' ELSE 'finished' END,
               started_at, started_at - INTERVAL 1 HOUR, started_at,
               CASE WHEN mailing_id = {mailings} THEN NULL
                    ELSE started_at + INTERVAL 2 HOUR END, 4
        FROM plan
    """)
    m_country, m_number = _country_case(f"((p.first_id + r) % {contacts})")
    sql(f"""
        INSERT INTO messages (id, mailing_id, contact_key, e164, country, sender, body, encoding,
                              parts, concat_ref, initial_status, skip_reason)
        SELECT p.first_id + r, p.mailing_id, 'C' || ((p.first_id + r) % {contacts}),
               {m_number}, {m_country}, 'Shop', 'Hello', 'GSM-7',
               CASE WHEN u < 0.80 THEN 1 WHEN u < 0.95 THEN 2 ELSE 3 END,
               ((p.first_id + r) % 256)::INTEGER,
               CASE WHEN u2 < 0.002 THEN 'skipped' ELSE 'queued' END,
               CASE WHEN u2 < 0.002 THEN 'needs 5 parts, the limit is 4' END
        FROM (SELECT *, unnest(range(n)) AS r FROM plan) p,
             LATERAL (SELECT (hash((p.first_id + r) * 13) % 1000) / 1000.0 AS u,
                             (hash((p.first_id + r) * 17) % 1000) / 1000.0 AS u2)
        ORDER BY 1
    """)

    # -- events: 500 messages/s; fates per message, a few partial multi-part deliveries --------
    sql(f"""
        CREATE TEMP TABLE fate AS
        SELECT m.id, m.mailing_id, m.parts, p.started_at, p.n, m.id - p.first_id AS r,
               (hash(m.id * 19) % 100000) / 100000.0 AS f,
               (hash(m.id * 23) % 1000) AS rr
        FROM messages m JOIN plan p USING (mailing_id)
        WHERE m.initial_status = 'queued'
          AND NOT (p.mailing_id = {mailings} AND m.id - p.first_id > 0.7 * p.n)
    """)
    sql("""
        CREATE TEMP TABLE ev AS
        WITH parts AS (
            SELECT *, unnest(range(parts)) AS part FROM fate
        ), t AS (
            SELECT *, started_at + to_microseconds((r * 2000 + part * 100)::BIGINT) AS t_sub,
                   -- lognormal delay, median 3 s (sum of 4 uniforms ~ normal)
                   3.0 * exp(0.9 * (((hash(id * 29 + part) % 1000) + (hash(id * 31 + part) % 1000)
                        + (hash(id * 37 + part) % 1000) + (hash(id * 41 + part) % 1000))
                        / 1000.0 - 2.0) * 1.732) AS delay,
                   (hash(id * 43 + part) % 1000) / 1000.0 AS pu
            FROM parts
        ), o AS (
            SELECT *, CASE
                WHEN f < 0.010 THEN 'rejected'
                WHEN f < 0.015 THEN 'none'
                WHEN f < 0.020 THEN 'failed'
                WHEN f < 0.030 THEN 'expired'
                WHEN f < 0.065 THEN 'undelivered'
                WHEN parts > 1 AND f < 0.075 AND part = parts - 1 THEN 'undelivered'
                ELSE 'delivered' END AS outcome
            FROM t
        )
        SELECT id AS message_id, mailing_id, part, 'submitting' AS event, NULL AS provider_id,
               NULL AS reason, t_sub AS ts FROM o
        UNION ALL
        SELECT id, mailing_id, part, CASE WHEN outcome = 'rejected' THEN 'rejected'
                                          ELSE 'submitted' END,
               CASE WHEN outcome <> 'rejected' THEN 'p' || id || '-' || part END,
               CASE WHEN outcome = 'rejected' THEN 'invalid destination address' END,
               t_sub + INTERVAL 50 MILLISECOND FROM o
        UNION ALL
        SELECT id, mailing_id, part, outcome, 'p' || id || '-' || part,
               CASE outcome WHEN 'failed' THEN 'network error' WHEN 'expired' THEN 'expired'
                   WHEN 'undelivered' THEN ['absent subscriber', 'unknown subscriber',
                        'blocked', 'absent subscriber'][(1 + rr % 4)::BIGINT] END,
               t_sub + INTERVAL 50 MILLISECOND + to_microseconds((delay * 1e6)::BIGINT)
        FROM o WHERE outcome NOT IN ('rejected', 'none')
    """)
    sql("INSERT INTO message_events SELECT * FROM ev ORDER BY ts")
    n_events = int(studio.storage.one("SELECT count(*) FROM message_events"))

    # -- message_state, rolled up from the events as the ledger does per batch -----------------
    sql("""
        INSERT INTO message_state (message_id, mailing_id, submitted_mask, delivered_mask,
            report_severity, rejected, unknown, skipped, reason, submitted_at, done_at)
        SELECT m.id, m.mailing_id, coalesce(d.sub_mask, 0), coalesce(d.del_mask, 0),
               coalesce(d.severity, 0), coalesce(d.rejected, false), false,
               m.initial_status = 'skipped', coalesce(d.reason, m.skip_reason),
               d.submitted_at,
               CASE WHEN m.initial_status = 'skipped' THEN p.started_at ELSE d.done_at END
        FROM messages m JOIN plan p USING (mailing_id) LEFT JOIN (
            SELECT message_id,
                bit_or(CASE WHEN event = 'submitted' THEN (1::BIGINT << part) ELSE 0 END)
                    AS sub_mask,
                bit_or(CASE WHEN event = 'delivered' THEN (1::BIGINT << part) ELSE 0 END)
                    AS del_mask,
                max(CASE event WHEN 'failed' THEN 4 WHEN 'undelivered' THEN 3
                               WHEN 'expired' THEN 2 WHEN 'report_unknown' THEN 1 ELSE 0 END)
                    AS severity,
                bool_or(event = 'rejected') AS rejected,
                arg_max(reason, ts) FILTER (WHERE reason IS NOT NULL) AS reason,
                max(ts) FILTER (WHERE event = 'submitted') AS submitted_at,
                max(ts) FILTER (WHERE event IN ('rejected', 'delivered', 'undelivered',
                                                'expired', 'failed')) AS done_at
            FROM message_events WHERE event <> 'submitting' GROUP BY message_id
        ) d ON d.message_id = m.id
        ORDER BY m.id
    """)

    # -- STOP replies (0.4% of delivered) and their suppressions -------------------------------
    sql("""
        CREATE TEMP TABLE stops AS
        SELECT s.e164, s.mailing_id, s.done_at + INTERVAL 90 SECOND AS stop_at
        FROM message_status s
        WHERE s.status = 'delivered' AND hash(s.message_id * 47) % 1000 < 4
    """)
    sql("INSERT INTO inbound (received_at, sender_raw, e164, recipient, text, kind, mailing_id) "
        "SELECT stop_at, e164, e164, 'Shop', 'STOP', 'stop', mailing_id FROM stops")  # fmt: skip
    sql("INSERT INTO suppression_log (e164, action, reason, source, mailing_id, ts) "
        "SELECT e164, 'add', 'stop_reply', 'reply', mailing_id, stop_at FROM stops")  # fmt: skip
    sql("INSERT INTO suppressions (e164, reason, source, mailing_id, added_at) "
        "SELECT e164, 'stop_reply', 'reply', arg_min(mailing_id, stop_at), min(stop_at) FROM stops "
        "GROUP BY e164")  # fmt: skip

    # -- what was stored at launch: reconciliation, and an estimate on every other mailing -----
    per_country = studio.storage.df(
        "SELECT mailing_id, country, count(*) AS recipients, sum(parts) AS segments "
        "FROM messages WHERE initial_status = 'queued' GROUP BY 1, 2"
    )
    prices = studio.price_table().set_index("country")["price_per_segment"]
    for mid, n, _ in plan:
        rows = per_country[per_country["mailing_id"] == mid]
        recon = {"steps": {"in_selection": int(n * 1.4), "no_number": int(n * 0.01),
                           "invalid_number": int(n * 0.02), "not_mobile": int(n * 0.01),
                           "no_consent": int(n * 0.33), "suppressed": int(n * 0.01),
                           "duplicate_number": int(n * 1.4) - n - int(n * 0.38)},
                 "recipients": n}  # fmt: skip
        estimate = None
        if mid % 2 == 0:
            by_country = [{"country": c, "recipients": int(r), "segments": int(s),
                           "cost": float(s) * float(prices.get(c, prices["*"]))}
                          for c, r, s in zip(rows["country"], rows["recipients"],
                                             rows["segments"], strict=True)]  # fmt: skip
            estimate = json.dumps({"by_country": by_country, "currency": "EUR",
                                   "total_cost": sum(r["cost"] for r in by_country)})
        sql("UPDATE mailings SET reconciliation = ?, estimate = ? WHERE id = ?",
            [json.dumps(recon), estimate, mid])
    sql("CHECKPOINT")
    return {
        "events": n_events, "mailings": mailings, "largest": max(plan, key=lambda p: p[1])[0],
        "largest_messages": max(sizes), "messages": sum(sizes), "sending": mailings,
    }


def forget_scans() -> None:
    """Drop the remembered per-mailing scans, so the next call computes them again."""
    stats._memos.clear()


def timed(fn: Callable[[], Any], repeat: int = 3, cold: bool = False
          ) -> tuple[float, float, Any]:  # fmt: skip
    """Median wall and CPU (all threads of this process) ms over `repeat` runs after a
    warm-up run; `cold` forgets the remembered scans before each run. CPU time tells the
    work apart from waiting on a busy machine."""
    result = fn()
    walls, cpus = [], []
    for _ in range(repeat):
        if cold:
            forget_scans()
        start, cpu = perf_counter(), process_time()
        result = fn()
        walls.append((perf_counter() - start) * 1000)
        cpus.append((process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def naive_funnel(studio: Studio, mailing_id: int) -> Any:
    """The status rollup at query time: latest event per (message, part) from the events."""
    return studio.storage.df(
        """
        WITH last AS (
            SELECT message_id, part, arg_max(event, ts) AS event
            FROM message_events WHERE mailing_id = ? AND event <> 'submitting'
            GROUP BY message_id, part
        )
        SELECT status, count(*) FROM (
            SELECT message_id, CASE
                WHEN bool_or(event = 'rejected') THEN 'failed'
                WHEN bool_or(event = 'failed') THEN 'failed'
                WHEN bool_or(event = 'undelivered') THEN 'undelivered'
                WHEN bool_or(event = 'expired') THEN 'expired'
                WHEN bool_and(event = 'delivered') THEN 'delivered'
                ELSE 'submitted' END AS status
            FROM last GROUP BY message_id
        ) GROUP BY status
        """,
        [mailing_id],
    )


def run_queries(studio: Studio, mailing_id: int) -> list[tuple[str, float, float, float]]:
    m = mailing_id
    queries: list[tuple[str, Callable[[], Any]]] = [
        ("stats_mailings", studio.stats_mailings),
        ("mailing_live", lambda: studio.mailing_live(m)),
        ("mailing_funnel", lambda: studio.mailing_funnel(m)),
        ("mailing_timeline", lambda: studio.mailing_timeline(m)),
        ("delivery_latency", lambda: studio.delivery_latency(m)),
        ("failures_by reason", lambda: studio.failures_by(m, "reason")),
        ("failures_by country", lambda: studio.failures_by(m, "country")),
        ("failures_by operator", lambda: studio.failures_by(m, "operator")),
        ("cost_actual_vs_estimate", lambda: studio.cost_actual_vs_estimate(m)),
        ("mailing_replies", lambda: studio.mailing_replies(m)),
        ("mailings_overview", studio.mailings_overview),
        ("trends (day)", lambda: studio.trends("day")),
        ("trends (week)", lambda: studio.trends("week")),
        ("suppression_growth", studio.suppression_growth),
        ("phone_quality", studio.phone_quality),
    ]
    out = []
    for name, fn in queries:
        wall, cpu, _ = timed(fn, cold=True)
        warm, _, _ = timed(fn)
        out.append((name, wall, cpu, warm))
    return out


def page_timing(studio: Studio, db: Path, mailing_id: int) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of AppTest runs of the Statistics page: the process's first run
    (imports included), the mailing view with its rollup and scans recomputed (as after new
    events), the same view again (a click: nothing changed), and the overall view."""
    from streamlit.testing.v1 import AppTest

    os.environ["SMS_STUDIO_DB"] = str(db)
    os.chdir(ROOT)
    out: dict[str, tuple[float, float]] = {}
    at = AppTest.from_file(str(ROOT / "pages" / "statistics.py"), default_timeout=120)
    at.session_state["stats_mailing"] = mailing_id

    def run(prepare: Callable[[], Any] | None = None, times: int = 3) -> tuple[float, float]:
        walls, cpus = [], []
        for _ in range(times):
            if prepare is not None:
                prepare()
            start, cpu = perf_counter(), process_time()
            at.run()
            walls.append(perf_counter() - start)
            cpus.append(process_time() - cpu)
            if at.exception:
                raise RuntimeError(f"the page failed: {at.exception[0].value}")
        return statistics.median(walls), statistics.median(cpus)

    def changed() -> None:  # as after new events: rollup and scans computed again
        studio.storage.execute("DELETE FROM stats_rollup_version WHERE mailing_id = ?",
                               [mailing_id])
        forget_scans()

    out["first run of the process"] = run(times=1)
    out["mailing view, cold"] = run(changed)
    out["mailing view, warm"] = run()
    at.session_state["stats_view"] = "Overall"
    out["overall view"] = run()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000,000 events")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--mailings", type=int, default=50)
    ap.add_argument("--contacts", type=int, default=None)
    ap.add_argument("--no-page", action="store_true", help="skip the AppTest page timing")
    ap.add_argument("--keep", metavar="FILE", help="build (or reuse) the database in FILE")
    args = ap.parse_args()
    events = args.events or (1_000_000 if args.quick else 10_000_000)
    contacts = args.contacts or (100_000 if args.quick else 1_000_000)

    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        work = Path(tmp)
        db = Path(args.keep) if args.keep else work / "stats.duckdb"
        fresh = not db.exists()
        studio = Studio(db)
        try:
            if fresh:
                start = perf_counter()
                info = build(studio, events, args.mailings, contacts, work)
                print(f"generated {info['events']:,} events, {info['messages']:,} messages in "
                      f"{info['mailings']} mailings (largest: #{info['largest']}, "
                      f"{info['largest_messages']:,} messages), {contacts:,} contacts "
                      f"in {perf_counter() - start:.1f} s")
            else:
                row = studio.storage.rows(
                    "SELECT mailing_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
                info = {"largest": int(row[0][0]), "largest_messages": int(row[0][1]),
                        "sending": int(studio.storage.one("SELECT max(id) FROM mailings"))}
                print(f"reusing {db}: {studio.storage.one('SELECT count(*) FROM message_events'):,}"
                      " events")
            start = perf_counter()
            built = studio.refresh_rollups()
            print(f"stats_rollup brought up to date for {len(built)} mailings in "
                  f"{perf_counter() - start:.2f} s (once; afterwards only changed mailings)")
            worst = 0.0
            for label, mid in (("largest mailing", info["largest"]),
                               ("mailing still sending", info["sending"])):
                print(f"\nqueries, {label} (#{mid}); median of 3 after a warm-up; cold: "
                      "scans computed again, warm: the mailing did not change since")
                for name, wall, cpu, warm in run_queries(studio, mid):
                    worst = max(worst, wall)
                    flag = "" if wall <= QUERY_TARGET_MS else \
                        f"  (over {QUERY_TARGET_MS:.0f} ms)"
                    print(f"  {name:<26} cold {wall:7.1f} ms wall {cpu:7.1f} ms cpu · "
                          f"warm {warm:6.1f} ms{flag}")
            print(f"slowest query: {worst:.1f} ms wall (target {QUERY_TARGET_MS:.0f} ms)")
            print(f"load average while measuring: {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores")

            def rebuild_largest() -> None:
                studio.storage.execute(
                    "DELETE FROM stats_rollup_version WHERE mailing_id = ?", [info["largest"]])
                studio.refresh_rollups(info["largest"])

            wall, cpu, _ = timed(rebuild_largest, cold=True)
            print(f"\nrollup of the largest mailing recomputed (as after new events): "
                  f"{wall:.1f} ms wall, {cpu:.1f} ms cpu")

            def overview_without_rollup() -> Any:
                return studio.storage.df(
                    "SELECT mailing_id, country, status, count(*), sum(parts_submitted) "
                    "FROM message_status GROUP BY ALL")

            wall_raw, _, _ = timed(overview_without_rollup)
            wall_ov, _, _ = timed(studio.mailings_overview)
            print(f"overview of all mailings: from stats_rollup {wall_ov:.1f} ms, grouping "
                  f"message_status directly {wall_raw:.1f} ms (x{wall_raw / wall_ov:.1f})")
            naive_ms, _, _ = timed(lambda: naive_funnel(studio, info["largest"]))
            state_ms, _, _ = timed(lambda: studio.storage.df(
                "SELECT status, count(*) FROM message_status WHERE mailing_id = ? GROUP BY 1",
                [info["largest"]]))
            print(f"status rollup of the largest mailing: message_state {state_ms:.1f} ms, "
                  f"naive arg_max over its events {naive_ms:.1f} ms "
                  f"(x{naive_ms / max(state_ms, 1e-9):.1f})")

            for fmt in ("csv", "parquet"):
                start = perf_counter()
                data = studio.export_results(info["largest"], fmt)  # type: ignore[arg-type]
                secs = perf_counter() - start
                print(f"export {fmt}: {info['largest_messages']:,} rows, {len(data) / 1e6:.1f} MB"
                      f" in {secs:.2f} s ({info['largest_messages'] / secs:,.0f} rows/s)")

            if not args.no_page:
                timings = page_timing(studio, db, info["largest"])
                print("\nStatistics page (AppTest, largest mailing):")
                for name, (secs, cpu) in timings.items():
                    flag = "" if secs <= PAGE_TARGET_S or "process" in name else \
                        f"  (over {PAGE_TARGET_S:.0f} s)"
                    print(f"  {name:<26} {secs:6.2f} s wall {cpu:6.2f} s cpu{flag}")
                print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        finally:
            studio.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
