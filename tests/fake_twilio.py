"""A local stand-in for Twilio's Messages API (the contract the HTTP gateway speaks).

    POST /2010-04-01/Accounts/{sid}/Messages.json        create (To, From, Body; basic auth)
    GET  /2010-04-01/Accounts/{sid}/Messages/{msid}.json fetch one (status progresses)
    GET  /2010-04-01/Accounts/{sid}/Messages.json        list (To=, From=, PageSize=, Page=)

Errors use Twilio's JSON shape {"code", "message", "more_info", "status"}. Knobs (attributes):
`throttle_first` (answer 429 / 20429 to that many creates), `fail_first` (500 / 20500),
`invalid` (numbers answered 400 / 21211), `unsubscribed` (400 / 21610), `undeliverable`
(final status undelivered, error 30003), `failing` (final status failed, 30008),
`step_seconds` (0: each fetch advances queued -> sent -> delivered by one step; else one
step per that many seconds), `hang_up_first` (create the message, then close the
connection without answering: the client cannot know whether it was sent).

Run standalone: python tests/fake_twilio.py --port 8080
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import re
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_STEPS = ("queued", "sent", "delivered")


class FakeTwilio:
    """Twilio-shaped HTTP server on 127.0.0.1 in a thread; see the module docstring."""

    __test__ = False

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 31 + "1",
        token: str = "test-token",
        port: int = 0,
        throttle_first: int = 0,
        fail_first: int = 0,
        hang_up_first: int = 0,
        invalid: set[str] | None = None,
        unsubscribed: set[str] | None = None,
        undeliverable: set[str] | None = None,
        failing: set[str] | None = None,
        step_seconds: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.token = token
        self.requested_port = port
        self.throttle_first = throttle_first
        self.fail_first = fail_first
        self.hang_up_first = hang_up_first
        self.invalid = invalid or set()
        self.unsubscribed = unsubscribed or set()
        self.undeliverable = undeliverable or set()
        self.failing = failing or set()
        self.step_seconds = step_seconds
        self.messages: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.lock = threading.Lock()
        self._seq = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            app = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", self.requested_port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), daemon=True, name="fake-twilio"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        base = f"http://127.0.0.1:{self.port}/2010-04-01/Accounts/{self.account_sid}"
        return base + (f"?{query}" if query else "")

    # -- state -----------------------------------------------------------------------------

    def _new_sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._seq):08d}{secrets.token_hex(12)}"

    def add_inbound(self, from_: str, to: str, body: str) -> str:
        """A reply from a handset, as Twilio would list it."""
        now = datetime.now(UTC)
        sid = self._new_sid("SM")
        with self.lock:
            self.messages[sid] = self._record(
                sid, to=to, from_=from_, body=body, direction="inbound", status="received", at=now
            )
        return sid

    def outbound(self) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages.values() if m["direction"] == "outbound-api"]

    def _record(
        self, sid: str, *, to: str, from_: str, body: str, direction: str, status: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": from_,
            "body": body,
            "status": status,
            "direction": direction,
            "num_segments": str(max(1, -(-len(body) // 153)) if len(body) > 160 else 1),
            "date_created": format_datetime(at),
            "date_sent": format_datetime(at),
            "date_updated": format_datetime(at),
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            "_created": time.monotonic(),
            "_fetches": 0,
        }

    def _advance(self, msg: dict[str, Any]) -> None:
        if msg["direction"] != "outbound-api" or msg["status"] not in _STEPS[:-1]:
            return
        if self.step_seconds > 0:
            step = int((time.monotonic() - msg["_created"]) / self.step_seconds)
        else:
            msg["_fetches"] += 1
            step = msg["_fetches"]
        step = min(step, len(_STEPS) - 1)
        status = _STEPS[step]
        if status == "delivered" and msg["to"] in self.undeliverable:
            status, msg["error_code"] = "undelivered", 30003
            msg["error_message"] = "Unreachable destination handset"
        elif status == "delivered" and msg["to"] in self.failing:
            status, msg["error_code"] = "failed", 30008
            msg["error_message"] = "Unknown error"
        msg["status"] = status
        msg["date_updated"] = format_datetime(datetime.now(UTC))


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
    }


class _Handler(BaseHTTPRequestHandler):
    app: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)
        with self.app.lock:
            self.app.requests.append((self.command, self.path, status))

    def _authorised(self) -> bool:
        app = self.app
        expected = base64.b64encode(f"{app.account_sid}:{app.token}".encode()).decode()
        if self.headers.get("Authorization") == f"Basic {expected}":
            return True
        self._reply(*_error(401, 20003, "Authenticate"))
        return False

    def _route(self) -> tuple[str | None, str]:
        path = urlsplit(self.path).path
        prefix = f"/2010-04-01/Accounts/{self.app.account_sid}/Messages"
        if not path.startswith(prefix):
            return None, path
        return path[len(prefix) :], path

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if not self._authorised():
            return
        rest, _ = self._route()
        if rest != ".json":
            self._reply(*_error(404, 20404, "The requested resource was not found"))
            return
        app = self.app
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        with app.lock:
            if app.throttle_first > 0:
                app.throttle_first -= 1
                throttled = True
            else:
                throttled = False
            failing = app.fail_first > 0 and not throttled
            if failing:
                app.fail_first -= 1
        if throttled:
            self._reply(*_error(429, 20429, "Too Many Requests"), headers={"Retry-After": "1"})
            return
        if failing:
            self._reply(*_error(500, 20500, "Internal Server Error"))
            return
        if not _E164.match(to) or to in app.invalid:
            self._reply(*_error(400, 21211, f"The 'To' number {to} is not a valid phone number."))
            return
        if to in app.unsubscribed:
            self._reply(*_error(400, 21610, "Attempt to send to unsubscribed recipient"))
            return
        if not from_:
            self._reply(*_error(400, 21603, "The 'From' phone number is required."))
            return
        if not body:
            self._reply(*_error(400, 21602, "Message body is required."))
            return
        sid = app._new_sid("SM")
        msg = app._record(
            sid,
            to=to,
            from_=from_,
            body=body,
            direction="outbound-api",
            status="queued",
            at=datetime.now(UTC),
        )
        with app.lock:
            app.messages[sid] = msg
            hang_up = app.hang_up_first > 0
            if hang_up:
                app.hang_up_first -= 1
        if hang_up:  # created, but the client never hears about it
            self.close_connection = True
            self.connection.close()
            return
        self._reply(201, _public(msg))

    def do_GET(self) -> None:
        if not self._authorised():
            return
        rest, _ = self._route()
        app = self.app
        if rest is None:
            self._reply(*_error(404, 20404, "The requested resource was not found"))
            return
        if rest == ".json":
            self._list()
            return
        m = re.fullmatch(r"/(\w+)\.json", rest)
        with app.lock:
            msg = app.messages.get(m.group(1)) if m else None
            if msg is not None:
                app._advance(msg)
                body = _public(msg)
        if msg is None:
            self._reply(*_error(404, 20404, "The requested resource was not found"))
            return
        self._reply(200, body)

    def _list(self) -> None:
        app = self.app
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        size = int(q.get("PageSize", 50))
        page = int(q.get("Page", 0))
        with app.lock:
            rows = [
                _public(m)
                for m in app.messages.values()
                if (not q.get("To") or m["to"] == q["To"])
                and (not q.get("From") or m["from"] == q["From"])
            ]
        rows.reverse()  # newest first, as Twilio lists
        chunk = rows[page * size : (page + 1) * size]
        base = f"/2010-04-01/Accounts/{app.account_sid}/Messages.json"
        keep = "&".join(f"{k}={v}" for k, v in q.items() if k not in ("Page", "PageSize"))
        next_uri = (
            f"{base}?{keep}&PageSize={size}&Page={page + 1}"
            if (page + 1) * size < len(rows)
            else None
        )
        self._reply(
            200,
            {
                "messages": chunk,
                "page": page,
                "page_size": size,
                "next_page_uri": next_uri,
                "uri": self.path,
            },
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="A fake Twilio Messages API on 127.0.0.1.")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--account-sid", default="AC" + "0" * 31 + "1")
    ap.add_argument("--token", default="test-token")
    args = ap.parse_args(argv)
    fake = FakeTwilio(account_sid=args.account_sid, token=args.token, port=args.port).start()
    print(f"fake Twilio listening on {fake.url()}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
