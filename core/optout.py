"""Inbound replies: recognise STOP/START keywords and turn the replier's address into E.164.

A STOP reply must suppress the number at once and a missed one is a compliance problem,
while a false hit only silences someone who wrote a one-word reply that means "stop". So the
match is generous about form (case, accents, punctuation, spacing: ``Stop!``, `` stop ``,
``S.T.O.P``, ``Opt-out``, ``Arrêt``) but strict about content: the keyword must be the whole
message, so ``please stop sending`` is a conversation for a person to read, not an opt-out.

Addresses arrive from SMPP in any form (``+31612345678``, ``31612345678`` with TON 1,
``0031612345678``, ``0612345678``); they are normalised exactly like imported contacts
(`core.phones`), so a STOP matches the contact it came from.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from core import phones

__all__ = ["START_WORDS", "STOP_WORDS", "classify_reply", "normalize_address", "reply_key"]

# Keywords as compared: letters and digits only, upper case, accents removed.
STOP_WORDS: frozenset[str] = frozenset(
    {
        # English (the CTIA/carrier set)
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
        # Dutch
        "AFMELDEN",
        "UITSCHRIJVEN",
        "STOPPEN",
        # German
        "ABMELDEN",
        "STOPP",
        "ABBESTELLEN",
        # French (ARRÊT)
        "ARRET",
        "DESABONNER",
        "DESINSCRIRE",
        # Spanish
        "BAJA",
        "ALTO",
        "CANCELAR",
        # Portuguese
        "PARE",
        "PARAR",
        "SAIR",
    }
)

START_WORDS: frozenset[str] = frozenset({"START", "UNSTOP", "AANMELDEN", "ANMELDEN"})

# SMPP type of number (TON) values that matter here.
TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5


def reply_key(text: str | None) -> str:
    """A reply reduced to what is compared: letters and digits, upper case, no accents."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).upper()


def classify_reply(text: str | None) -> Literal["stop", "start"] | None:
    """``"stop"`` or ``"start"`` when the whole reply is such a keyword, else None."""
    key = reply_key(text)
    if key in STOP_WORDS:
        return "stop"
    if key in START_WORDS:
        return "start"
    return None


def normalize_address(
    address: str | None, default_region: str = "NL", ton: int | None = None
) -> str | None:
    """The sender address of an inbound message in E.164 (``+31612345678``), or None.

    ``ton`` is the SMPP type of number: 1 (international) means the digits are the full
    international number without ``+``; 5 (alphanumeric) is never a phone number. Without a
    TON the address is read like an imported contact number: ``+``/``00`` prefixes, a
    national number in ``default_region``, or bare international digits.
    """
    if address is None:
        return None
    text = "".join(str(address).split())
    if not text or ton == TON_ALPHANUMERIC:
        return None
    if ton == TON_INTERNATIONAL:
        digits = text.removeprefix("+")
        # Some gateways send 00-prefixed digits with TON 1 anyway; the prefix is not a number.
        digits = digits.removeprefix("00")
        if not (digits.isascii() and digits.isdigit()):
            return None
        text = "+" + digits
    number = phones.normalize_one(text, default_region)
    return number.e164 or None
