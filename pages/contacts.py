"""Contacts: upload into a database, map columns, read the import report, browse, suppress."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from core.exports import to_safe_csv
from ui.common import fmt_int, friendly_errors, pick_database, studio

REGIONS = ["NL", "BE", "DE", "GB", "FR", "ES", "IT", "US", "CA", "AT", "CH", "DK", "SE", "NO",
           "PL", "PT", "IE", "LU", "TR", "AU"]
NONE = "(none)"

st.title("Contacts")
tab_upload, tab_browse, tab_suppress, tab_rules = st.tabs(
    ["Upload", "Browse", "Suppression list", "Opt-in rule & default destination"],
    key="contacts_tabs", on_change="rerun",  # the open tab survives every rerun
)


def show_report(report: dict) -> None:
    st.subheader(f"Import report: {report['database']}")
    counts = report["status_counts"]
    cols = st.columns(5)
    cols[0].metric("Rows read", fmt_int(report["rows"]))
    cols[1].metric("Valid mobile", fmt_int(counts.get("valid_mobile")))
    cols[2].metric("Not mobile", fmt_int(counts.get("not_mobile")))
    cols[3].metric("Invalid", fmt_int(counts.get("invalid")))
    cols[4].metric("Missing", fmt_int(counts.get("missing")))
    st.caption(
        f"{fmt_int(report['inserted'])} inserted, {fmt_int(report['updated'])} updated · "
        f"{report['file_format']} · encoding {report['encoding'] or '–'} · "
        f"default country {report['region']} · {report['seconds']:.1f} s. "
        "Counts are for the whole contact database after this import."
    )
    for warning in report.get("warnings", []):
        st.warning(warning)
    if report.get("renamed_columns"):
        st.info("Renamed columns: " + ", ".join(
            f"{old!r} → {new!r}" for old, new in report["renamed_columns"].items()))
    if report["country_counts"]:
        frame = pd.DataFrame(
            {"country": list(report["country_counts"]),
             "numbers": list(report["country_counts"].values())}
        )
        fig = px.bar(frame, x="country", y="numbers", title="Valid numbers per country")
        fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                          xaxis_title=None, yaxis_title=None)
        st.plotly_chart(fig, width="stretch")
    st.markdown(
        f"**Duplicates:** {fmt_int(report['duplicate_numbers'])} numbers are shared by "
        f"{fmt_int(report['duplicate_contacts'])} contacts; at send time each number gets one "
        "message."
    )
    app = studio()
    if report["duplicate_numbers"]:
        with st.expander("Shared numbers"):
            st.dataframe(app.duplicate_numbers(report["database"], limit=200), hide_index=True)
    if report["cannot_receive"]:
        unsendable = app.unsendable_contacts(report["database"])
        st.download_button(
            f"Download the {fmt_int(len(unsendable))} contacts that cannot receive SMS (CSV)",
            to_safe_csv(unsendable), file_name=f"{report['database']}-cannot-receive.csv",
            mime="text/csv",
        )


with tab_upload:
    start_here = st.empty()  # cleared as soon as the first import succeeds
    if not studio().database_names() and not st.session_state.get("last_import"):
        start_here.info(
            "**Start here.** Upload your contacts to create a contact database; then build "
            "selections, write a document and send a mailing. No file at hand? Use the demo "
            "file `data/demo/contacts.csv` (10,000 contacts)."
        )
    st.write("Upload a CSV, Excel (.xlsx) or Parquet file. Any columns; one holds mobile numbers.")
    upload = st.file_uploader(
        "Contact file", type=["csv", "txt", "tsv", "xlsx", "parquet"], key="contact_file"
    )
    if upload is not None:
        data = upload.getvalue()
        preview = None
        with friendly_errors():
            preview = studio().preview_file(data, upload.name)
        if preview is not None:
            st.caption(
                f"{fmt_int(preview.rows)} rows · {len(preview.columns)} columns · "
                f"{preview.file_format}"
                + (f" · encoding {preview.encoding}" if preview.encoding else "")
                + (f" · delimiter {preview.delimiter!r}" if preview.delimiter else "")
            )
            st.dataframe(preview.head, hide_index=True)
            st.subheader("Map the columns")
            with st.form("mapping"):
                existing = studio().database_names()
                default_name = upload.name.rsplit(".", 1)[0]
                name = st.text_input(
                    "Contact database name", value=default_name,
                    help="A new name creates a contact database; an existing one adds to (or "
                    "updates) it. Existing: " + (", ".join(existing) if existing else "none yet"),
                )
                columns = preview.columns
                mobile = st.selectbox(
                    "Mobile number field", columns,
                    index=columns.index(preview.mobile_field) if preview.mobile_field else 0,
                )
                key = st.selectbox(
                    "Key field (re-importing updates contacts with the same key)",
                    [NONE, *columns],
                    index=1 + columns.index(preview.key_field) if preview.key_field else 0,
                )
                consent = st.selectbox(
                    "Consent (opt-in) field", [NONE, *columns],
                    index=1 + columns.index(preview.consent_field) if preview.consent_field
                    else 0,
                )
                seen = preview.consent_values_seen
                yes_words = {"yes", "ja", "j", "y", "1", "true", "opt-in", "x"}
                consent_yes = st.multiselect(
                    "Values that mean yes", seen,
                    default=[v for v in seen if v.strip().lower() in yes_words],
                    accept_new_options=True,
                )
                region = st.selectbox("Default country for numbers without a country code",
                                      REGIONS)
                submitted = st.form_submit_button("Import", type="primary")
            if submitted:
                bar = st.progress(0.0, text=f"Importing {fmt_int(preview.rows)} rows")
                with friendly_errors():
                    report = studio().import_contacts(
                        data, file_name=upload.name, database=name, mobile_field=mobile,
                        key_field=None if key == NONE else key,
                        consent_field=None if consent == NONE else consent,
                        consent_yes=consent_yes or None, region=region,
                        progress=lambda f, label: bar.progress(min(f, 1.0), text=label),
                    )
                    st.session_state["last_import"] = report.to_dict()
                    st.session_state["current_database"] = report.database
                    start_here.empty()
                bar.empty()
    if st.session_state.get("last_import"):
        show_report(st.session_state["last_import"])
        st.success("Next: build a selection of these contacts on the **Selections** page "
                   "(sidebar), switch on SMS usage and choose the default destination.")


with tab_browse:
    database = pick_database(key="browse_db")
    if database:
        app = studio()
        info = app.get_database(database)
        search = st.text_input("Search by number or any field", key="browse_search")
        page_size = 50
        frame, total = app.browse_contacts(database, search=search or None, page=0,
                                           page_size=1)
        pages = max(1, -(-total // page_size))
        page = st.number_input(f"Page (of {fmt_int(pages)})", min_value=1, max_value=pages,
                               value=1, step=1, key="browse_page")
        frame, total = app.browse_contacts(database, search=search or None, page=page - 1,
                                           page_size=page_size)
        st.caption(f"{fmt_int(total)} contacts" + (" match" if search else "")
                   + f" · mobile field {info.mobile_field!r} · "
                   "a value in _suppressed means the number is on the suppression list")
        st.dataframe(frame, hide_index=True)
        with st.expander("Columns and sizes"):
            st.dataframe(app.database_summary(database), hide_index=True)


with tab_suppress:
    app = studio()
    st.write(
        f"**{fmt_int(app.suppression_count())}** numbers are suppressed: no mailing ever reaches "
        "them. STOP replies are added automatically."
    )
    col_add, col_remove = st.columns(2)
    with col_add, st.form("suppress_add"):
        numbers = st.text_area("Numbers to suppress (one per line, any format)")
        reason = st.selectbox("Reason", ["manual", "stop_reply", "bounced"])
        region = st.selectbox("Country for numbers without a country code", REGIONS,
                              key="sup_region")
        if st.form_submit_button("Add to suppression list"):
            with friendly_errors():
                result = app.suppress(numbers.split("\n"), reason=reason, region=region)
                st.success(f"Added {fmt_int(len(result.added))}; "
                           f"{fmt_int(len(result.already))} were already listed.")
                for raw, why in result.invalid:
                    if raw.strip():
                        st.warning(f"{raw!r}: {why}")
    with col_remove, st.form("suppress_remove"):
        numbers = st.text_area("Numbers to remove (one per line)")
        if st.form_submit_button("Remove from suppression list"):
            with friendly_errors():
                result = app.unsuppress(numbers.split("\n"))
                st.success(f"Removed {fmt_int(len(result.removed))}; "
                           f"{fmt_int(len(result.not_found))} were not listed.")
    sup_file = st.file_uploader("Import a list of numbers", type=["csv", "txt", "xlsx"],
                                key="sup_file")
    if sup_file is not None and st.button("Import suppression list"):
        with friendly_errors():
            result = app.import_suppressions(sup_file.getvalue(), file_name=sup_file.name)
            st.success(f"Added {fmt_int(len(result.added))}; {fmt_int(len(result.already))} "
                       f"already listed; {fmt_int(len(result.invalid))} not numbers.")
    search = st.text_input("Find a suppressed number", key="sup_search")
    st.dataframe(app.list_suppressions(search or None, limit=200), hide_index=True)


with tab_rules:
    database = pick_database(key="rules_db")
    if database:
        app = studio()
        info = app.get_database(database)
        st.subheader("Opt-in rule")
        st.caption("Only contacts whose consent field has one of these values can receive SMS.")
        fields = info.user_columns
        consent_field = st.selectbox(
            "Consent field", [NONE, *fields],
            index=1 + fields.index(info.consent_field) if info.consent_field in fields else 0,
        )
        seen = app.consent_values_seen(database, consent_field) if consent_field != NONE else []
        choices = sorted(set(seen) | set(info.consent_values))
        values = st.multiselect("Values that mean yes", choices, default=info.consent_values,
                                accept_new_options=True)
        if st.button("Save opt-in rule"):
            with friendly_errors():
                app.set_opt_in_rule(database, None if consent_field == NONE else consent_field,
                                    values)
                st.success("Opt-in rule saved.")
        st.subheader("Default destination")
        current = app.default_destination(database)
        if current:
            who = ", ".join(str(v) for k, v in current.items()
                            if not k.startswith("_") and v is not None)[:120]
            st.write(f"Now: **{current.get('_e164')}**" + (f" · {who}" if who else ""))
        else:
            st.caption("None yet: previews and test sends go to this contact, so choose one "
                       "(a colleague's or your own number).")
        number = st.text_input("A test number", key="dest_number")
        if st.button("Use this number") and number:
            with friendly_errors():
                app.set_default_destination(database, number=number)
                st.success("Default destination saved.")
        if info.key_field:
            key_value = st.text_input(f"…or a contact by {info.key_field}", key="dest_key")
            if st.button("Use this contact") and key_value:
                with friendly_errors():
                    app.set_default_destination(database, contact_key=key_value)
                    st.success("Default destination saved.")
