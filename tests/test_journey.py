"""A new user's whole journey, in a real headless Chromium against `streamlit run app.py`.

The app runs as its own process on 127.0.0.1 with a fresh database in a temporary folder and
the simulator gateway with instant delivery reports. The test does what a new user does:
upload the demo contacts and map their columns, read the import report, build a selection
and a mini-selection for SMS, choose the default destination, write a personalised document
while watching the segment meter, preview it, send a test, run the mailing wizard, watch the
progress reach the end, and read the statistics. A second pass schedules a mailing two
minutes ahead, edits it, cancels it, and checks nothing was sent. At the end the app is
stopped and the command line reads the same ledger: its numbers must match what the pages
showed.

Every page is saved as a screenshot under tests/artifacts/journey/ for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.journey_helpers import (
    CHROMIUM,
    ROOT,
    TIME_ZONE,
    AppServer,
    as_int,
    browser_page,
    choose,
    click_button,
    go_to,
    main_area,
    metric_value,
    open_app,
    open_expander,
    open_tab,
    pick_many,
    poll,
    run_cli,
    screenshot,
    selected,
    set_datetime,
    switch_on,
    type_text,
    wait_idle,
    widget,
)

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts" / "journey"
DEMO = ROOT / "data" / "demo" / "contacts.csv"
DATABASE = "demo"
SELECTION = "Customers"
MINI = "Randstad"
DOCUMENT = "Spring sale"
SHORT = ("Hi {{ first_name }}, our spring sale starts today in {{ city }}: 20% off "
         "everything. Reply STOP to opt out.")
LONG = SHORT + (" Open Monday to Saturday 9:00-18:00 and Sunday 12:00-17:00; show this "
                "message at the till.")
EMOJI = LONG + " 🌷"


@pytest.fixture(scope="module")
def demo_csv() -> Path:
    if not DEMO.exists():
        subprocess.run([sys.executable, "scripts/make_demo_data.py"], cwd=ROOT, check=True)
    return DEMO


@pytest.fixture
def app_server(tmp_path: Path) -> Any:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    pytest.importorskip("playwright.sync_api")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    server = AppServer(tmp_path / "app").start()
    try:
        yield server
    finally:
        server.stop()


class Shots:
    """Numbered screenshots of each page, in the order the user saw them."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0
        self.started = time.monotonic()

    def __call__(self, name: str) -> None:
        self.count += 1
        screenshot(self.page, ARTIFACTS / f"{self.count:02d}-{name}.png")
        print(f"{time.monotonic() - self.started:6.1f} s  {self.count:02d}-{name}")


# -- the steps -----------------------------------------------------------------------------------
def import_contacts(page: Any, csv: Path, shot: Shots) -> dict[str, int]:
    main = main_area(page)
    assert main.get_by_role("heading", name="Contacts", level=1).is_visible()
    uploader = main.get_by_test_id("stFileUploader").filter(has_text="Contact file")
    uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(csv))
    main.get_by_text("10,000 rows · 9 columns").wait_for()
    main.get_by_role("heading", name="Map the columns").wait_for()
    # The mapping guesses the fields from the header; the user names the database.
    form = main.get_by_test_id("stForm")
    type_text(page, widget(form, "stTextInput", "Contact database name").locator("input"),
              DATABASE, commit=False)
    assert selected(form, "Mobile number field") == "mobile"
    assert selected(form, "Consent (opt-in) field") == "consent"
    click_button(page, form, "Import", timeout=120)
    main.get_by_role("heading", name=f"Import report: {DATABASE}").wait_for()
    report = {label: as_int(metric_value(page, label)) for label in
              ("Rows read", "Valid mobile", "Not mobile", "Invalid", "Missing")}
    assert report["Rows read"] == 10_000
    assert sum(v for k, v in report.items() if k != "Rows read") == 10_000
    assert report["Valid mobile"] > 9_000
    assert main.get_by_text(re.compile(r"Duplicates:.*numbers are shared")).is_visible()
    shot("contacts-import-report")
    return report


def build_selections(page: Any, shot: Shots) -> dict[str, int]:
    go_to(page, "Selections")
    main = main_area(page)
    assert selected(main, "Contact database") == DATABASE
    # A selection: every customer who is not a business, used for SMS from the start.
    click_button(page, main, "Add condition")
    choose(page, main, "field", "customer_type")
    choose(page, main, "operator", "is not")
    type_text(page, widget(main, "stTextInput", "value").locator("input"), "business")
    counted = {SELECTION: as_int(metric_value(page, "Contacts matching now"))}
    assert 8_000 < counted[SELECTION] < 10_000
    type_text(page, widget(main, "stTextInput", "Name").locator("input"), SELECTION,
              commit=False)
    switch_on(page, main, "Use for SMS mailings")
    click_button(page, main, "Save")
    main.get_by_text(f"Saved selection '{SELECTION}'.").wait_for()
    main.get_by_text("Usable for SMS mailings.").wait_for()

    # A mini-selection of it: the four big cities.
    click_button(page, main, f"New mini-selection of {SELECTION}")
    main.get_by_role("heading", name=f"New mini-selection of {SELECTION}").wait_for()
    click_button(page, main, "Add condition")
    choose(page, main, "field", "city")
    choose(page, main, "operator", "is one of")
    pick_many(page, main, "values", ["Amsterdam", "Rotterdam", "Den Haag", "Utrecht"])
    counted[MINI] = as_int(metric_value(page, "Contacts matching now"))
    assert 2_000 < counted[MINI] < counted[SELECTION]
    type_text(page, widget(main, "stTextInput", "Name").locator("input"), MINI, commit=False)
    click_button(page, main, "Save")
    main.get_by_text(f"Saved selection '{MINI}'.").wait_for()
    main.get_by_text("Not usable for SMS mailings").wait_for()
    # Switch on SMS usage afterwards, as a user who forgot it does.
    switch_on(page, main, "Use for SMS mailings")
    main.get_by_text("Usable for SMS mailings.").wait_for()
    recipients = main.get_by_role("button", name=re.compile(r"^Recipients \(")).first
    counted["recipients"] = as_int(recipients.inner_text())

    # The default destination: a contact found by its customer number.
    expander = open_expander(page, main, "Default destination")
    type_text(page, widget(expander, "stTextInput", "Find a contact (any field or number)")
              .locator("input"), "C100004")
    click_button(page, expander, "Use this contact")
    expander = open_expander(page, main, "Default destination")
    expander.get_by_text("+31651416091").wait_for()
    shot("selections")
    return counted


def meter(page: Any) -> tuple[int, str, int]:
    """Characters, encoding and segments the meter shows."""
    return (as_int(metric_value(page, "Characters")), metric_value(page, "Encoding"),
            as_int(metric_value(page, "Segments")))


def write_document(page: Any, shot: Shots) -> None:
    go_to(page, "Documents")
    main = main_area(page)
    main.get_by_text("No documents yet").wait_for()
    type_text(page, widget(main, "stTextInput", "New document").locator("input"), DOCUMENT,
              commit=False)
    click_button(page, main, "Create")
    main.get_by_text(f"Document '{DOCUMENT}' created.").wait_for()
    type_text(page, widget(main, "stTextInput", "Sender").locator("input"), "DemoShop")
    body = widget(main, "stTextArea", "Message").locator("textarea")

    type_text(page, body, SHORT)
    chars, encoding, parts = meter(page)
    assert (chars, encoding, parts) == (len(SHORT), "GSM-7", 1)
    assert len(LONG) > 160
    type_text(page, body, LONG)
    assert meter(page) == (len(LONG), "GSM-7", 2), "past 160 characters: two segments"
    type_text(page, body, EMOJI)
    chars, encoding, parts = meter(page)
    assert encoding == "UCS-2" and parts == 3, "an emoji forces UCS-2: 67 units per part"
    main.get_by_text("Characters forcing UCS-2").first.wait_for()
    shot("documents-meter-emoji")
    type_text(page, body, LONG)  # the user drops the emoji to stay in GSM-7
    assert meter(page)[1:] == ("GSM-7", 2)
    click_button(page, main, "Save")
    main.get_by_text("Saved.").wait_for()

    open_tab(page, "Preview")
    preview = main.get_by_role("tabpanel", name="Preview")
    preview.get_by_text("Hi Julia, our spring sale starts today in Amsterdam").wait_for()
    shot("documents-preview")

    open_tab(page, "Send")
    click_button(page, main, "Send a test to the test contact")
    main.get_by_text(re.compile(r"Test message handed to the dispatcher as mailing #\d+")
                     ).wait_for()


def run_wizard(page: Any, target: str, shot: Shots, *, at: datetime | None = None) -> int:
    """Walk the four steps of the wizard; returns the new mailing's id."""
    main = main_area(page)
    main.get_by_text("Step 1 of 4: Rules").wait_for()
    main.get_by_text("I accept these rules").click()
    wait_idle(page)
    click_button(page, main, "Next")
    main.get_by_text("Step 2 of 4").wait_for()
    assert selected(main, "Document") == DOCUMENT
    choose(page, main, "Send to", f"Selection {target}")
    main.get_by_text(re.compile(r"[\d,]+ recipients after the opt-in rule")).wait_for()
    click_button(page, main, "Next")
    main.get_by_text("Step 3 of 4").wait_for()
    if at is not None:
        main.get_by_text("At a date and time").click()
        wait_idle(page)
        set_datetime(page, main, "Send at", at)
        main.get_by_text(re.compile(r"^Stored as .* UTC")).wait_for()
    click_button(page, main, "Next")
    main.get_by_text("Step 4 of 4: Confirm").wait_for(timeout=60_000)
    recipients = as_int(metric_value(page, "Recipients"))
    assert recipients > 0
    shot("mailing-wizard-confirm" if at is None else "mailing-wizard-schedule")
    label = "Send now" if at is None else re.compile(r"^Schedule for ")
    main.get_by_role("button", name=label).click()
    wait_idle(page)
    flash = main.get_by_text(re.compile(r"^Mailing #\d+ (starts now|is scheduled for)"))
    flash.wait_for()
    found = re.search(r"#(\d+)", flash.inner_text())
    assert found is not None
    return int(found.group(1))


def watch_progress(page: Any, mailing_id: int, shot: Shots) -> list[tuple[int, int]]:
    """Follow the live progress bar until the mailing has finished; the (handled, total)
    counts it showed on the way."""
    main = main_area(page)
    open_tab(page, "Mailings")
    bar = main.get_by_test_id("stProgress").filter(has_text=re.compile(r"handled$"))
    seen: list[tuple[int, int]] = []

    def finished() -> bool:
        if bar.count():
            text = bar.first.inner_text()
            handled, total = (as_int(n) for n in re.findall(r"[\d,]+", text)[:2])
            seen.append((handled, total))
            if len(seen) == 1:
                shot("mailings-progress")
            return False
        # Not sending: either not started yet (the scheduler starts it within a second or
        # two) or done; only a mailing whose progress was seen can be done.
        return bool(seen) and main.get_by_text("Nothing is sending right now.").is_visible()

    poll(finished, timeout=90, interval=0.3, what=f"mailing #{mailing_id} to finish")
    wait_idle(page)
    choose(page, main, "Mailing", f"#{mailing_id} (finished)")
    main.get_by_text(re.compile(rf"^#{mailing_id} · finished")).wait_for()
    shot("mailings-finished")
    return seen


def read_statistics(page: Any, mailing_id: int, shot: Shots) -> dict[str, int]:
    go_to(page, "Statistics")
    main = main_area(page)
    assert selected(main, "Mailing").startswith(f"#{mailing_id} · {DOCUMENT}")

    def settled() -> bool:
        note = main.get_by_text(re.compile(r"^State: ")).first.inner_text()
        return "finished" in note and "live" not in note

    poll(settled, timeout=60, what="the statistics to stop refreshing")
    wait_idle(page)
    shown = {label.lower(): as_int(metric_value(page, label))
             for label in ("Recipients", "Submitted", "Delivered", "Failures")}
    shot("statistics")
    return shown


def schedule_edit_cancel(page: Any, shot: Shots) -> tuple[int, datetime]:
    """Schedule a mailing two minutes ahead, move it and change its parts limit, cancel it.
    Returns its id and the (edited) send time in UTC."""
    go_to(page, "Mailings")
    open_tab(page, "New mailing")
    zone = ZoneInfo(TIME_ZONE)
    first = (datetime.now(zone) + timedelta(minutes=3)).replace(second=0, microsecond=0)
    mailing_id = run_wizard(page, MINI, shot, at=first)
    main = main_area(page)
    open_tab(page, "Mailings")
    title = f"#{mailing_id} · {DOCUMENT} → Selection {MINI} · "
    expander = open_expander(page, main, title)
    assert f"{first:%Y-%m-%d %H:%M}" in expander.locator("summary").inner_text()
    later = first + timedelta(minutes=5)
    set_datetime(page, expander, "Send at", later)
    parts = widget(expander, "stNumberInput", "Most parts per message (1: never split)")
    type_text(page, parts.locator("input"), "3", commit=False)
    click_button(page, expander, "Save changes")
    main.get_by_text(f"Mailing #{mailing_id} changed.").wait_for()
    expander = open_expander(page, main, title)
    assert f"{later:%Y-%m-%d %H:%M}" in expander.locator("summary").inner_text()
    shot("mailings-scheduled")
    click_button(page, expander, f"Cancel mailing #{mailing_id}")
    main.get_by_text(f"Mailing #{mailing_id} cancelled.").wait_for()
    assert not main.get_by_test_id("stExpander").filter(has_text=title).count()
    return mailing_id, later.astimezone(UTC).replace(tzinfo=None)


# -- the test ------------------------------------------------------------------------------------
def test_new_user_journey(app_server: AppServer, demo_csv: Path) -> None:
    started = time.monotonic()
    with browser_page(app_server.url) as page:
        shot = Shots(page)
        try:
            open_app(page)
            import_contacts(page, demo_csv, shot)
            counted = build_selections(page, shot)
            write_document(page, shot)

            main = main_area(page)
            click_button(page, main, "Send bulk mailing…")
            main.get_by_role("heading", name="Mailings", level=1).wait_for()
            mailing_id = run_wizard(page, MINI, shot)
            progress = watch_progress(page, mailing_id, shot)
            stats = read_statistics(page, mailing_id, shot)
            assert stats["recipients"] == counted["recipients"]
            assert stats["delivered"] + stats["failures"] == stats["submitted"]
            assert progress, "the live progress bar was never shown"
            assert progress == sorted(progress), "progress never goes back"
            assert {total for _, total in progress} == {stats["recipients"]}

            cancelled, cancelled_at = schedule_edit_cancel(page, shot)
            go_to(page, "Settings")
            shot("settings")
        except Exception:
            with contextlib.suppress(Exception):
                screenshot(page, ARTIFACTS / "failure.png", settle=False)
            print(app_server.tail(), file=sys.stderr)
            raise
    code = app_server.stop()
    assert code == 0, f"the app did not stop cleanly (exit {code}):\n{app_server.tail()}"

    # The command line reads the same ledger once the app has released the database.
    rows = {r["id"]: r for r in map(json.loads, run_cli(
        app_server.db_path, "mailings", "--json").splitlines())}
    sent = rows[mailing_id]
    assert sent["state"] == "finished"
    assert (sent["recipients"], sent["submitted"], sent["delivered"], sent["failed"]) == (
        stats["recipients"], stats["submitted"], stats["delivered"], stats["failures"])
    ledger = [json.loads(line) for line in run_cli(
        app_server.db_path, "results", str(mailing_id), "--format", "json").splitlines()]
    statuses = [r["status"] for r in ledger]
    assert len(ledger) == stats["recipients"]
    assert statuses.count("delivered") == stats["delivered"]
    failures = sum(statuses.count(s) for s in ("failed", "undelivered", "expired"))
    assert failures == stats["failures"]

    gone = rows[cancelled]
    assert gone["state"] == "cancelled"
    assert gone["scheduled_at"] == f"{cancelled_at:%Y-%m-%dT%H:%M:%S}+00:00", "the edit held"
    assert (gone["recipients"], gone["submitted"]) == (0, 0), "a cancelled mailing sends nothing"
    assert not run_cli(app_server.db_path, "results", str(cancelled), "--format",
                       "json").strip()
    assert time.monotonic() - started < 180
