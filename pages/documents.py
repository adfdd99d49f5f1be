"""Documents: write a sender and a personalised message, watch its segment meter, preview it
for the default destination, measure it over a whole selection, and send a test or a bulk
mailing."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import plotly.express as px
import streamlit as st

from core import segments
from core.errors import StudioError
from ui.common import fmt_int, friendly_errors, pick_database, studio

WHOLE_DATABASE = "(whole contact database)"
FLASH = "doc_flash"

st.title("Documents")
app = studio()


# -- small helpers ----------------------------------------------------------------------------
def act(action: Callable[[], Any], success: str) -> None:
    """Run a button's action in its callback; remember the outcome to show on this run."""
    try:
        action()
        st.session_state[FLASH] = ("success", success)
    except (StudioError, ValueError) as exc:
        st.session_state[FLASH] = ("error", str(exc))


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH, (None, None))
    if kind == "success":
        st.success(message)
    elif kind == "error":
        st.error(message)


def show_text(text: str, marked: tuple[str, ...] = ()) -> None:
    """A message as sent, characters forcing UCS-2 highlighted."""
    bad = set(marked)
    pieces = []
    for char in text:
        if char == "\n":
            pieces.append("<br>")
            continue
        escaped = html.escape(char)
        pieces.append(
            f'<mark style="background:#ffb3b3" title="U+{ord(char):04X} forces UCS-2">'
            f"{escaped}</mark>" if char in bad else escaped
        )
    body = "".join(pieces) or '<span style="opacity:.5">(empty)</span>'
    st.markdown(
        '<div style="white-space:pre-wrap;font-family:monospace;border:1px solid #ddd;'
        f'border-radius:6px;padding:.6em;margin-bottom:.8em">{body}</div>',
        unsafe_allow_html=True,
    )


def show_meter(info: segments.SegmentInfo) -> None:
    """Characters, encoding, units used/left in the current part, segments."""
    cols = st.columns(5)
    used_in_part = info.capacity - info.units_left
    cols[0].metric("Characters", fmt_int(sum(len(p) for p in info.parts)))
    cols[1].metric("Encoding", info.encoding + (f" + {info.national}" if info.national else ""))
    cols[2].metric("Units", fmt_int(info.units),
                   help="Septets in GSM-7 (€, [, ], {, } … count two), UTF-16 code units in "
                   "UCS-2 (emoji count two).")
    cols[3].metric("Left in this part", fmt_int(info.units_left),
                   help=f"Part {info.segments}: {used_in_part} of {info.capacity} units used.")
    cols[4].metric("Segments", fmt_int(info.segments))
    if info.non_gsm:
        listed = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in info.non_gsm)
        st.caption(f"Characters forcing UCS-2 (highlighted): {listed}")


def apply_fix(key: str, chars: list[str]) -> None:
    st.session_state[key] = segments.apply_smart_encoding(st.session_state.get(key, ""), chars)


def reset_editor(keys: dict[str, str], values: dict[str, str]) -> None:
    for field, key in keys.items():
        st.session_state[key] = values[field]


# -- choose, create, rename, duplicate, delete -----------------------------------------------------
def create(name_key: str) -> None:
    name = st.session_state.get(name_key, "")

    def run() -> None:
        app.create_document(name)
        st.session_state["doc_current"] = name.strip()
        st.session_state[name_key] = ""

    act(run, f"Document {name.strip()!r} created.")


def rename(old: str, new_key: str) -> None:
    new = st.session_state.get(new_key, "")

    def run() -> None:
        app.rename_document(old, new)
        st.session_state["doc_current"] = new.strip()

    act(run, f"Renamed to {new.strip()!r}.")


def duplicate(name: str, new_key: str) -> None:
    new = st.session_state.get(new_key, "")

    def run() -> None:
        app.duplicate_document(name, new)
        st.session_state["doc_current"] = new.strip()

    act(run, f"Copied to {new.strip()!r}.")


def delete(name: str) -> None:
    def run() -> None:
        app.delete_document(name)
        st.session_state.pop("doc_current", None)

    act(run, f"Document {name!r} deleted.")


names = app.document_names()
col_pick, col_new = st.columns([2, 1], vertical_alignment="bottom")
with col_new:
    st.text_input("New document", key="doc_new_name", placeholder="Name of a new document")
    st.button("Create", key="doc_create", on_click=create, args=("doc_new_name",))
with col_pick:
    current = None
    if names:
        if st.session_state.get("doc_current") not in names:
            st.session_state["doc_current"] = names[0]
        current = st.selectbox("Document", names, key="doc_current")
    else:
        st.info("No documents yet: name one and press **Create**.")
show_flash()

if current is None:
    st.stop()

doc = app.get_document(current)
with st.expander("Rename, duplicate or delete"):
    c1, c2, c3 = st.columns(3, vertical_alignment="bottom")
    with c1:
        st.text_input("New name", key="doc_rename_to")
        st.button("Rename", on_click=rename, args=(doc.name, "doc_rename_to"))
    with c2:
        st.text_input("Name of the copy", key="doc_copy_to", value=f"{doc.name} (copy)")
        st.button("Duplicate", on_click=duplicate, args=(doc.name, "doc_copy_to"))
    with c3:
        sure = st.checkbox(f"Yes, delete {doc.name!r}", key="doc_delete_sure")
        st.button("Delete", disabled=not sure, on_click=delete, args=(doc.name,))
    st.dataframe(app.list_documents(), hide_index=True)

# -- the editor ---------------------------------------------------------------------------------
database = pick_database("Contact database (its fields, default destination and selections)",
                         key="doc_database")
keys = {"sender": f"doc_sender_{doc.id}", "body": f"doc_body_{doc.id}"}
st.session_state.setdefault(keys["sender"], doc.sender)
st.session_state.setdefault(keys["body"], doc.body)

fields = app.get_database(database).user_columns if database else []
sender = st.text_input(
    "Sender", key=keys["sender"], persist_state="session",
    help="Up to 11 letters, digits and spaces, or a phone number of up to 15 digits. "
    "May be personalised, e.g. {{ shop }}.",
)
body = st.text_area(
    "Message", key=keys["body"], height=180, persist_state="session",
    help="Personalise with {{ field }} or {{ field | default(\"friend\") }}; Smarty forms such "
    "as {$profile.field|default:'friend'} are translated. Counts update when you leave the "
    "field or press Ctrl+Enter.",
)
if fields:
    st.caption("Fields: " + " ".join(f"`{{{{ {f} }}}}`" for f in fields))

check = None
with friendly_errors():
    check = app.check_document(body=body or "", sender=sender or "", database=database)
if check is not None:
    if check.template_error is not None:
        err = check.template_error
        where = ", ".join(
            part for part in (
                f"line {err.line}" if err.line else "",
                f"column {err.column}" if err.column else "",
            ) if part
        )
        st.error(f"Template: {err}" + (f" ({where})" if where and where not in str(err) else ""))
    if check.translated_source:
        st.info("Smarty was translated; the same in Jinja2:")
        st.code(check.translated_source, language="jinja2", wrap_lines=True)
    if check.sender_check is not None:
        if not check.sender_check.ok:
            st.error(f"Sender: {check.sender_check.error}")
        for warning in check.sender_check.warnings:
            st.warning(warning)
    if check.sender_error is not None:
        st.error(f"Sender template: {check.sender_error}")

dirty = (body or "") != doc.body or (sender or "") != doc.sender
b1, b2, b3 = st.columns([1, 1, 4], vertical_alignment="center")
if b1.button("Save", type="primary", key="doc_save"):
    with friendly_errors():
        app.update_document(doc.name, sender=sender or "", body=body or "")
        dirty = False
        if check is not None and check.template_error is not None:
            st.warning("Saved as a draft: fix the template error before sending.")
        else:
            st.success("Saved.")
b2.button("Revert", key="doc_revert", disabled=not dirty, on_click=reset_editor,
          args=(keys, {"sender": doc.sender, "body": doc.body}))
if dirty:
    b3.caption("Unsaved changes.")

st.subheader("Meter: the text as typed")
with friendly_errors():
    meter = app.message_meter(body or "")
    show_meter(meter)
    if meter.non_gsm:
        show_text(body or "", meter.non_gsm)
    fix = app.smart_fix(body or "")
    if fix.replacements:
        chars = [c for c, _, _ in fix.replacements]
        swaps = " ".join(f"{c}→{r or '(nothing)'}" for c, r, _ in fix.replacements)
        if fix.after.encoding == segments.GSM7:
            st.button(f"Replace {swaps} ({fix.summary})", key="doc_smart_fix",
                      on_click=apply_fix, args=(keys["body"], chars),
                      help="Look-alike GSM-7 characters; nothing changes until you click.")
        else:
            st.caption(f"Replacing {swaps} would not help: {fix.summary}.")
    if app.national_shift():
        st.caption(f"Counted with the {app.national_shift()} national shift table "
                   "(gateway setting).")

# Tracked tabs (on_change="rerun"): a button in "Send" must not bring the user back to
# "Preview" when the messages above the tabs change on its rerun.
tab_preview, tab_all, tab_send = st.tabs(["Preview", "Whole selection", "Send"], key="doc_tabs",
                                         on_change="rerun")

# -- previews -------------------------------------------------------------------------------------
with tab_preview:
    if not database:
        st.info("Choose a contact database to preview the message.")
    else:
        dest = app.default_destination(database)
        st.markdown("**Default destination**")
        if dest is None:
            st.info("This contact database has no default destination yet: "
                    "choose one on the **Contacts** page "
                    "(tab *Opt-in rule & default destination*) or the **Selections** page.")
        else:
            with friendly_errors():
                preview = app.preview_document(body=body or "", sender=sender or "",
                                               database=database)
                st.caption(f"To {preview.label} · from {preview.sender or '(no sender)'}")
                if preview.sender_check is not None and not preview.sender_check.ok:
                    st.error(f"Rendered sender: {preview.sender_check.error}")
                show_text(preview.text, preview.meter.non_gsm)
                show_meter(preview.meter)
        st.markdown("**Any contact**")
        search = st.text_input("Find a contact by number or any field", key="doc_preview_search")
        if search:
            found, total = app.browse_contacts(database, search=search, page_size=20)
            if found.empty:
                st.caption("No contact matches.")
            else:
                info = app.get_database(database)
                shown = info.user_columns[:3]
                labels = {
                    int(row["_row_id"]): " · ".join(str(row[c]) for c in [*shown, "_e164"])
                    for _, row in found.iterrows()
                }
                row_id = st.selectbox(f"{fmt_int(total)} match (first 20 shown)", list(labels),
                                      format_func=labels.get, key="doc_preview_pick")
                with friendly_errors():
                    picked = app.preview_document(body=body or "", sender=sender or "",
                                                  database=database, row_id=row_id)
                    st.caption(f"To {picked.label} · from {picked.sender or '(no sender)'}")
                    show_text(picked.text, picked.meter.non_gsm)
                    show_meter(picked.meter)

# -- the whole selection -------------------------------------------------------------------------
with tab_all:
    if not database:
        st.info("Choose a contact database first.")
    else:
        options = [WHOLE_DATABASE]
        if hasattr(app, "selection_names"):
            options += app.selection_names(database)
        choice = st.selectbox("Selection", options, key="doc_view_selection")
        selection = None if choice == WHOLE_DATABASE else choice
        signature = (doc.id, body, sender, selection, database)
        if st.button("Render every message", key="doc_view_run"):
            bar = st.progress(0.0, text="Starting")
            with friendly_errors():
                st.session_state["doc_view"] = (signature, app.selection_view(
                    body=body or "", sender=sender or "", selection=selection,
                    database=None if selection else database,
                    progress=lambda f, label: bar.progress(min(max(f, 0.0), 1.0), text=label),
                ))
            bar.empty()
        stored = st.session_state.get("doc_view")
        if stored is not None:
            made_for, view = stored
            if made_for != signature:
                st.caption("Computed for another text or selection; render again to update.")
            c = st.columns(4)
            c[0].metric("Recipients", fmt_int(view.recipients))
            c[1].metric("Total segments", fmt_int(view.total_segments),
                        help=f"{view.mean_segments:.2f} per recipient")
            c[2].metric("In UCS-2", fmt_int(view.ucs2_recipients))
            c[3].metric("Estimated cost", f"{view.total_cost:,.2f} {view.currency}")
            st.caption(
                f"{view.audience}. Rendered in {view.render_seconds:.2f} s "
                f"({'vectorised' if view.fast_path else 'Jinja2 per contact'}), counted in "
                f"{view.analyse_seconds:.2f} s"
                + (f", with the {view.national} shift table" if view.national else "") + "."
            )
            for warning in view.warnings:
                st.warning(warning)
            if view.recipients:
                fig = px.bar(view.segments_histogram, x="segments", y="recipients",
                             title="Segments per recipient")
                fig.update_xaxes(type="category", title="segments")
                st.plotly_chart(fig, width="stretch")
            if not view.ucs2_causes.empty:
                st.markdown("**What pushes messages into UCS-2**")
                st.dataframe(view.ucs2_causes, hide_index=True)
            if view.longest is not None:
                longest = view.longest
                st.markdown(
                    f"**Longest message**: {longest.segments} segments, "
                    f"{longest.characters} characters, {longest.encoding}, contact "
                    f"{longest.contact_key} ({longest.e164})"
                )
                show_text(longest.text)
            st.markdown("**Estimated cost per country**")
            st.dataframe(view.cost_by_country, hide_index=True)
            st.caption("Prices per segment come from the price table on the **Settings** page.")
            if not view.invalid_senders.empty:
                st.markdown("**Rendered senders that break the sender rule**")
                st.dataframe(view.invalid_senders, hide_index=True)

# -- sending ------------------------------------------------------------------------------------
with tab_send:
    can_test = hasattr(app, "test_send")
    if st.button("Send a test to the default destination", key="doc_test_send",
                 disabled=not (can_test and database)):
        with friendly_errors():
            mailing_id = app.test_send(sender=sender or "", body=body or "", database=database)
            st.success(f"Test message handed to the dispatcher as mailing #{mailing_id}; follow "
                       "it on the **Mailings** page.")
    if not can_test:
        st.caption("Sending is not available in this installation yet.")
    elif not database:
        st.caption("Choose a contact database with a default destination to send a test.")

    if st.button("Send bulk mailing…", key="doc_bulk", type="primary",
                 help="Opens the mailing wizard with this document (unsaved changes are "
                 "saved first)."):
        with friendly_errors():
            if dirty:
                app.update_document(doc.name, sender=sender or "", body=body or "")
            st.session_state["wizard_document"] = doc.name
            st.switch_page("pages/mailings.py")
