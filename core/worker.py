"""Sending without the browser: the dispatcher (and the scheduler) headless, in this process.

`run_worker_forever` runs until SIGTERM/SIGINT (or a `stop` event): it resumes whatever was
sending when the database was last used, starts due mailings and sends. `run_until_done`
does the same until nothing is due or sending and the delivery reports of the mailings it
sent are in (or `report_timeout` passed): what `python -m core send --wait` and
`python -m core worker --until-done` call. A stop always finishes the batch in flight and
records it before the process ends.

The gateway is the `gateway_url` argument, else the `gateway_url` setting, else
`core.gateways.default_gateway_url()` ($SMS_STUDIO_GATEWAY, else the simulator). Secrets come
from the environment or the `secrets` mapping, never from the database.

Also runnable as `python -m core.worker --db FILE [--gateway URL] [--until-done]`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from core.dispatcher import Dispatcher, DispatcherBusy, DispatcherConfig
from core.errors import InvalidInput, StudioError
from core.gateways import GatewayError, build_gateway, default_gateway_url, redact
from core.ledger import LedgerSource

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def gateway_url_for(studio: Any, gateway_url: str | None = None) -> str:
    """The gateway to use: the argument, else the setting, else the default."""
    url = (gateway_url or "").strip() or str(studio.get_setting("gateway_url") or "").strip()
    return url or default_gateway_url()


def _db_key(studio: Any) -> str:
    path = studio.storage.path
    return path if path == ":memory:" else str(Path(path).resolve())


def start_dispatcher(
    studio: Any,
    *,
    gateway_url: str | None = None,
    secrets: Mapping[str, Any] | None = None,
    config: DispatcherConfig | None = None,
) -> Dispatcher:
    """Build the gateway and start the dispatcher's threads for this Studio's database.

    Raises DispatcherBusy when one already runs for the database (in this process, or
    holding the lease), InvalidInput for a gateway URL that cannot be used.
    """
    url = gateway_url_for(studio, gateway_url)
    try:
        gateway = build_gateway(url, secrets=secrets)
    except GatewayError as exc:
        raise InvalidInput(str(exc)) from None
    dispatcher = Dispatcher(LedgerSource(studio), gateway, config=config, key=_db_key(studio),
                            wall=studio.clock)  # fmt: skip
    dispatcher.start()
    log.info("dispatcher started on %s (%s)", redact(url), dispatcher.owner)
    return dispatcher


# Why the app's background dispatcher could not start, per database (shown by
# `MailingsMixin.dispatcher_status`): the app itself must keep working, e.g. to fix a
# gateway URL on the Settings page.
background_errors: dict[str, str] = {}


def start_background(studio: Any, gateway_url: str | None = None) -> Dispatcher | None:
    """The app's background work: the dispatcher, and the scheduler when there is one.

    Returns the dispatcher, or None when another one already sends for this database
    (a Streamlit rerun, or a second Studio on the same file: never two) or when it cannot
    start (the reason is kept in `background_errors` and logged; the app keeps running).
    """
    key = _db_key(studio)
    try:
        dispatcher = start_dispatcher(studio, gateway_url=gateway_url)
        background_errors.pop(key, None)
    except DispatcherBusy as exc:
        log.info("no second dispatcher: %s", exc)
        dispatcher = None
    except StudioError as exc:
        log.error("the dispatcher cannot start: %s", exc)
        background_errors[key] = str(exc)
        dispatcher = None
    if dispatcher is not None:
        studio._background.append(dispatcher.stop)
    if hasattr(studio, "start_scheduler"):
        studio.start_scheduler()
    return dispatcher


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Launcher:
    """Starts due mailings: the scheduler when the Studio has one, else a tick per poll."""

    def __init__(self, studio: Any) -> None:
        self.studio = studio
        self.scheduled = hasattr(studio, "start_scheduler")
        if self.scheduled:
            studio.start_scheduler()

    def tick(self) -> None:
        if not self.scheduled:
            self.studio.launch_due_mailings()


def run_worker_forever(
    studio: Any,
    *,
    gateway_url: str | None = None,
    stop: threading.Event | None = None,
    poll: float = 0.5,
    config: DispatcherConfig | None = None,
) -> None:
    """Send until stopped (SIGTERM, SIGINT or `stop`); resumes what was running."""
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        dispatcher = start_dispatcher(studio, gateway_url=gateway_url, config=config)
        try:
            launcher = _Launcher(studio)
            while not stop.wait(poll):
                launcher.tick()
                _check_alive(dispatcher)
        finally:
            dispatcher.stop()


def _check_alive(dispatcher: Dispatcher) -> None:
    if not dispatcher.running:
        raise StudioError(f"The dispatcher stopped: {dispatcher.last_error or 'unknown reason'}")


def run_until_done(
    studio: Any,
    *,
    gateway_url: str | None = None,
    report_timeout: float = 60.0,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    poll: float = 0.25,
    timeout: float | None = None,
    config: DispatcherConfig | None = None,
) -> dict[str, Any]:
    """Send until nothing is due or sending, then wait up to `report_timeout` seconds for
    the delivery reports of the mailings sent; returns a summary of those mailings.

    `progress(done, total, label)` is called about every `poll` seconds. `timeout` bounds
    the whole run (None: no bound); a stop request ends it early, cleanly.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    seen: set[int] = set()
    with _stop_on_signals(stop):
        dispatcher = start_dispatcher(studio, gateway_url=gateway_url, config=config)
        try:
            launcher = _Launcher(studio)
            reports_until: float | None = None
            wants_reports = dispatcher.gateway.capabilities.delivery_reports
            while not stop.is_set():
                launcher.tick()
                _check_alive(dispatcher)
                sending = {mid for mid, _ in dispatcher.source.sending_mailings()}
                seen |= sending
                due = studio.due_mailings()
                totals = [studio.mailing_progress(m) for m in sorted(seen)]
                if progress is not None and totals:
                    total = sum(t["total"] for t in totals)
                    waiting = sum(t["queued"] for t in totals)
                    label = "sending" if sending else "waiting for delivery reports"
                    progress(total - waiting, total, label)
                if not sending and not due:
                    awaiting = sum(t["submitted"] for t in totals)
                    if not wants_reports or awaiting == 0:
                        break
                    if reports_until is None:
                        reports_until = time.monotonic() + max(report_timeout, 0.0)
                    if time.monotonic() >= reports_until:
                        break
                if timeout is not None and time.monotonic() - started > timeout:
                    break
                stop.wait(poll)
        finally:
            dispatcher.stop()
    return {"mailings": {m: studio.mailing_progress(m) for m in sorted(seen)},
            "seconds": round(time.monotonic() - started, 3),
            "dispatcher": dispatcher.status()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.worker", description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="the DuckDB database file")
    ap.add_argument("--gateway", help="gateway URL (default: setting, env, simulator)")
    ap.add_argument("--until-done", action="store_true")
    ap.add_argument("--report-timeout", type=float, default=60.0)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="messages in flight at most (what a crash can leave unknown)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    from core.studio import Studio

    config = DispatcherConfig(batch_size=args.batch_size) if args.batch_size else None
    try:
        with Studio(args.db) as studio:
            if args.until_done:
                summary = run_until_done(studio, gateway_url=args.gateway, config=config,
                                         report_timeout=args.report_timeout)  # fmt: skip
                log.info("done: %s", summary["dispatcher"])
            else:
                run_worker_forever(studio, gateway_url=args.gateway, config=config)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
