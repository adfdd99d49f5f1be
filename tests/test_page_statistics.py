"""The Statistics page in Streamlit's AppTest, on a mailing sent through the simulator."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.studio import Studio
from core.worker import run_until_done
from tests.page_helpers import open_page

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = "simulator://?seed=3&instant=1&stop_share=0.05&reply_share=0.03"
NUMBER_RANGES = [("+3161", 7), ("+3162", 7), ("+3165", 7), ("+32470", 6), ("+49151", 8),
                 ("+447400", 6)]  # fmt: skip


def contacts_csv(path: Path, n: int = 120) -> Path:
    """Contacts with NL, BE, DE and GB mobiles; every tenth has no consent."""
    lines = ["customer_id,first_name,consent,mobile"]
    for i in range(n):
        prefix, digits = NUMBER_RANGES[i % len(NUMBER_RANGES)]
        number = f"{prefix}{(1234567 + i * 7919) % 10**digits:0{digits}d}"
        lines.append(f"C{i},Name{i},{'no' if i % 10 == 9 else 'yes'},{number}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def send_simulated_mailing(studio: Studio, work: Path, *, fail_share: float = 0.2) -> int:
    """Import contacts and send one mailing through the simulator, reports included."""
    studio.import_contacts(contacts_csv(work / "contacts.csv"), database="demo",
                           key_field="customer_id", consent_field="consent",
                           consent_yes=["yes"], region="NL")  # fmt: skip
    plan = studio.plan_mailing(sender="Shop", database="demo",
                               body="Hi {first_name}, our spring sale starts today! "
                               "Up to 50% off everything in store and online. " * 2)
    mailing = studio.confirm_mailing(plan, accept_rules=True)  # stores the estimate
    studio.launch_mailing(mailing)
    run_until_done(studio, gateway_url=f"{SIMULATOR}&fail_share={fail_share}",
                   report_timeout=20, timeout=60)  # fmt: skip
    return mailing


@pytest.fixture
def sent(tmp_path: Path, monkeypatch):
    db = tmp_path / "page.duckdb"
    monkeypatch.setenv("SMS_STUDIO_DB", str(db))
    monkeypatch.chdir(ROOT)
    studio = Studio(db)
    try:
        mailing = send_simulated_mailing(studio, tmp_path)
        yield studio, mailing
    finally:
        studio.close()


def page(**query: str) -> AppTest:
    return open_page("pages/statistics.py", query=query)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_a_finished_mailing_shows_its_figures(sent):
    studio, mailing = sent
    funnel = studio.mailing_funnel(mailing)
    replies = studio.mailing_replies(mailing)
    assert funnel["state"] == "finished" and funnel["failures"] > 0 and replies["stops"] > 0
    at = page()
    shown = metrics(at)
    assert shown["Recipients"] == f"{funnel['recipients']:,}"
    assert shown["Submitted"] == f"{funnel['submitted']:,}"
    assert shown["Delivered"] == f"{funnel['delivered']:,}"
    assert shown["Failures"] == f"{funnel['failures']:,}"
    assert shown["STOP opt-outs"] == f"{replies['stops']:,}"
    assert "Median" in shown and "p99" in shown
    assert not any("refreshing every" in m.value for m in at.markdown)  # settled
    assert len(at.get("plotly_chart")) >= 5  # funnel, outcomes, timeline, latency, failures…
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download results (CSV)", "Download results (Parquet)"]


def test_cost_is_compared_with_the_estimate_confirmed_in_the_wizard(sent):
    studio, mailing = sent
    cost = studio.cost_actual_vs_estimate(mailing)
    assert cost["estimate_source"] == "confirmation"
    frame = cost["by_country"]
    assert set(frame["country"]) == {"NL", "BE", "DE", "GB"}
    # nothing was refused, so every planned segment was accepted and billed
    assert list(frame["segments"]) == list(frame["estimated_segments"])
    assert cost["cost"] == pytest.approx(cost["estimated_cost"])
    assert cost["segments"] == 2 * studio.mailing_funnel(mailing)["submitted"]


def test_failures_regroup_by_operator_and_country(sent):
    at = page()
    for by in ("operator", "country", "reason"):
        at.radio(key="stats_failures_by").set_value(by).run()
        assert not at.exception, (by, at.exception)
        tables = [d.value for d in at.dataframe if {by, "failures", "share"} <=
                  set(d.value.columns)]  # fmt: skip
        assert len(tables) == 1, by  # the failures table, grouped as asked
        if by == "operator":
            operators = set(tables[0]["operator"])
            assert {"KPN", "Vodafone Libertel B.V.", "T-Mobile"} & operators


def test_the_overall_view(sent):
    studio, mailing = sent
    at = page()
    at.radio(key="stats_view").set_value("Overall").run()
    assert not at.exception, at.exception
    overview = at.dataframe[0].value
    assert list(overview["mailing_id"]) == [mailing]
    assert overview["delivered"].iloc[0] == studio.mailing_funnel(mailing)["delivered"]
    at.radio(key="stats_period").set_value("day").run()
    assert not at.exception
    subheaders = [s.value for s in at.subheader]
    assert subheaders == ["Mailings side by side", "Trends", "Suppression list",
                          "Phone quality of the contact databases"]
    quality = at.dataframe[-1].value
    assert quality.loc[quality["country"] == "(all)", "contacts"].iloc[0] == 120


def test_a_mailing_still_sending_refreshes_itself(sent, tmp_path: Path):
    studio, first = sent
    second = studio.create_mailing(sender="Shop", database="demo", accept_rules=True,
                                   body="Second message")  # fmt: skip
    studio.launch_mailing(second)  # no dispatcher runs: it stays `sending`
    at = page(mailing=str(second))
    assert at.selectbox(key="stats_mailing").value == second
    assert any("live: refreshing every 5 s" in m.value for m in at.markdown)
    assert metrics(at)["Submitted"] == "0"
    assert metrics(at)["Recipients"] == f"{studio.mailing_funnel(second)['recipients']:,}"
    at.selectbox(key="stats_mailing").set_value(first).run()
    assert not at.exception
    assert not any("refreshing every" in m.value for m in at.markdown)


def test_no_mailings_yet(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SMS_STUDIO_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.chdir(ROOT)
    at = page()
    assert any("No mailings yet" in i.value for i in at.info)
    at.radio(key="stats_view").set_value("Overall").run()
    assert not at.exception


def test_times_are_in_the_users_zone_and_counts_have_separators(sent):
    studio, mailing = sent
    studio.set_setting("time_zone", "Asia/Kathmandu")  # UTC+05:45: no zone shares it by chance
    funnel = studio.mailing_funnel(mailing)
    local = funnel["started_at"] + timedelta(hours=5, minutes=45)
    at = page()
    state = next(m.value for m in at.markdown if m.value.startswith("State: "))
    assert f"started {local:%Y-%m-%d %H:%M:%S}" in state and "UTC" not in state
    created = studio.stats_mailings()["created_at"].iloc[0] + timedelta(hours=5, minutes=45)
    assert at.selectbox(key="stats_mailing").options[0] == \
        f"#{mailing} · demo · {created:%Y-%m-%d %H:%M}"  # no state: it changes while sending
    assert "Times in Asia/Kathmandu." in [c.value for c in at.caption]
    formats = {}
    for table in at.dataframe:
        for col, config in json.loads(table.proto.columns or "{}").items():
            formats[col] = config.get("type_config", {}).get("format")
    assert formats["contacts"] == "localized"  # left out at launch
    assert formats["failures"] == "localized"
    at.radio(key="stats_view").set_value("Overall").run()
    assert not at.exception, at.exception
    overview = at.dataframe[0]
    config = json.loads(overview.proto.columns)
    for col in ("recipients", "delivered", "failed", "segments"):
        assert config[col]["type_config"]["format"] == "localized", col
    assert overview.value["started_at"].iloc[0] == pd.Timestamp(local)
    assert len(overview.proto.column_order) <= 14
    assert any("Times in Asia/Kathmandu" in c.value for c in at.caption)
