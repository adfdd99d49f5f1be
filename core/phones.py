"""Phone-number normalisation: messy spreadsheet text in, E.164 and an SMS verdict out.

Contact exports hold numbers in every shape people type them (``06-12345678``,
``+31 6 1234 5678``, ``0031612345678``, ``(06) 1234.5678``) plus what spreadsheets do to
them (``31612345678.0``, ``3.16123E+10``). For a mailing we need one canonical key per
phone (E.164, so duplicates and suppressions match) and a verdict: can this number get
an SMS at all, and if not, why.

Why it is built this way (a million rows must import in seconds):

1. Cheap cleaning runs once over the whole column in Arrow compute (whitespace and
   separators removed, spreadsheet damage and empty cells detected), never per row in
   Python.
2. The cleaned strings are dictionary-encoded and each *distinct* value is classified
   once; the answers are mapped back with a vectorised ``take``. Exports repeat numbers
   (households, re-imports) and different spellings collapse to one cleaned string.
3. Distinct values in the common shapes (``+<digits>``, the region's international
   prefix + digits, national digits) are classified a column at a time by
   `core.phones_vector`, which replays libphonenumber's parse and type rules with
   phonenumbers' metadata in Arrow (RE2) and answers only where the replay is exact
   (tests compare it with phonenumbers on every region). ``SMS_STUDIO_PHONES_VECTORISED=0``
   turns it off.
4. The rest (junk, letters, extensions, rare regions) is parsed one value at a time with
   ``rphonenumbers`` (libphonenumber in Rust, the same API as ``phonenumbers``) when it is
   installed, else ``phonenumbers``, which stays the reference in tests.
   ``SMS_STUDIO_PHONES_BACKEND=phonenumbers`` forces the reference. Known difference:
   rphonenumbers 0.1.0 carries libphonenumber metadata 9.0.41, older than phonenumbers
   9.0.43, so numbers in ranges changed in between (seen: CN, RO, ZW, BW, SH) can be
   judged differently when they reach this path. The reason given for junk is always the
   reference's (the two disagree on some short junk such as ``00,0``).
5. When more than ``PARALLEL_MIN_DISTINCT`` distinct values need the per-value parser,
   and a core is idle, a worker process takes chunks from the front of the list while
   this process works from the back. The parser holds the GIL, so threads do not help;
   the worker comes from a ``forkserver`` (``spawn`` where there is none) because forking
   a process that runs Streamlit and DuckDB threads is unsafe. The pool is created on
   first use and reused. The calling process never waits for a late worker: it redoes
   that worker's last chunks itself.

Decisions about ambiguous input (the tests pin each of them):

- *Missing* is None/NaN/NA, an empty string or whitespace only. Any other text that is
  not a valid number is *invalid* with a human reason (``-`` or ``onbekend`` included).
- A number without a country code gets ``default_region``. Digits without ``+`` or
  ``00`` that are not valid there (``32470123456`` with default NL) are tried once more
  as an international number (``+32470123456``) and kept if that is valid; a leading
  ``00`` is likewise tried as ``+`` when the region's own rules do not read it as an
  international prefix (as in the US, where that is 011).
- ``31612345678.0`` (six or more digits without a leading 0 or ``+``, then ``.0`` or
  ``,0``: a number that went through a float) loses its ``.0``;
  scientific notation (``3.16123E+10``) has lost digits for good and is invalid.
- Text in parentheses without digits (``(mobiel)``, ``(werk)``) is a comment and is
  dropped; ``(0)`` and ``(06)`` are part of the number.
- Two numbers in one cell (``0612345678, 0687654321``; ``;``, ``|``, ``&``, ``of``,
  ``or``, ``en``, ``and``, ``und``, ``ou``) are invalid: picking one would be a guess.

Output: ``e164``, ``country`` and ``number_type`` are ``""`` (never NA) when the number is
invalid or missing, so they store as plain VARCHAR; ``country`` is ``"001"`` for the
non-geographic codes (+800, +882, ...). ``reason`` is ``""`` for ``valid_mobile``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core import phones_vector

log = logging.getLogger(__name__)

STATUSES = ("valid_mobile", "not_mobile", "invalid", "missing")
NUMBER_TYPES = (
    "mobile",
    "fixed_line",
    "fixed_line_or_mobile",
    "voip",
    "toll_free",
    "premium_rate",
    "pager",
    "uan",
    "voicemail",
    "personal_number",
    "shared_cost",
    "unknown",
)
# Types an SMS can reach. FIXED_LINE_OR_MOBILE is what libphonenumber says where the two
# share one numbering range (US, CA, ...): most such numbers do take SMS.
SMS_CAPABLE_TYPES = ("mobile", "fixed_line_or_mobile")
COLUMNS = ("e164", "country", "number_type", "status", "reason")

BACKEND_ENV = "SMS_STUDIO_PHONES_BACKEND"
WORKERS_ENV = "SMS_STUDIO_PHONES_WORKERS"
VECTORISED_ENV = "SMS_STUDIO_PHONES_VECTORISED"
BACKENDS = ("rphonenumbers", "phonenumbers")

# From this many distinct values on, the shapes phones_vector replays go through it.
VECTORISED_MIN_DISTINCT = 2_000

# Below this many distinct values a worker process costs more than it saves.
PARALLEL_MIN_DISTINCT = 50_000
# Distinct values per unit of work handed to a worker (about 50 ms of parsing).
CHUNK_SIZE = 16_384

REASON_MISSING = "no number"
REASON_SCIENTIFIC = "number mangled by a spreadsheet (scientific notation)"
REASON_MULTIPLE = "more than one number"
REASON_NOT_A_NUMBER = "not a number"

_NOT_MOBILE_REASONS = {
    "fixed_line": "fixed line, cannot receive SMS",
    "voip": "VoIP number, cannot receive SMS",
    "toll_free": "toll-free number, cannot receive SMS",
    "premium_rate": "premium-rate number, cannot receive SMS",
    "pager": "pager number, cannot receive SMS",
    "uan": "company number (UAN), cannot receive SMS",
    "voicemail": "voicemail access number, cannot receive SMS",
    "personal_number": "personal (forwarding) number, cannot receive SMS",
    "shared_cost": "shared-cost number, cannot receive SMS",
    "unknown": "number of unknown type, cannot receive SMS",
}

# --- cleaning -------------------------------------------------------------------------------
# Every pattern runs on two engines: Arrow's RE2 for columns and Python's `re` for one value
# (normalize_one). They are written in the subset both read the same way: explicit [0-9]
# (Python's \d also matches other scripts' digits), literal characters instead of \x{..},
# and anchored patterns used with fullmatch on the Python side (Python's $ also matches
# before a final newline, RE2's does not).
_WS = " \t\n\r\f\v\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
_PUNCT = "\\-.()/\\[\\]_~\u00ad\u2010-\u2015\u2212\u30fc\uff0d\uff0e\uff0f\uff08\uff09"
_SEPARATORS = f"[{_WS}{_PUNCT}]+"
_WS_ONLY = f"^[{_WS}]*$"
_SCIENTIFIC = f"^[{_WS}]*[+-]?[0-9]+(?:[.,][0-9]+)?[eE][+-]?[0-9]+[{_WS}]*$"
# A float never has a leading 0 or a "+", and pandas and Excel write exactly one decimal.
_FLOAT_TAIL = f"^[{_WS}]*([1-9][0-9]{{5,}})[.,]0[{_WS}]*$"
_COMMENT = "\\([^()0-9]*\\)"
_MULTIPLE = "^\\+?[0-9]{6,}(?:[,;|&]|(?i:of|or|en|and|und|ou))\\+?[0-9]{6,}$"

_SEPARATORS_RE = re.compile(_SEPARATORS)
_WS_ONLY_RE = re.compile(_WS_ONLY)
_SCIENTIFIC_RE = re.compile(_SCIENTIFIC)
_FLOAT_TAIL_RE = re.compile(_FLOAT_TAIL)
_COMMENT_RE = re.compile(_COMMENT)
_MULTIPLE_RE = re.compile(_MULTIPLE)
_PLAIN_DIGITS_RE = re.compile("\\+?[0-9]+")

# Cleaned values never contain whitespace, so these cannot collide with real input.
_MISSING = " missing"
_SCIENTIFIC_MARK = " scientific"
_MULTIPLE_MARK = " multiple"


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """One number's verdict: the same five fields as a row of `normalize`'s result."""

    e164: str
    country: str
    number_type: str
    status: str
    reason: str

    @property
    def sms_capable(self) -> bool:
        return self.status == "valid_mobile"


def _clean_one(raw: object) -> str:
    """The scalar twin of `_clean_column`: one raw value to a cleaned string or a marker."""
    if raw is None:
        return _MISSING
    if not isinstance(raw, str):
        if pd.api.types.is_scalar(raw) and pd.isna(raw):
            return _MISSING
        raw = str(raw)
    if not raw.isascii():
        raw = _valid_utf8(raw)
    if _SCIENTIFIC_RE.fullmatch(raw):
        return _SCIENTIFIC_MARK
    text = _FLOAT_TAIL_RE.sub(r"\1", raw)
    text = _COMMENT_RE.sub("", text)
    cleaned = _SEPARATORS_RE.sub("", text)
    if not cleaned and _WS_ONLY_RE.fullmatch(raw):
        return _MISSING
    if _MULTIPLE_RE.fullmatch(cleaned):
        return _MULTIPLE_MARK
    return cleaned


def _valid_utf8(text: str) -> str:
    """`text` with lone surrogates (undecodable bytes let through) replaced by "?"."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _to_arrow_strings(numbers: pd.Series) -> pa.Array:
    """The column as an Arrow string array, None/NaN as nulls, other scalars via str()."""
    if not isinstance(numbers.dtype, pd.StringDtype):
        try:
            numbers = numbers.astype("str")
        except UnicodeEncodeError:  # Arrow holds only valid UTF-8
            numbers = numbers.map(
                lambda v: _valid_utf8(v) if isinstance(v, str) else v, na_action="ignore"
            ).astype("str")
    arr = pa.array(numbers.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _rewrite_matching(arr: pa.Array, pattern: str, replacement: str) -> pa.Array:
    """Regex-replace only in the rows that match: a match pass costs a third of a rewrite."""
    mask = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
    if not _any(mask):
        return arr
    fixed = pc.replace_substring_regex(arr.filter(mask), pattern, replacement)
    return pc.replace_with_mask(arr, mask, fixed)


_ASCII_SEPARATOR_BYTES = np.zeros(256, dtype=bool)
_ASCII_SEPARATOR_BYTES[list(b" \t\n\r\f\v-.()/[]_~")] = True


def _remove_separators(text: pa.Array) -> pa.Array:
    """``replace_substring_regex(text, _SEPARATORS, "")``, a byte mask where it can be.

    On ASCII text the separators are single bytes, so one numpy pass over the string data
    removes them (about 5 times faster than the regex on a million numbers); rows with
    other characters (NBSP, full-width dashes) then get the regex as well.
    """
    arr = text.cast(pa.large_string()) if text.type != pa.large_string() else text
    if len(arr) == 0 or arr.offset != 0:
        return pc.replace_substring_regex(arr, _SEPARATORS, "")
    validity, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[: len(arr) + 1]
    if data_buf is None or offsets[-1] == 0:
        return arr
    data = np.frombuffer(data_buf, dtype=np.uint8)[: offsets[-1]]
    separator = _ASCII_SEPARATOR_BYTES[data]
    removed = np.flatnonzero(separator)
    new_offsets = offsets - np.searchsorted(removed, offsets)
    out = pa.LargeStringArray.from_buffers(
        len(arr),
        pa.py_buffer(new_offsets),
        pa.py_buffer(data[~separator]),
        validity,
        arr.null_count,
    )
    high = np.flatnonzero(data >= 0x80)
    if len(high):
        rows = np.unique(np.searchsorted(offsets, high, side="right") - 1)
        mask = np.zeros(len(arr), dtype=bool)
        mask[rows] = True
        fixed = pc.replace_substring_regex(out.take(rows), _SEPARATORS, "")
        out = pc.replace_with_mask(out, pa.array(mask), fixed)
    return out


def _clean_column(arr: pa.Array) -> pa.Array:
    """Vectorised cleaning of a whole column: Arrow compute only, no Python per row."""
    scientific = pc.fill_null(pc.match_substring_regex(arr, _SCIENTIFIC), False)
    text = _rewrite_matching(arr, _FLOAT_TAIL, "\\1")
    text = _rewrite_matching(text, _COMMENT, "")
    cleaned = _remove_separators(text)
    empty = pc.equal(pc.utf8_length(cleaned), 0)
    missing = pc.is_null(arr)
    if _any(empty):  # only whitespace is missing; "--" or "(geen)" is text, so invalid
        missing = pc.or_(
            missing, pc.fill_null(pc.and_(empty, pc.match_substring_regex(arr, _WS_ONLY)), False)
        )
    multiple = pc.fill_null(pc.match_substring_regex(cleaned, _MULTIPLE), False)
    out = pc.if_else(multiple, pa.scalar(_MULTIPLE_MARK, cleaned.type), cleaned)
    out = pc.if_else(scientific, pa.scalar(_SCIENTIFIC_MARK, cleaned.type), out)
    return pc.if_else(missing, pa.scalar(_MISSING, cleaned.type), out)


# --- backends -------------------------------------------------------------------------------
def backend_name() -> str:
    """The parser in use: "rphonenumbers" when importable, else "phonenumbers".

    ``SMS_STUDIO_PHONES_BACKEND`` set to either name forces it (read on every call).
    """
    wanted = os.environ.get(BACKEND_ENV, "").strip().lower()
    if wanted:
        if wanted not in BACKENDS:
            raise ValueError(
                f"{BACKEND_ENV}={wanted!r} is not a phone-number backend; "
                f"use one of {', '.join(BACKENDS)}."
            )
        return wanted
    return "rphonenumbers" if _module("rphonenumbers") is not None else "phonenumbers"


@cache
def _module(name: str) -> ModuleType | None:
    try:
        if name == "rphonenumbers":
            import rphonenumbers as module
        else:
            import phonenumbers as module
    except ImportError:
        return None
    return module


class _Api:
    """One backend's functions and constants, with its enums mapped to our names.

    The two packages share function names and enum values, but their exception classes
    differ, so everything a classification needs is looked up on the module it came from.
    """

    def __init__(self, name: str) -> None:
        pn = _module(name)
        if pn is None:
            raise RuntimeError(
                f"The phone-number backend {name!r} is not installed "
                f"(forced by {BACKEND_ENV}?); install it or unset the variable."
            )
        self.name = name
        self.parse = pn.parse
        self.number_type = pn.number_type
        self.format_number = pn.format_number
        self.region_code_for_number = pn.region_code_for_number
        self.region_code_for_country_code = pn.region_code_for_country_code
        self.possible_reason = pn.is_possible_number_with_reason
        self.possible_for_type_reason = pn.is_possible_number_for_type_with_reason
        self.parse_error = pn.NumberParseException
        self.e164 = pn.PhoneNumberFormat.E164
        self.unknown_type = pn.PhoneNumberType.UNKNOWN
        self.mobile_type = pn.PhoneNumberType.MOBILE
        self.fixed_type = pn.PhoneNumberType.FIXED_LINE
        self.supported_regions = frozenset(pn.SUPPORTED_REGIONS)
        self.single_region = {
            cc: regions[0]
            for cc, regions in pn.COUNTRY_CODE_TO_REGION_CODE.items()
            if len(regions) == 1
        }
        self.type_names = {getattr(pn.PhoneNumberType, n.upper()): n for n in NUMBER_TYPES}
        err = pn.NumberParseException
        self.parse_reasons = {
            err.INVALID_COUNTRY_CODE: "invalid country code",
            err.NOT_A_NUMBER: REASON_NOT_A_NUMBER,
            err.TOO_SHORT_AFTER_IDD: "too short",
            err.TOO_SHORT_NSN: "too short",
            err.TOO_LONG: "too long",
        }
        vr = pn.ValidationResult
        self.length_words = {
            vr.TOO_SHORT: "too short",
            vr.TOO_LONG: "too long",
            vr.INVALID_LENGTH: "wrong length",
        }
        self.invalid_country = vr.INVALID_COUNTRY_CODE


@cache
def _api(name: str) -> _Api:
    return _Api(name)


# --- classification of distinct values ----------------------------------------------------
Outcome = tuple[str, str, str, str]  # country, number_type, status, reason

_FIXED: dict[str, Outcome] = {
    _MISSING: ("", "", "missing", REASON_MISSING),
    _SCIENTIFIC_MARK: ("", "", "invalid", REASON_SCIENTIFIC),
    _MULTIPLE_MARK: ("", "", "invalid", REASON_MULTIPLE),
}


def _international_retry(value: str) -> str | None:
    """The international reading of bare digits, tried when the national one is invalid."""
    if not (value.isascii() and value.isdigit()):
        return None
    if value.startswith("00"):
        return None if value.startswith("000") else "+" + value[2:]
    if value.startswith("0") or len(value) < 8:
        return None
    return "+" + value


def _invalid_reason(api: _Api, value: str, num: Any, region: str) -> str:
    """Why a parsed number is not valid, in words an analyst can act on."""
    cc = num.country_code
    where = api.region_code_for_country_code(cc)
    if where == "ZZ":
        return "invalid country code"
    if where == "001":
        where = f"+{cc}"
    length = api.possible_reason(num)
    if length == api.invalid_country:
        return "invalid country code"
    word = api.length_words.get(length)
    if word is None:
        # Some number of the region has this length (short codes, service numbers). Blame
        # the length only if it fits neither a mobile nor a fixed-line number there.
        mobile = api.length_words.get(api.possible_for_type_reason(num, api.mobile_type))
        fixed = api.length_words.get(api.possible_for_type_reason(num, api.fixed_type))
        if mobile is not None and fixed is not None:
            word = mobile if mobile == fixed else "wrong length"
    if word is not None:
        return f"{word} for {where}"
    return f"not a valid number for {where}"


def _parse_error_reason(api: _Api, value: str, error_type: int) -> str:
    reason = api.parse_reasons.get(error_type, REASON_NOT_A_NUMBER)
    if reason == REASON_NOT_A_NUMBER:
        digits = value[1:] if value.startswith("+") else value
        if digits.isascii() and digits.isdigit() and len(digits) < 3:
            return "too short"
    return reason


def _classify_chunk(
    values: Sequence[str], region: str, backend: str
) -> tuple[list[str], np.ndarray, list[Outcome]]:
    """Classify cleaned values: their E.164 strings, outcome ids and the outcome table.

    Outcomes (country, type, status, reason) repeat a lot, so they are numbered and sent
    back once; this is also the unit of work a worker process runs. The loop is the hot
    path of an import: valid numbers take the short branch, everything else `_slow_path`.
    """
    api = _api(backend)
    parse, number_type, fmt = api.parse, api.number_type, api.format_number
    region_of, parse_error = api.region_code_for_number, api.parse_error
    e164_format, unknown, single_region = api.e164, api.unknown_type, api.single_region
    outcome_ids: dict[Outcome, int] = {}
    valid_ids: dict[tuple[str | None, int], int] = {}
    e164s: list[str] = []
    ids: list[int] = []
    add_e164, add_id = e164s.append, ids.append
    for value in values:
        try:
            num = parse(value, region)
        except parse_error:
            pass
        else:
            ntype = number_type(num)
            if ntype != unknown:
                add_e164(fmt(num, e164_format))
                # region_code_for_number is a lookup when the code has one region (+31).
                key = (single_region.get(num.country_code) or region_of(num), ntype)
                oid = valid_ids.get(key)
                if oid is None:
                    outcome = _valid_outcome(api, *key)
                    oid = valid_ids[key] = outcome_ids.setdefault(outcome, len(outcome_ids))
                add_id(oid)
                continue
        e164, outcome = _slow_path(api, value, region)
        add_e164(e164)
        add_id(outcome_ids.setdefault(outcome, len(outcome_ids)))
    return e164s, np.array(ids, dtype=np.int32), list(outcome_ids)


def _slow_path(api: _Api, value: str, region: str) -> tuple[str, Outcome]:
    """Markers, numbers valid only when read as international, and invalid numbers."""
    fixed = _FIXED.get(value)
    if fixed is not None:
        return "", fixed
    num, kind = None, -1
    try:
        num = api.parse(value, region)
    except api.parse_error as exc:
        kind = exc.error_type
    retry = _international_retry(value)
    if retry is not None:
        with contextlib.suppress(api.parse_error):
            alt = api.parse(retry, region)
            ntype = api.number_type(alt)
            if ntype != api.unknown_type:
                return (
                    api.format_number(alt, api.e164),
                    _valid_outcome(api, api.region_code_for_number(alt), ntype),
                )
    if api.name != "phonenumbers" and not _PLAIN_DIGITS_RE.fullmatch(value):
        # Junk: rphonenumbers 0.1.0 sometimes rejects it for another reason than the
        # reference ("00,0": too short vs not a number); the reference's reason is kept.
        ref = _api("phonenumbers")
        num, kind = None, -1
        try:
            num = ref.parse(value, region)
        except ref.parse_error as exc:
            kind = exc.error_type
        api = ref
    if num is not None:
        return "", ("", "", "invalid", _invalid_reason(api, value, num, region))
    return "", ("", "", "invalid", _parse_error_reason(api, value, kind))


def _valid_outcome(api: _Api, country: str | None, ntype: int) -> Outcome:
    type_name = api.type_names[ntype]
    if type_name in SMS_CAPABLE_TYPES:
        return (country or "", type_name, "valid_mobile", "")
    return (country or "", type_name, "not_mobile", _NOT_MOBILE_REASONS[type_name])


# --- the worker pool ------------------------------------------------------------------------
_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
# One parallel run at a time; a second concurrent large import runs in its own thread.
_parallel_lock = threading.Lock()
# Shared with the workers: the number of the current parallel run. Chunks of an earlier
# run still queued when it ended (this process redid them) are skipped, not parsed.
_generation: Any = None
_worker_generation: Any = None


def _init_worker(generation: Any) -> None:
    global _worker_generation
    _worker_generation = generation


def _worker_chunk(
    values: Sequence[str], region: str, backend: str, generation: int
) -> tuple[list[str], np.ndarray, list[Outcome]] | None:
    if _worker_generation is not None and _worker_generation.value != generation:
        return None
    return _classify_chunk(values, region, backend)


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_workers() -> int:
    """Worker processes for large inputs: one per core beyond this process's own (max 3).

    ``SMS_STUDIO_PHONES_WORKERS`` overrides it; 0 keeps everything in this process.
    """
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={env!r} is not a whole number.") from None
    return max(0, min(_cores() - 1, 3))


def _idle_workers(wanted: int) -> int:
    """`wanted` capped by the cores other processes leave idle (1-minute load average).

    A worker only helps on a free core: measured on a 2-core machine that other jobs kept
    busy, a worker made a 1M-row import slower (its extra pickling and the chunks this
    process redoes at the end cost CPU that nobody had spare).
    """
    if not hasattr(os, "getloadavg"):
        return wanted
    spare = _cores() - os.getloadavg()[0] - 1  # this process takes one core itself
    return max(0, min(wanted, round(spare)))


def _get_pool(workers: int) -> ProcessPoolExecutor:
    global _pool, _pool_size, _generation
    with _pool_lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=True)
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            _generation = ctx.RawValue("q", 0)
            _pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(_generation,),
            )
            _pool_size = workers
        return _pool


def _drop_pool(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


def _ping() -> int:
    return os.getpid()


def warm_up(workers: int | None = None) -> int:
    """Start the worker processes now and wait until they answer; returns how many.

    Optional: call it when the app starts so the first large import does not also pay
    for starting a process (about a second, mostly imports).
    """
    n = default_workers() if workers is None else max(0, workers)
    if n:
        pool = _get_pool(n)
        for fut in [pool.submit(_ping) for _ in range(n)]:
            fut.result(timeout=60)
    return n


def last_run() -> dict[str, Any]:
    """Diagnostics of the latest `normalize` call in this process (for benchmarks/tests)."""
    return dict(_last_run)


_last_run: dict[str, Any] = {}


def shutdown_workers() -> None:
    """Stop the worker processes (they are also stopped at interpreter exit)."""
    with _pool_lock:
        pool = _pool
    if pool is not None:
        _drop_pool(pool)


def _classify_parallel(
    values: list[str], region: str, backend: str, workers: int
) -> list[tuple[list[str], np.ndarray, list[Outcome]]]:
    """Classify chunk by chunk: workers from the front, this process from the back.

    Each worker keeps two chunks queued so it never idles. When no unclaimed chunk is left
    this process redoes the chunks still queued or running elsewhere rather than wait (a
    worker's first start, imports included, takes about a second); whichever answer comes
    first is kept. A broken pool is dropped and its chunks are done here.
    """
    chunks = [values[i : i + CHUNK_SIZE] for i in range(0, len(values), CHUNK_SIZE)]
    results: list[Any] = [None] * len(chunks)
    pool = _get_pool(workers)
    generation = _generation
    generation.value += 1
    run = generation.value
    inflight: dict[int, Future] = {}
    front, back = 0, len(chunks) - 1
    broken = False
    local = 0
    _last_run["chunks"] = len(chunks)

    def collect() -> None:
        nonlocal broken
        for idx, fut in list(inflight.items()):
            if not fut.done():
                continue
            del inflight[idx]
            try:
                if results[idx] is None:
                    results[idx] = fut.result()
            except Exception as exc:  # a dead worker: do its chunks here
                if not broken:
                    log.warning("phone-number worker failed (%s); continuing in-process", exc)
                broken = True

    try:
        while front <= back:
            collect()
            while not broken and front <= back and len(inflight) < 2 * workers:
                try:
                    inflight[front] = pool.submit(
                        _worker_chunk, chunks[front], region, backend, run
                    )
                except Exception as exc:  # pool already broken or shut down
                    log.warning(
                        "phone-number worker pool unusable (%s); continuing in-process", exc
                    )
                    broken = True
                    break
                front += 1
            if front > back:
                break
            results[back] = _classify_chunk(chunks[back], region, backend)
            local += 1
            back -= 1
        # Chunks still with the workers, newest first (the least likely to finish soon).
        for idx in sorted(inflight, reverse=True):
            collect()
            if results[idx] is None:
                results[idx] = _classify_chunk(chunks[idx], region, backend)
                local += 1
    finally:
        generation.value += 1  # whatever is still queued for the workers is now stale
    if broken:
        _drop_pool(pool)
    _last_run["worker_chunks"] = len(chunks) - local
    return results


# --- public API ------------------------------------------------------------------------------
def _check_region(api: _Api, default_region: str) -> str:
    region = str(default_region or "").strip().upper()
    if region not in api.supported_regions:
        raise ValueError(
            f"default_region {default_region!r} is not a region phonenumbers knows; "
            "use an ISO 3166 code such as NL, BE, DE, GB or US."
        )
    return region


def normalize(
    numbers: pd.Series | Iterable[Any], default_region: str, *, workers: int | None = None
) -> pd.DataFrame:
    """Normalise a column of raw phone numbers.

    Returns a DataFrame with the input's index and string columns ``e164``, ``country``,
    ``number_type``, ``status`` (one of `STATUSES`) and ``reason``. Numbers without a
    country code are read as numbers of ``default_region`` (an ISO code such as "NL").
    Inputs with at least `PARALLEL_MIN_DISTINCT` distinct values that need the per-value
    parser use worker processes: ``workers`` of them if given (0: none), else
    ``SMS_STUDIO_PHONES_WORKERS``, else `default_workers()` as far as idle cores allow.
    """
    if not isinstance(numbers, pd.Series):
        numbers = pd.Series(list(numbers), dtype=object)
    table = normalize_arrow(_to_arrow_strings(numbers), default_region, workers=workers)
    return pd.DataFrame(
        {
            name: pd.Series(table[name], index=numbers.index, dtype="str", copy=False)
            for name in COLUMNS
        },
        index=numbers.index,
    )


def normalize_arrow(
    numbers: pa.Array | pa.ChunkedArray, default_region: str, *, workers: int | None = None
) -> pa.Table:
    """`normalize` for an Arrow string column: a table of the five columns, same length.

    The importer's path: the file is read into Arrow and written to DuckDB from Arrow, so
    the million-row case never converts through pandas objects.
    """
    if isinstance(numbers, pa.ChunkedArray):
        numbers = numbers.combine_chunks()
    if not (pa.types.is_string(numbers.type) or pa.types.is_large_string(numbers.type)):
        # Numbers stored as numbers (Parquet, Excel): pandas' str() is what the cleaning
        # rules expect (31612345678.0 loses its ".0" there).
        numbers = _to_arrow_strings(numbers.to_pandas())
    backend = backend_name()
    region = _check_region(_api(backend), default_region)
    cleaned = _clean_column(numbers)
    encoded = pc.dictionary_encode(cleaned)
    if workers is not None:
        n_workers = max(0, workers)
    elif os.environ.get(WORKERS_ENV, "").strip():
        n_workers = default_workers()
    else:
        n_workers = _idle_workers(default_workers())
    _last_run.clear()
    _last_run.update(
        backend=backend,
        rows=len(numbers),
        distinct=len(encoded.dictionary),
        vectorised=0,
        workers=0,
        chunks=1,
        worker_chunks=0,
    )
    e164_distinct, per_distinct, outcomes = _classify_distinct(
        encoded.dictionary, region, backend, n_workers
    )
    row_outcome = pa.array(per_distinct).take(encoded.indices)
    columns = {"e164": e164_distinct.take(encoded.indices)}
    for pos, name in enumerate(COLUMNS[1:]):
        columns[name] = pa.array([o[pos] for o in outcomes], pa.large_string()).take(row_outcome)
    return pa.table(columns)


def vectorised_enabled() -> bool:
    """Whether `normalize` may use `core.phones_vector` (``SMS_STUDIO_PHONES_VECTORISED=0``: no)."""
    return os.environ.get(VECTORISED_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def _classify_distinct(
    distinct: pa.Array, region: str, backend: str, n_workers: int
) -> tuple[pa.Array, np.ndarray, list[Outcome]]:
    """Classify each distinct cleaned value: (E.164 per value, outcome id per value, outcomes).

    The shapes `phones_vector` replays exactly go through it a column at a time; the rest
    (junk, letters, rare regions) through the parser one value at a time, in worker
    processes when there are many.
    """
    table: dict[Outcome, int] = {}
    pieces: list[tuple[np.ndarray, pa.Array, np.ndarray]] = []
    loop_rows = np.arange(len(distinct))
    if vectorised_enabled() and len(distinct) >= VECTORISED_MIN_DISTINCT:
        claims = phones_vector.classify(distinct, region)
        _last_run["vectorised"] = len(claims.rows)
        ids = _claim_outcomes(claims, distinct, region, backend, table)
        pieces.append((claims.rows, claims.e164, ids))
        loop_rows = np.setdiff1d(loop_rows, claims.rows, assume_unique=True)
    values: list[str] = distinct.take(loop_rows).to_pylist()
    parts = None
    if (
        n_workers
        and len(values) >= PARALLEL_MIN_DISTINCT
        and _parallel_lock.acquire(blocking=False)
    ):
        try:
            _last_run["workers"] = n_workers
            parts = _classify_parallel(values, region, backend, n_workers)
        finally:
            _parallel_lock.release()
    if parts is None:
        parts = [_classify_chunk(values, region, backend)]
    e164s: list[str] = []
    id_parts: list[np.ndarray] = []
    for chunk_e164, chunk_ids, chunk_table in parts:
        remap = np.array(
            [table.setdefault(o, len(table)) for o in chunk_table] or [0], dtype=np.int32
        )
        e164s.extend(chunk_e164)
        id_parts.append(remap[chunk_ids])
    loop_ids = np.concatenate(id_parts) if id_parts else np.empty(0, np.int32)
    pieces.append((loop_rows, pa.array(e164s, pa.large_string()), loop_ids))
    rows = np.concatenate([p[0] for p in pieces])
    order = np.empty(len(rows), dtype=np.int64)
    order[rows] = np.arange(len(rows))
    e164 = pa.concat_arrays([p[1].cast(pa.large_string()) for p in pieces]).take(order)
    ids = np.concatenate([p[2] for p in pieces]).astype(np.int32)[order]
    return e164, ids, list(table)


def _claim_outcomes(
    claims: phones_vector.Claims,
    distinct: pa.Array,
    region: str,
    backend: str,
    table: dict[Outcome, int],
) -> np.ndarray:
    """Outcome ids for vectorised claims: one outcome per (region, type) or invalid length.

    An invalid number's reason depends only on its country code and the length of its
    national number, so it is worked out once per such pair, on one of its values.
    """
    api = _api(backend)
    valid = claims.type_code != phones_vector.UNKNOWN
    region_ids = pc.dictionary_encode(claims.country)
    keys = np.where(
        valid,
        region_ids.indices.to_numpy(zero_copy_only=False).astype(np.int64) * 1000
        + claims.type_code,
        -(claims.cc.astype(np.int64) * 100 + claims.nsn_length) - 1,
    )
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    countries = region_ids.dictionary.to_pylist()
    remap = np.empty(len(unique), dtype=np.int32)
    for pos, (key, row) in enumerate(zip(unique.tolist(), first.tolist(), strict=True)):
        if key >= 0:
            outcome = _valid_outcome(api, countries[key // 1000], key % 1000)
        else:
            _, outcome = _slow_path(api, distinct[int(claims.rows[row])].as_py(), region)
        remap[pos] = table.setdefault(outcome, len(table))
    return remap[inverse.reshape(-1)]


def normalize_one(raw: str, default_region: str) -> NormalizedNumber:
    """One number, with exactly the answer `normalize` gives for it (STOP replies, search)."""
    backend = backend_name()
    region = _check_region(_api(backend), default_region)
    e164s, ids, table = _classify_chunk([_clean_one(raw)], region, backend)
    country, number_type, status, reason = table[ids[0]]
    return NormalizedNumber(e164s[0], country, number_type, status, reason)


def is_sms_capable(number_type: str) -> bool:
    """Whether a `number_type` value can receive SMS."""
    return number_type in SMS_CAPABLE_TYPES


def status_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many rows of a `normalize` result have each status, all four always present."""
    counts = frame["status"].value_counts()
    return {s: int(counts.get(s, 0)) for s in STATUSES}
