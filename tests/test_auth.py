"""With [auth] configured, no page (and so no send button) is reachable without signing in."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_without_auth_configured_the_app_opens(tmp_path, monkeypatch):
    monkeypatch.setenv("SMS_STUDIO_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Contacts"]


def test_with_auth_configured_an_anonymous_visitor_sees_only_sign_in(tmp_path, monkeypatch):
    monkeypatch.setenv("SMS_STUDIO_DB", str(tmp_path / "a.duckdb"))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "studio",
        "client_secret": "secret",
        "server_metadata_url": "https://id.example.org/.well-known/openid-configuration",
    }
    at.run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert [t.value for t in at.title] == ["Bulk SMS Studio"]  # not the Contacts page
