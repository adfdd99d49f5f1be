"""The REST gateway against a local Twilio-shaped server (tests/fake_twilio.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_twilio import FakeTwilio
from smsc import free_port

from core.gateways import (
    DeliveryReport,
    GatewayError,
    InboundEvent,
    InboundMessage,
    OutboundMessage,
    parse_gateway_url,
)
from core.gateways.config import Secret
from core.gateways.http import HttpGateway

OUR_NUMBER = "+15005550006"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server


@pytest.fixture
def make_gw() -> Iterator[Any]:
    made: list[HttpGateway] = []

    def make(server: FakeTwilio, token: str | None = None, **params: Any) -> HttpGateway:
        params.setdefault("poll", 0)
        params.setdefault("rate", 1000)
        gw = HttpGateway(
            parse_gateway_url(server.url(**params)),
            Secret(token if token is not None else server.token),
        )
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()


def msg(mid: int, to: str, *parts: str) -> OutboundMessage:
    return OutboundMessage(mid, to, OUR_NUMBER, parts, "GSM-7", mid % 256)


def collect(gw: HttpGateway, want: int, timeout: float = 5.0) -> list[InboundEvent]:
    got: list[InboundEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        gw.receive(got.extend, 0.2)
    return got


def test_create_sends_one_request_and_polls_the_status_to_delivered(
    fake: FakeTwilio, make_gw: Any
) -> None:
    gw = make_gw(fake)
    gw.connect()
    [r] = gw.submit([msg(1, "+31612345678", "Hello there")])
    assert r.status == "accepted" and r.provider_id and r.provider_id.startswith("SM")
    [created] = fake.outbound()
    assert (created["to"], created["from"], created["body"]) == (
        "+31612345678",
        OUR_NUMBER,
        "Hello there",
    )
    [report] = collect(gw, 1)
    assert isinstance(report, DeliveryReport)
    assert (report.provider_id, report.state, report.reason) == (r.provider_id, "delivered", None)
    fetches = [p for m, p, _ in fake.requests if m == "GET" and r.provider_id in p]
    assert len(fetches) >= 2  # queued -> sent -> delivered, one step per fetch
    assert gw.tracked == 0


def test_a_long_message_is_one_request_with_a_report_per_part(
    fake: FakeTwilio, make_gw: Any
) -> None:
    gw = make_gw(fake)
    results = gw.submit([msg(1, "+31612345678", "A" * 153, "B" * 20)])
    [created] = fake.outbound()
    assert created["body"] == "A" * 153 + "B" * 20
    sid = created["sid"]
    assert [(r.part_index, r.provider_id) for r in results] == [(0, f"{sid}/1"), (1, f"{sid}/2")]
    reports = collect(gw, 2)
    assert sorted((e.provider_id, e.state) for e in reports if isinstance(e, DeliveryReport)) == [
        (f"{sid}/1", "delivered"),
        (f"{sid}/2", "delivered"),
    ]


def test_undelivered_and_failed_statuses_carry_the_error_reason(
    fake: FakeTwilio, make_gw: Any
) -> None:
    fake.undeliverable = {"+31600000002"}
    fake.failing = {"+31600000003"}
    gw = make_gw(fake)
    results = gw.submit([msg(2, "+31600000002", "x"), msg(3, "+31600000003", "y")])
    ids = {r.provider_id: r.message_id for r in results}
    states = {
        ids[e.provider_id]: (e.state, e.reason)
        for e in collect(gw, 2)
        if isinstance(e, DeliveryReport)
    }
    assert states == {
        2: ("undelivered", "30003 absent subscriber"),
        3: ("failed", "30008 unknown error"),
    }


def test_429_is_throttled_with_retry_after_and_a_retry_goes_through(
    fake: FakeTwilio, make_gw: Any
) -> None:
    fake.throttle_first = 2
    gw = make_gw(fake, window=1)
    first = gw.submit(
        [msg(1, "+31600000001", "a"), msg(2, "+31600000002", "b"), msg(3, "+31600000003", "c")]
    )
    assert [r.status for r in first] == ["throttled", "throttled", "accepted"]
    assert first[0].retry_after == 1.0 and "20429" in (first[0].error or "")
    again = gw.submit([msg(1, "+31600000001", "a"), msg(2, "+31600000002", "b")])
    assert [r.status for r in again] == ["accepted", "accepted"]
    assert sorted(m["to"] for m in fake.outbound()) == [
        "+31600000001",
        "+31600000002",
        "+31600000003",
    ]


def test_server_errors_are_transient_and_client_errors_permanent_with_twilio_codes(
    fake: FakeTwilio, make_gw: Any
) -> None:
    fake.fail_first = 1
    fake.unsubscribed = {"+31600000009"}
    gw = make_gw(fake, window=1)
    results = gw.submit(
        [
            msg(1, "+31600000001", "a"),  # 500
            msg(2, "0612345678", "b"),  # not E.164
            msg(3, "+31600000009", "c"),  # replied STOP earlier
            msg(4, "+31600000004", "d", "e"),
        ]
    )
    status = {(r.message_id, r.part_index): r for r in results}
    assert status[(1, 0)].status == "transient" and "HTTP 500" in (status[(1, 0)].error or "")
    assert status[(2, 0)].status == "permanent" and "21211" in (status[(2, 0)].error or "")
    assert status[(3, 0)].status == "permanent" and "21610" in (status[(3, 0)].error or "")
    assert status[(4, 0)].status == status[(4, 1)].status == "accepted"


def test_no_response_after_the_request_is_unknown_never_transient(
    fake: FakeTwilio, make_gw: Any
) -> None:
    fake.hang_up_first = 1
    gw = make_gw(fake, window=1)
    [r] = gw.submit([msg(1, "+31600000001", "did it go?")])
    assert r.status == "unknown"
    assert len(fake.outbound()) == 1  # it did: resending would send it twice


def test_an_unreachable_provider_is_transient_not_connected() -> None:
    port = free_port()
    gw = HttpGateway(
        parse_gateway_url(f"http://127.0.0.1:{port}/2010-04-01/Accounts/AC1"), Secret("t")
    )
    [r] = gw.submit([msg(1, "+31600000001", "x")])
    assert r.status == "transient" and (r.error or "").startswith("not connected")
    with pytest.raises(GatewayError, match="cannot reach"):
        gw.connect()
    gw.close()


def test_wrong_credentials_are_named_and_the_token_never_shows(
    fake: FakeTwilio, make_gw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wrong-token-123"
    gw = make_gw(fake, token=secret)
    with pytest.raises(GatewayError) as err:
        gw.connect()
    assert "credentials" in str(err.value) and secret not in str(err.value)
    [r] = gw.submit([msg(1, "+31600000001", "x")])
    assert r.status == "transient" and "HTTP 401" in (r.error or "")
    assert secret not in (r.error or "") and secret not in caplog.text
    assert secret not in repr(gw) and secret not in repr(vars(gw))


def test_inbound_replies_are_polled_once_each(fake: FakeTwilio, make_gw: Any) -> None:
    gw = make_gw(fake, **{"from": OUR_NUMBER})
    sid = fake.add_inbound("+31611112222", OUR_NUMBER, "STOP")
    fake.add_inbound("+31611113333", "+15550000000", "not for us")
    [event] = collect(gw, 1)
    assert event == InboundMessage(
        sender="+31611112222", recipient=OUR_NUMBER, text="STOP", at=event.at, provider_id=sid
    )
    assert event.at is not None
    assert gw.receive(lambda _: None, 0.3) == 0  # not offered twice
    fake.add_inbound("+31611114444", OUR_NUMBER, "Stop please")
    assert [e.text for e in collect(gw, 1) if isinstance(e, InboundMessage)] == ["Stop please"]


def test_a_failing_handler_gets_the_same_events_again(fake: FakeTwilio, make_gw: Any) -> None:
    gw = make_gw(fake, **{"from": OUR_NUMBER})
    fake.add_inbound("+31611112222", OUR_NUMBER, "STOP")
    [r] = gw.submit([msg(1, "+31600000001", "x")])

    def broken(batch: Any) -> None:
        raise OSError("database is locked")

    seen_before: list[InboundEvent] = []
    with pytest.raises(OSError):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            gw.receive(lambda b: (seen_before.extend(b), broken(b)), 0.2)
    assert seen_before
    events = collect(gw, len(seen_before))
    assert {e.provider_id for e in events} >= {e.provider_id for e in seen_before}
    assert r.provider_id in {e.provider_id for e in seen_before + events}
    assert any(isinstance(e, InboundMessage) and e.text == "STOP" for e in seen_before + events)


def test_tracking_resumes_after_a_restart(fake: FakeTwilio, make_gw: Any) -> None:
    first = make_gw(fake)
    results = first.submit([msg(1, "+31600000001", "a", "b")])
    first.close()
    second = make_gw(fake)
    assert second.track(r.provider_id for r in results if r.provider_id) == 1
    reports = collect(second, 2)
    assert sorted(e.provider_id for e in reports) == sorted(
        r.provider_id for r in results if r.provider_id
    )
