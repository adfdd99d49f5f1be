"""Statistics: one mailing's funnel, timing, failures, cost and replies; all mailings side by side.

Every figure comes from one `Studio` method (core/stats.py) that aggregates in DuckDB; this
page only lays out and plots those aggregates. A mailing that is still sending (or still
receiving delivery reports) refreshes itself every few seconds. Times are stored in UTC and
shown in the user's time zone, like on the Mailings page.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from ui.common import fmt_int, friendly_errors, studio, table_columns, user_time_zone

LIVE_REFRESH_SECONDS = 5
STATUS_COLOURS = {
    "delivered": "#2e7d32", "undelivered": "#ef6c00", "failed": "#c62828",
    "expired": "#8d6e63", "unknown": "#9e9e9e", "submitted": "#1565c0",
    "queued": "#90caf9", "skipped": "#bdbdbd",
}  # fmt: skip
STATUS_LABELS = {"submitted": "awaiting report"}
PCT = st.column_config.NumberColumn(format="percent")
MONEY = st.column_config.NumberColumn(format="%,.2f")
COUNT_AXIS = ","  # plotly (d3-format): thousands separators like fmt_int, 0.5 stays 0.5


def local_times(values: pd.Series) -> pd.Series:
    """Stored (naive UTC) times as naive times in the user's zone, for tables and charts
    (which would otherwise show them as UTC)."""
    times = pd.to_datetime(values)
    if times.dt.tz is None:
        times = times.dt.tz_localize("UTC")
    return times.dt.tz_convert(user_time_zone()).dt.tz_localize(None)


def local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{local_times(pd.Series([pd.Timestamp(value)])).iloc[0]:{fmt}}"


def rate(value: float | None, digits: int = 1) -> str:
    """A 0..1 ratio as a percentage, '–' when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100.0 * value:.{digits}f}%"


def money(value: float | None, currency: str, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f} {currency}"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def chart(fig: go.Figure, key: str) -> None:
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(fig, width="stretch", key=key)


# -- one mailing ----------------------------------------------------------------------------
def pick_mailing(choices: pd.DataFrame) -> int:
    """The mailing to show: the `mailing` query parameter (a link from the Mailings page),
    else the last one picked, else the newest.

    The labels name the mailing and when it was created, in the user's zone, and nothing
    that changes while it sends (state, start time): the browser sends the choice back as
    its label, so a label that changed between two runs would lose the choice. The state
    and times are on the line below the picker.
    """
    ids = [int(i) for i in choices["id"]]
    when = local_times(choices["created_at"]).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    what = choices["document"].fillna(choices["selection"]).fillna(choices["database"])
    test = choices["kind"].map({"test": " (test)"}).fillna("")
    label = ("#" + choices["id"].astype(str) + " · " + what.fillna("").astype(str) + test
             + " · " + when)  # fmt: skip
    labels = dict(zip(ids, label, strict=True))
    wanted = st.query_params.get("mailing")
    if wanted != st.session_state.get("stats_linked"):  # a new link: follow it once
        st.session_state["stats_linked"] = wanted
        if wanted and wanted.isdigit() and int(wanted) in labels:
            st.session_state["stats_mailing"] = int(wanted)
    if st.session_state.get("stats_mailing") not in labels:
        st.session_state["stats_mailing"] = ids[0]
    choice = int(st.selectbox("Mailing", ids, format_func=labels.get, key="stats_mailing"))
    st.query_params["mailing"] = st.session_state["stats_linked"] = str(choice)
    return choice


def note(col: Any, label: str, value: str, aside: str | None = None) -> None:
    """A metric with an explanatory aside (grey, no arrow: it is not a change)."""
    col.metric(label, value, aside, delta_color="off", delta_arrow="off")


def show_headline(funnel: dict, cost: dict, replies: dict) -> None:
    top = st.columns(3)
    note(top[0], "Recipients", fmt_int(funnel["recipients"]),
         f"{fmt_int(funnel['skipped'])} skipped, {fmt_int(funnel['queued'])} queued")
    note(top[1], "Submitted", fmt_int(funnel["submitted"]),
         f"{fmt_int(funnel['awaiting_report'])} awaiting a report")
    note(top[2], "Delivered", fmt_int(funnel["delivered"]),
         rate(funnel["delivery_rate"]) + " of submitted")
    bottom = st.columns(3)
    note(bottom[0], "Failures", fmt_int(funnel["failures"]),
         f"{fmt_int(funnel['unknown'])} unknown")
    note(bottom[1], "STOP opt-outs", fmt_int(replies["stops"]),
         rate(replies["opt_out_rate"], 2) + " of delivered")
    note(bottom[2], "Cost", money(cost["cost"], cost["currency"]),
         money(cost["cost_per_delivered"], cost["currency"], 4) + " per delivered")


def show_funnel(funnel: dict) -> None:
    st.subheader("Funnel")
    left, right = st.columns(2)
    stages = funnel["stages"]
    with left:
        fig = go.Figure(go.Funnel(y=stages["stage"], x=stages["count"],
                                  texttemplate="%{value:,d}<br>%{percentInitial:.0%}"))
        fig.update_layout(title="Selection → recipients → submitted → delivered", height=320)
        chart(fig, "funnel")
    with right:
        if funnel["selection"] is None:
            st.caption("The reconciliation at launch was not stored for this mailing.")
        else:
            st.markdown(f"**Left out at launch** (of {fmt_int(funnel['selection'])} in the "
                        "selection)")  # fmt: skip
            st.dataframe(funnel["left_out"], hide_index=True, width="stretch", placeholder="–",
                         column_config={**table_columns(counts=["contacts"]),
                                        "pct": st.column_config.NumberColumn(
                                            "% of selection", format="%.1f")})  # fmt: skip
    outcomes = funnel["outcomes"]
    outcomes = outcomes[outcomes["messages"] > 0].assign(
        label=lambda f: f["status"].map(lambda s: STATUS_LABELS.get(s, s)))
    if len(outcomes):
        fig = px.bar(outcomes, x="messages", y="label", color="status", orientation="h",
                     color_discrete_map=STATUS_COLOURS, text=outcomes["pct"].map(
                         lambda p: f"{p:.1f}%"), title="Every recipient's outcome")
        fig.update_layout(showlegend=False, height=60 + 40 * len(outcomes), yaxis_title=None,
                          xaxis_tickformat=COUNT_AXIS)
        chart(fig, "outcomes")
    parts = funnel["parts"]
    if parts["multipart"]:
        st.markdown(f"**Multi-part messages** ({fmt_int(parts['multipart'])} recipients with a "
                    "part accepted): parts delivered")  # fmt: skip
        cols = st.columns(3)
        for col, (key, label) in zip(cols, (("all", "All parts"), ("some", "Some parts"),
                                            ("none", "No part")), strict=True):  # fmt: skip
            note(col, label, fmt_int(parts[key]), rate(parts[key] / parts["multipart"]))


def show_timing(app: Any, mailing_id: int) -> None:
    st.subheader("Over time")
    timeline = app.mailing_timeline(mailing_id)
    latency = app.delivery_latency(mailing_id)
    left, right = st.columns([3, 2])
    with left:
        if timeline.empty:
            st.caption("Nothing was submitted yet.")
        else:
            timeline = timeline.assign(at=local_times(timeline["at"]))
            long = timeline.melt(id_vars=["at"], value_vars=["submitted_total",
                                 "delivered_total", "failed_total"], var_name="what",
                                 value_name="messages")  # fmt: skip
            long["what"] = long["what"].str.removesuffix("_total")
            fig = px.line(long, x="at", y="messages", color="what",
                          color_discrete_map={"submitted": STATUS_COLOURS["submitted"],
                                              "delivered": STATUS_COLOURS["delivered"],
                                              "failed": STATUS_COLOURS["failed"]},
                          title="Deliveries since the start (running totals)")  # fmt: skip
            fig.update_layout(legend_title=None, xaxis_title=None, yaxis_tickformat=COUNT_AXIS)
            chart(fig, "timeline")
    with right:
        cols = st.columns(3)
        cols[0].metric("Median", seconds(latency["median"]))
        cols[1].metric("p90", seconds(latency["p90"]))
        cols[2].metric("p99", seconds(latency["p99"]))
        hist = latency["histogram"]
        if latency["count"]:
            last = int(hist.index[hist["messages"] > 0].max()) + 1
            fig = px.bar(hist.iloc[:last], x="bin", y="messages",
                         title="Submission → delivery report")  # fmt: skip
            fig.update_layout(xaxis_title=None, yaxis_tickformat=COUNT_AXIS)
            chart(fig, "latency")
            st.caption(f"{fmt_int(latency['count'])} messages with a report; per message from "
                       "its last part's acceptance to its last report.")
        else:
            st.caption("No delivery reports yet.")


def show_failures(app: Any, mailing_id: int, funnel: dict) -> None:
    st.subheader("Failures")
    if not funnel["failures"]:
        st.caption("No message failed, was undelivered or expired.")
        return
    by = st.radio("Group by", ["reason", "country", "operator"], horizontal=True,
                  key="stats_failures_by")  # fmt: skip
    frame = app.failures_by(mailing_id, by)
    shown = frame[frame["failures"] > 0]
    top = shown.head(15)
    names = top[by] + (" (" + top["country"] + ")" if by == "operator" else "")
    fig = px.bar(top.assign(name=names), x="share", y="name", orientation="h",
                 title=f"Share of the {fmt_int(funnel['failures'])} failures by {by}")
    fig.update_layout(yaxis={"autorange": "reversed", "title": None, "type": "category"},
                      xaxis={"tickformat": ".0%", "title": None},
                      height=120 + 28 * len(top))  # fmt: skip
    chart(fig, f"failures_{by}")
    config = {**table_columns(counts=["failures", "recipients"]), "share": PCT,
              "failure_rate": st.column_config.NumberColumn("failure rate", format="percent")}
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="–", column_config=config)
    if by == "operator":
        st.caption("The operator the number range was allocated to (phonenumbers' carrier "
                   "data); ported numbers count under their original operator.")


def show_cost(app: Any, mailing_id: int, cost: dict) -> None:
    st.subheader("Segments and cost")
    currency = cost["currency"]
    top, bottom = st.columns(2), st.columns(2)
    top[0].metric("Estimated segments", fmt_int(cost["estimated_segments"]))
    top[1].metric("Accepted segments", fmt_int(cost["segments"]))
    bottom[0].metric("Estimated cost", money(cost["estimated_cost"], currency))
    bottom[1].metric("Actual cost", money(cost["cost"], currency))
    source = ("stored when the mailing was confirmed" if cost["estimate_source"] ==
              "confirmation" else "computed now from the messages × the price table (none "
              "was stored at confirmation)")  # fmt: skip
    st.caption(f"Estimate {source}. Actual: segments the provider accepted × the price table.")
    frame = cost["by_country"]
    if len(frame):
        long = frame.head(12).melt(id_vars=["country"], value_vars=["estimated_cost", "cost"],
                                   var_name="what", value_name=currency)  # fmt: skip
        long["what"] = long["what"].map({"estimated_cost": "estimated", "cost": "actual"})
        fig = px.bar(long, x="country", y=currency, color="what", barmode="group",
                     title="Estimated against actual cost per country")
        fig.update_layout(legend_title=None, xaxis_title=None, yaxis_tickformat=",.2f")
        chart(fig, "cost")
        with st.expander("Per country"):
            counts = ["estimated_recipients", "estimated_segments", "recipients", "segments",
                      "segments_diff"]  # fmt: skip
            st.dataframe(frame, hide_index=True, width="stretch", placeholder="–",
                         column_config={**table_columns(counts=counts), "estimated_cost": MONEY,
                                        "cost": MONEY, "cost_diff": MONEY})  # fmt: skip


def show_replies(replies: dict) -> None:
    st.subheader("Replies")
    cols = st.columns(4)
    cols[0].metric("STOP opt-outs", fmt_int(replies["stops"]))
    note(cols[1], "Opt-out rate", rate(replies["opt_out_rate"], 2), "of delivered")
    cols[2].metric("Other replies", fmt_int(replies["other_replies"]))
    cols[3].metric("START replies", fmt_int(replies["start_messages"]))
    if len(replies["texts"]):
        with st.expander("Most frequent replies"):
            st.dataframe(replies["texts"], hide_index=True, width="stretch", placeholder="–",
                         column_config=table_columns(counts=["replies"]))


def show_export(app: Any, mailing_id: int) -> None:
    st.subheader("Export")
    st.caption("Per recipient: number, contact key, parts, encoding, status, parts delivered, "
               "reason, submitted and done times (in the files in UTC, whatever the zone shown "
               "here). In CSV, cells starting with = + - @ are quoted so spreadsheets never "
               "run them as formulas.")
    cols = st.columns(2)
    cols[0].download_button(
        "Download results (CSV)", lambda: app.export_results(mailing_id, "csv"),
        file_name=f"mailing-{mailing_id}-results.csv", mime="text/csv",
        key="stats_export_csv", on_click="ignore",
    )
    cols[1].download_button(
        "Download results (Parquet)", lambda: app.export_results(mailing_id, "parquet"),
        file_name=f"mailing-{mailing_id}-results.parquet",
        mime="application/vnd.apache.parquet", key="stats_export_parquet", on_click="ignore",
    )
    st.caption(f"Explore further in Jupyter: `docs/explore_results.ipynb` reads this Parquet "
               f"file (or `python -m core results {mailing_id} --format parquet --output "
               "FILE`).")


def mailing_section(mailing_id: int, live: bool) -> None:
    app = studio()
    if live and not app.mailing_live(mailing_id):
        st.rerun()  # it settled: a full run shows it without the refresh timer
    with friendly_errors():
        funnel = app.mailing_funnel(mailing_id)
        cost = app.cost_actual_vs_estimate(mailing_id)
        replies = app.mailing_replies(mailing_id)
        state = funnel["state"]
        note = f"State: **{state}**"
        if funnel["started_at"] is not None:
            note += f" · started {local_time(funnel['started_at'])}"
        if funnel["finished_at"] is not None:
            note += f" · finished {local_time(funnel['finished_at'])}"
        if live:
            note += f" · live: refreshing every {LIVE_REFRESH_SECONDS} s"
        st.markdown(note)
        if not funnel["recipients"]:
            st.info("This mailing has no messages yet: it has not started, or it could not.")
            return
        show_headline(funnel, cost, replies)
        show_funnel(funnel)
        show_timing(app, mailing_id)
        show_failures(app, mailing_id, funnel)
        show_cost(app, mailing_id, cost)
        show_replies(replies)
        show_export(app, mailing_id)


def mailing_view() -> None:
    app = studio()
    choices = app.stats_mailings()
    if choices.empty:
        st.info("No mailings yet: send one from the **Mailings** page, then read its results "
                "here.")
        return
    mailing_id = pick_mailing(choices)
    st.caption(f"Times in {user_time_zone()}.")
    live = app.mailing_live(mailing_id)
    run_every = LIVE_REFRESH_SECONDS if live else None
    st.fragment(mailing_section, run_every=run_every)(mailing_id, live)


# -- all mailings ---------------------------------------------------------------------------
# The columns that fit the page; every figure of one mailing is in the Mailing view.
OVERVIEW_COLUMNS = ["mailing_id", "started_at", "document", "selection", "state", "recipients",
                    "delivered", "delivery_rate", "failed", "stops", "opt_out_rate", "segments",
                    "cost", "cost_per_delivered"]  # fmt: skip
OVERVIEW_CONFIG = {
    **table_columns(counts=["recipients", "delivered", "failed", "stops", "segments"]),
    "mailing_id": st.column_config.NumberColumn("#", format="%d", width="small"),
    "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm"),
    "delivery_rate": st.column_config.NumberColumn("delivery rate", format="percent"),
    "stops": st.column_config.NumberColumn("STOP", format="localized",
                                           help="Numbers that opted out by this mailing."),
    "opt_out_rate": st.column_config.NumberColumn("opt-out rate", format="percent"),
    "segments": st.column_config.NumberColumn("segments", format="localized",
                                              help="Segments the provider accepted."),
    "cost": MONEY,
    "cost_per_delivered": st.column_config.NumberColumn("per delivered", format="%,.4f"),
}
PERIOD_FORMATS = {"hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d", "week": "week of %Y-%m-%d",
                  "month": "%Y-%m"}  # fmt: skip


def period_labels(periods: pd.Series, period: str) -> pd.Series:
    """Periods as text, so a chart shows one category per period (even a single one)."""
    return pd.to_datetime(periods).dt.strftime(PERIOD_FORMATS[period])


def overall_view() -> None:
    app = studio()
    include_tests = st.toggle("Include test sends", value=False, key="stats_include_tests")
    overview = app.mailings_overview(include_tests=include_tests)
    overview = overview[overview["recipients"] > 0]
    st.subheader("Mailings side by side")
    if overview.empty:
        st.info("No mailing has sent anything yet.")
    else:
        recent = overview.head(30).sort_values("mailing_id")
        recent = recent.assign(name="#" + recent["mailing_id"].astype(str))  # category axis
        cols = st.columns(3)
        for col, (metric, title, fmt) in zip(cols, (
            ("delivery_rate", "Delivery rate", ".1%"),
            ("opt_out_rate", "Opt-out rate", ".2%"),
            ("cost_per_delivered", "Cost per delivered message", ".3f"),
        ), strict=True):  # fmt: skip
            fig = px.bar(recent, x="name", y=metric, title=title)
            fig.update_layout(xaxis_title=None, yaxis_title=None, yaxis_tickformat=fmt,
                              height=280, xaxis_type="category")  # fmt: skip
            with col:
                chart(fig, f"overview_{metric}")
        shown = overview.assign(started_at=local_times(overview["started_at"]),
                                finished_at=local_times(overview["finished_at"]))
        st.dataframe(shown, hide_index=True, width="stretch", placeholder="–",
                     column_order=OVERVIEW_COLUMNS, column_config=OVERVIEW_CONFIG)
        st.caption(f"Times in {user_time_zone()}; the periods below are UTC days, weeks and "
                   "months. Test sends are left out unless switched on above.")

    st.subheader("Trends")
    period = st.radio("Per", ["day", "week", "month"], index=1, horizontal=True,
                      key="stats_period")  # fmt: skip
    trends = app.trends(period, include_tests=include_tests)
    if len(trends):
        trends["period"] = period_labels(trends["period"], period)
        long = trends.melt(id_vars=["period"], value_vars=["delivery_rate", "opt_out_rate"],
                           var_name="rate", value_name="value")  # fmt: skip
        left, right = st.columns(2)
        with left:
            fig = px.line(long, x="period", y="value", color="rate", markers=True,
                          title=f"Delivery and opt-out rate per {period}")
            fig.update_layout(yaxis_tickformat=".1%", yaxis_title=None, xaxis_title=None,
                              legend_title=None, xaxis_type="category")  # fmt: skip
            chart(fig, "trend_rates")
        with right:
            fig = px.bar(trends, x="period", y=["delivered", "failed"],
                         title=f"Messages per {period}")  # fmt: skip
            fig.update_layout(yaxis_title=None, xaxis_title=None, legend_title=None,
                              xaxis_type="category", yaxis_tickformat=COUNT_AXIS)
            chart(fig, "trend_volume")

    st.subheader("Suppression list")
    growth = app.suppression_growth(period)
    growth["period"] = period_labels(growth["period"], period)
    if growth.empty:
        st.caption("The suppression list has never changed.")
    else:
        fig = go.Figure()
        fig.add_bar(x=growth["period"], y=growth["added"], name="added")
        fig.add_bar(x=growth["period"], y=-growth["removed"], name="removed")
        fig.add_scatter(x=growth["period"], y=growth["total"], name="list size", yaxis="y2",
                        mode="lines+markers")  # fmt: skip
        fig.update_layout(title=f"Growth per {period} (STOP replies included in added)",
                          barmode="relative", xaxis_type="category",
                          yaxis_tickformat=COUNT_AXIS,
                          yaxis2={"overlaying": "y", "side": "right", "rangemode": "tozero",
                                  "tickformat": COUNT_AXIS})
        chart(fig, "suppressions")

    st.subheader("Phone quality of the contact databases")
    quality = app.phone_quality()
    if quality.empty:
        st.caption("No contact database yet.")
    else:
        countries = quality[~quality["country"].isin(["(all)", "unknown"])].head(60)
        if len(countries):
            fig = px.bar(countries, x="country", y="share_valid_mobile", color="database",
                         barmode="group", title="Share of valid mobile numbers per country")
            fig.update_layout(yaxis_tickformat=".0%", yaxis_title=None, xaxis_title=None)
            chart(fig, "phone_quality")
        counts = ["contacts", "valid_mobile", "not_mobile", "invalid", "missing"]
        st.dataframe(quality, hide_index=True, width="stretch", placeholder="–",
                     column_config={**table_columns(counts=counts),
                                    "share_valid_mobile": PCT})  # fmt: skip
        st.caption("'(all)' is the whole database; numbers that could not be read have no "
                   "country and count under 'unknown'.")


st.title("Statistics")
view = st.radio("View", ["Mailing", "Overall"], horizontal=True, key="stats_view",
                label_visibility="collapsed")  # fmt: skip
with friendly_errors():
    if view == "Mailing":
        mailing_view()
    else:
        overall_view()
