"""Statistics on a hand-built ledger whose answers are known, written through the real ledger.

The mailing below has twelve recipients with every fate a message can have; each figure the
Statistics page shows is checked against the number worked out by hand in the comments.
"""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest

from core import ledger
from core.dispatcher import EventBatch
from core.errors import InvalidInput, NotFound
from core.stats import LATENCY_EDGES, choose_step, operator_name
from core.studio import Studio

T0 = datetime(2025, 3, 1, 10, 0, 0)
PRICES = "country,price_per_segment,currency\n*,0.10,EUR\nNL,0.05,EUR\nBE,0.08,EUR\nDE,0.09,EUR\n"

# id, e164, country, parts, contact key
RECIPIENTS = [
    (1, "+31612345001", "NL", 1, "k1"),
    (2, "+31612345002", "NL", 1, "k2"),
    (3, "+31612345003", "NL", 2, "k3"),
    (4, "+31612345004", "NL", 2, "k4"),
    (5, "+32470123456", "BE", 1, "k5"),
    (6, "+32470123457", "BE", 1, "k6"),
    (7, "+4915112345678", "DE", 1, "k7"),
    (8, "+4915112345679", "DE", 1, '=HYPERLINK("http://evil")'),
    (9, "+447700900123", "GB", 3, "k9"),
    (10, "+31612345010", "NL", 5, "k10"),  # skipped at launch: too many parts
    (11, "+31612345011", "NL", 1, "k11"),  # still queued
    (12, "+31612345012", "NL", 1, "k12"),
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def submit(batch: EventBatch, mailing: int, message: int, part: int, second: float) -> None:
    batch.add(message, mailing, part, "submitting", ts=at(second - 0.5))
    batch.add(message, mailing, part, "submitted", f"p{mailing}-{message}-{part}",
              ts=at(second))  # fmt: skip


def report(batch: EventBatch, mailing: int, message: int, part: int, event: str,
           second: float, reason: str | None = None) -> None:  # fmt: skip
    batch.add(message, mailing, part, event, f"p{mailing}-{message}-{part}", reason, at(second))


def new_mailing(studio: Studio, kind: str = "bulk", started: datetime = T0) -> int:
    return int(studio.storage.one(
        "INSERT INTO mailings (kind, sender, body, state, scheduled_at, created_at) "
        "VALUES (?, 'Shop', 'Hello', 'scheduled', ?, ?) RETURNING id",
        [kind, started, started],
    ))  # fmt: skip


def snapshot(studio: Studio, mailing: int, rows: list[tuple], started: datetime,
             reconciliation: dict) -> None:  # fmt: skip
    ids = [r[0] + 100 * (mailing - 1) for r in rows]
    table = pa.table({
        "id": pa.array(ids, pa.int64()),
        "mailing_id": pa.array([mailing] * len(rows), pa.int64()),
        "contact_key": pa.array([r[4] for r in rows], pa.string()),
        "e164": pa.array([r[1] for r in rows], pa.string()),
        "country": pa.array([r[2] for r in rows], pa.string()),
        "sender": pa.array(["Shop"] * len(rows), pa.string()),
        "body": pa.array(["Hello"] * len(rows), pa.string()),
        "encoding": pa.array(["GSM-7"] * len(rows), pa.string()),
        "parts": pa.array([r[3] for r in rows], pa.int32()),
        "concat_ref": pa.array([i % 256 for i in ids], pa.int32()),
        "initial_status": pa.array(["skipped" if r[3] > 4 else "queued" for r in rows],
                                   pa.string()),
        "skip_reason": pa.array(["needs 5 parts, the limit is 4" if r[3] > 4 else None
                                 for r in rows], pa.string()),
        "shift_table": pa.array([None] * len(rows), pa.string()),
    })  # fmt: skip
    assert ledger.write_snapshot(studio.storage, mailing, table, started_at=started,
                                 late_seconds=0.0, reconciliation=reconciliation)


def build_main_mailing(studio: Studio, estimate: dict | None = None) -> int:
    mailing = new_mailing(studio)
    snapshot(studio, mailing, RECIPIENTS, T0, {
        "steps": {"in_selection": 20, "no_consent": 5, "duplicate_number": 3},
        "recipients": 12, "queued": 11, "skipped_too_many_parts": 1,
    })  # fmt: skip
    m = mailing
    b = EventBatch()
    submit(b, m, 1, 0, 1)
    submit(b, m, 2, 0, 1)
    submit(b, m, 3, 0, 2)
    submit(b, m, 3, 1, 2)
    submit(b, m, 4, 0, 2)
    submit(b, m, 4, 1, 2)
    submit(b, m, 5, 0, 3)
    submit(b, m, 6, 0, 3)
    b.add(7, m, 0, "submitting", ts=at(3.5))
    b.add(7, m, 0, "rejected", None, "invalid destination", at(4))
    submit(b, m, 8, 0, 4)
    for part in range(3):
        submit(b, m, 9, part, 5)
    submit(b, m, 12, 0, 6)
    ledger.record_events(studio.storage, b)
    r = EventBatch()
    report(r, m, 1, 0, "delivered", 3)  # latency 2 s
    report(r, m, 2, 0, "delivered", 5)  # 4 s
    report(r, m, 3, 0, "delivered", 4)
    report(r, m, 3, 1, "delivered", 12)  # 10 s, all parts delivered
    report(r, m, 4, 0, "delivered", 5)
    report(r, m, 4, 1, "undelivered", 8, "absent subscriber")  # 6 s, some parts
    report(r, m, 5, 0, "undelivered", 33, "absent subscriber")  # 30 s
    report(r, m, 6, 0, "expired", 63)  # 60 s, no reason: the status is the reason
    for part in range(3):
        report(r, m, 9, part, "undelivered", 9, "blocked")  # 4 s, no part delivered
    report(r, m, 12, 0, "failed", 7, "network error")  # 1 s
    ledger.record_events(studio.storage, r)
    studio.storage.execute(
        "UPDATE mailings SET state = 'finished', finished_at = ?, estimate = ? WHERE id = ?",
        [at(70), json.dumps(estimate) if estimate else None, m],
    )
    return m


@pytest.fixture
def app(tmp_path: Path):
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES, encoding="utf-8")
    studio = Studio(tmp_path / "stats.duckdb", clock=lambda: at(120))
    studio.prices_path = prices
    try:
        yield studio
    finally:
        studio.close()


@pytest.fixture
def mailing(app: Studio) -> int:
    return build_main_mailing(app)


# -- the funnel ---------------------------------------------------------------------------------
def test_funnel_counts_every_status_once(app: Studio, mailing: int):
    f = app.mailing_funnel(mailing)
    assert f["recipients"] == 12
    assert f["submitted"] == 9  # every part accepted: not 7 (refused), 10 (skipped), 11
    assert (f["delivered"], f["undelivered"], f["expired"], f["failed"]) == (3, 3, 1, 2)
    assert (f["awaiting_report"], f["skipped"], f["queued"], f["unknown"]) == (1, 1, 1, 0)
    assert sum(f["status_counts"].values()) == 12
    assert f["failures"] == 6
    assert f["delivery_rate"] == pytest.approx(3 / 9)


def test_funnel_stages_and_who_was_left_out(app: Studio, mailing: int):
    f = app.mailing_funnel(mailing)
    stages = f["stages"].set_index("stage")
    assert stages["count"].to_dict() == {"selection": 20, "recipients": 12, "submitted": 9,
                                         "delivered": 3}
    assert stages.loc["recipients", "pct_of_first"] == pytest.approx(60.0)
    assert stages.loc["delivered", "pct_of_previous"] == pytest.approx(100 * 3 / 9)
    assert f["selection"] == 20
    left = f["left_out"].set_index("reason")
    assert left["contacts"].to_dict() == {"no consent": 5, "duplicate number": 3}
    assert left.loc["no consent", "pct"] == pytest.approx(25.0)
    outcomes = f["outcomes"].set_index("status")
    assert outcomes.loc["delivered", "pct"] == pytest.approx(25.0)  # 3 of 12 recipients


def test_multipart_recipients_with_all_some_and_no_parts_delivered(app: Studio, mailing: int):
    parts = app.mailing_funnel(mailing)["parts"]
    # message 3 (2 of 2), 4 (1 of 2), 9 (0 of 3); message 10 never had a part accepted
    assert (parts["multipart"], parts["all"], parts["some"], parts["none"]) == (3, 1, 1, 1)
    # accepted parts: 1+1+2+2+1+1+1+3+1 (messages 1-6, 8, 9, 12); delivered: 1+1+2+1
    assert parts["parts_submitted"] == 13
    assert parts["parts_delivered"] == 5


def test_a_mailing_without_reconciliation_starts_its_funnel_at_the_recipients(app: Studio):
    m = new_mailing(app)
    snapshot(app, m, RECIPIENTS[:2], T0, {})
    f = app.mailing_funnel(m)
    assert f["selection"] is None and f["left_out"].empty
    assert list(f["stages"]["stage"]) == ["recipients", "submitted", "delivered"]
    assert f["delivery_rate"] is None  # nothing submitted yet: no rate, not 0 %


def test_figures_follow_new_events(app: Studio, mailing: int):
    assert app.mailing_funnel(mailing)["awaiting_report"] == 1
    b = EventBatch()
    report(b, mailing, 8, 0, "delivered", 20)
    ledger.record_events(app.storage, b)
    f = app.mailing_funnel(mailing)
    assert (f["awaiting_report"], f["delivered"]) == (0, 4)
    assert app.refresh_rollups(mailing) == []  # nothing changed since: nothing recomputed


def test_unknown_mailing_is_reported_by_id(app: Studio):
    with pytest.raises(NotFound, match="no mailing 99"):
        app.mailing_funnel(99)


# -- time -----------------------------------------------------------------------------------------
def test_latency_percentiles_match_numpy(app: Studio, mailing: int):
    lat = app.delivery_latency(mailing)
    values = [2, 4, 10, 6, 30, 60, 4, 1]  # messages 1, 2, 3, 4, 5, 6, 9, 12
    assert lat["count"] == 8
    assert lat["median"] == pytest.approx(np.percentile(values, 50))  # 5.0
    assert lat["p90"] == pytest.approx(np.percentile(values, 90))  # 39.0
    assert lat["p99"] == pytest.approx(np.percentile(values, 99))  # 57.9
    assert lat["max"] == pytest.approx(60)
    hist = lat["histogram"]
    assert list(hist["hi"][:-1]) == list(LATENCY_EDGES)
    assert hist["messages"].sum() == 8
    by_bin = dict(zip(hist["bin"], hist["messages"], strict=True))
    assert by_bin["≤ 1 s"] == 1 and by_bin["1 s–2 s"] == 1 and by_bin["2 s–5 s"] == 2
    assert by_bin["5 s–10 s"] == 2 and by_bin["20 s–30 s"] == 1 and by_bin["30 s–1 min"] == 1


def test_latency_without_reports_is_empty_not_zero(app: Studio):
    m = new_mailing(app)
    snapshot(app, m, RECIPIENTS[:1], T0, {})
    lat = app.delivery_latency(m)
    assert lat["count"] == 0 and lat["median"] is None
    assert lat["histogram"]["messages"].sum() == 0


def test_timeline_buckets_and_running_totals(app: Studio, mailing: int):
    tl = app.mailing_timeline(mailing, step=10)
    assert list(tl["seconds"]) == [0, 10, 20, 30, 40, 50, 60]  # the last report at 63 s
    assert tl["at"].iloc[0] == pd.Timestamp(T0)
    assert list(tl["submitted"]) == [9, 0, 0, 0, 0, 0, 0]
    assert list(tl["delivered"]) == [2, 1, 0, 0, 0, 0, 0]  # 3 s, 5 s, 12 s
    # refused 7 (4 s), failed 12 (7 s), 4 (8 s), 9 (9 s); 5 (33 s); 6 (63 s)
    assert list(tl["failed"]) == [4, 0, 0, 1, 0, 0, 1]
    assert tl["delivered_total"].iloc[-1] == 3 and tl["failed_total"].iloc[-1] == 6


def test_timing_figures_follow_new_events_and_survive_callers(app: Studio, mailing: int):
    first = app.mailing_timeline(mailing, step=10)
    first["delivered"] = 0  # a caller changing its copy changes nothing stored
    assert app.mailing_timeline(mailing, step=10)["delivered_total"].iloc[-1] == 3
    assert app.delivery_latency(mailing)["count"] == 8
    b = EventBatch()
    report(b, mailing, 8, 0, "delivered", 24)  # submitted at 4 s: 20 s
    ledger.record_events(app.storage, b)
    tl = app.mailing_timeline(mailing, step=10)
    assert list(tl["delivered"][:3]) == [2, 1, 1]
    latency = app.delivery_latency(mailing)
    assert latency["count"] == 9
    assert latency["median"] == pytest.approx(np.percentile([2, 4, 10, 6, 30, 60, 4, 1, 20], 50))


def test_timeline_step_is_chosen_for_a_readable_chart(app: Studio, mailing: int):
    tl = app.mailing_timeline(mailing)
    assert 1 < len(tl) <= 150
    assert choose_step(63) == 1 and choose_step(3600) == 30 and choose_step(86400 * 3) == 1800


# -- failures -----------------------------------------------------------------------------------
def test_failures_by_reason_with_shares(app: Studio, mailing: int):
    frame = app.failures_by(mailing, "reason").set_index("reason")
    assert frame["failures"].to_dict() == {
        "absent subscriber": 2, "blocked": 1, "expired": 1, "invalid destination": 1,
        "network error": 1,
    }  # fmt: skip
    assert frame.loc["absent subscriber", "share"] == pytest.approx(2 / 6)
    assert frame["share"].sum() == pytest.approx(1.0)
    assert frame.loc["absent subscriber", "statuses"] == "undelivered"


def test_failures_by_country_with_rates(app: Studio, mailing: int):
    frame = app.failures_by(mailing, "country").set_index("country")
    # not skipped: NL 1,2,3,4,11,12; BE 5,6; DE 7,8; GB 9
    assert frame["recipients"].to_dict() == {"NL": 6, "BE": 2, "DE": 2, "GB": 1}
    assert frame["failures"].to_dict() == {"NL": 2, "BE": 2, "DE": 1, "GB": 1}
    assert frame.loc["BE", "failure_rate"] == pytest.approx(1.0)
    assert frame.loc["NL", "share"] == pytest.approx(2 / 6)
    assert list(frame.index[:2]) == ["NL", "BE"]  # most failures first, then most recipients


def test_failures_by_operator_agree_with_phonenumbers_number_by_number(app: Studio):
    """The grouped SQL lookup gives, for every number, phonenumbers' own carrier name."""
    rng = random.Random(7)
    regions = ["NL", "BE", "DE", "GB", "FR", "ES", "IT", "US", "IN", "BR", "ZA", "AU", "JP",
               "NG", "KE", "PL", "SE", "CH", "AT", "IE", "PT", "TR", "MX", "CA"]
    rows = []
    for region in regions:
        example = phonenumbers.example_number_for_type(region, 1)  # MOBILE
        national = str(example.national_number)
        kept = 0
        for _ in range(200):  # random numbers in the example's first digit: many ranges
            tail = "".join(rng.choice("0123456789") for _ in range(len(national) - 1))
            candidate = phonenumbers.parse(f"+{example.country_code}{national[0]}{tail}")
            if phonenumbers.is_valid_number(candidate) and kept < 12:
                e164 = phonenumbers.format_number(candidate, 0)
                rows.append((len(rows) + 1, e164, region, 1, f"k{len(rows)}"))
                kept += 1
    m = new_mailing(app)
    snapshot(app, m, rows, T0, {})
    b, fails = EventBatch(), set()
    for mid, *_ in rows:
        submit(b, m, mid, 0, 1)
        failed = rng.random() < 0.4
        if failed:
            fails.add(mid)
        report(b, m, mid, 0, "undelivered" if failed else "delivered", 2, "absent subscriber")
    ledger.record_events(app.storage, b)
    got = app.failures_by(m, "operator")
    ref = pd.DataFrame({
        "operator": [operator_name(r[1]) or "(unknown)" for r in rows],
        "country": [r[2] for r in rows],
        "failures": [int(r[0] in fails) for r in rows],
    }).groupby(["operator", "country"]).agg(recipients=("failures", "size"),
                                            failures=("failures", "sum"))  # fmt: skip
    mine = got.set_index(["operator", "country"])[["recipients", "failures"]]
    pd.testing.assert_frame_equal(mine.sort_index(), ref.sort_index(), check_dtype=False)
    assert len(ref) > len(regions)  # several operators per country: a real test
    assert got["share"].sum() == pytest.approx(1.0)


def test_failures_by_something_else_is_refused(app: Studio, mailing: int):
    with pytest.raises(InvalidInput, match="reason, country or operator"):
        app.failures_by(mailing, "colour")  # type: ignore[arg-type]


# -- cost ---------------------------------------------------------------------------------------
def test_cost_estimate_computed_when_none_was_stored(app: Studio, mailing: int):
    cost = app.cost_actual_vs_estimate(mailing)
    assert cost["estimate_source"] == "computed"
    frame = cost["by_country"].set_index("country")
    # planned (not skipped) segments: NL 1+1+2+2+1+1, BE 2, DE 2, GB 3
    assert frame["estimated_segments"].to_dict() == {"NL": 8, "BE": 2, "DE": 2, "GB": 3}
    # accepted: NL 1+1+2+2+1 (11 never sent), BE 2, DE 1 (7 was refused), GB 3
    assert frame["segments"].to_dict() == {"NL": 7, "BE": 2, "DE": 1, "GB": 3}
    assert frame.loc["NL", "cost"] == pytest.approx(7 * 0.05)
    assert frame.loc["GB", "cost"] == pytest.approx(3 * 0.10)  # no GB price: the * row
    assert cost["estimated_cost"] == pytest.approx(8 * .05 + 2 * .08 + 2 * .09 + 3 * .10)
    assert cost["cost"] == pytest.approx(0.35 + 0.16 + 0.09 + 0.30)
    assert cost["cost_per_delivered"] == pytest.approx(0.90 / 3)
    assert frame.loc["DE", "segments_diff"] == -1
    assert cost["currency"] == "EUR"


def test_cost_against_the_estimate_stored_at_confirmation(app: Studio):
    stored = {"by_country": [{"country": "NL", "recipients": 7, "segments": 9, "cost": 0.45},
                             {"country": "FR", "recipients": 1, "segments": 1, "cost": 0.07}],
              "currency": "EUR", "total_cost": 0.52}  # fmt: skip
    m = build_main_mailing(app, estimate=stored)
    cost = app.cost_actual_vs_estimate(m)
    assert cost["estimate_source"] == "confirmation"
    frame = cost["by_country"].set_index("country")
    assert frame.loc["NL", "estimated_segments"] == 9 and frame.loc["NL", "segments"] == 7
    assert frame.loc["FR", "estimated_cost"] == pytest.approx(0.07)
    assert frame.loc["FR", "segments"] == 0  # estimated, never sent
    assert frame.loc["GB", "estimated_segments"] == 0  # sent, not in the stored estimate
    assert cost["estimated_cost"] == pytest.approx(0.52)


# -- replies ------------------------------------------------------------------------------------
def test_stop_replies_and_the_opt_out_rate(app: Studio, mailing: int):
    rows = [
        {"received_at": at(100), "sender_raw": "+31612345001", "e164": "+31612345001",
         "recipient": "Shop", "text": "STOP", "kind": "stop", "mailing_id": mailing,
         "provider_id": "in-1"},
        {"received_at": at(101), "sender_raw": "+31612345001", "e164": "+31612345001",
         "recipient": "Shop", "text": "STOP", "kind": "stop", "mailing_id": mailing,
         "provider_id": "in-2"},
        {"received_at": at(102), "sender_raw": "+31612345003", "e164": "+31612345003",
         "recipient": "Shop", "text": "Thanks", "kind": None, "mailing_id": mailing,
         "provider_id": "in-3"},
    ]  # fmt: skip
    ledger.store_inbound(app.storage, rows)
    # a STOP known only as a suppression attributed to the mailing counts too
    app.suppress(["+31612345002"], reason="stop_reply", source="reply", mailing_id=mailing)
    app.suppress(["+31612345009"], reason="manual")  # no mailing: not this one's opt-out
    replies = app.mailing_replies(mailing)
    assert replies["stops"] == 2  # two numbers, one of which said STOP twice
    assert replies["stop_messages"] == 2 and replies["other_replies"] == 1
    assert replies["delivered"] == 3
    assert replies["opt_out_rate"] == pytest.approx(2 / 3)
    assert replies["texts"].iloc[0].to_dict() == {"text": "STOP", "kind": "stop", "replies": 2}
    overview = app.mailings_overview().set_index("mailing_id")
    assert overview.loc[mailing, "stops"] == 2


# -- overall ------------------------------------------------------------------------------------
def test_overview_side_by_side_and_test_sends_apart(app: Studio, mailing: int):
    test = new_mailing(app, kind="test", started=T0 + timedelta(days=1))
    snapshot(app, test, RECIPIENTS[:1], T0 + timedelta(days=1), {})
    b = EventBatch()
    submit(b, test, 101, 0, 86401)
    report(b, test, 101, 0, "delivered", 86402)
    ledger.record_events(app.storage, b)
    assert list(app.mailings_overview()["mailing_id"]) == [mailing]
    both = app.mailings_overview(include_tests=True).set_index("mailing_id")
    assert list(both.index) == [test, mailing]  # newest first
    row = both.loc[mailing]
    assert (row["recipients"], row["submitted"], row["delivered"], row["failed"]) == (12, 9, 3, 6)
    assert row["pending"] == 2  # 8 awaits its report, 11 is queued
    assert row["segments"] == 13
    assert row["cost"] == pytest.approx(0.90)
    assert row["delivery_rate"] == pytest.approx(3 / 9)
    assert row["cost_per_delivered"] == pytest.approx(0.30)
    assert both.loc[test, "cost"] == pytest.approx(0.05)


def test_trends_sum_mailings_per_period(app: Studio, mailing: int):
    second = new_mailing(app, started=T0 + timedelta(hours=2))
    snapshot(app, second, RECIPIENTS[:2], T0 + timedelta(hours=2), {})
    b = EventBatch()
    submit(b, second, 101, 0, 7201)
    submit(b, second, 102, 0, 7201)
    report(b, second, 101, 0, "delivered", 7203)
    ledger.record_events(app.storage, b)
    day = app.trends("day")
    assert len(day) == 1
    assert day.iloc[0]["mailings"] == 2 and day.iloc[0]["delivered"] == 4
    assert day.iloc[0]["submitted"] == 11
    assert day.iloc[0]["delivery_rate"] == pytest.approx(4 / 11)
    hours = app.trends("hour")
    assert list(hours["period"]) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(hours=2))]
    with pytest.raises(InvalidInput, match="period"):
        app.trends("fortnight")


def test_suppression_growth_per_day(app: Studio):
    day1, day2 = datetime(2025, 1, 1, 9), datetime(2025, 1, 2, 9)
    log = pd.DataFrame({
        "e164": ["+31600000001", "+31600000002", "+31600000003", "+31600000004",
                 "+31600000005", "+31600000001"],
        "action": ["add", "add", "add", "add", "add", "remove"],
        "reason": ["stop_reply", "manual", "manual", "stop_reply", "stop_reply", None],
        "ts": [day1, day1, day1, day2, day2, day2],
    })  # fmt: skip
    app.storage.append_df("suppression_log", log)
    growth = app.suppression_growth("day")
    assert list(growth["added"]) == [3, 2]
    assert list(growth["stop_replies"]) == [1, 2]
    assert list(growth["removed"]) == [0, 1]
    assert list(growth["total"]) == [3, 4]


def test_phone_quality_per_database_and_country(app: Studio, contacts_csv: Path):
    app.import_contacts(contacts_csv, database="klanten", key_field="customer_id", region="NL")
    q = app.phone_quality().set_index(["database", "country"])
    total = q.loc[("klanten", "(all)")]
    assert (total["contacts"], total["valid_mobile"], total["not_mobile"], total["invalid"],
            total["missing"]) == (9, 6, 1, 1, 1)  # fmt: skip
    assert total["share_valid_mobile"] == pytest.approx(6 / 9)
    nl = q.loc[("klanten", "NL")]  # four NL mobiles (two contacts share one) and a landline
    assert (nl["contacts"], nl["valid_mobile"]) == (5, 4)
    assert q.loc[("klanten", "unknown"), "contacts"] == 2  # unreadable and empty numbers
    assert q.loc[("klanten", "BE"), "share_valid_mobile"] == pytest.approx(1.0)


def test_overall_figures_on_an_empty_database(app: Studio):
    assert app.mailings_overview().empty
    assert app.trends().empty
    assert app.suppression_growth().empty
    assert app.phone_quality().empty
    assert app.stats_mailings().empty


# -- export -------------------------------------------------------------------------------------
def test_csv_export_is_the_ledger_with_formulas_neutralised(app: Studio, mailing: int):
    data = app.export_results(mailing, "csv")
    frame = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["e164", "contact_key", "parts", "encoding", "status",
                                   "parts_delivered", "reason", "submitted_at", "done_at"]
    assert len(frame) == 12
    assert frame.loc[0, "e164"] == "'+31612345001"  # a leading + is a formula to Excel
    assert frame.loc[7, "contact_key"] == "'=HYPERLINK(\"http://evil\")"
    assert frame.loc[3, "status"] == "undelivered" and frame.loc[3, "reason"] == \
        "absent subscriber"
    assert frame.loc[3, "parts_delivered"] == "1"
    assert not any(str(v).startswith(("=", "+", "-", "@")) for v in frame.to_numpy().ravel())


def test_parquet_export_round_trips_typed(app: Studio, mailing: int):
    back = pd.read_parquet(io.BytesIO(app.export_results(mailing, "parquet")))
    expected = app.mailing_results(mailing)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), expected.reset_index(drop=True),
                                  check_dtype=False)  # fmt: skip
    assert back.loc[0, "e164"] == "+31612345001"  # typed: nothing to neutralise
    assert pd.api.types.is_datetime64_any_dtype(back["done_at"])
    with pytest.raises(InvalidInput, match="csv or parquet"):
        app.export_results(mailing, "xlsx")  # type: ignore[arg-type]


# -- live ---------------------------------------------------------------------------------------
def test_a_sending_mailing_is_live_and_a_settled_one_is_not(app: Studio, mailing: int):
    assert app.mailing_live(mailing)  # finished 50 s ago, message 8 still awaits its report
    b = EventBatch()
    report(b, mailing, 8, 0, "delivered", 80)
    ledger.record_events(app.storage, b)
    assert not app.mailing_live(mailing)
    sending = new_mailing(app)
    snapshot(app, sending, RECIPIENTS[:1], T0, {})
    assert app.mailing_live(sending)
    labels = app.stats_mailings()
    assert list(labels["id"]) == [sending, mailing]
    assert labels["label"].iloc[0].startswith(f"#{sending} · ")
