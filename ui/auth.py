"""Sign-in for teams: when `[auth]` is configured in Streamlit secrets, every page needs a user.

The app binds to localhost by default, so on one analyst's machine nobody else can reach it.
Before the app is opened to others, configure an OpenID Connect provider in
`.streamlit/secrets.toml` (`[auth]` with redirect_uri, cookie_secret, client_id, client_secret,
server_metadata_url): a page that sends SMS must never be reachable anonymously. An optional
`SMS_STUDIO_ALLOWED_EMAILS` secret or environment variable (comma-separated) narrows who may
use it.
"""

from __future__ import annotations

import os

import streamlit as st


def _secret(name: str) -> object | None:
    try:
        return st.secrets.get(name)
    except Exception:  # no secrets.toml at all: Streamlit raises rather than returning None
        return None


def auth_configured() -> bool:
    return _secret("auth") is not None


def allowed_emails() -> set[str]:
    raw = _secret("SMS_STUDIO_ALLOWED_EMAILS") or os.environ.get("SMS_STUDIO_ALLOWED_EMAILS", "")
    if isinstance(raw, (list, tuple)):
        raw = ",".join(str(r) for r in raw)
    return {e.strip().lower() for e in str(raw).split(",") if e.strip()}


def require_login() -> None:
    """Stop the page unless a permitted user is signed in (only when [auth] is configured)."""
    if not auth_configured():
        return
    if not st.user.get("is_logged_in"):
        st.title("Bulk SMS Studio")
        st.write("Sign in to continue: this app sends SMS on your organisation's behalf.")
        st.button("Sign in", type="primary", on_click=st.login)
        st.stop()
    allowed = allowed_emails()
    email = str(st.user.get("email") or "").lower()
    if allowed and email not in allowed:
        st.error(f"{email or 'This account'} may not use Bulk SMS Studio; ask an administrator "
                 "to add it to SMS_STUDIO_ALLOWED_EMAILS.")
        st.button("Sign out", on_click=st.logout)
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as {email or st.user.get('name') or 'user'}")
        st.button("Sign out", on_click=st.logout, key="sign_out")
