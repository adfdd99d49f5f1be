"""Delivery profiles of the simulator: how often messages reach handsets, per country.

Figures are plausible orders of magnitude for promotional bulk SMS (routes with carrier
filtering, do-not-disturb registries and many inactive SIMs deliver less), not
measurements: the point is that statistics pages show realistic variety between countries
and operators. The country comes from the E.164 calling code (longest prefix match); the
"operator" is a stable pseudo-operator derived from the first national digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Why an undelivered message failed; index = reason code used by the simulator.
REASONS: tuple[str, ...] = ("absent subscriber", "unknown subscriber", "blocked", "expired")
#: The delivery state each reason is reported with.
REASON_STATES: tuple[str, ...] = ("undelivered", "undelivered", "undelivered", "expired")

_DEFAULT_MIX = (0.45, 0.25, 0.15, 0.15)
_FILTERED_MIX = (0.30, 0.20, 0.40, 0.10)  # carrier filtering / do-not-disturb registries


@dataclass(frozen=True)
class CountryProfile:
    calling_code: str
    iso: str
    delivery_rate: float  # share delivered on the best operator
    reason_mix: tuple[float, float, float, float] = _DEFAULT_MIX


COUNTRIES: tuple[CountryProfile, ...] = (
    CountryProfile("1", "US", 0.94, _FILTERED_MIX),
    CountryProfile("7", "RU", 0.90),
    CountryProfile("20", "EG", 0.87),
    CountryProfile("27", "ZA", 0.91),
    CountryProfile("31", "NL", 0.975),
    CountryProfile("32", "BE", 0.97),
    CountryProfile("33", "FR", 0.96),
    CountryProfile("34", "ES", 0.955),
    CountryProfile("39", "IT", 0.95),
    CountryProfile("41", "CH", 0.975),
    CountryProfile("43", "AT", 0.97),
    CountryProfile("44", "GB", 0.97),
    CountryProfile("45", "DK", 0.98),
    CountryProfile("46", "SE", 0.98),
    CountryProfile("47", "NO", 0.98),
    CountryProfile("48", "PL", 0.95),
    CountryProfile("49", "DE", 0.97),
    CountryProfile("52", "MX", 0.90),
    CountryProfile("55", "BR", 0.89),
    CountryProfile("61", "AU", 0.96),
    CountryProfile("62", "ID", 0.85),
    CountryProfile("63", "PH", 0.86),
    CountryProfile("81", "JP", 0.95),
    CountryProfile("86", "CN", 0.80, _FILTERED_MIX),
    CountryProfile("90", "TR", 0.93),
    CountryProfile("91", "IN", 0.86, _FILTERED_MIX),
    CountryProfile("234", "NG", 0.80),
    CountryProfile("254", "KE", 0.87),
    CountryProfile("351", "PT", 0.955),
    CountryProfile("353", "IE", 0.97),
    CountryProfile("971", "AE", 0.92, _FILTERED_MIX),
)
DEFAULT_PROFILE = CountryProfile("", "ZZ", 0.90)
PROFILES: tuple[CountryProfile, ...] = (*COUNTRIES, DEFAULT_PROFILE)

#: Delivery-rate multiplier of the three pseudo-operators of every country.
OPERATOR_FACTORS = np.array([1.0, 0.99, 0.965])

_POW10 = np.array([10**k for k in range(20)], dtype=np.uint64)


def _build_prefix_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per 3-digit prefix (100..999): profile index and calling-code length."""
    by_code = {p.calling_code: i for i, p in enumerate(COUNTRIES)}
    profile = np.full(1000, len(COUNTRIES), dtype=np.int16)
    cc_len = np.full(1000, 2, dtype=np.int8)
    for prefix in range(100, 1000):
        digits = str(prefix)
        for n in (3, 2, 1):
            if digits[:n] in by_code:
                profile[prefix] = by_code[digits[:n]]
                cc_len[prefix] = n
                break
    return profile, cc_len


_PREFIX_PROFILE, _PREFIX_CC_LEN = _build_prefix_tables()
RATES = np.array([p.delivery_rate for p in PROFILES])
REASON_CUMULATIVE = np.cumsum(np.array([p.reason_mix for p in PROFILES]), axis=1)


def classify(msisdn: np.ndarray, ndigits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Profile index and pseudo-operator (0..2) of each number, vectorised.

    `msisdn` holds the E.164 digits as integers (no '+'), `ndigits` their digit counts
    (at least 5).
    """
    nd = ndigits.astype(np.int64)
    p3 = (msisdn // _POW10[nd - 3]).astype(np.int64)
    profile = _PREFIX_PROFILE[p3]
    national_digits = nd - _PREFIX_CC_LEN[p3]
    first_two = (msisdn // _POW10[np.maximum(national_digits - 2, 0)]) % np.uint64(100)
    operator = (first_two % np.uint64(3)).astype(np.int64)
    return profile.astype(np.int64), operator


def country_of(e164: str) -> str:
    """ISO code of the simulator's profile for one number ("ZZ" when not in the table)."""
    digits = e164.lstrip("+")
    profile, _ = classify(np.array([int(digits)], dtype=np.uint64), np.array([len(digits)]))
    return PROFILES[int(profile[0])].iso
