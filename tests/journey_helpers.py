"""Drive the real app in a real browser: start `streamlit run app.py`, open headless Chromium,
wait the way Streamlit's rerun cycle needs, and walk a new user's journey page by page.

Used by tests/test_journey.py and scripts/screenshots.py. The app runs as its own process on
127.0.0.1 with a fresh database file (env `SMS_STUDIO_DB`) and the simulator gateway with
instant delivery reports (env `SMS_STUDIO_GATEWAY`), so a mailing of thousands of messages
finishes in seconds and nothing touches data/studio.duckdb. The browser is Debian's
/usr/bin/chromium, never a downloaded one.

Locators are the ones a user (or a screen reader) sees: roles, labels, texts, and Streamlit's
`data-testid` attributes. The journey's steps check what the pages show as they go, so a step
that fails says which page misbehaved.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
# Instant delivery reports at 1,000 segments per second: a mailing of a few thousand
# messages is sent and reported within seconds, slowly enough to watch its progress.
FAST_GATEWAY = "simulator://?seed=1&rate=1000&instant=1"
TIME_ZONE = "Europe/Amsterdam"  # the browser's: the app shows times in the user's zone
STATUS_WIDGET = '[data-testid="stStatusWidget"]'
VIEWPORT = {"width": 1400, "height": 1000}


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """`streamlit run app.py` as a child process on 127.0.0.1 with its own database.

    The process's output goes to `log_path`, which `tail()` reads when something fails, so a
    stack trace in the app shows up in the test's failure message.
    """

    def __init__(self, workdir: Path, *, gateway: str = FAST_GATEWAY,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workdir / "studio.duckdb"
        self.log_path = self.workdir / "streamlit.log"
        self.gateway = gateway
        self.extra_env = dict(env or {})
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> AppServer:
        """Start the app and return once `/_stcore/health` answers ok."""
        prices = self.workdir / "prices.csv"
        if not prices.exists() and (ROOT / "data" / "prices.csv").exists():
            shutil.copy(ROOT / "data" / "prices.csv", prices)  # the Settings page may write it
        env = {
            **os.environ,
            "SMS_STUDIO_DB": str(self.db_path),
            "SMS_STUDIO_GATEWAY": self.gateway,
            "SMS_STUDIO_BACKGROUND": "1",  # dispatcher and scheduler threads in the app
            "SMS_STUDIO_PRICES": str(prices),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        for attempt in range(3):  # another process may grab the free port before we bind it
            self.port = free_port()
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py",
                 "--server.address", "127.0.0.1", "--server.port", str(self.port),
                 "--server.headless", "true", "--browser.gatherUsageStats", "false",
                 "--server.fileWatcherType", "none"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            if self._wait_healthy(timeout):
                return self
            exited = self.process.poll() is not None
            self.stop()
            if not exited or attempt == 2:
                break
        raise RuntimeError(f"streamlit did not become healthy on {self.url}:\n{self.tail()}")

    def _wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200 and resp.read().strip() == b"ok":
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        return False

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (Streamlit shuts down, the Studio stops its threads and releases the
        database), SIGKILL only if it hangs. Returns the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:  # hung: end it and anything it started
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        return process.returncode

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def browser_page(base_url: str, *, timezone_id: str = TIME_ZONE) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, base_url=base_url,
                                          timezone_id=timezone_id, locale="en-US")
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


# -- waits and moves that know Streamlit ---------------------------------------------------------
def script_state(page: Any) -> str:
    """Streamlit's own run state of the page: initial, running, notRunning, rerunRequested…"""
    return page.get_by_test_id("stApp").get_attribute("data-test-script-state") or ""


def wait_idle(page: Any, timeout: float = 30.0, settle: float = 0.3) -> None:
    """Wait until the app has finished its rerun: the script is not running, the running
    indicator is gone, and both stay so for `settle` seconds (a click starts its rerun a moment
    later, and a widget change can start the next one)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        busy = script_state(page) != "notRunning" or page.locator(STATUS_WIDGET).is_visible()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            return
        page.wait_for_timeout(100)
    raise TimeoutError(f"the app was still running after {timeout:.0f} s "
                       f"(state {script_state(page)!r})")


def open_app(page: Any) -> None:
    page.goto("/")
    page.get_by_test_id("stSidebarNav").wait_for()
    main_area(page).get_by_role("heading", level=1).first.wait_for()
    wait_idle(page)


def go_to(page: Any, title: str) -> None:
    """Navigate through the sidebar link of a page (st.navigation), as a user does."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    page.get_by_role("heading", name=title, level=1).wait_for()
    wait_idle(page)


def main_area(page: Any) -> Any:
    return page.get_by_test_id("stMain")


def screenshot(page: Any, path: Path, *, full_page: bool = True, max_height: int = 8000,
               settle: bool = True) -> Path:
    """A PNG of what the user sees now; `full_page` grows the window to the height of the
    main area first (Streamlit scrolls inside `stMain`, not the document)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if settle:
        wait_idle(page)
    size = page.viewport_size or VIEWPORT
    page.mouse.move(size["width"] - 10, size["height"] // 2)  # an empty margin: no hover
    page.evaluate("() => document.activeElement?.blur()")  # no focus ring either
    if full_page:
        height = page.evaluate(
            "() => document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0")
        height = min(max(int(height), size["height"]), max_height)
        page.set_viewport_size({"width": size["width"], "height": height})
        page.wait_for_timeout(400)  # charts and tables re-layout to the new size
    try:
        page.screenshot(path=str(path))
    finally:
        if full_page:
            page.set_viewport_size(size)
    return path


def metric_value(page: Any, label: str, scope: Any | None = None) -> str:
    """The shown value of the st.metric whose label is `label` (exactly)."""
    root = scope if scope is not None else main_area(page)
    metric = root.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    ).first
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def as_int(text: str) -> int:
    """'1,234' → 1234 (numbers as fmt_int shows them)."""
    digits = re.sub(r"[^\d-]", "", text)
    if not digits:
        raise ValueError(f"not a number: {text!r}")
    return int(digits)


def poll(check: Any, *, timeout: float = 30.0, interval: float = 0.5, what: str = "") -> Any:
    """Call `check()` until it returns something truthy; its last error if it never does."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what or check!r} after {timeout:.0f} s"
                       + (f": {last}" if last else ""))


def run_cli(db_path: Path, *args: str, timeout: float = 60.0) -> str:
    """`python -m core --db DB ARGS…` (only once the app has released the database)."""
    done = subprocess.run(
        [sys.executable, "-m", "core", "--db", str(db_path), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "SMS_STUDIO_BACKGROUND": "0"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m core {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


# -- widgets -------------------------------------------------------------------------------------
def widget(scope: Any, testid: str, label: str) -> Any:
    """The one widget of a kind (data-testid) whose label is `label`, among the visible ones
    (tabs keep hidden widgets in the page)."""
    found = scope.get_by_test_id(testid).filter(
        has=scope.page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    ).filter(visible=True)
    return found.first


def choose(page: Any, scope: Any, label: str, option: str) -> None:
    """Pick `option` in the select box labelled `label`."""
    box = widget(scope, "stSelectbox", label)
    box.click()
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def selected(scope: Any, label: str) -> str:
    """The value shown by the select box labelled `label`."""
    return scope.get_by_role("combobox", name=label).filter(visible=True).first.input_value()


def switch_on(page: Any, scope: Any, label: str) -> None:
    """Turn on the toggle labelled `label` (clicking its label, as a user does)."""
    switch = scope.get_by_role("switch", name=label).filter(visible=True).first
    if not switch.is_checked():
        scope.get_by_text(label, exact=True).filter(visible=True).first.click()
        wait_idle(page)
    if not switch.is_checked():
        raise AssertionError(f"the toggle {label!r} did not switch on")


def pick_many(page: Any, scope: Any, label: str, options: list[str]) -> None:
    """Add `options` to the multiselect labelled `label` (typing each, then Enter)."""
    box = widget(scope, "stMultiSelect", label)
    for option in options:
        box.locator("input").click()
        box.locator("input").fill(option)
        page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    wait_idle(page)


def type_text(page: Any, field: Any, text: str, *, commit: bool = True) -> None:
    """Replace a text input's or text area's content; commit it as a user does (Tab out)."""
    field.fill(text)
    if commit:
        field.press("Tab")
    wait_idle(page)


def click_button(page: Any, scope: Any, name: str | re.Pattern[str], *,
                 timeout: float = 30.0) -> None:
    """Click the visible button named `name` and wait for the rerun it starts."""
    scope.get_by_role("button", name=name).filter(visible=True).first.click()
    wait_idle(page, timeout=timeout)


def open_tab(page: Any, name: str) -> None:
    main_area(page).get_by_role("tab", name=name).click()
    wait_idle(page)


def open_expander(page: Any, scope: Any, title: str) -> Any:
    """Open (if closed) the expander titled `title`; returns it."""
    expander = scope.get_by_test_id("stExpander").filter(has_text=title).first
    summary = expander.locator("summary")
    details = expander.locator("details")
    if details.get_attribute("open") is None:
        summary.click()
        wait_idle(page)
    return expander


def set_datetime(page: Any, scope: Any, label_start: str, at: Any) -> None:
    """Type a date and time into the st.datetime_input whose label starts with `label_start`:
    segment by segment (year, month, day, hour, minute), as a keyboard user does."""
    box = scope.get_by_test_id("stDateTimeInput").filter(has_text=label_start).first
    values = {"year": f"{at:%Y}", "month": f"{at:%m}", "day": f"{at:%d}", "hour": f"{at:%H}",
              "minute": f"{at:%M}"}
    for segment, value in values.items():
        spin = box.get_by_role("spinbutton", name=re.compile(rf"^{segment},"))
        spin.click()
        page.keyboard.type(value)
    page.keyboard.press("Tab")
    wait_idle(page)


# -- the journey: what a new user does, page by page ----------------------------------------------
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
# The test-send button, named after the default destination.
TEST_SEND = re.compile(r"^Send a test to the default destination$")

Shot = Callable[[str], None]  # called with a name whenever the page is worth a screenshot


class Shots:
    """Numbered screenshots of each page in `folder`, in the order the user saw them; prints
    how long the journey took to reach each one."""

    def __init__(self, page: Any, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0
        self.started = time.monotonic()

    def __call__(self, name: str) -> None:
        self.count += 1
        screenshot(self.page, self.folder / f"{self.count:02d}-{name}.png")
        print(f"{time.monotonic() - self.started:6.1f} s  {self.count:02d}-{name}")


# -- the steps -----------------------------------------------------------------------------------
def import_contacts(page: Any, csv: Path, shot: Shot) -> dict[str, int]:
    main = main_area(page)
    assert main.get_by_role("heading", name="Contacts", level=1).is_visible()
    start_here = main.get_by_text("Start here.")
    assert start_here.is_visible(), "a fresh database says where to begin"
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
    assert not start_here.is_visible(), "once there are contacts, the next step is named"
    assert main.get_by_text(re.compile(r"^Next: build a selection")).is_visible()
    shot("contacts-import-report")
    return report


def build_selections(page: Any, shot: Shot) -> dict[str, int]:
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


def write_document(page: Any, shot: Shot) -> int:
    """Create the document, watch the meter, preview it, send a test; the test's mailing id."""
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
    click_button(page, main, TEST_SEND)
    done = main.get_by_text(re.compile(r"Test message handed to the dispatcher as mailing #\d+"))
    done.wait_for()
    found = re.search(r"#(\d+)", done.inner_text())
    assert found is not None
    return int(found.group(1))


def run_wizard(page: Any, target: str, shot: Shot, *, at: datetime | None = None) -> int:
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


def watch_progress(page: Any, mailing_id: int, shot: Shot) -> list[tuple[int, int]]:
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
    choose(page, main, "Mailing", f"#{mailing_id} · {DOCUMENT} → Selection {MINI}")
    main.get_by_text(re.compile(rf"^#{mailing_id} · finished")).wait_for()
    shot("mailings-finished")
    return seen


def read_statistics(page: Any, mailing_id: int, shot: Shot) -> dict[str, int]:
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


def schedule_edit_cancel(page: Any, shot: Shot) -> tuple[int, datetime]:
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


@dataclass
class Journey:
    """What the pages showed on the way, for the test to compare with the ledger."""

    report: dict[str, int]  # the import report's counts
    counted: dict[str, int]  # contacts per selection, and the mini-selection's recipients
    test_mailing_id: int
    mailing_id: int
    progress: list[tuple[int, int]]  # (handled, total) as the live progress bar showed them
    statistics: dict[str, int]  # recipients, submitted, delivered, failures
    cancelled_id: int
    cancelled_at: datetime  # its send time after the edit, naive UTC


def walk_journey(page: Any, csv: Path, shot: Shot) -> Journey:
    """The whole journey of a new user on a fresh database, from the first page to Settings."""
    open_app(page)
    report = import_contacts(page, csv, shot)
    counted = build_selections(page, shot)
    test_mailing_id = write_document(page, shot)
    main = main_area(page)
    click_button(page, main, "Send bulk mailing…")
    main.get_by_role("heading", name="Mailings", level=1).wait_for()
    mailing_id = run_wizard(page, MINI, shot)
    progress = watch_progress(page, mailing_id, shot)
    statistics = read_statistics(page, mailing_id, shot)
    cancelled_id, cancelled_at = schedule_edit_cancel(page, shot)
    go_to(page, "Settings")
    shot("settings")
    return Journey(report, counted, test_mailing_id, mailing_id, progress, statistics,
                   cancelled_id, cancelled_at)
