"""Inbound replies: STOP/START keywords and sender addresses in every SMPP form."""

from __future__ import annotations

import pytest

from core.optout import START_WORDS, STOP_WORDS, classify_reply, normalize_address


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop!",
        " stop ",
        "STOP.",
        "S.T.O.P",
        "stop\n",
        "STOP ALL",
        "Stopall",
        "unsubscribe",
        "Cancel",
        "END",
        "quit",
        "opt-out",
        "OPT OUT",
        "Afmelden",
        "uitschrijven",
        "ABMELDEN",
        "Arrêt",
        "arret",
        "BAJA",
        "alto",
        "STOP 🛑",
    ],
)
def test_stop_replies(text: str) -> None:
    assert classify_reply(text) == "stop"


@pytest.mark.parametrize("text", ["START", "start!", " Unstop ", "aanmelden"])
def test_start_replies(text: str) -> None:
    assert classify_reply(text) == "start"


@pytest.mark.parametrize(
    "text",
    [
        "please stop sending",
        "stop sending me this",
        "Don't stop",
        "STOP STOP",
        "stopped",
        "Thanks!",
        "Yes",
        "",
        "   ",
        "!!!",
        None,
        "nonstop",
        "start stop",
    ],
)
def test_other_replies_are_for_a_person(text: str | None) -> None:
    assert classify_reply(text) is None


def test_keyword_sets_are_disjoint_and_in_compared_form() -> None:
    assert not STOP_WORDS & START_WORDS
    for word in STOP_WORDS | START_WORDS:
        assert word.isascii() and word.isalnum() and word.isupper()
        assert classify_reply(word.lower()) is not None


@pytest.mark.parametrize(
    ("address", "ton"),
    [
        ("+31612345678", None),
        ("31612345678", 1),
        ("+31612345678", 1),
        ("0031612345678", None),
        ("0612345678", None),
        ("06 1234 5678", None),
        ("31612345678", None),  # bare international digits without a TON
        ("0031612345678", 1),  # a gateway that adds 00 despite TON 1
    ],
)
def test_address_forms_map_to_e164(address: str, ton: int | None) -> None:
    assert normalize_address(address, "NL", ton) == "+31612345678"


def test_national_numbers_use_the_region() -> None:
    assert normalize_address("0470123456", "BE") == "+32470123456"
    assert normalize_address("+32470123456", "NL") == "+32470123456"


@pytest.mark.parametrize(
    ("address", "ton"),
    [("ShopNL", 5), ("ShopNL", None), ("", None), (None, None), ("12", None), ("31abc", 1)],
)
def test_non_numbers_give_none(address: str | None, ton: int | None) -> None:
    assert normalize_address(address, "NL", ton) is None
