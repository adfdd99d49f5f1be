"""Sender validation: the GSM originator rules, checked while the sender is typed."""

from __future__ import annotations

import pytest

from core.senders import ALPHANUMERIC_REFUSED, alphanumeric_warning, validate_sender


@pytest.mark.parametrize(
    "sender", ["ShopNL", "A", "ABCDEFGHIJK", "Shop 24", "BOL com", "2Go", "Shop7 NL 12"]
)
def test_alphanumeric_senders_up_to_eleven_characters(sender: str) -> None:
    check = validate_sender(sender)
    assert check.ok, check.error
    assert check.kind == "alphanumeric"
    assert check.error is None
    assert any("US" in w for w in check.warnings)


@pytest.mark.parametrize("sender", ["1", "3010", "123456789012345", "+31612345678", "0612345678"])
def test_numeric_senders_up_to_fifteen_digits(sender: str) -> None:
    check = validate_sender(sender)
    assert (check.ok, check.kind, check.warnings) == (True, "numeric", ())


@pytest.mark.parametrize(
    ("sender", "says"),
    [
        ("ABCDEFGHIJKL", "has 12 characters"),
        ("Shop 24 NL 2", "has 12 characters"),
        ("1234567890123456", "has 16 digits"),
        ("+1234567890123456", "has 16 digits"),
        ("", "empty"),
        ("   ", "empty"),
        ("+", "only digits after the +"),
        ("+31 6 1234", "only digits after the +"),
        ("++316", "only digits after the +"),
        ("Shop!", "'!'"),
        ("shop.nl", "'.'"),
        ("Shop-NL", "'-'"),
        ("Café", "'é'"),
        ("06 1234 56", "no letter"),
        (" Shop", "starts or ends with a space"),
        ("Shop ", "starts or ends with a space"),
    ],
)
def test_refused_senders_say_which_rule(sender: str, says: str) -> None:
    check = validate_sender(sender)
    assert not check.ok
    assert check.kind is None
    assert check.error is not None
    assert says in check.error
    assert "at most 15 digits" in check.error  # the rule itself is always stated


def test_refused_regions_include_north_america() -> None:
    assert {"US", "CA"} <= ALPHANUMERIC_REFUSED
    assert "NL" not in ALPHANUMERIC_REFUSED
    assert all(len(code) == 2 and code.isupper() for code in ALPHANUMERIC_REFUSED)


def test_alphanumeric_warning_names_the_affected_countries() -> None:
    assert alphanumeric_warning(["NL", "BE", "DE"]) is None
    assert alphanumeric_warning([]) is None
    warning = alphanumeric_warning(["NL", "us", "CA", "", None])  # type: ignore[list-item]
    assert warning is not None
    assert "CA, US" in warning
    assert "NL" not in warning
