"""Sender (originator) validation: what may stand in the "from" field of an SMS.

The GSM network carries the sender as an address of at most 11 alphanumeric characters or
up to 15 digits (an E.164 number, optionally written with a leading ``+``). Providers refuse
anything else, often only after the mailing has started, so the rule is checked while the
sender is typed. Alphanumeric senders also pass the check but come with a warning: several
countries do not deliver them, or replace them with a number, and replies are impossible.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALPHANUMERIC_REFUSED",
    "MAX_ALPHANUMERIC",
    "MAX_NUMERIC",
    "SenderCheck",
    "alphanumeric_warning",
    "validate_sender",
]

MAX_ALPHANUMERIC = 11
MAX_NUMERIC = 15

# ISO regions where an alphanumeric sender ID is not delivered as such (refused, or replaced
# by a number or short code), as commonly documented by SMS providers. Deliberately short:
# only countries where providers agree. US territories share the US numbering plan (PR).
ALPHANUMERIC_REFUSED: frozenset[str] = frozenset({"US", "CA", "PR", "CN", "AR", "CL"})

_ALPHANUMERIC_CHARS = re.compile(r"[A-Za-z0-9 ]+")
_NUMERIC = re.compile(r"\+?[0-9]+")

_RULE = (
    f"a sender is either 1 to {MAX_ALPHANUMERIC} letters (A-Z), digits and spaces with at "
    f"least one letter, or a number of at most {MAX_NUMERIC} digits, optionally starting with +"
)


@dataclass(frozen=True)
class SenderCheck:
    """The verdict on one sender: usable or not, which kind, and what to tell the user."""

    ok: bool
    kind: Literal["alphanumeric", "numeric"] | None
    error: str | None = None
    warnings: tuple[str, ...] = ()


def _refuse(message: str) -> SenderCheck:
    return SenderCheck(ok=False, kind=None, error=f"{message}; {_RULE}.")


def validate_sender(sender: str) -> SenderCheck:
    """Check a sender against the GSM originator rules; the error names the rule broken."""
    if sender is None or not str(sender).strip():
        return _refuse("The sender is empty")
    sender = str(sender)
    if sender != sender.strip():
        return _refuse(f"The sender {sender!r} starts or ends with a space")
    if sender.startswith("+") and not _NUMERIC.fullmatch(sender):
        return _refuse(f"The numeric sender {sender!r} must have only digits after the +")
    if _NUMERIC.fullmatch(sender):
        digits = sender.removeprefix("+")
        if len(digits) > MAX_NUMERIC:
            return _refuse(f"The numeric sender {sender!r} has {len(digits)} digits")
        return SenderCheck(ok=True, kind="numeric")
    bad = sorted({c for c in sender if not _ALPHANUMERIC_CHARS.fullmatch(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return _refuse(f"The sender {sender!r} contains {shown}")
    if not any(c.isalpha() for c in sender):
        return _refuse(f"The sender {sender!r} has digits and spaces but no letter")
    if len(sender) > MAX_ALPHANUMERIC:
        return _refuse(f"The sender {sender!r} has {len(sender)} characters")
    return SenderCheck(ok=True, kind="alphanumeric", warnings=(_GENERAL_WARNING,))


_GENERAL_WARNING = (
    "Some countries do not accept alphanumeric senders (among them "
    + ", ".join(sorted(ALPHANUMERIC_REFUSED))
    + "): there the message is refused or shows a number instead, and nobody can reply to a "
    "name; use a numeric sender for those recipients."
)


def alphanumeric_warning(countries: Iterable[str]) -> str | None:
    """A warning naming the recipients' countries that refuse alphanumeric senders, if any.

    ``countries`` are ISO region codes, e.g. the distinct ``_country`` values of a selection.
    """
    hit = sorted({str(c).upper() for c in countries if c} & ALPHANUMERIC_REFUSED)
    if not hit:
        return None
    return (
        f"Recipients in {', '.join(hit)} will not see an alphanumeric sender: those countries "
        "refuse it or replace it with a number. Use a numeric sender for them."
    )
