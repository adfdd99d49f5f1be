"""A new user's whole journey, in a real headless Chromium against `streamlit run app.py`.

The app runs as its own process on 127.0.0.1 with a fresh database in a temporary folder and
the simulator gateway with instant delivery reports. The test does what a new user does (the
steps are in tests/journey_helpers.py): upload the demo contacts and map their columns, read
the import report, build a selection and a mini-selection for SMS, choose the default
destination, write a personalised document while watching the segment meter, preview it,
send a test, run the mailing wizard, watch the progress reach the end, and read the
statistics. A second pass schedules a mailing a few minutes ahead, edits it, cancels it.
Then the app is stopped, and the command line reads the same ledger: its numbers must match
what the pages showed, and the cancelled mailing must have sent nothing.

Every page is saved as a screenshot under tests/artifacts/journey/ for a person to look at
(failure.png too, when a step fails).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.journey_helpers import (
    CHROMIUM,
    DEMO,
    ROOT,
    AppServer,
    Shots,
    browser_page,
    run_cli,
    screenshot,
    walk_journey,
)

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts" / "journey"


@pytest.fixture(scope="module")
def demo_csv() -> Path:
    if not DEMO.exists():
        subprocess.run([sys.executable, "scripts/make_demo_data.py"], cwd=ROOT, check=True)
    return DEMO


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[AppServer]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    pytest.importorskip("playwright.sync_api")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    server = AppServer(tmp_path / "app").start()
    try:
        yield server
    finally:
        server.stop()


def cli_json(db: Path, *args: str) -> list[dict]:
    return [json.loads(line) for line in run_cli(db, *args).splitlines() if line.strip()]


def test_new_user_journey(app_server: AppServer, demo_csv: Path) -> None:
    with browser_page(app_server.url) as page:
        try:
            seen = walk_journey(page, demo_csv, Shots(page, ARTIFACTS))
        except Exception:
            with contextlib.suppress(Exception):
                screenshot(page, ARTIFACTS / "failure.png", settle=False)
            print(app_server.tail(), file=sys.stderr)
            raise

    # What the pages showed agrees with itself.
    stats = seen.statistics
    assert stats["recipients"] == seen.counted["recipients"], "Selections page vs Statistics"
    assert stats["delivered"] + stats["failures"] == stats["submitted"]
    assert seen.progress, "the live progress bar was never shown"
    assert seen.progress == sorted(seen.progress), "progress never goes back"
    assert {total for _, total in seen.progress} == {stats["recipients"]}

    code = app_server.stop()
    assert code == 0, f"the app did not stop cleanly (exit {code}):\n{app_server.tail()}"

    # The command line reads the same ledger once the app has released the database.
    rows = {row["id"]: row for row in cli_json(app_server.db_path, "mailings", "--json")}
    sent = rows[seen.mailing_id]
    assert sent["state"] == "finished"
    assert (sent["recipients"], sent["submitted"], sent["delivered"], sent["failed"]) == (
        stats["recipients"], stats["submitted"], stats["delivered"], stats["failures"])
    ledger = cli_json(app_server.db_path, "results", str(seen.mailing_id), "--format", "json")
    statuses = [row["status"] for row in ledger]
    assert len(ledger) == stats["recipients"]
    assert statuses.count("delivered") == stats["delivered"]
    assert sum(statuses.count(s) for s in ("failed", "undelivered", "expired")) == \
        stats["failures"]
    assert rows[seen.test_mailing_id]["delivered"] == 1, "the test message arrived"

    cancelled = rows[seen.cancelled_id]
    assert cancelled["state"] == "cancelled"
    assert cancelled["scheduled_at"] == f"{seen.cancelled_at:%Y-%m-%dT%H:%M:%S}+00:00", \
        "the edited send time was stored"
    assert (cancelled["recipients"], cancelled["submitted"]) == (0, 0)
    assert not cli_json(app_server.db_path, "results", str(seen.cancelled_id), "--format",
                        "json"), "a cancelled mailing sends nothing"
