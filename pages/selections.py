"""Selections: build rules over a contact database, nest mini-selections, see who gets an SMS.

The condition builder edits a JSON spec (see `core.selections`); every number on this page
comes from one `Studio` call. Widgets are keyed by a version number that changes whenever a
rule is loaded, so loading a selection never fights with what the widgets remember.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from core import selections as rules
from ui.common import fmt_int, friendly_errors, pick_database, studio, table_columns

NEW = "\x00new"  # the tree's "new selection" entry
PHONE_FIELDS = {"_country": "country of the number", "_number_type": "number type",
                "_phone_status": "phone status", "_sms": "SMS history"}
SS = st.session_state


# -- the builder's model: {"mode": "all"|"any", "items": [condition | group]} -------------------
def _cond(field: str = "", op: str = "", value: Any = None) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex[:8], "type": "cond", "field": field, "op": op, "value": value}


def _model_from_spec(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The builder's model of a spec, or None when it nests deeper than the builder shows
    (or is not a well-formed spec: then the JSON editor shows it with the error)."""
    try:
        return _model_from_spec_unchecked(spec)
    except (KeyError, TypeError, AttributeError):
        return None


def _model_from_spec_unchecked(spec: dict[str, Any]) -> dict[str, Any] | None:
    if not spec:
        return {"mode": "all", "items": []}
    if "all" not in spec and "any" not in spec:
        return {"mode": "all", "items": [_cond(spec["field"], spec["op"], spec.get("value"))]}
    mode = "all" if "all" in spec else "any"
    items = []
    for child in spec[mode]:
        if "all" in child or "any" in child:
            sub = "all" if "all" in child else "any"
            if any("all" in c or "any" in c for c in child[sub]):
                return None
            items.append({"id": uuid.uuid4().hex[:8], "type": "group", "mode": sub,
                          "items": [_cond(c["field"], c["op"], c.get("value"))
                                    for c in child[sub]]})
        else:
            items.append(_cond(child["field"], child["op"], child.get("value")))
    return {"mode": mode, "items": items}


def _spec_from_model(model: dict[str, Any]) -> dict[str, Any]:
    def cond(c: dict[str, Any]) -> dict[str, Any]:
        out = {"field": c["field"], "op": c["op"]}
        if c.get("value") is not None:
            out["value"] = c["value"]
        return out

    items = []
    for item in model["items"]:
        if item["type"] == "group":
            items.append({item["mode"]: [cond(c) for c in item["items"]]})
        else:
            items.append(cond(item))
    if model["mode"] == "all" and len(items) == 1 and "field" in items[0]:
        return items[0]  # one condition needs no group (and reads back as it was stored)
    return {model["mode"]: items}


def _load(target: tuple[str, str | None, str | None], spec: dict[str, Any]) -> None:
    SS["sb_target"] = target
    SS["sb_ver"] = SS.get("sb_ver", 0) + 1
    model = _model_from_spec(spec)
    SS["sb_model"] = model
    SS["sb_raw"] = None if model is not None else spec  # too deep: JSON only


# -- value widgets that fit the field's type ------------------------------------------------------
def _kind(columns: dict[str, str], field: str) -> str:
    return "sms" if field == "_sms" else rules.column_kind(columns.get(field, "VARCHAR"))


def _is_int_type(duck_type: str) -> bool:
    return rules.column_kind(duck_type) == "number" and "INT" in duck_type.upper()


def _scalar_widget(label: str, kind: str, duck_type: str, value: Any, key: str) -> Any:
    if kind == "number":
        if _is_int_type(duck_type) and (value is None or float(value).is_integer()):
            return st.number_input(label, value=None if value is None else int(value),
                                   step=1, key=key)
        return st.number_input(label, value=None if value is None else float(value), key=key)
    if kind in ("date", "timestamp"):
        try:
            default = date.fromisoformat(str(value)[:10]) if value else None
        except ValueError:
            default = None
        picked = st.date_input(label, value=default, key=key, format="YYYY-MM-DD")
        return picked.isoformat() if isinstance(picked, date) else None
    if kind == "bool":
        options = [True, False]
        index = options.index(bool(value)) if value is not None else 0
        return st.selectbox(label, options, index=index, key=key)
    return st.text_input(label, value="" if value is None else str(value), key=key) or None


def _value_widget(cond: dict[str, Any], op: rules.Operator, kind: str, duck_type: str,
                  database: str, key: str) -> Any:
    value = cond.get("value")
    if op.value_kind == "none":
        return None
    if op.value_kind == "int":
        label = "mailing id (empty: any)" if op.value_optional else (
            "days" if op.key == "within_last_days" else "mailing id")
        current = int(value) if isinstance(value, (int, float)) else None
        if current is None and not op.value_optional:
            current = 30 if op.key == "within_last_days" else None
        return st.number_input(label, value=current, min_value=0, step=1, key=key)
    if op.value_kind == "list":
        chosen = [v for v in (value or []) if v is not None]
        options = list(dict.fromkeys([*studio().frequent_values(database, cond["field"], 50),
                                      *chosen]))
        return st.multiselect("values", options, default=chosen, key=key,
                              accept_new_options=True, placeholder="pick or type values")
    if op.value_kind == "pair":
        low, high = (value or [None, None])[:2] if isinstance(value, list) else (None, None)
        left, right = st.columns(2)
        with left:
            a = _scalar_widget("from", kind, duck_type, low, key + "_lo")
        with right:
            b = _scalar_widget("to", kind, duck_type, high, key + "_hi")
        return [a, b]
    return _scalar_widget("value", kind, duck_type, value, key)


def _condition_row(cond: dict[str, Any], fields: list[str], columns: dict[str, str],
                   database: str, ver: int, remove_from: list[dict[str, Any]]) -> None:
    cid = cond["id"]
    c1, c2, c3, c4 = st.columns([3, 3, 5, 1], vertical_alignment="bottom")
    with c1:
        index = fields.index(cond["field"]) if cond["field"] in fields else 0
        cond["field"] = st.selectbox(
            "field", fields, index=index, key=f"sb{ver}_{cid}_field",
            format_func=lambda f: PHONE_FIELDS.get(f, f),
        )
    kind = _kind(columns, cond["field"])
    duck_type = "_sms" if cond["field"] == "_sms" else columns.get(cond["field"], "VARCHAR")
    ops = rules.operators_for(duck_type)
    keys = [o.key for o in ops]
    with c2:
        cond["op"] = st.selectbox(
            "operator", keys, index=keys.index(cond["op"]) if cond["op"] in keys else 0,
            key=f"sb{ver}_{cid}_op_{kind}", format_func=lambda k: rules.OPERATORS[k].label,
        )
    op = rules.OPERATORS[cond["op"]]
    with c3:
        cond["value"] = _value_widget(cond, op, kind, duck_type, database,
                                      key=f"sb{ver}_{cid}_v_{kind}_{op.value_kind}_{op.key}")
    with c4:
        if st.button("✕", key=f"sb{ver}_{cid}_rm", help="remove this condition"):
            remove_from.remove(cond)
            st.rerun()


def _builder(database: str, columns: dict[str, str], user_columns: list[str]) -> dict:
    """Draw the condition builder; returns the spec it shows."""
    model = SS.get("sb_model")
    ver = SS.get("sb_ver", 0)
    if model is None:
        st.info("This rule nests groups deeper than the builder shows; edit it as JSON below.")
        return SS.get("sb_raw") or {"all": []}
    fields = [*user_columns, *(f for f in PHONE_FIELDS if f in columns or
                               (f == "_sms" and "_e164" in columns))]
    model["mode"] = st.radio(
        "Contacts must match", ["all", "any"], horizontal=True, key=f"sb{ver}_mode",
        index=0 if model["mode"] == "all" else 1,
        format_func=lambda m: "all conditions (AND)" if m == "all" else "any condition (OR)",
    )
    if not model["items"]:
        st.caption("No conditions yet: the rule matches every contact. Add a condition.")
    for item in list(model["items"]):
        if item["type"] == "cond":
            _condition_row(item, fields, columns, database, ver, model["items"])
            continue
        with st.container(border=True):
            g1, g2 = st.columns([5, 1], vertical_alignment="bottom")
            with g1:
                item["mode"] = st.radio(
                    "Group: match", ["any", "all"], horizontal=True,
                    key=f"sb{ver}_{item['id']}_mode", index=0 if item["mode"] == "any" else 1,
                    format_func=lambda m: "any (OR)" if m == "any" else "all (AND)",
                )
            with g2:
                if st.button("✕ group", key=f"sb{ver}_{item['id']}_rm"):
                    model["items"].remove(item)
                    st.rerun()
            for sub in list(item["items"]):
                _condition_row(sub, fields, columns, database, ver, item["items"])
            if st.button("Condition in group", key=f"sb{ver}_{item['id']}_add",
                         icon=":material/add:"):
                item["items"].append(_cond(fields[0], ""))
                st.rerun()
    b1, b2 = st.columns(2)
    if b1.button("Add condition", key="sb_add_cond", icon=":material/add:"):
        model["items"].append(_cond(fields[0], ""))
        st.rerun()
    if b2.button("Add OR group" if model["mode"] == "all" else "Add AND group",
                 key="sb_add_group", icon=":material/add:"):
        model["items"].append({"id": uuid.uuid4().hex[:8], "type": "group",
                               "mode": "any" if model["mode"] == "all" else "all",
                               "items": [_cond(fields[0], "")]})
        st.rerun()
    return _spec_from_model(model)


def _json_editor(spec: dict[str, Any]) -> None:
    text = json.dumps(spec, indent=2, ensure_ascii=False, default=str)
    with st.expander("Edit as JSON"):
        st.caption("The same JSON spec the CLI's `--spec` takes. Apply to load it into the "
                   "builder.")
        edited = st.text_area("Rule (JSON)", value=text, height=220,
                              key=f"sb_json_{abs(hash(text))}")
        if st.button("Apply JSON", key="sb_apply_json"):
            try:
                parsed = json.loads(edited or "{}")
            except json.JSONDecodeError as exc:
                st.error(f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.")
                return
            if not isinstance(parsed, dict):
                st.error('The rule must be a JSON object, e.g. {"all": [...]}.')
                return
            _load(SS["sb_target"], parsed)
            st.rerun()


# -- page sections ------------------------------------------------------------------------------
def _tree(database: str, frame: pd.DataFrame) -> str:
    names = [str(n) for n in frame["name"]]
    if SS.get("sel_pick_next") is not None:
        SS["sel_pick"] = SS.pop("sel_pick_next")
    if SS.get("sel_pick") not in [NEW, *names]:
        SS["sel_pick"] = NEW
    # Labels stay the same whatever is counted (a widget's value is its label), so the
    # counts go in the captions.
    labels = {NEW: "➕ new selection"}
    captions = ["build a rule and save it"]
    for name, depth, count, at in zip(names, frame["depth"], frame["last_count"],
                                      frame["counted_at"], strict=True):
        labels[name] = "\u2003" * int(depth) + ("↳ " if depth else "") + name
        captions.append("not counted yet" if pd.isna(count) else
                        f"{fmt_int(count)} contacts · counted {at:%d %b %H:%M}")
    if not names:
        st.info("No selections yet. Build a rule on the right and save it; then you can narrow "
                "it further with mini-selections.")
    pick = st.radio("Selections", [NEW, *names], key="sel_pick", format_func=labels.__getitem__,
                    captions=captions)
    if pick != NEW:
        if st.button(f"➕ New mini-selection of {pick}", key="sb_new_mini"):
            SS["sb_new_parent"] = pick
            SS["sel_pick_next"] = NEW
            st.rerun()
    elif SS.get("sb_new_parent") and st.button("Make it a top-level selection", key="sb_top"):
        SS["sb_new_parent"] = None
        st.rerun()
    return pick


def _count_and_sample(database: str, pick: str, parent: str | None, spec: dict) -> None:
    app = studio()
    try:
        valid = rules.validate_spec(spec, app.get_database(database).columns)
    except rules.SelectionError as exc:
        st.warning(f"Finish the rule to see who matches: {exc}")
        return
    with friendly_errors():
        if pick != NEW:
            same = valid == app.get_selection(pick).spec
            count, at = app.count_selection(pick) if same else app.count_selection(pick,
                                                                                    spec=spec)
        elif parent:
            count, at = app.count_selection(spec=spec, parent=parent)
        else:
            count, at = app.count_selection(spec=spec, database=database)
        m1, m2 = st.columns([1, 2])
        m1.metric("Contacts matching now", fmt_int(count))
        m2.caption(f"computed at {at:%Y-%m-%d %H:%M:%S} UTC · re-evaluated whenever the "
                   "selection is used, so new contacts that match are included")
        st.caption("Rule: " + rules.describe(spec))
        where: dict[str, Any] = (
            {"name": pick} if pick != NEW else {"parent": parent} if parent
            else {"database": database}
        )
        sample = app.sample_selection(spec=spec, limit=20, **where)
        st.dataframe(sample, hide_index=True, height=280,
                     column_config=table_columns(app.get_database(database).columns))
        st.caption(f"A sample of the first {len(sample)} matching contacts.")


def _save_new(database: str, parent: str | None, spec: dict) -> None:
    app = studio()
    with st.container(border=True):
        s1, s2, s3 = st.columns([3, 2, 1], vertical_alignment="bottom")
        name = s1.text_input("Name", key="sb_new_name", placeholder="e.g. Amsterdam, 18+")
        sms = s2.toggle("Use for SMS mailings", key="sb_new_sms")
        if s3.button("Save", type="primary", key="sb_save_new"):
            with friendly_errors():
                app.create_selection(name or "", spec=spec, database=None if parent else database,
                                     parent=parent, sms=sms)
                SS["sb_new_parent"] = None
                SS["sel_pick_next"] = (name or "").strip()
                SS["sel_flash"] = f"Saved selection {name.strip()!r}."
                st.rerun()


def _manage(pick: str, spec: dict) -> None:
    app = studio()
    info = app.get_selection(pick)
    if info.parent:
        st.caption("Mini-selection: " + " → ".join(c.name for c in app.selection_chain(pick))
                   + ". Its contacts are always a subset of its parent's.")
    if st.button("Save changes", type="primary", key="sb_save"):
        with friendly_errors():
            app.update_selection(pick, spec=spec)
            SS["sel_flash"] = f"Saved {pick!r}."
            SS["sb_target"] = None  # reload what was stored
            st.rerun()
    def switch(key: str = f"sb_sms_{info.id}") -> None:  # only when the user flips it
        with friendly_errors():
            app.set_sms_usage(pick, bool(SS[key]))

    st.toggle("Use for SMS mailings", value=info.sms_enabled, key=f"sb_sms_{info.id}",
              on_change=switch)
    reason = app.sms_usable_reason(pick)
    if reason is None:
        st.success("Usable for SMS mailings.")
    else:
        st.warning(f"Not usable for SMS mailings: {reason}.")
        if not reason.startswith("switch on SMS usage"):
            st.caption("The contact database's mobile field and opt-in rule are set on the "
                       "**Contacts** page (tab *Opt-in rule & default destination*).")
    with st.expander("Rename, duplicate or delete"):
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        new_name = r1.text_input("New name", key=f"sb_rename_{info.id}")
        if r2.button("Rename", key="sb_rename"):
            with friendly_errors():
                app.rename_selection(pick, new_name)
                SS["sel_pick_next"] = new_name.strip()
                SS["sel_flash"] = f"Renamed {pick!r} to {new_name.strip()!r}."
                st.rerun()
        d1, d2 = st.columns([3, 1], vertical_alignment="bottom")
        copy_name = d1.text_input("Name of the copy", key=f"sb_dup_{info.id}",
                                  value=f"{pick} (copy)")
        if d2.button("Duplicate", key="sb_duplicate"):
            with friendly_errors():
                app.duplicate_selection(pick, copy_name)
                SS["sel_pick_next"] = copy_name.strip()
                SS["sel_flash"] = f"Duplicated {pick!r} as {copy_name.strip()!r}."
                st.rerun()
        cascade = st.checkbox("Also delete its mini-selections", key=f"sb_cascade_{info.id}")
        if st.button("Delete selection", key="sb_delete"):
            with friendly_errors():
                gone = app.delete_selection(pick, cascade=cascade)
                SS["sel_pick_next"] = NEW
                SS["sel_flash"] = "Deleted " + ", ".join(repr(n) for n in gone) + "."
                st.rerun()


def _reconciliation(database: str, pick: str) -> None:
    app = studio()
    target = {"selection": pick} if pick != NEW else {"database": database}
    with friendly_errors():
        result = app.audience(**target)
        table = result.table()
        what = (f"selection {pick!r} as saved" if pick != NEW
                else f"the whole contact database {database!r}")
        st.caption(f"Audience of {what}, computed at {result.computed_at:%Y-%m-%d %H:%M:%S} UTC. "
                   "Each step counts the contacts it removes; a contact is counted once, at the "
                   "first step that removes it.")
        if not result.consent_rule:
            st.warning(f"Contact database {database!r} has no opt-in rule, so every contact "
                       "counts as without consent. Set the consent field and the values that "
                       "mean yes on the **Contacts** page (tab *Opt-in rule & default "
                       "destination*).")
        left, right = st.columns([3, 2])
        with left:
            st.dataframe(
                table[["label", "contacts", "left"]].rename(
                    columns={"label": "step", "left": "left after step"}),
                hide_index=True, column_config=table_columns(
                    counts=["contacts", "left after step"]),
            )
        with right:
            st.markdown("**Recipients per country**")
            if result.by_country:
                st.dataframe(pd.DataFrame({"country": list(result.by_country),
                                           "recipients": list(result.by_country.values())}),
                             hide_index=True, column_config=table_columns(counts=["recipients"]))
            else:
                st.caption("No recipients.")
        st.markdown("**Download a step's contacts (CSV)**")
        cols = st.columns(4)
        for i, (step, label, count) in enumerate(
                zip(table["step"], table["label"], table["contacts"], strict=True)):
            cols[i % 4].download_button(
                f"{label} ({fmt_int(count)})",
                data=lambda step=step: app.audience_step_csv(step, **target),
                file_name=f"{pick if pick != NEW else database}-{step}.csv", mime="text/csv",
                key=f"sb_dl_{step}", on_click="ignore", disabled=not count,
            )


def _default_destination(database: str) -> None:
    app = studio()
    with st.expander("Default destination (for previews and test sends)"):
        current = app.default_destination(database)
        if current:
            who = ", ".join(str(v) for k, v in current.items()
                            if not k.startswith("_") and v is not None)[:120]
            st.write(f"Now: **{current.get('_e164')}** {('· ' + who) if who else ''}")
        else:
            st.caption("Not set yet: pick a contact, or type a test number.")
        search = st.text_input("Find a contact (any field or number)", key="sb_dest_search")
        if search:
            found, total = app.browse_contacts(database, search=search, page_size=20)
            found = found[found["_phone_status"] == "valid_mobile"]
            if found.empty:
                st.caption("No contact with a valid mobile number matches.")
            else:
                shown = [c for c in app.get_database(database).user_columns][:3]
                options = [int(r) for r in found["_row_id"]]
                labels = {int(r["_row_id"]): " · ".join(
                    [str(r[c]) for c in shown if pd.notna(r[c])] + [str(r["_e164"])])
                    for _, r in found.iterrows()}
                row = st.selectbox(f"Matching contacts ({fmt_int(total)}, first 20 shown)",
                                   options, format_func=lambda r: labels[r], key="sb_dest_pick")
                if st.button("Use this contact", key="sb_dest_use"):
                    with friendly_errors():
                        app.set_default_destination(database, row_id=row)
                        st.rerun()
        n1, n2 = st.columns([3, 1], vertical_alignment="bottom")
        number = n1.text_input("…or a test number", key="sb_dest_number",
                               placeholder="+31 6 1234 5678")
        if n2.button("Use this number", key="sb_dest_use_number"):
            with friendly_errors():
                app.set_default_destination(database, number=number)
                st.rerun()


# -- the page -------------------------------------------------------------------------------------
st.title("Selections")
if SS.get("sel_flash"):
    st.success(SS.pop("sel_flash"))

database = pick_database()
if database is None:
    st.stop()
app = studio()
info = app.get_database(database)
if not info.columns:
    st.info(f"Contact database {database!r} has no contacts yet: upload a file on the "
            "**Contacts** page.")
    st.stop()

tree_col, edit_col = st.columns([1, 3])
with tree_col:
    pick = _tree(database, app.list_selections(database))
parent = SS.get("sb_new_parent") if pick == NEW else None
if parent and parent not in app.selection_names(database):
    parent = SS["sb_new_parent"] = None
target = (database, pick if pick != NEW else None, parent)
if SS.get("sb_target") != target:
    _load(target, app.get_selection(pick).spec if pick != NEW else {"all": []})

with edit_col:
    heading = (f"Selection: {pick}" if pick != NEW else
               f"New mini-selection of {parent}" if parent else "New selection")
    st.subheader(heading)
    spec = _builder(database, info.columns, info.user_columns)
    _json_editor(spec)
    _count_and_sample(database, pick, parent, spec)
    if pick == NEW:
        _save_new(database, parent, spec)
    else:
        _manage(pick, spec)

st.divider()
st.subheader("Who would receive an SMS")
_reconciliation(database, pick)
_default_destination(database)
