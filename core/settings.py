"""Settings stored in the database (never secrets: those come from the environment).

Defaults live here, in one place, so the Settings page, the wizard and the CLI agree.
"""

from __future__ import annotations

import json
from typing import Any

from core.storage import Storage

DEFAULT_RULES = (
    "Send SMS only to people who opted in, as for commercial e-mail.\n"
    "Use only numbers that were obtained lawfully.\n"
    "Say who you are, and honour every STOP: opted-out numbers never receive a message.\n"
    "Send at reasonable hours, and keep messages relevant to what people signed up for."
)

DEFAULTS: dict[str, Any] = {
    "rules_text": DEFAULT_RULES,
    "split_max_parts": 4,  # the most parts one recipient's message may have
    "confirm_threshold": 10_000,  # mailings above this many recipients need a second confirm
    "gateway_url": "",  # empty: SMS_STUDIO_GATEWAY, else the simulator
    "national_shift": "",  # "", "turkish", "spanish" or "portuguese"
    "invalid_share_warning": 0.10,  # warn when more than this share of a selection is invalid
    "time_zone": "Europe/Amsterdam",
    "report_timeout": 60,
}

SECRET_WORDS = ("password", "secret", "token", "apikey", "api_key")


class SettingsMixin:
    storage: Storage

    def get_setting(self, key: str) -> Any:
        raw = self.storage.one("SELECT value FROM settings WHERE key = ?", [key])
        if raw is None:
            return DEFAULTS.get(key)
        return json.loads(raw)

    def set_setting(self, key: str, value: Any) -> None:
        if any(word in key.lower() for word in SECRET_WORDS):
            raise ValueError(
                f"{key!r} looks like a secret; secrets come from environment variables or "
                ".streamlit/secrets.toml and are never stored in the database."
            )
        self.storage.execute(
            "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", [key, json.dumps(value)]
        )

    def all_settings(self) -> dict[str, Any]:
        values = dict(DEFAULTS)
        for key, raw in self.storage.rows("SELECT key, value FROM settings"):
            values[key] = json.loads(raw)
        return values
