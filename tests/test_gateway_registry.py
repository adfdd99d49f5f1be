"""Gateway URLs: what is accepted, what is refused and how, and that secrets never leak."""

from __future__ import annotations

import logging

import pytest

from core.gateways import (
    DEFAULT_GATEWAY_URL,
    Gateway,
    GatewayError,
    build_gateway,
    default_gateway_url,
    parse_gateway_url,
    redact,
)
from core.gateways.config import Secret, resolve_secret
from core.gateways.http import HttpGateway
from core.gateways.simulator import SimulatorGateway
from core.gateways.smpp import SmppGateway

SECRET = "s3cr3t-PW"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMS_STUDIO_GATEWAY", "SMS_STUDIO_SMPP_PASSWORD", "SMS_STUDIO_HTTP_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_default_url_is_the_seeded_simulator_unless_the_environment_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert default_gateway_url() == DEFAULT_GATEWAY_URL == "simulator://?seed=1&rate=5000"
    monkeypatch.setenv("SMS_STUDIO_GATEWAY", "smpp://acme@smsc.example.com:2775")
    assert default_gateway_url() == "smpp://acme@smsc.example.com:2775"


def test_simulator_url_fills_defaults_and_types_values() -> None:
    cfg = parse_gateway_url("simulator://?seed=7&rate=250&stop_share=0.01&instant=1")
    assert cfg.kind == "simulator"
    assert cfg.options["seed"] == 7 and cfg.options["rate"] == 250.0
    assert cfg.options["stop_share"] == 0.01 and cfg.options["instant"] is True
    assert cfg.options["median_delay"] == 3.0  # default filled in
    gw = build_gateway("simulator://?seed=7&rate=250")
    assert isinstance(gw, SimulatorGateway) and isinstance(gw, Gateway)
    assert gw.capabilities.throughput == 250.0


def test_smpp_url_gives_host_port_system_id_and_options() -> None:
    cfg = parse_gateway_url(
        "smpp://acme@smsc.example.com:2775?window=50&rate=100&system_type=bulk&shift=turkish"
    )
    assert (cfg.kind, cfg.host, cfg.port, cfg.username) == (
        "smpp",
        "smsc.example.com",
        2775,
        "acme",
    )
    assert cfg.options["window"] == 50 and cfg.options["rate"] == 100.0
    assert cfg.options["system_type"] == "bulk" and cfg.options["shift"] == "turkish"
    assert parse_gateway_url("smpps://acme@smsc.example.com:3550").options["tls"] is True


def test_http_url_takes_the_account_from_the_path_or_the_query() -> None:
    a = parse_gateway_url("https://api.twilio.com/2010-04-01/Accounts/AC123?from=%2B15005550006")
    assert (a.kind, a.username, a.options["from"]) == ("http", "AC123", "+15005550006")
    b = parse_gateway_url("https://api.twilio.com?account=AC456&from=+15005550006")
    assert b.username == "AC456" and b.options["from"] == "+15005550006"  # '+' stays a plus
    c = parse_gateway_url("http://127.0.0.1:8080/2010-04-01/Accounts/AC1/Messages.json")
    assert c.username == "AC1" and c.port == 8080


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "empty"),
        ("ftp://x", "unknown scheme"),
        ("simulator://?sed=1", "unknown parameter 'sed'"),
        ("simulator://?rate=fast", "parameter 'rate' must be a number"),
        ("simulator://?stop_share=2", "parameter 'stop_share' must be a number from 0 to 1"),
        ("simulator://?instant=maybe", "parameter 'instant' must be 0 or 1"),
        ("simulator://?seed=1&seed=2", "given twice"),
        ("simulator://somehost?seed=1", "takes only parameters"),
        ("smpp://smsc.example.com:2775", "needs the system_id"),
        ("smpp://acme@smsc.example.com", "needs a port"),
        ("smpp://acme@smsc.example.com:99999", "cannot be read"),
        ("smpp://acme@smsc.example.com:2775?window=0", "parameter 'window' must be an integer"),
        ("smpp://acme@smsc.example.com:2775?shift=klingon", "unknown shift table(s) klingon"),
        ("smpp://acme@smsc.example.com:2775?system_type=" + "x" * 13, "at most 12"),
        ("http://api.twilio.com/2010-04-01/Accounts/AC1", "only allowed to 127.0.0.1"),
        ("https://api.twilio.com/v2/things", "is not /2010-04-01/Accounts/ACCOUNT_SID"),
        ("https://api.twilio.com", "needs the account SID"),
    ],
)
def test_bad_urls_are_refused_naming_what_is_wrong(url: str, expected: str) -> None:
    with pytest.raises(GatewayError) as err:
        parse_gateway_url(url)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        f"smpp://acme:{SECRET}@smsc.example.com:2775",
        f"smpp://acme@smsc.example.com:2775?password={SECRET}",
        f"https://AC1:{SECRET}@api.twilio.com/2010-04-01/Accounts/AC1",
        f"https://api.twilio.com/2010-04-01/Accounts/AC1?auth_token={SECRET}",
    ],
)
def test_a_secret_in_the_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(GatewayError) as err:
        parse_gateway_url(url)
    text = str(err.value)
    assert SECRET not in text
    assert "must not contain a password" in text
    assert "SMS_STUDIO_SMPP_PASSWORD" in text or "SMS_STUDIO_HTTP_TOKEN" in text


def test_redact_masks_passwords_and_secret_looking_parameters() -> None:
    assert SECRET not in redact(f"smpp://acme:{SECRET}@h:1?window=5")
    assert redact(f"smpp://acme:{SECRET}@h:1?window=5") == "smpp://acme:***@h:1?window=5"
    assert SECRET not in redact(f"https://api.twilio.com?account=AC1&token={SECRET}")
    assert redact("simulator://?seed=1&rate=5000") == "simulator://?seed=1&rate=5000"


def test_smpp_password_comes_from_secrets_then_environment_and_never_shows(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    url = "smpp://acme@127.0.0.1:9?window=5"
    with pytest.raises(GatewayError) as err:
        build_gateway(url)
    assert "SMS_STUDIO_SMPP_PASSWORD" in str(err.value)
    caplog.set_level(logging.DEBUG)
    gw = build_gateway(url, secrets={"SMS_STUDIO_SMPP_PASSWORD": SECRET})
    assert isinstance(gw, SmppGateway) and isinstance(gw, Gateway)
    monkeypatch.setenv("SMS_STUDIO_SMPP_PASSWORD", "from-env")
    gw_env = build_gateway(url)
    assert isinstance(gw_env, SmppGateway)
    assert gw_env._password.reveal() == "from-env"
    assert gw._password.reveal() == SECRET  # secrets mapping wins over the environment
    shown = [repr(gw), str(gw), repr(gw.config), str(gw.config), repr(vars(gw))]
    assert not any(SECRET in s for s in shown)
    with pytest.raises(GatewayError) as unreachable:
        gw.connect()  # nothing listens on port 9
    assert SECRET not in str(unreachable.value)
    assert SECRET not in caplog.text


def test_http_token_is_required_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1"
    with pytest.raises(GatewayError, match="SMS_STUDIO_HTTP_TOKEN"):
        build_gateway(url)
    monkeypatch.setenv("SMS_STUDIO_HTTP_TOKEN", SECRET)
    gw = build_gateway(url)
    assert isinstance(gw, HttpGateway) and isinstance(gw, Gateway)
    assert SECRET not in repr(gw) and SECRET not in repr(vars(gw))


def test_secret_wrapper_never_prints_and_an_empty_password_is_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = Secret(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in f"{s}"
    monkeypatch.setenv("SMS_STUDIO_SMPP_PASSWORD", "")
    assert resolve_secret("SMS_STUDIO_SMPP_PASSWORD", None, required_for="x").reveal() == ""
