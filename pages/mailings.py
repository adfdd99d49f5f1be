"""Mailings: the send wizard (rules, document and recipients, when and how long, confirm),
scheduled mailings to edit or cancel, live progress of the sending ones, and results.

The wizard keeps what was chosen in `wiz` (session state), because Streamlit forgets the
value of a widget that a run does not draw: each step copies its widgets into `wiz` when
Next is pressed, and draws them from `wiz` when it comes back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core.audience import STEP_LABELS
from core.errors import StudioError
from core.exports import to_safe_csv
from core.timeutil import to_user_time, utc_from_local
from ui.common import (
    background_enabled,
    background_error,
    fmt_int,
    friendly_errors,
    studio,
    table_columns,
    user_time_zone,
)

SS = st.session_state
FLASH = "mail_flash"
STEPS = ("Rules", "Document and recipients", "When and long messages", "Confirm")
NOW, LATER = "Now", "At a date and time"
SPLIT, NO_SPLIT = "Split into a multi-part message", "Do not split: skip those recipients"
LATE_NOTICE = 10.0  # seconds; the ticker itself may start a mailing up to ~1 s after its time
SKIPPED_SHOWN = 500
WATCH = "mail_watch"  # the mailings the live section watches, as the last full run drew them
DETAILS, NEWEST, PICK = "mail_details", "mail_details_newest", "mail_details_pick"
TEST_SEND_LABEL = "Send a test to the default destination"
CANNOT_CANCEL = (
    "This mailing is sending and can no longer be cancelled: recipients may already have "
    "their message."
)

st.title("Mailings")
app = studio()
zone = user_time_zone()


# -- small helpers ------------------------------------------------------------------------------
def flash(kind: str, message: str) -> None:
    SS[FLASH] = (kind, message)


def show_flash() -> None:
    kind, message = SS.pop(FLASH, (None, None))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)


def local(value: Any, fmt: str = "%Y-%m-%d %H:%M %Z") -> str:
    """A stored (naive UTC) time in the user's zone, as text."""
    if value is None or pd.isna(value):
        return ""
    return f"{to_user_time(pd.Timestamp(value).to_pydatetime(), zone):{fmt}}"


def local_naive(value: datetime) -> datetime:
    """A naive UTC time as the naive local time a date-time picker shows."""
    shown = to_user_time(value, zone)
    return shown.replace(tzinfo=None) if shown else value


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days {hours % 24} h"


def targets() -> list[str]:
    """What a mailing may go to: selections usable for SMS, and usable whole databases."""
    options = [f"selection:{name}" for name in app.usable_selections()]
    options += [f"database:{name}" for name in app.database_names()
                if app.database_sms_reason(name) is None]  # fmt: skip
    return options


def target_label(option: str) -> str:
    kind, _, name = option.partition(":")
    return f"Selection {name}" if kind == "selection" else f"Whole contact database {name}"


def target_args(option: str) -> dict[str, str | None]:
    kind, _, name = option.partition(":")
    return {"selection": name, "database": None} if kind == "selection" else \
        {"selection": None, "database": name}


def present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and \
        value is not pd.NA and value != ""


def mailing_name(row: dict[str, Any]) -> str:
    """The document a mailing sends; a test send, or text given on the command line, has
    none, so its sender names it."""
    if present(row.get("document")):
        return str(row["document"])
    if row.get("kind") == "test":
        return f"test from {row.get('sender')}"
    return f"text from {row.get('sender')}"


def mailing_target(row: dict[str, Any]) -> str:
    if present(row.get("selection")):
        return f"selection:{row['selection']}"
    return f"database:{row.get('database')}"


def sent_to(row: dict[str, Any]) -> str:
    """Who a mailing goes to, as people read it: a test send goes to the database's default
    destination, not to the whole database it is stored against."""
    if row.get("kind") == "test":
        return f"the default destination of {row.get('database')}"
    return target_label(mailing_target(row))


def default_send_time() -> datetime:
    """The next full quarter hour at least an hour from now, in the user's zone."""
    soon = local_naive(app.clock() + timedelta(hours=1))
    return soon.replace(second=0, microsecond=0) + timedelta(minutes=(-soon.minute) % 15)


# -- the wizard ---------------------------------------------------------------------------------
def wiz() -> dict[str, Any]:
    return SS.setdefault("wiz", {})


def go(step: int, **values: Any) -> None:
    wiz().update(values)
    SS["wiz_step"] = step


def reset_wizard() -> None:
    SS["wiz"] = {}
    SS["wiz_step"] = 1
    SS.pop("wiz_plan", None)


def step_rules() -> None:
    st.markdown("**The rules and netiquette of SMS mailings**")
    with st.container(border=True):
        st.markdown(str(app.get_setting("rules_text") or "").replace("\n", "  \n"))
    st.caption("The rules text can be changed on the **Settings** page.")
    accepted = st.checkbox(
        "I accept these rules: everyone in this mailing opted in, as for commercial e-mail, "
        "and their numbers were obtained lawfully.",
        value=bool(wiz().get("accepted")), key="wiz_accept",
    )
    st.button("Next", key="wiz_next1", type="primary", disabled=not accepted,
              on_click=go, args=(2,), kwargs={"accepted": True})


def step_recipients() -> None:
    documents = app.document_names()
    options = targets()
    if not documents:
        st.info("There is no document yet: write one on the **Documents** page first.")
    if not options:
        st.info("No selection or database can be used for SMS yet. On the **Selections** page "
                "switch on SMS usage for a selection; the database needs a mobile field and an "
                "opt-in rule (**Contacts** page).")
    wanted = wiz().get("document")
    document = st.selectbox("Document", documents, key="wiz_document",
                            index=documents.index(wanted) if wanted in documents else 0)
    current = wiz().get("target")
    target = st.selectbox("Send to", options, format_func=target_label, key="wiz_target",
                          index=options.index(current) if current in options else 0,
                          help="Only selections switched on for SMS are offered, and whole "
                          "databases whose mobile field and opt-in rule are set.")
    if target:
        with friendly_errors():
            result = app.audience(**target_args(target))
            st.caption(f"{fmt_int(result.recipients)} recipients after the opt-in rule, the "
                       "suppression list and duplicate numbers (counted now; the mailing "
                       "counts again when it starts).")
    cols = st.columns(2)
    cols[0].button("Back", key="wiz_back2", on_click=go, args=(1,))
    cols[1].button("Next", key="wiz_next2", type="primary",
                   disabled=not (document and target), on_click=go, args=(3,),
                   kwargs={"document": document, "target": target})


def step_when() -> None:
    data = wiz()
    when = st.radio("When", [NOW, LATER], key="wiz_when", horizontal=True,
                    index=1 if data.get("at") else 0)
    at_utc = None
    if when == LATER:
        shown = local_naive(data["at"]) if data.get("at") else default_send_time()
        picked = st.datetime_input(f"Send at (time zone {zone})", value=shown, key="wiz_at",
                                   format="YYYY-MM-DD", step=timedelta(minutes=5))
        if picked is not None:
            at_utc = utc_from_local(picked, zone)
            st.caption(f"Stored as {at_utc:%Y-%m-%d %H:%M} UTC.")
    default_parts = int(app.get_setting("split_max_parts") or 4)
    current = int(data.get("split") or default_parts)
    mode = st.radio("Messages longer than one part", [SPLIT, NO_SPLIT], key="wiz_split_mode",
                    index=1 if current == 1 else 0)
    split = 1
    if mode == SPLIT:
        split = int(st.number_input("Most parts per message", min_value=2, max_value=10,
                                    value=max(current, 2), step=1, key="wiz_parts"))
    st.caption("Nothing is ever cut short: recipients whose message needs more parts than "
               "allowed are skipped, and listed on the next step and in the results.")
    cols = st.columns(2)
    cols[0].button("Back", key="wiz_back3", on_click=go, args=(2,))
    if cols[1].button("Next", key="wiz_next3", type="primary"):
        with friendly_errors():
            app.check_send_time(at_utc)
            SS.pop("wiz_plan", None)  # plan afresh: the document or contacts may have changed
            go(4, at=at_utc, split=split)
            st.rerun()


def current_plan() -> Any:
    """The plan for what the wizard holds, computed once per choice (it renders every
    recipient's message)."""
    data = wiz()
    key = (data.get("document"), data.get("target"), data.get("split"))
    cached = SS.get("wiz_plan")
    if cached and cached[0] == key and not SS.pop("wiz_force_plan", False):
        return cached[1]
    bar = st.progress(0.0, text="Planning the mailing")
    plan = app.plan_mailing(document=data["document"], split_max_parts=data["split"],
                            progress=lambda f, label: bar.progress(min(f, 1.0), text=label),
                            **target_args(data["target"]))  # fmt: skip
    bar.empty()
    SS["wiz_plan"] = (key, plan)
    return plan


def show_plan(plan: Any, at: datetime | None) -> None:
    when = "now" if at is None else local(at)
    st.markdown(f"**{plan.document}** from **{plan.sender}** to {plan.target_label}, "
                f"sent **{when}**, at most **{plan.split_max_parts}** part"
                f"{'s' if plan.split_max_parts > 1 else ''} per message.")
    cols = st.columns(5)
    cols[0].metric("Recipients", fmt_int(plan.recipients),
                   help="After the reconciliation: opt-in, valid mobile number, not "
                   "suppressed, one message per number.")
    cols[1].metric("Will receive", fmt_int(plan.to_send),
                   help="Recipients minus those skipped (message over the parts limit, or "
                   "an invalid personalised sender).")
    cols[2].metric("Segments", fmt_int(plan.total_segments))
    cols[3].metric(f"Estimated cost ({plan.currency})", f"{plan.total_cost:,.2f}",
                   help="Segments × the price per segment of each country (Settings page).")
    cols[4].metric("In UCS-2", f"{plan.ucs2_share:.1%}",
                   help=f"{fmt_int(plan.ucs2_recipients)} recipients' messages need UCS-2 "
                   "(70 characters per part instead of 160).")
    for warning in plan.warnings:
        st.warning(warning)
    st.markdown("**Estimated cost per country**")
    money = st.column_config.NumberColumn(format="%,.2f")
    st.dataframe(plan.cost_by_country, hide_index=True,
                 column_config={**table_columns(counts=["recipients", "segments"]),
                                "price": st.column_config.NumberColumn(format="%,.4f"),
                                "cost": money})  # fmt: skip
    with st.expander("Reconciliation: from the selection to the recipients"):
        st.dataframe(plan.audience.table()[["label", "contacts", "left"]], hide_index=True,
                     column_config={**table_columns(counts=["contacts", "left"]),
                                    "label": "step"})  # fmt: skip
    if len(plan.skipped):
        st.markdown(f"**Skipped recipients** ({fmt_int(len(plan.skipped))}): not sent, never "
                    "cut short")
        st.dataframe(plan.skipped.head(SKIPPED_SHOWN), hide_index=True)
        st.download_button("Download the skipped recipients (CSV)", to_safe_csv(plan.skipped),
                           file_name="skipped.csv", mime="text/csv", key="wiz_skipped_csv")
    if plan.view.ucs2_recipients and not plan.view.ucs2_causes.empty:
        with st.expander("What pushes messages into UCS-2"):
            st.dataframe(plan.view.ucs2_causes, hide_index=True,
                         column_config=table_columns(counts=["characters", "recipients"]))


def step_confirm() -> None:
    data = wiz()
    plan = None
    with friendly_errors():
        plan = current_plan()
    if plan is None:
        st.button("Back", key="wiz_back4e", on_click=go, args=(3,))
        return
    show_plan(plan, data.get("at"))
    tools = st.columns(2)
    tools[0].button("Recalculate", key="wiz_replan", help="Count again (contacts or the "
                    "document may have changed).", on_click=lambda: SS.update(wiz_force_plan=True))
    if tools[1].button(TEST_SEND_LABEL, key="wiz_test",
                       help="One message, rendered for the default destination of the "
                       "contact database (Contacts page), through the dispatcher."):
        with friendly_errors():
            test_id = app.test_send(sender=plan.sender, body=plan.body, database=plan.database)
            st.success(f"Test message handed to the dispatcher as mailing #{test_id}.")
    large = True
    if plan.needs_second_confirmation:
        large = st.checkbox(
            f"Yes, send to {fmt_int(plan.recipients)} recipients (more than the "
            f"{fmt_int(plan.confirm_threshold)} set on the Settings page).", key="wiz_large")
    label = "Send now" if data.get("at") is None else f"Schedule for {local(data['at'])}"
    cols = st.columns(2)
    cols[0].button("Back", key="wiz_back4", on_click=go, args=(3,))
    if cols[1].button(label, key="wiz_confirm", type="primary", disabled=not large):
        try:
            mailing_id = app.confirm_mailing(plan, at=data.get("at"),
                                             accept_rules=bool(data.get("accepted")),
                                             confirm_large=large)  # fmt: skip
        except StudioError as exc:
            st.error(str(exc))
            return
        what = "starts now" if data.get("at") is None else f"is scheduled for {local(data['at'])}"
        flash("success", f"Mailing #{mailing_id} {what}.")
        SS[PICK] = mailing_id  # "Details and results" shows the mailing just sent
        reset_wizard()
        st.rerun()


def wizard() -> None:
    if SS.get("wizard_document"):  # "Send bulk mailing" on the Documents page: start afresh
        reset_wizard()
        wiz()["document"] = SS.pop("wizard_document")
    step = int(SS.setdefault("wiz_step", 1))
    if step > 1 and not wiz().get("accepted"):
        step = SS["wiz_step"] = 1
    st.progress(step / len(STEPS), text=f"Step {step} of {len(STEPS)}: {STEPS[step - 1]}")
    [step_rules, step_recipients, step_when, step_confirm][step - 1]()


# -- progress, scheduled mailings, results ------------------------------------------------------
def show_progress(row: dict[str, Any]) -> None:
    mailing_id = int(row["id"])
    p = app.mailing_progress(mailing_id)
    total = int(p["total"]) or 1
    handled = int(p["total"]) - int(p["queued"])
    failed = int(p["failed"]) + int(p["undelivered"]) + int(p["expired"])
    st.markdown(f"**#{mailing_id}** · {mailing_name(row)} → {sent_to(row)}")
    st.progress(handled / total, text=f"{fmt_int(handled)} of {fmt_int(p['total'])} handled")
    cols = st.columns(5)
    cols[0].metric("Submitted", fmt_int(p["submitted"]), help="Accepted, no final report yet.")
    cols[1].metric("Delivered", fmt_int(p["delivered"]))
    cols[2].metric("Failed", fmt_int(failed), help="Failed, undelivered or expired.")
    cols[3].metric("Unknown", fmt_int(p["unknown"]))
    cols[4].metric("Skipped", fmt_int(p["skipped"]))
    if p["eta_seconds"] == 0:
        eta = "done sending"
    elif p["eta_seconds"] is None:
        eta = "estimated time to finish: not known yet"
    else:
        eta = f"estimated time to finish: {duration(p['eta_seconds'])}"
    st.caption(f"{p['rate_segments_per_s']:,.1f} segments per second · {eta}. {CANNOT_CANCEL}")


def watched(frame: pd.DataFrame) -> tuple[tuple[int, str], ...]:
    """The mailings whose state changes by itself soon, as (id, state): the sending ones,
    and the scheduled ones whose time has come (the scheduler starts them within a second or
    two). A small mailing can start and finish between two refreshes; watching it from the
    moment it is due is what lets the page notice."""
    due = (frame["state"] == "scheduled") & (frame["scheduled_at"] <= app.clock())
    live = frame[due | (frame["state"] == "sending")].sort_values("id")
    return tuple(zip(live["id"].astype(int).tolist(), live["state"].astype(str).tolist(),
                     strict=True))  # fmt: skip


@st.fragment(run_every=timedelta(seconds=2))
def live_progress() -> None:
    """The sending and due mailings, refreshed every 2 s without reloading the page; the
    whole page runs again when one of them starts, finishes or fails to start."""
    frame = app.list_mailings()
    watch = watched(frame)
    if SS.get(WATCH, watch) != watch:
        SS[WATCH] = watch
        st.rerun(scope="app")  # the lists below changed
    SS[WATCH] = watch
    if not watch:
        st.caption("Nothing is sending right now.")
        return
    rows = frame.set_index("id", drop=False)
    for mailing_id, state in watch:
        row = rows.loc[mailing_id].to_dict()
        with st.container(border=True):
            if state == "sending":
                show_progress(row)
            else:
                st.markdown(f"**#{mailing_id}** · {mailing_name(row)} → {sent_to(row)}")
                st.caption(f"Due since {local(row['scheduled_at'], '%H:%M:%S')}: starting "
                           "(the recipients are counted now), progress follows here.")


def local_times(values: pd.Series, fmt: str = "%Y-%m-%d %H:%M") -> pd.Series:
    """Stored (naive UTC) times as text in the user's zone, for a whole column at once."""
    times = pd.to_datetime(values).dt.tz_localize("UTC").dt.tz_convert(zone)
    return times.dt.strftime(fmt).fillna("")


def list_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One short row per mailing, to fit the page; the rest is under Details and results.

    A mailing that has not started shows no counts: its recipients are only counted (and
    its messages written) when it starts.
    """
    test = frame["kind"].eq("test").to_numpy()
    document = frame["document"].astype("string")
    sender = frame["sender"].astype("string").fillna("")
    name = np.where(document.notna(), document.fillna(""),
                    np.where(test, "test from " + sender, "text from " + sender))
    database = frame["database"].astype("string").fillna("")
    selection = frame["selection"].astype("string")
    target = np.where(test, "the default destination of " + database,
                      np.where(selection.notna(), "Selection " + selection.fillna(""),
                               "Whole contact database " + database))  # fmt: skip
    started = frame["started_at"].notna()
    when = local_times(frame["started_at"].where(started, frame["scheduled_at"]))
    not_started = ~started & frame["state"].isin(["scheduled", "cancelled", "failed"])
    table = pd.DataFrame({
        "id": frame["id"].astype("int64"), "mailing": name, "target": target,
        "state": frame["state"].astype("string"), "when": when,
    })  # fmt: skip
    for col in ("recipients", "delivered", "failed"):
        table[col] = frame[col].astype("Int64").mask(not_started)
    return table


LIST_COLUMNS = {
    "id": st.column_config.NumberColumn("#", format="%d", width="small"),
    "mailing": st.column_config.TextColumn("mailing", help="The document it sends."),
    "target": st.column_config.TextColumn("sent to"),
    "when": st.column_config.TextColumn("started (or due)"),
    "failed": st.column_config.NumberColumn("failed", format="localized",
                                            help="Failed, undelivered or expired."),
}


def details_picker(frame: pd.DataFrame) -> int | None:
    """The mailing whose details are shown: the one just sent, else the newest whenever a
    new mailing appeared since the last run, else the one picked.

    The labels leave out the state on purpose: the browser sends a select box's choice back
    as its label, and a label that changed (scheduled → sending) would lose the choice.
    """
    rows = frame.set_index("id", drop=False)
    labels = {int(i): f"#{int(i)} · {mailing_name(r)} → {sent_to(r)}"
              for i, r in rows.to_dict("index").items()}  # fmt: skip
    newest = max(labels)
    pick = SS.pop(PICK, None)
    if pick in labels:
        SS[DETAILS] = pick
    elif SS.get(NEWEST) != newest or SS.get(DETAILS) not in labels:
        SS[DETAILS] = newest
    SS[NEWEST] = newest
    return st.selectbox("Mailing", list(labels), key=DETAILS, format_func=labels.get)


def edit_scheduled(row: dict[str, Any]) -> None:
    mailing_id = int(row["id"])
    documents = app.document_names()
    options = targets()
    current = mailing_target(row)
    if current not in options:
        options = [current, *options]
    with st.form(f"mail_edit_{mailing_id}"):
        at = st.datetime_input(f"Send at (time zone {zone})", key=f"mail_at_{mailing_id}",
                               value=local_naive(row["scheduled_at"]), format="YYYY-MM-DD",
                               step=timedelta(minutes=5))  # fmt: skip
        doc_options = ["(keep the current text)", *documents]
        document = st.selectbox("Document", doc_options, key=f"mail_doc_{mailing_id}",
                                index=doc_options.index(row["document"])
                                if row.get("document") in documents else 0)  # fmt: skip
        target = st.selectbox("Send to", options, index=options.index(current),
                              format_func=target_label, key=f"mail_target_{mailing_id}")
        split = st.number_input("Most parts per message (1: never split)", min_value=1,
                                max_value=10, value=int(row["split_max_parts"]), step=1,
                                key=f"mail_split_{mailing_id}")  # fmt: skip
        if st.form_submit_button("Save changes", type="primary"):
            changes: dict[str, Any] = {}
            new_at = utc_from_local(at, zone) if at is not None else None
            if new_at is not None and abs((new_at - row["scheduled_at"]).total_seconds()) >= 60:
                changes["at"] = new_at
            if document in documents and document != row.get("document"):
                changes["document"] = document
            if target != current:
                changes.update({k: v for k, v in target_args(target).items() if v})
            if int(split) != int(row["split_max_parts"]):
                changes["split_max_parts"] = int(split)
            try:
                app.edit_mailing(mailing_id, **changes)
                flash("success", f"Mailing #{mailing_id} changed." if changes else
                      "Nothing to change.")  # fmt: skip
                st.rerun()
            except StudioError as exc:
                st.error(str(exc))
    if st.button(f"Cancel mailing #{mailing_id}", key=f"mail_cancel_{mailing_id}"):
        try:
            app.cancel_mailing(mailing_id)
            flash("success", f"Mailing #{mailing_id} cancelled.")
            st.rerun()
        except StudioError as exc:
            st.error(str(exc))


def show_details(row: dict[str, Any]) -> None:
    mailing_id = int(row["id"])
    mailing = app.get_mailing(mailing_id)
    state = mailing["state"]
    st.markdown(
        f"**#{mailing_id}** · {state} · {mailing_name(mailing)} → {sent_to(mailing)} · "
        f"scheduled {local(mailing['scheduled_at'])}"
        + (f" · started {local(mailing['started_at'])}" if mailing.get("started_at") else "")
        + (f" · finished {local(mailing['finished_at'])}" if mailing.get("finished_at") else "")
    )
    late = mailing.get("late_seconds") or 0.0
    if late > LATE_NOTICE:
        st.warning(f"Started late, by {duration(late)}: it was due at "
                   f"{local(mailing['scheduled_at'])} while no app or worker was running.")
    if state == "failed":
        st.error(f"Could not start: {mailing.get('error')}")
    if state == "sending":
        st.info(CANNOT_CANCEL)
    if state == "scheduled":
        st.info("Not started yet: the recipients are counted when it starts, so later "
                "opt-outs and new contacts are respected. Edit or cancel it above.")
        return
    reconciliation = mailing.get("reconciliation") or {}
    if reconciliation.get("steps"):
        steps = reconciliation["steps"]
        table = pd.DataFrame({"step": [STEP_LABELS.get(k, k.replace("_", " ")) for k in steps],
                              "contacts": list(steps.values())})  # fmt: skip
        with st.expander("Reconciliation when it started"):
            st.dataframe(table, hide_index=True,
                         column_config=table_columns(counts=["contacts"]))
    if state in ("sending", "finished"):
        p = app.mailing_progress(mailing_id)
        statuses = ("queued", "submitted", "delivered", "undelivered", "failed", "expired",
                    "unknown", "skipped")
        shown = pd.DataFrame({"status": statuses, "recipients": [p[s] for s in statuses]})
        shown["status"] = shown["status"].replace({"submitted": "submitted, awaiting report"})
        st.dataframe(shown, hide_index=True, column_config=table_columns(counts=["recipients"]))
        st.caption(f"{fmt_int(p['total'])} recipients · {fmt_int(p['segments'])} segments "
                   f"({fmt_int(p['parts_submitted'])} accepted) · at most "
                   f"{row['split_max_parts']} parts per message.")
        if p["skipped"]:
            st.markdown(f"**Skipped recipients** ({fmt_int(p['skipped'])}): not sent, never "
                        "cut short")
            st.dataframe(app.mailing_skipped(mailing_id, limit=SKIPPED_SHOWN), hide_index=True)
        st.download_button("Download the results (CSV)", lambda: to_safe_csv(
            app.mailing_results(mailing_id)), file_name=f"mailing-{mailing_id}-results.csv",
            mime="text/csv", key=f"mail_results_{mailing_id}")  # fmt: skip


def mailings_list() -> None:
    if not background_enabled():
        st.info("This app process does not send (SMS_STUDIO_BACKGROUND=0): mailings start "
                "when `python -m core worker` runs on this database.")
    elif background_error():
        st.error(f"The dispatcher did not start, so nothing is sent: {background_error()}")
    ticker = app.scheduler_status()
    if ticker and ticker["errors"]:
        st.warning("The scheduler reported: " + " · ".join(ticker["errors"][-3:]))
    frame = app.list_mailings()
    SS[WATCH] = watched(frame)
    st.subheader("Sending")
    live_progress()
    if frame.empty:
        st.info("No mailings yet: start one on the **New mailing** tab.")
        return
    st.subheader("All mailings")
    st.dataframe(list_table(frame), hide_index=True, width="stretch", placeholder="–",
                 column_config={**table_columns(counts=["recipients", "delivered"]),
                                **LIST_COLUMNS})  # fmt: skip
    st.caption(f"Times in {zone}. Counts as of {local(app.clock(), '%H:%M:%S')}; the "
               "sending mailings above refresh by themselves. Every count and the results "
               "of one mailing are under **Details and results**.")
    scheduled = frame[frame["state"] == "scheduled"].sort_values("scheduled_at")
    st.subheader("Edit scheduled mailing")
    if scheduled.empty:
        st.caption("No mailing is waiting for its time.")
    for row in scheduled.to_dict("records"):
        with st.expander(f"#{row['id']} · {mailing_name(row)} → "
                         f"{target_label(mailing_target(row))} · {local(row['scheduled_at'])}"):
            edit_scheduled(row)
    st.subheader("Details and results")
    chosen = details_picker(frame)
    if chosen is not None:
        with friendly_errors():
            show_details(frame.set_index("id", drop=False).loc[int(chosen)].to_dict())


# -- the page -----------------------------------------------------------------------------------
show_flash()
in_wizard = bool(SS.get("wizard_document")) or int(SS.get("wiz_step", 1)) > 1
tab_list, tab_new = st.tabs(["Mailings", "New mailing"],
                            default="New mailing" if in_wizard else "Mailings")
with tab_new:
    wizard()
with tab_list:
    mailings_list()
