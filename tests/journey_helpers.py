"""Drive the real app in a real browser: start `streamlit run app.py`, open headless Chromium,
and small waits that understand Streamlit's rerun cycle.

Used by tests/test_journey.py and scripts/screenshots.py. The app runs as its own process on
127.0.0.1 with a fresh database file (env `SMS_STUDIO_DB`) and the simulator gateway with
instant delivery reports (env `SMS_STUDIO_GATEWAY`), so a mailing of thousands of messages
finishes in seconds and nothing touches data/studio.duckdb.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
            except subprocess.TimeoutExpired:
                process.kill()
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
    page.mouse.move(0, 0)  # no hover effects (anchor links, tooltips) in the picture
    size = page.viewport_size or VIEWPORT
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


def click_button(page: Any, scope: Any, name: str, *, timeout: float = 30.0) -> None:
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
