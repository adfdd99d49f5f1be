"""How many SMS segments a text costs, and how to make it cost fewer.

A text travels as GSM-7 (septets) when every character is in the default alphabet or its
extension table, otherwise the whole text is UCS-2 (UTF-16 code units). One SMS carries 140
octets of user data; a longer text is cut into parts that each give up room to a user data
header (UDH) saying "part i of n". The operator bills per part, so the editor shows the count
live (`analyze`), a mailing computes it for every recipient at once (`analyze_many`), and
`smart_suggestions` finds the look-alike characters that silently triple a bill.

Rules: 3GPP TS 23.038 (alphabets, `core.gsm_tables`) and TS 23.040 (user data header).
No normalisation is applied: what the user typed is what is sent, so "e" + U+0301 is UCS-2
while the precomposed "é" is GSM-7.

Pure module: no I/O, no UI.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.gsm_tables import (
    GSM_BASIC,
    GSM_EXTENSION,
    NATIONAL_LANGUAGE_IDS,
    NATIONAL_SHIFT,
    SMART_REPLACEMENTS,
)

__all__ = [
    "GSM7",
    "NATIONAL_LANGUAGES",
    "UCS2",
    "SegmentInfo",
    "SmartSuggestion",
    "analyze",
    "analyze_many",
    "apply_smart_encoding",
    "capacities",
    "gsm7_septets",
    "smart_suggestions",
    "ucs2_units",
]

Encoding = Literal["GSM-7", "UCS-2"]
GSM7: Encoding = "GSM-7"
UCS2: Encoding = "UCS-2"

#: National language single shift tables this module can count with (TS 23.038 Annex A.2).
NATIONAL_LANGUAGES: tuple[str, ...] = tuple(NATIONAL_LANGUAGE_IDS)

# --- Capacities: derived from the sizes of the user data header (TS 23.040 9.2.3.24) -------
USER_DATA_OCTETS = 140
UDHL_OCTETS = 1  # the user data header length octet, present whenever there is a UDH
CONCAT_IE_OCTETS = 5  # IEI 0x00, length 3, reference, total parts, sequence number
SHIFT_IE_OCTETS = 3  # IEI 0x24 (national language single shift), length 1, language id


def gsm7_septets(ie_octets: int) -> int:
    """Septets of GSM-7 text that fit beside information elements of `ie_octets` octets.

    The header is octet-aligned but the text that follows is a run of septets, so the text
    starts at the next septet boundary after the header (TS 23.040 calls the gap fill
    bits): available = floor((140 * 8 - header bits) / 7).
    """
    header = (UDHL_OCTETS + ie_octets) if ie_octets else 0
    return (USER_DATA_OCTETS * 8 - header * 8) // 7


def ucs2_units(ie_octets: int) -> int:
    """UTF-16 code units that fit beside information elements of `ie_octets` octets."""
    header = (UDHL_OCTETS + ie_octets) if ie_octets else 0
    return (USER_DATA_OCTETS - header) // 2


GSM7_SINGLE = gsm7_septets(0)  # 160
GSM7_MULTI = gsm7_septets(CONCAT_IE_OCTETS)  # 153
NATIONAL_SINGLE = gsm7_septets(SHIFT_IE_OCTETS)  # 155
NATIONAL_MULTI = gsm7_septets(CONCAT_IE_OCTETS + SHIFT_IE_OCTETS)  # 149
UCS2_SINGLE = ucs2_units(0)  # 70
UCS2_MULTI = ucs2_units(CONCAT_IE_OCTETS)  # 67


def capacities(encoding: Encoding, national: str | None = None) -> tuple[int, int]:
    """(units in a single message, units per part of a concatenated message)."""
    if encoding == UCS2:
        return UCS2_SINGLE, UCS2_MULTI
    if national is not None:
        return NATIONAL_SINGLE, NATIONAL_MULTI
    return GSM7_SINGLE, GSM7_MULTI


_DEFAULT_GSM: frozenset[str] = GSM_BASIC | GSM_EXTENSION


def _check_national(national: str | None) -> frozenset[str] | None:
    """The two-septet characters of `national`'s single shift table (None when off)."""
    if national is None:
        return None
    try:
        return NATIONAL_SHIFT[national]
    except (KeyError, TypeError):
        choices = ", ".join(repr(n) for n in NATIONAL_LANGUAGES)
        raise ValueError(f"national must be one of {choices} or None, not {national!r}") from None


# --- One text ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """How one text is sent.

    encoding    "GSM-7" or "UCS-2"
    units       septets (GSM-7) or UTF-16 code units (UCS-2) of the whole text
    segments    number of SMS parts (an empty text is one part)
    parts       the text of each part, in order; "".join(parts) is the text
    non_gsm     distinct characters that force UCS-2, in order of appearance
    capacity    units per part for this message (160/153, 70/67, 155/149 with a shift table)
    units_left  units still free in the last part, the editor's "left" counter
    national    the national single shift table used ("turkish", ...) or None
    """

    encoding: Encoding
    units: int
    segments: int
    parts: tuple[str, ...]
    non_gsm: tuple[str, ...]
    capacity: int
    units_left: int
    national: str | None = None


def _char_cost(encoding: Encoding, two_septets: frozenset[str]) -> Callable[[str], int]:
    """A function giving the units one character costs under `encoding`."""
    if encoding == UCS2:
        return lambda c: 2 if ord(c) > 0xFFFF else 1
    return lambda c: 2 if c in two_septets else 1


def analyze(text: str, national: str | None = None) -> SegmentInfo:
    """Encoding, size and parts of `text`, exactly as an SMSC would cut it.

    With `national` (a gateway setting), a text that is not plain GSM-7 but fits the default
    alphabet plus that language's single shift table is sent as GSM-7 with a national
    language single shift header (fewer septets per part, but far more than UCS-2).
    Parts are filled greedily; the two septets of an escaped character and the two code
    units of a surrogate pair always stay in the same part.
    """
    if not isinstance(text, str):
        raise TypeError(f"analyze expects a str, got {type(text).__name__}")
    shift = _check_national(national)
    chars = set(text)
    used: str | None = None
    if chars <= _DEFAULT_GSM:
        encoding, two = GSM7, GSM_EXTENSION
    elif shift is not None and chars <= GSM_BASIC | shift:
        encoding, two, used = GSM7, shift, national
    else:
        encoding, two = UCS2, frozenset()
    allowed = _DEFAULT_GSM if shift is None else _DEFAULT_GSM | shift
    non_gsm = tuple(dict.fromkeys(c for c in text if c not in allowed)) if encoding == UCS2 else ()

    cost = _char_cost(encoding, two)
    units = sum(map(cost, text))
    single, multi = capacities(encoding, used)
    if units <= single:
        return SegmentInfo(encoding, units, 1, (text,), non_gsm, single, single - units, used)

    parts: list[str] = []
    start = filled = 0
    for i, c in enumerate(text):
        n = cost(c)
        if filled + n > multi:  # never split an escape pair or a surrogate pair
            parts.append(text[start:i])
            start, filled = i, 0
        filled += n
    parts.append(text[start:])
    return SegmentInfo(
        encoding, units, len(parts), tuple(parts), non_gsm, multi, multi - filled, used
    )


# --- Many texts -----------------------------------------------------------------------------
# A mailing needs, per text: its characters, its two-unit characters (escaped characters in
# GSM-7, astral characters in UCS-2) and whether GSM-7 can carry it at all. The texts' UTF-8
# bytes are read straight from Arrow memory in blocks of _CHUNK_BYTES, so temporaries stay
# in cache, and every text is handled by whole-array operations:
#
# 1. `_fast_scan` (every text, default alphabet): one `bytes.translate` maps each byte to
#    flags (see `_byte_flags`); a few shifted comparisons check that each multi-byte
#    character is one of the default alphabet's; `np.add.reduceat` sums per text.
# 2. `_exact_scan` (only with a national shift table, only texts the default alphabet
#    cannot carry): decode to code points and look each up in that table.
# 3. `_split_counts` (only multi-part texts with two-unit characters): the greedy split.
_CHUNK_BYTES = 1 << 16
_MAX_FAST_BYTES = (1 << 21) - 1  # longer texts could overflow a packed counter (step 2)
_FLAG_BAD = 1  # byte of a character outside the alphabet (ASCII, or any lead byte by default)
_FLAG_TWO = 2  # first byte of a two-septet character (ASCII extension, or the lead of €)


@cache
def _byte_flags() -> tuple[bytes, np.uint8, np.uint8]:
    """Translation table for `_fast_scan`, and its two masks of lead-byte requirements.

    Bits 2..7 tie lead bytes to continuation bytes. A lead byte of a default-alphabet
    character (C2, C3, CE for the Latin-1 and Greek letters, E2 for €) is given a
    requirement bit, and every continuation byte that completes a default-alphabet
    character after that lead carries the same bit; € needs a second bit for its third
    byte. A character is outside the alphabet when its lead is flagged bad, or when a
    required bit is missing from the byte after (mask one) or two after (mask two) the lead.
    """
    table = bytearray(256)
    for byte in range(0x80):
        c = chr(byte)
        if c in GSM_EXTENSION:
            table[byte] = _FLAG_TWO
        elif c not in GSM_BASIC:
            table[byte] = _FLAG_BAD
    for byte in range(0xC0, 0x100):
        table[byte] = _FLAG_BAD
    next_bit, lead_bits = 2, {}
    need_next = need_third = 0
    for c in sorted(c for c in _DEFAULT_GSM if ord(c) >= 0x80):
        utf8 = c.encode()
        two = _FLAG_TWO if c in GSM_EXTENSION else 0
        if len(utf8) == 2 and two == 0:
            if utf8[0] not in lead_bits:
                lead_bits[utf8[0]], next_bit = 1 << next_bit, next_bit + 1
            table[utf8[0]] = lead_bits[utf8[0]]
            table[utf8[1]] |= lead_bits[utf8[0]]
            need_next |= lead_bits[utf8[0]]
        elif len(utf8) == 3 and utf8[0] not in lead_bits:
            second, third, next_bit = 1 << next_bit, 1 << (next_bit + 1), next_bit + 2
            lead_bits[utf8[0]] = second
            table[utf8[0]] = second | third | two
            table[utf8[1]] |= second
            table[utf8[2]] |= third
            need_next, need_third = need_next | second, need_third | third
        else:  # the tables of TS 23.038 never need this; fail loudly if they are edited
            raise AssertionError(f"_byte_flags cannot encode {c!r} (UTF-8 {utf8.hex()})")
    if next_bit > 8:
        raise AssertionError("_byte_flags needs more than 8 bits")
    return bytes(table), np.uint8(need_next), np.uint8(need_third)


def _offsets_and_data(arr: pa.Array) -> tuple[np.ndarray, memoryview]:
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    return offsets, data


def _chunks(offsets: np.ndarray) -> Iterable[tuple[int, int]]:
    """Consecutive (first, end) text ranges of about _CHUNK_BYTES bytes each."""
    n = len(offsets) - 1
    total = int(offsets[-1] - offsets[0])
    cuts = np.searchsorted(offsets, offsets[0] + np.arange(_CHUNK_BYTES, total, _CHUNK_BYTES))
    bounds = np.unique(np.concatenate(([0], cuts, [n])))
    return zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)


def _fast_scan(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text: two-septet characters, not in the default alphabet, astral characters.

    The first count is exact only for texts the second marks as GSM-7, which is all it is
    used for: in such a text every E2 byte starts a €. Astral characters are exactly the
    UTF-8 sequences starting with a byte >= F0.
    """
    table, need_next, need_third = _byte_flags()
    n = len(arr)
    offsets, data = _offsets_and_data(arr)
    n_bytes = np.diff(offsets)
    two = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    astral = np.zeros(n, dtype=np.int64)
    for first, end in _chunks(offsets):
        base = int(offsets[first])
        raw = data[base : int(offsets[end])]
        nonempty = np.flatnonzero(n_bytes[first:end])
        if nonempty.size == 0:
            continue
        starts = offsets[first:end][nonempty] - base
        rows = first + nonempty
        b = np.frombuffer(raw, dtype=np.uint8)
        flags = np.frombuffer(bytes(raw).translate(table), dtype=np.uint8)
        two[rows] = np.add.reduceat(flags & _FLAG_TWO, starts, dtype=np.uint32) >> 1
        outside = (flags & _FLAG_BAD).view(bool)
        lead = b >= 0xC0
        if lead.any():
            outside[:-1] |= ((flags[:-1] & ~flags[1:] & need_next) != 0) & lead[:-1]
            outside[:-2] |= ((flags[:-2] & ~flags[2:] & need_third) != 0) & lead[:-2]
            four = np.flatnonzero(b >= 0xF0)  # rare: counted by position
            if four.size:
                np.add.at(astral, rows[np.searchsorted(starts, four, side="right") - 1], 1)
        if outside.any():
            bad[rows] = np.add.reduceat(outside, starts, dtype=np.uint32) > 0
    return two, bad, astral


# Packed per code point for `_exact_scan`: two 21-bit counters summed per text.
_FIELD = 21
_MASK = np.uint64((1 << _FIELD) - 1)
_P_TWO = np.uint64(1)
_P_BAD = np.uint64(1 << _FIELD)
_ANY_ASTRAL = 0x10000  # all astral code points share the table's last entry


@cache
def _packed_table(national: str | None) -> np.ndarray:
    table = np.full(_ANY_ASTRAL + 1, _P_BAD, dtype=np.uint64)
    for c in GSM_BASIC:
        table[ord(c)] = 0
    for c in _two_septet_chars(national):
        table[ord(c)] = _P_TWO
    table.flags.writeable = False
    return table


def _two_septet_chars(national: str | None) -> frozenset[str]:
    return GSM_EXTENSION if national is None else NATIONAL_SHIFT[national]


def _code_points(raw: memoryview) -> np.ndarray:
    return np.frombuffer(str(raw, "utf-8").encode("utf-32-le"), dtype="<u4")


@dataclass(frozen=True, slots=True)
class _Counts:
    two: np.ndarray  # int64, characters costing two septets under the scanned alphabet
    bad: np.ndarray  # bool, some character is outside the scanned alphabet


def _exact_scan(arr: pa.Array, n_chars: np.ndarray, national: str) -> _Counts:
    """Per text, exact counts against the default alphabet plus `national`'s shift table."""
    table = _packed_table(national)
    total = np.zeros(len(arr), dtype=np.uint64)
    offsets, data = _offsets_and_data(arr)
    for first, end in _chunks(offsets):
        lens = n_chars[first:end]
        nonempty = np.flatnonzero(lens)
        if nonempty.size == 0:
            continue
        cps = np.minimum(_code_points(data[int(offsets[first]) : int(offsets[end])]), _ANY_ASTRAL)
        starts = (np.cumsum(lens) - lens)[nonempty]
        total[first + nonempty] = np.add.reduceat(table[cps], starts)
    return _Counts(
        two=(total & _MASK).astype(np.int64),
        bad=((total >> np.uint64(_FIELD)) & _MASK) > 0,
    )


@cache
def _cost_table(encoding: Encoding, national: str | None) -> np.ndarray:
    """Units per code point under one alphabet (uint8); only used on encodable texts."""
    table = np.ones(0x110000, dtype=np.uint8)
    if encoding == UCS2:
        table[0x10000:] = 2
    else:
        for c in _two_septet_chars(national):
            table[ord(c)] = 2
    table.flags.writeable = False
    return table


def _split_counts(
    arr: pa.Array, n_chars: np.ndarray, units: np.ndarray, multi: int, cost: np.ndarray
) -> np.ndarray:
    """Exact part counts of multi-part texts that contain two-unit characters.

    Greedy filling moves a part boundary back by one unit exactly when a two-unit character
    starts one unit before it. All texts advance together, one part per round: a round is a
    binary search for (text, boundary - 1) among the starts of the two-unit characters.
    """
    k = len(arr)
    offsets, data = _offsets_and_data(arr)
    wide = np.flatnonzero(cost[_code_points(data[int(offsets[0]) : int(offsets[-1])])] == 2)
    # A two-unit character's first unit, counted from the start of its own text: its
    # character index in the text plus the two-unit characters before it in the text.
    first_char = np.cumsum(n_chars) - n_chars
    owner = np.searchsorted(first_char, wide, side="right") - 1
    first_wide = np.searchsorted(wide, first_char)
    unit_start = wide - first_char[owner] + np.arange(len(wide)) - first_wide[owner]
    keys = owner.astype(np.int64) << 32 | unit_start

    segments = np.zeros(k, dtype=np.int64)
    start = np.zeros(k, dtype=np.int64)
    active = np.arange(k)
    while active.size:
        boundary = start[active] + multi
        segments[active] += 1
        more = boundary < units[active]
        active, boundary = active[more], boundary[more]
        if not len(keys):
            start[active] = boundary
            continue
        probe = active.astype(np.int64) << 32 | (boundary - 1)
        at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
        start[active] = boundary - (keys[at] == probe)
    return segments


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _to_arrow(values: Any, labels: pd.Index) -> tuple[pa.Array, dict[int, str]]:
    """Texts as one Arrow string array (None/NaN -> ""), plus the texts Arrow cannot hold.

    A Python str may contain a lone surrogate, which is not valid UTF-8; such a text is
    stored as "" here and returned by position so the caller counts it exactly.
    """
    odd: dict[int, str] = {}
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError):
        clean: list[str] = []
        for pos, v in enumerate(values):
            if _is_missing(v):
                clean.append("")
            elif not isinstance(v, str):
                raise TypeError(
                    f"analyze_many expects texts (str, None or NaN); the item at position "
                    f"{pos} (index {labels[pos]!r}) is a {type(v).__name__}: {v!r:.60}"
                ) from None
            else:
                try:
                    v.encode("utf-8")
                    clean.append(v)
                except UnicodeEncodeError:
                    odd[pos] = v
                    clean.append("")
        arr = pa.array(clean, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    return arr, odd


def analyze_many(
    texts: Iterable[str | None] | pd.Series, national: str | None = None
) -> pd.DataFrame:
    """`analyze` for a column of texts: DataFrame with `encoding`, `units`, `segments`.

    Same index as a Series input (a RangeIndex otherwise); None/NaN count as empty texts.
    With `national` given, a `national` column says per row which table was used (or None).
    `encoding` is categorical ("GSM-7", "UCS-2"). The result equals `analyze` row by row.

    How: see the "Many texts" notes above; only texts GSM-7 cannot carry are decoded, and
    only multi-part texts with two-unit characters are split, all of them at once.
    """
    shift = _check_national(national)
    if isinstance(texts, pd.Series):
        labels: pd.Index = texts.index
        values: Any = texts
    else:
        if not isinstance(texts, (list, tuple, np.ndarray, pd.Index)):
            texts = list(texts)
        labels = pd.RangeIndex(len(texts))
        values = texts
    arr, odd = _to_arrow(values, labels)

    n_chars = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    two, bad, astral = _fast_scan(arr)
    shifted = np.zeros(len(arr), dtype=bool)
    rows = np.flatnonzero(bad)
    if shift is not None and rows.size:
        exact = _exact_scan(arr.take(pa.array(rows)), n_chars[rows], national)
        fits = ~exact.bad
        shifted[rows[fits]] = True
        bad[rows[fits]] = False
        two[rows[fits]] = exact.two[fits]

    gsm = ~bad
    units = n_chars + np.where(gsm, two, astral)
    single = np.where(gsm, np.where(shifted, NATIONAL_SINGLE, GSM7_SINGLE), UCS2_SINGLE)
    multi = np.where(gsm, np.where(shifted, NATIONAL_MULTI, GSM7_MULTI), UCS2_MULTI)
    segments = np.where(units <= single, 1, -(-units // multi))

    tricky = (units > single) & (np.where(gsm, two, astral) > 0)
    for encoding, group, used in (
        (GSM7, gsm & ~shifted, None),
        (GSM7, shifted, national),
        (UCS2, bad, None),
    ):
        rows = np.flatnonzero(tricky & group)
        if rows.size:
            cap = capacities(encoding, used)[1]
            cost = _cost_table(encoding, used)
            subset = arr.take(pa.array(rows))
            segments[rows] = _split_counts(subset, n_chars[rows], units[rows], cap, cost)

    for pos in np.flatnonzero(np.diff(_offsets_and_data(arr)[0]) > _MAX_FAST_BYTES).tolist():
        odd[pos] = arr[pos].as_py()
    for pos, text in odd.items():
        info = analyze(text, national)
        gsm[pos] = info.encoding == GSM7
        units[pos], segments[pos] = info.units, info.segments
        shifted[pos] = info.national is not None

    result = pd.DataFrame(
        {
            "encoding": pd.Categorical.from_codes((~gsm).astype(np.int8), categories=[GSM7, UCS2]),
            "units": units.astype(np.int64),
            "segments": segments.astype(np.int64),
        },
        index=labels,
    )
    if national is not None:  # object dtype keeps None (a str column would turn it into NaN)
        used = np.where(shifted, national, None)
        result["national"] = pd.Series(used, dtype=object, index=result.index)
    return result


# --- Smart encoding -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmartSuggestion:
    """Look-alike replacements that could bring a UCS-2 text back to GSM-7.

    replacements  (character, replacement, count) in order of first appearance; an empty
                  replacement removes the character (invisible controls, zero-width spaces)
    before/after  the text as typed, and with every replacement applied
    text_after    the text with every replacement applied
    summary       "3 segments → 1", with the reason when it stays UCS-2; "" when there is
                  nothing to replace
    blocking      non-GSM characters without a look-alike: while any is left, the text
                  stays UCS-2 and the replacements save nothing
    """

    replacements: tuple[tuple[str, str, int], ...]
    before: SegmentInfo
    after: SegmentInfo
    text_after: str
    summary: str = ""
    blocking: tuple[str, ...] = ()

    @property
    def saving(self) -> int:
        """Segments saved per recipient by accepting every replacement (may be <= 0)."""
        return self.before.segments - self.after.segments


def _suggestable(text: str, national: str | None = None) -> dict[str, str]:
    shift = _check_national(national)
    allowed = _DEFAULT_GSM if shift is None else _DEFAULT_GSM | shift
    return {
        c: SMART_REPLACEMENTS[c]
        for c in dict.fromkeys(text)
        if c not in allowed and c in SMART_REPLACEMENTS
    }


def smart_suggestions(text: str, national: str | None = None) -> SmartSuggestion:
    """What replacing look-alike characters (curly quotes, dashes, odd spaces...) would save.

    Nothing is changed: the editor shows `summary` and applies the replacements only when
    the user accepts (`apply_smart_encoding`). The after-state is computed on the replaced
    text, so a remaining emoji honestly shows "2 segments → 2".
    """
    before = analyze(text, national)
    found = _suggestable(text, national)
    if not found:
        return SmartSuggestion((), before, before, text)
    text_after = text.translate(str.maketrans(found))
    after = analyze(text_after, national)
    replacements = tuple((c, r, text.count(c)) for c, r in found.items())
    noun = "segment" if before.segments == 1 else "segments"
    summary = f"{before.segments} {noun} → {after.segments}"
    if after.encoding == UCS2:
        shown = ", ".join(_shown(c) for c in after.non_gsm[:3])
        more = ", …" if len(after.non_gsm) > 3 else ""
        summary += f" (still UCS-2: no GSM-7 look-alike for {shown}{more})"
    return SmartSuggestion(replacements, before, after, text_after, summary, after.non_gsm)


def _shown(c: str) -> str:
    """A character as a user can read it: itself, or its code point when invisible."""
    if unicodedata.category(c)[0] in "CMZ":
        return f"U+{ord(c):04X}"
    return c


def apply_smart_encoding(text: str, chars: Iterable[str] | None = None) -> str:
    """`text` with the accepted look-alike replacements applied (None = every suggestion).

    Raises ValueError for a character that has no GSM-7 look-alike, so a stale selection in
    the editor is caught instead of silently ignored.
    """
    found = _suggestable(text)
    if chars is None:
        return text.translate(str.maketrans(found))
    table: dict[str, str] = {}
    for c in chars:
        if c not in SMART_REPLACEMENTS:
            raise ValueError(
                f"no GSM-7 look-alike for {c!r} (U+{ord(c):04X})"
                if len(c) == 1
                else f"expected single characters, got {c!r}"
            )
        table[c] = SMART_REPLACEMENTS[c]
    return text.translate(str.maketrans(table))
