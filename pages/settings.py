"""Settings: prices per segment, the rules text, sending limits, national shift tables and the
gateway. Secrets are never entered here: they come from the environment or
.streamlit/secrets.toml."""

from __future__ import annotations

import importlib
from typing import Any

import pandas as pd
import streamlit as st

from core.segments import NATIONAL_LANGUAGES
from core.settings import DEFAULT_RULES
from ui.common import friendly_errors, studio

OFF = "off"
SECRET_HELP = (
    "Passwords and tokens are never stored in the database or typed on this page: set "
    "`SMS_STUDIO_SMPP_PASSWORD` (SMPP) or `SMS_STUDIO_HTTP_TOKEN` (REST) as environment "
    "variables of the app's process, or put them in `.streamlit/secrets.toml`."
)

st.title("Settings")
app = studio()


def gateway_tools() -> Any | None:
    """The gateway URL parser and redactor, when the gateways package is installed."""
    try:
        return importlib.import_module("core.gateways")
    except ImportError:
        return None


tab_prices, tab_sending, tab_rules, tab_gateway = st.tabs(
    ["Prices", "Sending", "Rules text", "Gateway"], key="settings_tabs", on_change="rerun"
)

with tab_prices:
    st.write(
        "Price per SMS segment per destination country (ISO code such as NL, GB, US). The row "
        "`*` prices every country not listed. Used for the cost estimates of documents and "
        "mailings."
    )
    table = None
    with friendly_errors():
        table = app.price_table()
    if table is not None:
        edited = st.data_editor(
            table, num_rows="dynamic", hide_index=True, key="settings_prices",
            column_config={
                "country": st.column_config.TextColumn("country", help="ISO code, or *"),
                "price_per_segment": st.column_config.NumberColumn(
                    "price per segment", min_value=0.0, format="%.4f", step=0.0001),
                "currency": st.column_config.TextColumn("currency", help="One for all rows"),
            },
        )
        if st.button("Save prices", type="primary", key="settings_prices_save"):
            with friendly_errors():
                saved = app.save_price_table(pd.DataFrame(edited))
                st.success(f"Saved {len(saved)} prices to {app.prices_path}.")
        st.caption(f"Stored in `{app.prices_path}` (set SMS_STUDIO_PRICES to use another file).")

with tab_sending:
    settings = app.all_settings()
    current_shift = str(settings.get("national_shift") or "") or OFF
    shift_options = [OFF, *NATIONAL_LANGUAGES]
    with st.form("settings_sending"):
        max_parts = st.number_input(
            "Most parts per message (default of the mailing wizard)", min_value=1,
            max_value=10, value=int(settings.get("split_max_parts") or 4), step=1,
            help="Recipients whose personalised message needs more parts are skipped and "
            "listed, never cut short. 1 means never split. The setting `split_max_parts`; "
            "`python -m core send --split N` overrides it.",
        )
        threshold = st.number_input(
            "Mailings to more recipients than this need a second confirmation",
            min_value=0, value=int(settings.get("confirm_threshold") or 0), step=1000,
        )
        shift = st.selectbox(
            "National language shift table", shift_options,
            index=shift_options.index(current_shift) if current_shift in shift_options else 0,
            help="Turn on only when your gateway and its SMSC support the table: Turkish, "
            "Spanish or Portuguese letters then stay GSM-7 (155/149 characters per part) "
            "instead of forcing UCS-2 (70/67). Segment counts and cost estimates follow it.",
        )
        invalid_share = st.slider(
            "Warn when more than this share of a selection cannot receive SMS", 0.0, 1.0,
            float(settings.get("invalid_share_warning") or 0.1), 0.01,
        )
        time_zone = st.text_input("Time zone for scheduling", str(settings.get("time_zone")))
        if st.form_submit_button("Save sending settings", type="primary"):
            with friendly_errors():
                from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

                try:
                    ZoneInfo(time_zone.strip())
                except (ZoneInfoNotFoundError, ValueError):
                    raise ValueError(
                        f"{time_zone!r} is not a time zone; use a name such as "
                        "Europe/Amsterdam or UTC."
                    ) from None
                app.set_setting("split_max_parts", int(max_parts))
                app.set_setting("confirm_threshold", int(threshold))
                app.set_setting("national_shift", "" if shift == OFF else shift)
                app.set_setting("invalid_share_warning", float(invalid_share))
                app.set_setting("time_zone", time_zone.strip())
                st.success("Sending settings saved.")

with tab_rules:
    st.write("Shown to everyone who starts a mailing; they confirm they follow these rules.")
    rules = st.text_area("Rules text", str(app.get_setting("rules_text") or ""), height=200,
                         key="settings_rules")
    c1, c2 = st.columns(2)
    if c1.button("Save rules text", type="primary", key="settings_rules_save"):
        if not rules.strip():
            st.error("The rules text cannot be empty.")
        else:
            app.set_setting("rules_text", rules)
            st.success("Rules text saved.")
    if c2.button("Restore the default text", key="settings_rules_default"):
        app.set_setting("rules_text", DEFAULT_RULES)
        st.session_state.pop("settings_rules", None)
        st.rerun()

def save_gateway(tools: Any | None) -> None:
    """Validate (a URL with a secret or a bad option is refused) and store the gateway URL."""
    url = str(st.session_state.get("settings_gateway_url", "")).strip()
    notes: list[tuple[str, str]] = []
    try:
        config = tools.parse_gateway_url(url) if url and tools is not None else None
    except Exception as exc:  # GatewayError: its message names the bad part, never a secret
        st.session_state["settings_gateway_flash"] = [("error", str(exc))]
        return
    app.set_setting("gateway_url", url)
    shown = tools.redact(url) if tools and url else "the default"
    notes.append(("success", f"Gateway saved: {shown}."))
    shift = str(app.get_setting("national_shift") or "")
    tables = str(config.options.get("shift", "") or "").split(",") if config else []
    if config is not None and config.kind == "smpp" and shift and shift not in tables:
        notes.append(("warning", f"Messages are counted with the {shift} shift table, but this "
                      f"SMPP URL does not list it (add shift={shift})."))
    st.session_state["settings_gateway_url"] = ""
    st.session_state["settings_gateway_flash"] = notes


with tab_gateway:
    tools = gateway_tools()
    stored = str(app.get_setting("gateway_url") or "")
    effective = stored or (tools.default_gateway_url() if tools else "")
    shown = tools.redact(effective) if tools else "(hidden)"
    for kind, message in st.session_state.pop("settings_gateway_flash", []):
        getattr(st, kind)(message)
    st.markdown(f"**Gateway in use:** `{shown}`" + ("" if stored else " (default)"))
    st.info(SECRET_HELP)
    st.caption(
        "Examples: `simulator://?seed=1&rate=5000`, `smpp://SYSTEM_ID@HOST:2775?rate=100"
        "&shift=turkish`, `https://api.twilio.com/2010-04-01/Accounts/ACCOUNT_SID`. Empty: "
        "the SMS_STUDIO_GATEWAY environment variable, else the built-in simulator."
    )
    st.text_input("New gateway URL", key="settings_gateway_url",
                  placeholder="leave empty to use the default")
    st.button("Save gateway URL", type="primary", key="settings_gateway_save",
              on_click=save_gateway, args=(tools,))
