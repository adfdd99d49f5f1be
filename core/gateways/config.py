"""Gateway URLs: parsing, validation, redaction and secret lookup.

A gateway is configured by one URL that may be stored in the database and shown on pages,
so it must never hold a secret. Passwords and tokens come from environment variables or
Streamlit secrets (`SMS_STUDIO_SMPP_PASSWORD`, `SMS_STUDIO_HTTP_TOKEN`); a URL carrying one
is refused with a message saying where the secret belongs instead.

Each gateway kind has a table of query parameters (name, type, default, range, meaning), so
a typo or an out-of-range value is reported with the parameter's name and what it accepts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .base import GatewayError
from .gsm_codec import SHIFT_TABLES

GatewayKind = Literal["simulator", "smpp", "http"]

ENV_GATEWAY = "SMS_STUDIO_GATEWAY"
ENV_SMPP_PASSWORD = "SMS_STUDIO_SMPP_PASSWORD"
ENV_HTTP_TOKEN = "SMS_STUDIO_HTTP_TOKEN"
DEFAULT_GATEWAY_URL = "simulator://?seed=1&rate=5000"

# Query parameter names that smell like secrets: refused in URLs, masked by redact().
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|auth|key|credential", re.IGNORECASE)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Option:
    """One query parameter: how to read it and what it accepts."""

    kind: type  # int, float, bool or str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error text or None

    def describe(self) -> str:
        if self.kind is bool:
            return "0 or 1"
        if self.kind in (int, float):
            noun = "an integer" if self.kind is int else "a number"
            if self.low is not None and self.high is not None:
                return f"{noun} from {self.low:g} to {self.high:g}"
            if self.low is not None:
                return f"{noun} >= {self.low:g}"
            return noun
        return "text"


def _shift_list(value: str) -> str | None:
    names = [n for n in value.split(",") if n]
    bad = [n for n in names if n not in SHIFT_TABLES]
    if bad:
        return f"unknown shift table(s) {', '.join(bad)}; known: {', '.join(SHIFT_TABLES)}"
    return None


def _max_len(n: int) -> Callable[[Any], str | None]:
    return lambda v: f"at most {n} characters" if len(v) > n else None


_COMMON = {
    "max_parts": Option(int, 10, "longest message accepted, in parts", 1, 255),
    "alphanumeric": Option(bool, True, "whether alphanumeric sender ids are allowed"),
}

SIMULATOR_OPTIONS: Mapping[str, Option] = MappingProxyType(
    {
        "seed": Option(int, 1, "seed of every simulated outcome", 0, 2**63 - 1),
        "rate": Option(
            float,
            5000.0,
            "segments per second (capability; the dispatcher paces)",
            0.001,
            10_000_000,
        ),
        "throttle": Option(bool, False, "answer 'throttled' to parts above `rate` per second"),
        "median_delay": Option(float, 3.0, "median seconds until a delivery report", 0.0, 86400),
        "p99_delay": Option(
            float, 20.0, "99th percentile of the report delay, seconds", 0.0, 86400
        ),
        "stop_share": Option(float, 0.005, "share of delivered recipients who reply STOP", 0, 1),
        "reply_share": Option(
            float, 0.002, "share of delivered recipients who reply other text", 0, 1
        ),
        "fail_share": Option(
            float, None, "share undelivered, overriding the per-country table", 0, 1
        ),
        "reject_share": Option(float, 0.0, "share of messages refused at submit (permanent)", 0, 1),
        "transient_share": Option(
            float, 0.0, "share of messages whose first submit fails with a transient error", 0, 1
        ),
        "instant": Option(bool, False, "deliver every report and reply at once (tests)"),
        "time_scale": Option(float, 1.0, "multiply every delay (0.01: 100x faster)", 0, 1000),
        **_COMMON,
    }
)

SMPP_OPTIONS: Mapping[str, Option] = MappingProxyType(
    {
        "window": Option(int, 10, "submit_sm requests outstanding at once", 1, 1000),
        "rate": Option(float, 100.0, "segments per second the account allows", 0.001, 1_000_000),
        "system_type": Option(str, "", "bind system_type", check=_max_len(12)),
        "service_type": Option(str, "", "submit_sm service_type", check=_max_len(5)),
        "source_ton": Option(
            int, -1, "source TON (-1: 5 for alphanumeric, 1 for +numbers, 3 for short codes)", -1, 6
        ),
        "source_npi": Option(int, -1, "source NPI (-1: chosen with the TON)", -1, 18),
        "dest_ton": Option(int, 1, "destination TON", 0, 6),
        "dest_npi": Option(int, 1, "destination NPI", 0, 18),
        "shift": Option(
            str,
            "",
            "national single shift tables the SMSC and handsets support, "
            "comma-separated (turkish,spanish,portuguese)",
            check=_shift_list,
        ),
        "enquire_link": Option(float, 30.0, "seconds of silence before an enquire_link", 1, 3600),
        "timeout": Option(
            float, 30.0, "seconds to wait for a response before the link is declared dead", 0.1, 600
        ),
        "tls": Option(bool, False, "connect with TLS"),
        "registered_delivery": Option(bool, True, "request delivery receipts"),
        "reconnect_max": Option(
            float, 60.0, "longest wait between reconnect attempts, s", 0.01, 3600
        ),
        **_COMMON,
    }
)

HTTP_OPTIONS: Mapping[str, Option] = MappingProxyType(
    {
        "account": Option(str, "", "account SID (when not in the path)", check=_max_len(64)),
        "from": Option(
            str,
            "",
            "our number, polled for inbound replies (senders used are polled too)",
            check=_max_len(32),
        ),
        "rate": Option(float, 10.0, "messages per second the account allows", 0.001, 100_000),
        "window": Option(int, 4, "HTTP requests in flight at once", 1, 64),
        "poll": Option(float, 5.0, "seconds between status / inbound polls", 0.0, 3600),
        "timeout": Option(float, 15.0, "HTTP timeout, seconds", 0.1, 600),
        "track_hours": Option(
            float, 48.0, "hours to keep polling a message without a final status", 0.0, 720
        ),
        **_COMMON,
    }
)

OPTIONS: Mapping[str, Mapping[str, Option]] = MappingProxyType(
    {"simulator": SIMULATOR_OPTIONS, "smpp": SMPP_OPTIONS, "http": HTTP_OPTIONS}
)


@dataclass(frozen=True)
class GatewayConfig:
    """A validated gateway URL, without secrets.

    `options` holds every parameter of the kind, typed, with defaults filled in.
    `username` is the SMPP system_id or the HTTP account SID.
    """

    kind: GatewayKind
    url: str  # the URL as given (it cannot contain a secret: those are refused)
    host: str = ""
    port: int | None = None
    username: str = ""
    path: str = ""
    scheme: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"GatewayConfig(kind={self.kind!r}, url={redact(self.url)!r})"

    __str__ = __repr__


def redact(url: str) -> str:
    """The URL fit for display and logs: passwords and secret-looking parameters masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostport = netloc.rsplit("@", 1)
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hostport}"
        pairs = _query_pairs(parts.query)
        query = urlencode(
            [(k, "***" if _SECRET_PARAM.search(k) else v) for k, v in pairs], safe=",+:"
        )
        return _unsplit(parts.scheme, netloc, parts.path, query, parts.fragment)
    except ValueError:
        return "<unreadable gateway URL>"


def _fail(url: str, what: str) -> GatewayError:
    return GatewayError(f"gateway URL {redact(url)!r}: {what}")


def _convert(url: str, name: str, raw: str, opt: Option) -> Any:
    try:
        if opt.kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        value: Any = opt.kind(raw)
    except ValueError:
        raise _fail(url, f"parameter {name!r} must be {opt.describe()} (got {raw!r})") from None
    if opt.kind in (int, float) and (
        (opt.low is not None and value < opt.low) or (opt.high is not None and value > opt.high)
    ):
        raise _fail(url, f"parameter {name!r} must be {opt.describe()} (got {raw!r})")
    if opt.check is not None and (problem := opt.check(value)):
        raise _fail(url, f"parameter {name!r}: {problem}")
    return value


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """Query parameters, with a literal '+' kept as '+' (phone numbers: from=+1555...)."""
    return parse_qsl(query.replace("+", "%2B"), keep_blank_values=True)


def _parse_options(url: str, kind: GatewayKind, query: str) -> dict[str, Any]:
    table = OPTIONS[kind]
    values = {name: opt.default for name, opt in table.items()}
    seen: set[str] = set()
    for name, raw in _query_pairs(query):
        if _SECRET_PARAM.search(name):
            raise _secret_in_url(url, kind)
        if name not in table:
            raise _fail(
                url,
                f"unknown parameter {name!r} for a {kind} gateway; "
                f"known: {', '.join(sorted(table))}",
            )
        if name in seen:
            raise _fail(url, f"parameter {name!r} is given twice")
        seen.add(name)
        values[name] = _convert(url, name, raw, table[name])
    return values


def _secret_in_url(url: str, kind: GatewayKind) -> GatewayError:
    env = ENV_HTTP_TOKEN if kind == "http" else ENV_SMPP_PASSWORD
    return _fail(
        url,
        "must not contain a password or token (the URL is stored in the database and shown "
        f"on pages); remove it and set the environment variable {env} "
        "(or the Streamlit secret of that name in .streamlit/secrets.toml)",
    )


_SCHEMES: dict[str, GatewayKind] = {
    "simulator": "simulator", "sim": "simulator",
    "smpp": "smpp", "smpps": "smpp",
    "http": "http", "https": "http",
}  # fmt: skip
_ACCOUNT_PATH = re.compile(r"^(?:/2010-04-01)?/Accounts/([^/]+)(?:/Messages(?:\.json)?)?/?$")


def parse_gateway_url(url: str) -> GatewayConfig:
    """Validate a gateway URL and return its configuration (never any secret).

    Raises GatewayError naming the bad part: unknown scheme, missing host or port, unknown
    parameter, value out of range, or a password/token written into the URL.
    """
    if not isinstance(url, str) or not url.strip():
        raise GatewayError("gateway URL is empty; e.g. simulator://?seed=1&rate=5000")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _fail(url, f"cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    kind = _SCHEMES.get(scheme)
    if kind is None:
        raise _fail(
            url,
            f"unknown scheme {parts.scheme + '://' if parts.scheme else '(none)'}; "
            "use simulator://, smpp://SYSTEM_ID@HOST:PORT or https://HOST/2010-04-01/"
            "Accounts/ACCOUNT_SID",
        )
    if parts.password is not None:
        raise _secret_in_url(url, kind)
    options = _parse_options(url, kind, parts.query)
    host = parts.hostname or ""
    username = unquote(parts.username or "")
    if kind == "simulator":
        if host or parts.path not in ("", "/"):
            raise _fail(url, "a simulator URL takes only parameters: simulator://?seed=1")
        return GatewayConfig(kind, url, scheme=scheme, options=MappingProxyType(options))
    if not host:
        raise _fail(url, f"a {kind} URL needs a host")
    if kind == "smpp":
        if not username:
            raise _fail(url, "an SMPP URL needs the system_id: smpp://SYSTEM_ID@HOST:PORT")
        if len(username) > 15:
            raise _fail(url, "the SMPP system_id is at most 15 characters")
        if port is None:
            raise _fail(url, "an SMPP URL needs a port: smpp://SYSTEM_ID@HOST:PORT")
        if parts.path not in ("", "/"):
            raise _fail(url, "an SMPP URL has no path")
        if scheme == "smpps":
            options["tls"] = True
        return GatewayConfig(
            kind,
            url,
            host=host,
            port=port,
            username=username,
            scheme=scheme,
            options=MappingProxyType(options),
        )
    # http(s): Twilio-shaped REST API
    if scheme == "http" and host not in _LOCAL_HOSTS:
        raise _fail(url, "plain http is only allowed to 127.0.0.1/localhost; use https://")
    match = _ACCOUNT_PATH.match(parts.path) if parts.path not in ("", "/") else None
    if parts.path not in ("", "/") and match is None:
        raise _fail(url, f"path {parts.path!r} is not /2010-04-01/Accounts/ACCOUNT_SID")
    account = (match.group(1) if match else "") or options["account"] or username
    if not account:
        raise _fail(
            url,
            "needs the account SID: https://HOST/2010-04-01/Accounts/ACCOUNT_SID "
            "or ?account=ACCOUNT_SID",
        )
    options["account"] = account
    return GatewayConfig(
        kind,
        url,
        host=host,
        port=port,
        username=account,
        path=parts.path,
        scheme=scheme,
        options=MappingProxyType(options),
    )


def default_gateway_url() -> str:
    """The configured gateway: `SMS_STUDIO_GATEWAY`, else the seeded simulator."""
    return os.environ.get(ENV_GATEWAY, "").strip() or DEFAULT_GATEWAY_URL


class Secret:
    """A password or token that never shows itself in repr/str/logs/tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # refuse to be pickled into some cache by accident
        raise TypeError("a Secret cannot be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def resolve_secret(name: str, secrets: Mapping[str, Any] | None, *, required_for: str) -> Secret:
    """Look a secret up in `secrets` (e.g. Streamlit's st.secrets), then the environment.

    An empty string is a valid value (some SMPP accounts have no password); only a missing
    one is an error, and the error names where to put it, never a value.
    """
    if secrets is not None:
        try:
            value = secrets[name]
        except (KeyError, AttributeError, TypeError):
            value = None
        if value is not None:
            return Secret(str(value))
    value = os.environ.get(name)
    if value is not None:
        return Secret(value)
    raise GatewayError(
        f"{required_for} needs a secret: set the environment variable {name} "
        f'or add {name} = "..." to .streamlit/secrets.toml'
    )


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str) -> str:
    """Like urlunsplit, but keeps "scheme://" when there is no host (simulator://?...)."""
    url = f"{scheme}://{netloc}{path}" if scheme else f"{netloc}{path}"
    if query:
        url += f"?{query}"
    if fragment:
        url += f"#{fragment}"
    return url
