"""Selections: stored rules over one contacts table, compiled to SQL and mirrored in pandas.

A selection spec is JSON: a condition ``{"field": F, "op": OP, "value": V}`` or a group
``{"all": [...]}`` / ``{"any": [...]}``, nesting freely. This module is pure: it validates a
spec against a table's columns, compiles it to a parametrised DuckDB WHERE expression, and
evaluates the same spec on a pandas DataFrame (the oracle the tests and the audience
reconciliation compare against). Both sides follow one set of rules, written down here:

* Every condition is two-valued: it is TRUE or FALSE, never NULL, so ``NOT (expr)`` is the
  exact complement of a selection.
* A NULL value fails every condition except ``empty`` (NULL, or text made only of
  whitespace), ``ne`` and ``not_in``: "city is not Amsterdam" includes contacts without a
  city. NaN in a floating column counts as NULL (DuckDB orders NaN above every number,
  pandas treats it as missing; we side with the analyst).
* ``eq``/``ne``/``in``/``not_in`` compare exactly in the column's own type; on text columns
  the value is compared as text (``30`` matches ``"30"``, not ``"30.0"``).
* Ordering (``gt`` … ``between``) works on numbers and dates. On a text column a number
  value reads the text as a decimal number (``[+-]digits[.digits][e±digits]`` with spaces
  around allowed; anything else is NULL) and a date value reads a leading ISO date
  (``YYYY-M-D``, optionally followed by a space or ``T`` and a time). TIMESTAMP columns
  compare by calendar day.
* ``contains``/``starts_with``/``ends_with`` ignore case using Unicode *simple* lowercase
  mapping (utf8proc: DuckDB's ``lower`` and pyarrow's ``utf8_lower``), so 'İ' → 'i' and a
  final 'Σ' → 'σ' on both sides (ß stays ß: no full case folding). Characters newer than
  Python 3.11's Unicode database (14.0) may lowercase differently.
* ``birthday_today``: month and day equal today's; a 29 February birthday is celebrated on
  28 February in years without one. ``within_last_days`` N: the date lies in
  [today − N days, today]; future dates do not match.
* ``regex`` searches (not full match): RE2 in DuckDB, Python ``re.search`` with ``re.ASCII``
  in pandas. Patterns must compile in both engines. Remaining differences, kept out of the
  common subset: ``(?i)`` folds only ASCII letters in Python, ``\\s`` also matches vertical
  tab in Python, and Python's ``$`` also matches before a final newline.
* ``_sms`` conditions look up the ``sms_history`` view by the contact's ``_e164``; contacts
  without a number (NULL or empty) never match. ``received`` N: the contact was a recipient
  of mailing N (any status but ``skipped``); ``delivered``: status delivered; ``failed``:
  failed, undelivered or expired; ``replied_stop``: replied_stop is true. A null mailing id
  means any mailing.

Operators live in `OPERATORS`, one small object each (after datasette's filters.py): SQL
template with bound parameters, pandas evaluation, human label, value kind and the column
kinds it applies to, so the page's condition builder, the compiler and `describe` share one
definition.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "OPERATORS",
    "SMS_FIELD",
    "SMS_HISTORY_VIEW",
    "Operator",
    "SelectionError",
    "column_kind",
    "compile_chain",
    "compile_spec",
    "describe",
    "filter_frame",
    "frame_columns",
    "operators_for",
    "quote_identifier",
    "validate_spec",
]

Kind = Literal["text", "number", "date", "timestamp", "bool", "other", "sms"]
ValueKind = Literal["none", "single", "list", "pair", "int"]
Domain = Literal["text", "number", "date", "bool", "raw"]

SMS_FIELD = "_sms"
SMS_HISTORY_VIEW = "sms_history"
E164_COLUMN = "_e164"
MAX_DEPTH = 32

# Whitespace for `empty`: ASCII whitespace plus the no-break space spreadsheets love.
WHITESPACE = " \t\n\r\f\v\u00a0"
# Text read as a number / a date. Written with explicit ASCII classes so RE2 (DuckDB,
# pyarrow) and Python's re accept exactly the same strings.
NUMBER_TEXT_RE = r"^[ \t\r\n]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[ \t\r\n]*$"
_DATE_HEAD, _DATE_TAIL = r"^[ \t\r\n]*", r"(?:$|[ \t\r\nT])"
DATE_TEXT_RE = _DATE_HEAD + r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})" + _DATE_TAIL
_DATE_TEXT_SQL_RE = _DATE_HEAD + r"([0-9]{4}-[0-9]{1,2}-[0-9]{1,2})" + _DATE_TAIL
_ISO_DATE_VALUE = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_NUMBER_VALUE = re.compile(r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?")
_INT_VALUE = re.compile(r"[+-]?[0-9]+")
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = date(1970, 1, 1)

FAILED_STATUSES = ("failed", "undelivered", "expired")


class SelectionError(ValueError):
    """A spec that cannot be used; the message names the place (``all[2].value``) and why."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path or "spec"
        self.reason = message
        super().__init__(f"{self.path}: {message}")


# ---------------------------------------------------------------------------------------
# Column kinds
# ---------------------------------------------------------------------------------------

_TEXT_TYPES = {"VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "NVARCHAR"}
_INT_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "INT",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "INT1",
    "INT2",
    "INT4",
    "INT8",
    "LONG",
    "SHORT",
    "SIGNED",
    "VARINT",
}
_FLOAT_TYPES = {"FLOAT", "REAL", "DOUBLE", "FLOAT4", "FLOAT8"}
_DECIMAL_TYPES = {"DECIMAL", "NUMERIC"}
_TIMESTAMP_TYPES = {
    "TIMESTAMP",
    "DATETIME",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMP_US",
    "TIMESTAMPTZ",
}
_BOOL_TYPES = {"BOOLEAN", "BOOL", "LOGICAL"}


def column_kind(duckdb_type: str) -> Kind:
    """The family a DuckDB type belongs to; operators are offered per family.

    ``"_sms"`` (the pseudo-field) maps to ``"sms"``; unknown and nested types to ``"other"``
    (only ``empty``/``not_empty`` apply).
    """
    if duckdb_type == SMS_FIELD:
        return "sms"
    t = duckdb_type.strip().upper()
    if t.endswith("]"):
        return "other"
    base = re.split(r"[\s(]", t, maxsplit=1)[0]
    if base in _TEXT_TYPES:
        return "text"
    if base in _INT_TYPES | _FLOAT_TYPES | _DECIMAL_TYPES:
        return "number"
    if base == "DATE":
        return "date"
    if base in _TIMESTAMP_TYPES:
        return "timestamp"
    if base in _BOOL_TYPES:
        return "bool"
    return "other"


def _is_floating(duckdb_type: str) -> bool:
    """Floating columns can hold NaN, which both sides read as NULL."""
    base = re.split(r"[\s(]", duckdb_type.strip().upper(), maxsplit=1)[0]
    return base in _FLOAT_TYPES


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes, embedded quotes doubled: safe for any name."""
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------
# Value normalisation (validation side)
# ---------------------------------------------------------------------------------------


# Users pick operators by their label ("is empty"), specs name them by key ('empty'):
# messages say both, label first, so either reader finds the word they know.
_EMPTY_HINT = "to find missing values use “is empty” (empty)"


def _op_name(op: Operator) -> str:
    """An operator as messages name it: its label, then its spec key (“is” (eq)); the label
    alone when the two are the same word (“contains”)."""
    return f"“{op.label}”" if op.label == op.key else f"“{op.label}” ({op.key})"


def _op_names(ops: Iterable[Operator]) -> str:
    return ", ".join(_op_name(o) for o in ops)


def _describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_value(value: Any, path: str, what: str) -> int | float:
    if isinstance(value, bool):
        raise SelectionError(path, f"{what} needs a number, got {_describe_value(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SelectionError(path, f"{what} needs a finite number, got {value!r}")
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT_VALUE.fullmatch(text):
            return int(text)
        if _NUMBER_VALUE.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
    raise SelectionError(path, f"{what} needs a number, got {_describe_value(value)}")


def _parse_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        match = _ISO_DATE_VALUE.fullmatch(value.strip())
        if match:
            try:
                return date(*(int(part) for part in match.groups()))
            except ValueError:
                return None
    return None


def _date_value(value: Any, path: str, what: str) -> str:
    parsed = _parse_date(value)
    if parsed is None:
        raise SelectionError(
            path, f"{what} needs a date written YYYY-MM-DD, got {_describe_value(value)}"
        )
    return parsed.isoformat()


def _looks_like_date(value: Any) -> bool:
    return (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _ISO_DATE_VALUE.fullmatch(value.strip()) is not None
    )


def _text_value(value: Any, path: str, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    raise SelectionError(path, f"{what} needs a text value, got {_describe_value(value)}")


_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def _bool_value(value: Any, path: str, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SelectionError(path, f"{what} needs true or false, got {_describe_value(value)}")


def _scalar_for(kind: Kind | None, value: Any, path: str, what: str) -> Any:
    """Normalise one comparison value for a column kind (None: structure only)."""
    if value is None:
        raise SelectionError(path, f"{what} needs a value; {_EMPTY_HINT}")
    if isinstance(value, list | dict | tuple):
        raise SelectionError(path, f"{what} needs a single value, got {_describe_value(value)}")
    if kind == "text":
        return _text_value(value, path, what)
    if kind == "number":
        return _number_value(value, path, what)
    if kind in ("date", "timestamp"):
        return _date_value(value, path, what)
    if kind == "bool":
        return _bool_value(value, path, what)
    if kind is None:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, str | int | float | bool):
            return value
        raise SelectionError(path, f"{what} needs a text, number or date value")
    raise SelectionError(path, f"{what} does not apply to this column")  # pragma: no cover


def _ordered_for(kind: Kind | None, value: Any, path: str, what: str) -> int | float | str:
    """A value for gt/ge/lt/le/between: a number or a date (ISO string in the spec)."""
    if value is None:
        raise SelectionError(path, f"{what} needs a value; {_EMPTY_HINT}")
    if kind == "number":
        return _number_value(value, path, what)
    if kind in ("date", "timestamp"):
        return _date_value(value, path, what)
    if _looks_like_date(value):
        return _date_value(value, path, what)
    try:
        return _number_value(value, path, what)
    except SelectionError:
        raise SelectionError(
            path,
            f"{what} needs a number or a date written YYYY-MM-DD, got {_describe_value(value)}",
        ) from None


def _value_domain(kind: Kind, value: Any) -> Domain:
    """Which domain a normalised condition compares in."""
    if kind == "number":
        return "number"
    if kind in ("date", "timestamp"):
        return "date"
    if kind == "bool":
        return "bool"
    if kind == "other":
        return "raw"
    # text column, ordering operators: the value says whether the text is read as a number
    if isinstance(value, int | float):
        return "number"
    return "date"


# ---------------------------------------------------------------------------------------
# Resolved conditions: what both engines need
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One validated condition, ready for an engine.

    ``value`` is the normalised spec value; ``domain`` says how the column is read for the
    comparison (text, number, date, bool, or raw for emptiness on other types).
    """

    op: Operator
    field: str
    kind: Kind
    floating: bool
    domain: Domain
    value: Any


@dataclass(frozen=True)
class SqlContext:
    today: date


@dataclass(frozen=True)
class FrameContext:
    today: date
    frame: pd.DataFrame
    history: pd.DataFrame | None


# -- SQL helpers --------------------------------------------------------------------------

_SQL_TYPES: dict[Domain, str] = {
    "text": "VARCHAR",
    "date": "DATE",
    "bool": "BOOLEAN",
    "number": "DOUBLE",
    "raw": "VARCHAR",
}


def _sql_column(term: Term) -> str:
    """The column read in the term's domain, as SQL."""
    q = quote_identifier(term.field)
    if term.kind == "text" and term.domain == "number":
        return (
            f"CASE WHEN regexp_full_match({q}, '{NUMBER_TEXT_RE}') THEN TRY_CAST({q} AS DOUBLE) END"
        )
    if term.kind == "text" and term.domain == "date":
        return f"TRY_CAST(regexp_extract({q}, '{_DATE_TEXT_SQL_RE}', 1) AS DATE)"
    if term.kind == "timestamp":
        return f"CAST({q} AS DATE)"
    if term.floating:
        return f"CASE WHEN isnan({q}) THEN NULL ELSE {q} END"
    return q


def _sql_param(domain: Domain, value: Any) -> tuple[str, Any]:
    """A typed placeholder and its Python value (types never inferred from the column)."""
    if domain == "number":
        if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            return "CAST(? AS BIGINT)", value
        return "CAST(? AS DOUBLE)", float(value)
    if domain == "date":
        return "CAST(? AS DATE)", date.fromisoformat(value)
    return f"CAST(? AS {_SQL_TYPES[domain]})", value


def _sql_list(domain: Domain, values: list[Any]) -> tuple[str, list[Any]]:
    """One list parameter unnested into a subquery: fast for long lists (hash semi-join)."""
    if domain == "number":
        if all(isinstance(v, int) and _INT64[0] <= v <= _INT64[1] for v in values):
            return "(SELECT unnest(CAST(? AS BIGINT[])))", [list(values)]
        return "(SELECT unnest(CAST(? AS DOUBLE[])))", [[float(v) for v in values]]
    if domain == "date":
        return "(SELECT unnest(CAST(? AS DATE[])))", [[date.fromisoformat(v) for v in values]]
    return f"(SELECT unnest(CAST(? AS {_SQL_TYPES[domain]}[])))", [list(values)]


# -- pandas helpers -----------------------------------------------------------------------

_TEXT_DTYPE = pd.StringDtype("pyarrow")


def _frame_column(term: Term, ctx: FrameContext) -> pd.Series:
    try:
        return ctx.frame[term.field]
    except KeyError:
        raise SelectionError("field", f"the frame has no column {term.field!r}") from None


def _text_series(series: pd.Series) -> pd.Series:
    """Text with NA for missing, stored in Arrow so string kernels are utf8proc's."""
    if isinstance(series.dtype, pd.StringDtype) and series.dtype.storage == "pyarrow":
        return series
    return series.astype(_TEXT_DTYPE)


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    return pa.array(_text_series(series))


def _from_arrow_bool(result: pa.Array | pa.ChunkedArray, index: pd.Index, fill: bool) -> pd.Series:
    values = pc.fill_null(result, fill).to_numpy(zero_copy_only=False)
    return pd.Series(np.asarray(values, dtype=bool), index=index)


def _text_to_number(series: pd.Series) -> pd.Series:
    arr = _arrow(series)
    ok = pc.match_substring_regex(arr, NUMBER_TEXT_RE)
    trimmed = pc.utf8_trim(pc.if_else(ok, arr, pa.scalar(None, arr.type)), " \t\r\n")
    numbers = pc.cast(trimmed, pa.float64())
    return pd.Series(
        numbers.to_pandas(types_mapper={pa.float64(): pd.Float64Dtype()}.get).array,
        index=series.index,
        dtype="Float64",
    )


def _days_from_civil(
    year: np.ndarray, month: np.ndarray, day: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 for y/m/d arrays (proleptic Gregorian), and which are real dates."""
    valid = valid & (month >= 1) & (month <= 12) & (day >= 1)
    y = np.where(valid, year, 1970)
    m = np.where(valid, month, 1)
    d = np.where(valid, day, 1)
    month_start = ((y - 1970) * 12 + (m - 1)).astype("datetime64[M]")
    first = month_start.astype("datetime64[D]").astype(np.int64)
    next_first = (month_start + 1).astype("datetime64[D]").astype(np.int64)
    valid = valid & (d <= next_first - first)
    return np.where(valid, first + d - 1, 0), valid


def _month_day(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    as_dates = days.astype("datetime64[D]")
    months = as_dates.astype("datetime64[M]")
    month = months.astype(np.int64) % 12 + 1
    day = (as_dates - months.astype("datetime64[D]")).astype(np.int64) + 1
    return month, day


def _int_series(values: np.ndarray, valid: np.ndarray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), ~valid), index=index)


def _date_days(series: pd.Series, kind: Kind) -> pd.Series:
    """A date-like column as nullable days since 1970-01-01 (the date domain in pandas)."""
    if kind == "text":
        return _civil_text_days(series)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_localize(None)  # wall clock, as DuckDB's CAST(tstz AS DATE)
    arr = pa.array(series, from_pandas=True)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return _civil_text_days(series)
    if pa.types.is_null(arr.type):
        arr = pa.nulls(len(series), pa.date32())
    dates = pc.cast(arr, pa.date32(), safe=False)
    days = pc.cast(dates, pa.int32())
    valid = np.asarray(pc.is_valid(days).to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(pc.fill_null(days, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return _int_series(values, valid, series.index)


def _civil_text_days(series: pd.Series) -> pd.Series:
    parts = pc.extract_regex(_arrow(series), DATE_TEXT_RE)
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    valid = np.asarray(parts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)

    def part(name: str) -> np.ndarray:
        field = pc.cast(pc.struct_field(parts, name), pa.int64())
        return np.asarray(pc.fill_null(field, 1).to_numpy(zero_copy_only=False), dtype=np.int64)

    days, valid = _days_from_civil(part("y"), part("m"), part("d"), valid)
    return _int_series(days, valid, series.index)


def _number_series(series: pd.Series, kind: Kind) -> pd.Series:
    if kind == "text":
        return _text_to_number(series)
    if pd.api.types.is_unsigned_integer_dtype(series.dtype):
        return series.astype("UInt64")
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.astype("Int64")
    return pd.to_numeric(series, errors="coerce").astype("Float64")


def _frame_values(term: Term, ctx: FrameContext) -> pd.Series:
    """The column read in the term's domain, as a pandas nullable Series."""
    series = _frame_column(term, ctx)
    if term.domain == "text":
        return _text_series(series)
    if term.domain == "number":
        return _number_series(series, term.kind)
    if term.domain == "date":
        return _date_days(series, term.kind)
    if term.domain == "bool":
        return series.astype("boolean")
    return series


def _frame_param(domain: Domain, value: Any) -> Any:
    if domain == "date":
        return (date.fromisoformat(value) - _EPOCH).days
    if domain == "number" and isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return float(value)
    return value


def _fill(result: pd.Series, fill: bool) -> pd.Series:
    return result.fillna(fill).astype(bool)


# ---------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------

SqlFn = Callable[[Term, SqlContext], tuple[str, list[Any]]]
FrameFn = Callable[[Term, FrameContext], pd.Series]
HumanFn = Callable[[str, Any], str]

_ORDERED_KINDS = frozenset({"text", "number", "date", "timestamp"})
_EQUALITY_KINDS = frozenset({"text", "number", "date", "timestamp", "bool"})
_TEXT_KINDS = frozenset({"text"})
_DATE_LIKE_KINDS = frozenset({"text", "date", "timestamp"})
_ALL_KINDS = frozenset({"text", "number", "date", "timestamp", "bool", "other"})
_SMS_KINDS = frozenset({"sms"})


@dataclass(frozen=True)
class Operator:
    """One operator: everything the compiler, the oracle and the page need to know.

    ``key`` is the spec's ``op``; ``label`` what the condition builder shows ("is empty").
    ``value_kind``: none (no value), single, list, pair (``[low, high]``), or int (a
    whole number; ``value_optional`` allows null, meaning "any mailing").
    ``kinds``: the column kinds (see `column_kind`) the operator applies to.
    ``sql(term, ctx)`` gives the SQL fragment and its bound parameters, ``frame(term, ctx)``
    the pandas evaluation (a boolean Series), ``human(field, value)`` the sentence part.
    """

    key: str
    label: str
    value_kind: ValueKind
    kinds: frozenset[str]
    sql: SqlFn
    frame: FrameFn
    human: HumanFn
    value_optional: bool = False

    def applies_to(self, duckdb_type: str) -> bool:
        return column_kind(duckdb_type) in self.kinds


def _show(value: Any) -> str:
    """A value as the human sentence shows it: text quoted, numbers and dates bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not _looks_like_date(value):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _show_list(values: list[Any]) -> str:
    shown = []
    for v in values:
        if isinstance(v, str) and (not v or v != v.strip() or "," in v or '"' in v):
            shown.append(json.dumps(v, ensure_ascii=False))
        else:
            shown.append(_show(v) if not isinstance(v, str) else v)
    return ", ".join(shown) if shown else "(nothing)"


def _comparison(key: str, label: str, sql_op: str, kinds: frozenset[str]) -> Operator:
    pandas_op: Callable[[pd.Series, Any], pd.Series] = {
        "=": lambda x, p: x == p,
        ">": lambda x, p: x > p,
        ">=": lambda x, p: x >= p,
        "<": lambda x, p: x < p,
        "<=": lambda x, p: x <= p,
    }[sql_op]

    def sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
        placeholder, param = _sql_param(term.domain, term.value)
        return f"COALESCE({_sql_column(term)} {sql_op} {placeholder}, FALSE)", [param]

    def frame(term: Term, ctx: FrameContext) -> pd.Series:
        return _fill(
            pandas_op(_frame_values(term, ctx), _frame_param(term.domain, term.value)), False
        )

    return Operator(key, label, "single", kinds, sql, frame, lambda f, v: f"{f} {label} {_show(v)}")


def _ne_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    placeholder, param = _sql_param(term.domain, term.value)
    return f"({_sql_column(term)} IS DISTINCT FROM {placeholder})", [param]


def _ne_frame(term: Term, ctx: FrameContext) -> pd.Series:
    return _fill(_frame_values(term, ctx) != _frame_param(term.domain, term.value), True)


def _in_sql(negate: bool) -> SqlFn:
    def sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
        subquery, params = _sql_list(term.domain, term.value)
        if negate:
            return f"COALESCE({_sql_column(term)} NOT IN {subquery}, TRUE)", params
        return f"COALESCE({_sql_column(term)} IN {subquery}, FALSE)", params

    return sql


def _in_frame(negate: bool) -> FrameFn:
    def frame(term: Term, ctx: FrameContext) -> pd.Series:
        values = _frame_values(term, ctx)
        params = [_frame_param(term.domain, v) for v in term.value]
        hit = _fill(values.isin(params), False) & values.notna()
        return ~hit if negate else hit

    return frame


def _between_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    (lo_sql, lo), (hi_sql, hi) = (_sql_param(term.domain, v) for v in term.value)
    return f"COALESCE({_sql_column(term)} BETWEEN {lo_sql} AND {hi_sql}, FALSE)", [lo, hi]


def _between_frame(term: Term, ctx: FrameContext) -> pd.Series:
    x = _frame_values(term, ctx)
    lo, hi = (_frame_param(term.domain, v) for v in term.value)
    return _fill((x >= lo) & (x <= hi), False)


def _text_match(key: str, label: str, sql_fn: str, arrow_fn: Callable[..., Any]) -> Operator:
    def sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
        return (
            f"COALESCE({sql_fn}(lower({_sql_column(term)}), lower(CAST(? AS VARCHAR))), FALSE)",
            [term.value],
        )

    def frame(term: Term, ctx: FrameContext) -> pd.Series:
        series = _frame_column(term, ctx)
        lowered = pc.utf8_lower(_arrow(series))
        needle = pc.utf8_lower(pa.scalar(term.value, pa.string())).as_py()
        return _from_arrow_bool(arrow_fn(lowered, needle), series.index, False)

    return Operator(
        key, label, "single", _TEXT_KINDS, sql, frame, lambda f, v: f"{f} {label} {_show(v)}"
    )


def _empty_sql(negate: bool) -> SqlFn:
    def sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
        x = _sql_column(term)
        if term.kind == "text":
            if negate:
                return f"({x} IS NOT NULL AND trim({x}, CAST(? AS VARCHAR)) <> '')", [WHITESPACE]
            return f"({x} IS NULL OR trim({x}, CAST(? AS VARCHAR)) = '')", [WHITESPACE]
        return (f"({x} IS NOT NULL)" if negate else f"({x} IS NULL)"), []

    return sql


def _empty_frame(negate: bool) -> FrameFn:
    def frame(term: Term, ctx: FrameContext) -> pd.Series:
        series = _frame_column(term, ctx)
        if term.kind == "text":
            trimmed = pc.utf8_trim(_arrow(series), WHITESPACE)
            empty = _from_arrow_bool(pc.equal(trimmed, ""), series.index, True)
        elif term.kind == "number":
            empty = _number_series(series, term.kind).isna()
        else:
            empty = series.isna()
        empty = empty.astype(bool)
        return ~empty if negate else empty

    return frame


def _regex_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    return (
        f"COALESCE(regexp_matches({_sql_column(term)}, CAST(? AS VARCHAR)), FALSE)",
        [term.value],
    )


def _regex_frame(term: Term, ctx: FrameContext) -> pd.Series:
    # Python's re has no vectorised form (pandas' Arrow regex kernels are RE2), so this is
    # one search per value: fine for an oracle.
    series = _frame_column(term, ctx)
    pattern = re.compile(term.value, re.ASCII)
    values = _text_series(series).to_numpy(dtype=object, na_value=None)
    hits = np.fromiter(
        (v is not None and pattern.search(v) is not None for v in values), bool, len(values)
    )
    return pd.Series(hits, index=series.index)


def _birthday_days(today: date) -> tuple[int, int, int]:
    """Month and day range celebrated today (29 Feb birthdays on 28 Feb in common years)."""
    leap = today.year % 4 == 0 and (today.year % 100 != 0 or today.year % 400 == 0)
    if today.month == 2 and today.day == 28 and not leap:
        return 2, 28, 29
    return today.month, today.day, today.day


def _birthday_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    x = _sql_column(term)
    month, lo, hi = _birthday_days(ctx.today)
    return (
        f"COALESCE(month({x}) = CAST(? AS BIGINT) AND day({x}) BETWEEN CAST(? AS BIGINT) "
        "AND CAST(? AS BIGINT), FALSE)",
        [month, lo, hi],
    )


def _birthday_frame(term: Term, ctx: FrameContext) -> pd.Series:
    days = _frame_values(term, ctx)
    valid = days.notna().to_numpy(dtype=bool)
    month, day = _month_day(days.fillna(0).to_numpy(dtype=np.int64))
    want_month, lo, hi = _birthday_days(ctx.today)
    hits = valid & (month == want_month) & (day >= lo) & (day <= hi)
    return pd.Series(hits, index=days.index)


def _recent_window(today: date, n: int) -> tuple[date, date]:
    return today - timedelta(days=min(n, (today - date.min).days)), today


def _recent_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    lo, hi = _recent_window(ctx.today, term.value)
    return (
        f"COALESCE({_sql_column(term)} BETWEEN CAST(? AS DATE) AND CAST(? AS DATE), FALSE)",
        [lo, hi],
    )


def _recent_frame(term: Term, ctx: FrameContext) -> pd.Series:
    lo, hi = ((d - _EPOCH).days for d in _recent_window(ctx.today, term.value))
    days = _frame_values(term, ctx)
    return _fill((days >= lo) & (days <= hi), False)


# -- SMS history ------------------------------------------------------------------------

_HISTORY_SQL_FILTER = {
    "received": "h.status IS DISTINCT FROM 'skipped'",
    "delivered": "h.status = 'delivered'",
    "failed": "h.status IN ('failed', 'undelivered', 'expired')",
    "replied_stop": "COALESCE(h.replied_stop, FALSE)",
}


def _history_sql(term: Term, ctx: SqlContext) -> tuple[str, list[Any]]:
    e164 = quote_identifier(E164_COLUMN)
    where = ["h.e164 IS NOT NULL AND h.e164 <> ''", _HISTORY_SQL_FILTER[term.op.key]]
    params: list[Any] = []
    if term.value is not None:
        where.append("h.mailing_id = CAST(? AS BIGINT)")
        params.append(term.value)
    return (
        f"({e164} IS NOT NULL AND {e164} IN (SELECT h.e164 FROM {SMS_HISTORY_VIEW} AS h "
        f"WHERE {' AND '.join(where)}))",
        params,
    )


def _history_frame(term: Term, ctx: FrameContext) -> pd.Series:
    if ctx.history is None:
        raise SelectionError("field", "_sms conditions need the history frame (history=...)")
    h = ctx.history
    missing = [c for c in ("e164", "mailing_id", "status", "replied_stop") if c not in h.columns]
    if missing:
        raise SelectionError("field", f"the history frame lacks {', '.join(missing)}")
    e164 = _text_series(h["e164"])
    keep = _fill(e164 != "", False)
    status = _text_series(h["status"])
    if term.op.key == "received":
        keep &= _fill(status != "skipped", True)
    elif term.op.key == "delivered":
        keep &= _fill(status == "delivered", False)
    elif term.op.key == "failed":
        keep &= _fill(status.isin(FAILED_STATUSES), False) & status.notna()
    else:
        keep &= _fill(h["replied_stop"].astype("boolean"), False)
    if term.value is not None:
        keep &= _fill(pd.to_numeric(h["mailing_id"]).astype("Float64") == term.value, False)
    if E164_COLUMN not in ctx.frame.columns:
        raise SelectionError("field", f"_sms conditions need the frame's {E164_COLUMN} column")
    numbers = _text_series(ctx.frame[E164_COLUMN])
    hits = _fill(numbers.isin(e164[keep].dropna().unique()), False) & numbers.notna()
    return hits


def _history_human(verb: str, any_text: str) -> HumanFn:
    def human(field: str, value: Any) -> str:
        return verb.format(m=f"mailing {value}" if value is not None else any_text)

    return human


def _build_operators() -> dict[str, Operator]:
    ops = [
        _comparison("eq", "is", "=", _EQUALITY_KINDS),
        Operator(
            "ne",
            "is not",
            "single",
            _EQUALITY_KINDS,
            _ne_sql,
            _ne_frame,
            lambda f, v: f"{f} is not {_show(v)}",
        ),
        _text_match("contains", "contains", "contains", pc.match_substring),
        _text_match("starts_with", "starts with", "starts_with", pc.starts_with),
        _text_match("ends_with", "ends with", "ends_with", pc.ends_with),
        Operator(
            "in",
            "is one of",
            "list",
            _EQUALITY_KINDS,
            _in_sql(False),
            _in_frame(False),
            lambda f, v: f"{f} is one of {_show_list(v)}",
        ),
        Operator(
            "not_in",
            "is not one of",
            "list",
            _EQUALITY_KINDS,
            _in_sql(True),
            _in_frame(True),
            lambda f, v: f"{f} is not one of {_show_list(v)}",
        ),
        _comparison("gt", ">", ">", _ORDERED_KINDS),
        _comparison("ge", "≥", ">=", _ORDERED_KINDS),
        _comparison("lt", "<", "<", _ORDERED_KINDS),
        _comparison("le", "≤", "<=", _ORDERED_KINDS),
        Operator(
            "between",
            "is between",
            "pair",
            _ORDERED_KINDS,
            _between_sql,
            _between_frame,
            lambda f, v: f"{f} is between {_show(v[0])} and {_show(v[1])}",
        ),
        Operator(
            "empty",
            "is empty",
            "none",
            _ALL_KINDS,
            _empty_sql(False),
            _empty_frame(False),
            lambda f, v: f"{f} is empty",
        ),
        Operator(
            "not_empty",
            "is not empty",
            "none",
            _ALL_KINDS,
            _empty_sql(True),
            _empty_frame(True),
            lambda f, v: f"{f} is not empty",
        ),
        Operator(
            "regex",
            "matches regex",
            "single",
            _TEXT_KINDS,
            _regex_sql,
            _regex_frame,
            lambda f, v: f"{f} matches regex {_show(v)}",
        ),
        Operator(
            "birthday_today",
            "has a birthday today",
            "none",
            _DATE_LIKE_KINDS,
            _birthday_sql,
            _birthday_frame,
            lambda f, v: f"{f} has a birthday today",
        ),
        Operator(
            "within_last_days",
            "is within the last … days",
            "int",
            _DATE_LIKE_KINDS,
            _recent_sql,
            _recent_frame,
            lambda f, v: f"{f} is within the last {v} day{'s' if v != 1 else ''}",
        ),
        Operator(
            "received",
            "received mailing",
            "int",
            _SMS_KINDS,
            _history_sql,
            _history_frame,
            _history_human("received {m}", "any mailing"),
        ),
        Operator(
            "delivered",
            "had a message delivered",
            "int",
            _SMS_KINDS,
            _history_sql,
            _history_frame,
            _history_human("had {m} delivered", "any mailing"),
            value_optional=True,
        ),
        Operator(
            "failed",
            "had a message fail",
            "int",
            _SMS_KINDS,
            _history_sql,
            _history_frame,
            _history_human("had {m} fail", "any mailing"),
            value_optional=True,
        ),
        Operator(
            "replied_stop",
            "replied STOP",
            "int",
            _SMS_KINDS,
            _history_sql,
            _history_frame,
            _history_human("replied STOP to {m}", "any mailing"),
            value_optional=True,
        ),
    ]
    return {op.key: op for op in ops}


OPERATORS: dict[str, Operator] = _build_operators()


def operators_for(duckdb_type: str) -> list[Operator]:
    """Operators the condition builder offers for a column of this DuckDB type.

    Pass ``"_sms"`` for the SMS-history pseudo-field.
    """
    kind = column_kind(duckdb_type)
    return [op for op in OPERATORS.values() if kind in op.kinds]


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------

_CONDITION_KEYS = ("field", "op", "value")
_TEXT_MATCH_OPS = {"contains", "starts_with", "ends_with", "regex"}
_ORDERED_OPS = {"gt", "ge", "lt", "le", "between"}
_MAX_DAYS = 3_660_000  # ten thousand years: more is a typo


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(name: str, choices: Sequence[str]) -> str:
    """' (did you mean 'city'?)' for the closest names, or ''."""
    folded = {c.casefold(): c for c in choices}
    close = [folded[name.casefold()]] if name.casefold() in folded else []
    close += [
        c for c in difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6) if c not in close
    ]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close[:3]) + "?)"


def _kind_phrase(kind: Kind) -> str:
    return {
        "text": "a text",
        "number": "a number",
        "date": "a date",
        "timestamp": "a timestamp",
        "bool": "a true/false",
        "other": "an",
    }[kind]


def _check_regex(pattern: str, path: str) -> None:
    try:
        re.compile(pattern, re.ASCII)
    except re.error as exc:
        raise SelectionError(path, f"not a valid regular expression: {exc}") from None
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        detail = str(exc).removeprefix("Invalid regular expression: ")
        raise SelectionError(
            path,
            f"the regular expression uses syntax DuckDB (RE2) does not support: {detail}; "
            "lookaround, backreferences, atomic groups and possessive quantifiers are out",
        ) from None


def _whole_number(value: Any, path: str, what: str, low: int, high: int) -> int:
    if isinstance(value, str) and _INT_VALUE.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SelectionError(path, f"{what} needs a whole number, got {_describe_value(value)}")
    if not low <= value <= high:
        raise SelectionError(path, f"{what} needs a whole number from {low} to {high}, got {value}")
    return value


def _normalise_value(op: Operator, kind: Kind | None, node: Mapping[str, Any], path: str) -> Any:
    vpath = _join(path, "value")
    what = _op_name(op)
    value = node.get("value")
    if op.value_kind == "none":
        if value is not None:
            raise SelectionError(vpath, f"{what} takes no value, got {_describe_value(value)}")
        return None
    if op.value_kind == "int":
        if value is None:
            if op.value_optional:
                return None
            raise SelectionError(vpath, f"{what} needs a mailing id")
        if op.key == "within_last_days":
            return _whole_number(value, vpath, what, 0, _MAX_DAYS)
        return _whole_number(value, vpath, what, 0, _INT64[1])
    if op.value_kind == "list":
        if not isinstance(value, list | tuple):
            raise SelectionError(
                vpath, f"{what} needs a list of values, got {_describe_value(value)}"
            )
        return [_scalar_for(kind, v, f"{vpath}[{i}]", what) for i, v in enumerate(value)]
    if op.value_kind == "pair":
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise SelectionError(vpath, f"{what} needs [low, high], got {_describe_value(value)}")
        low, high = (_ordered_for(kind, v, f"{vpath}[{i}]", what) for i, v in enumerate(value))
        if isinstance(low, str) != isinstance(high, str):
            raise SelectionError(
                vpath, f"{what} needs two numbers or two dates, got {_describe_value(value)}"
            )
        if (
            (date.fromisoformat(low) > date.fromisoformat(high))
            if isinstance(low, str)
            else low > high
        ):
            raise SelectionError(vpath, f"{what} needs low ≤ high, got {low} > {high}")
        return [low, high]
    # single
    if op.key in _ORDERED_OPS:
        return _ordered_for(kind, value, vpath, what)
    if op.key in _TEXT_MATCH_OPS:
        if value is None or isinstance(value, list | dict | tuple):
            raise SelectionError(vpath, f"{what} needs a text value, got {_describe_value(value)}")
        text = _text_value(value, vpath, what)
        if text == "":
            raise SelectionError(vpath, f"{what} needs a non-empty text")
        if op.key == "regex":
            _check_regex(text, vpath)
        return text
    return _scalar_for(kind, value, vpath, what)


def _validate_condition(
    node: Mapping[str, Any], columns: Mapping[str, str] | None, path: str
) -> dict[str, Any]:
    for key in node:
        if key not in _CONDITION_KEYS:
            raise SelectionError(
                _join(path, str(key)),
                f"unknown key {key!r}{_suggest(str(key), (*_CONDITION_KEYS, 'all', 'any'))}; "
                "a condition has field, op and value, a group has 'all' or 'any'",
            )
    field = node.get("field")
    if not isinstance(field, str) or not field:
        raise SelectionError(_join(path, "field"), "a condition needs a field name (text)")
    op_key = node.get("op")
    if not isinstance(op_key, str):
        raise SelectionError(_join(path, "op"), "a condition needs an op, e.g. 'eq' or 'contains'")
    op = OPERATORS.get(op_key)
    if op is None:
        raise SelectionError(
            _join(path, "op"),
            f"unknown op {op_key!r}{_suggest(op_key, list(OPERATORS))}; "
            f"known: {', '.join(OPERATORS)}",
        )
    kind: Kind | None
    if field == SMS_FIELD:
        kind = "sms"
        if "sms" not in op.kinds:
            choices = _op_names(o for o in OPERATORS.values() if "sms" in o.kinds)
            raise SelectionError(
                _join(path, "op"),
                f"{_op_name(op)} does not apply to {SMS_FIELD} (SMS history); use {choices}",
            )
        if columns is not None and E164_COLUMN not in columns:
            raise SelectionError(
                _join(path, "field"),
                f"{SMS_FIELD} conditions need the table's {E164_COLUMN} column",
            )
    elif "sms" in op.kinds:
        raise SelectionError(
            _join(path, "op"), f"{_op_name(op)} applies only to the {SMS_FIELD} (SMS history) field"
        )
    elif columns is None:
        kind = None
    else:
        if field not in columns:
            raise SelectionError(
                _join(path, "field"),
                f"unknown field {field!r}{_suggest(field, [*columns, SMS_FIELD])}",
            )
        kind = column_kind(columns[field])
        if kind not in op.kinds:
            labels = _op_names(o for o in OPERATORS.values() if kind in o.kinds)
            raise SelectionError(
                _join(path, "op"),
                f"{_op_name(op)} does not apply to {field!r} ({_kind_phrase(kind)} column of "
                f"type {columns[field]}); use one of: {labels}",
            )
    value = _normalise_value(op, kind, node, path)
    out: dict[str, Any] = {"field": field, "op": op_key}
    if op.value_kind != "none":
        out["value"] = value
    return out


def _validate(
    node: Any, columns: Mapping[str, str] | None, path: str, depth: int
) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise SelectionError(path, f"groups are nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping):
        raise SelectionError(
            path,
            "expected a condition {field, op, value} or a group {all: [...]} / "
            f"{{any: [...]}}, got {_describe_value(node)}",
        )
    groups = [k for k in ("all", "any") if k in node]
    if not groups:
        return _validate_condition(node, columns, path)
    if len(node) != 1:
        extra = ", ".join(repr(k) for k in node if k != groups[0])
        raise SelectionError(
            path, f"a group has exactly one key, 'all' or 'any'; also found {extra}"
        )
    key = groups[0]
    children = node[key]
    if not isinstance(children, list | tuple):
        raise SelectionError(_join(path, key), "a group holds a list of conditions or groups")
    return {
        key: [
            _validate(child, columns, f"{_join(path, key)}[{i}]", depth + 1)
            for i, child in enumerate(children)
        ]
    }


def _parse(spec: Any) -> Any:
    if isinstance(spec, str | bytes):
        try:
            return json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SelectionError("spec", f"not valid JSON: {exc}") from None
    return spec


def validate_spec(spec: Any, columns: Mapping[str, str]) -> dict[str, Any]:
    """Check a spec against a table's columns (name → DuckDB type) and normalise it.

    Accepts the spec as a dict or a JSON string. The result is JSON-serialisable and
    idempotent (validating it again returns it unchanged): values are typed for their
    column (``"30"`` → ``30`` on a number column, ``30`` → ``"30"`` on a text column, dates as
    ``"YYYY-MM-DD"``), and no-value operators carry no ``value``.
    """
    return _validate(_parse(spec), columns, "", 0)


# ---------------------------------------------------------------------------------------
# Resolution, compilation, evaluation, description
# ---------------------------------------------------------------------------------------


_EXACT_DOMAINS: dict[str, Domain] = {
    "text": "text",
    "number": "number",
    "date": "date",
    "timestamp": "date",
    "bool": "bool",
}


def _term(node: Mapping[str, Any], columns: Mapping[str, str]) -> Term:
    op = OPERATORS[node["op"]]
    field = node["field"]
    value = node.get("value")
    if field == SMS_FIELD:
        return Term(op, field, "sms", False, "raw", value)
    duck_type = columns[field]
    kind = column_kind(duck_type)
    domain: Domain
    if op.key in _TEXT_MATCH_OPS:
        domain = "text"
    elif op.key in ("birthday_today", "within_last_days"):
        domain = "date"
    elif op.key in ("empty", "not_empty"):
        domain = kind if kind in ("text", "number") else "raw"  # type: ignore[assignment]
    elif op.key in _ORDERED_OPS:
        domain = _value_domain(kind, value[0] if op.key == "between" else value)
    else:  # eq, ne, in, not_in compare in the column's own type
        domain = _EXACT_DOMAINS[kind]
    return Term(op, field, kind, _is_floating(duck_type), domain, value)


def _compile(
    node: Mapping[str, Any], columns: Mapping[str, str], ctx: SqlContext
) -> tuple[str, list[Any]]:
    for key, joiner, neutral in (("all", " AND ", "TRUE"), ("any", " OR ", "FALSE")):
        if key in node:
            parts = [_compile(child, columns, ctx) for child in node[key]]
            if not parts:
                return neutral, []
            if len(parts) == 1:
                return parts[0]
            params = [p for _, ps in parts for p in ps]
            return "(" + joiner.join(sql for sql, _ in parts) + ")", params
    term = _term(node, columns)
    return term.op.sql(term, ctx)


def compile_spec(
    spec: Any, columns: Mapping[str, str], *, today: date | None = None
) -> tuple[str, list[Any]]:
    """A parametrised DuckDB boolean expression (WHERE body, ``?`` placeholders) and params.

    User values are always bound; field names are checked against ``columns`` and quoted.
    SMS-history conditions read the ``sms_history`` view. ``today`` fixes the clock for
    ``birthday_today``/``within_last_days`` (default: ``date.today()``).
    """
    normal = validate_spec(spec, columns)
    return _compile(normal, columns, SqlContext(today or date.today()))


def compile_chain(
    specs: Sequence[Any], columns: Mapping[str, str], *, today: date | None = None
) -> tuple[str, list[Any]]:
    """AND of a selection and all its ancestors: a mini-selection stays inside its parent."""
    parts: list[str] = []
    params: list[Any] = []
    for i, spec in enumerate(specs):
        try:
            sql, ps = compile_spec(spec, columns, today=today)
        except SelectionError as exc:
            inner = "" if exc.path == "spec" else "." + exc.path
            raise SelectionError(f"selection[{i}]{inner}", exc.reason) from None
        parts.append(sql)
        params.extend(ps)
    if not parts:
        return "TRUE", []
    if len(parts) == 1:
        return parts[0], params
    return "(" + " AND ".join(parts) + ")", params


# Python value → DuckDB type, most specific first (datetime is a date, bool is an int).
_PY_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (datetime, "TIMESTAMP"),
    (date, "DATE"),
    ((bool, np.bool_), "BOOLEAN"),
    ((int, np.integer), "BIGINT"),
    ((float, np.floating), "DOUBLE"),
    (str, "VARCHAR"),
)


def frame_columns(df: pd.DataFrame) -> dict[str, str]:
    """DuckDB type names guessed from a DataFrame's dtypes (as DuckDB would read them)."""
    out: dict[str, str] = {}
    for name, series in df.items():
        dtype = series.dtype
        if pd.api.types.is_bool_dtype(dtype):
            out[str(name)] = "BOOLEAN"
        elif pd.api.types.is_integer_dtype(dtype):
            out[str(name)] = "BIGINT"
        elif pd.api.types.is_float_dtype(dtype):
            out[str(name)] = "DOUBLE"
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            out[str(name)] = "TIMESTAMP"
        elif isinstance(dtype, pd.ArrowDtype) and pa.types.is_date(dtype.pyarrow_dtype):
            out[str(name)] = "DATE"
        elif pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
            out[str(name)] = "VARCHAR"
        else:
            sample = series.dropna()
            first = sample.iloc[0] if len(sample) else ""
            out[str(name)] = next((t for cls, t in _PY_TYPES if isinstance(first, cls)), "OTHER")
    return out


def _evaluate(node: Mapping[str, Any], columns: Mapping[str, str], ctx: FrameContext) -> np.ndarray:
    """The rows a (normalised) node selects, as a numpy mask (positional, index-free)."""
    rows = len(ctx.frame)
    if "all" in node:
        result = np.ones(rows, dtype=bool)
        for child in node["all"]:
            result &= _evaluate(child, columns, ctx)
        return result
    if "any" in node:
        result = np.zeros(rows, dtype=bool)
        for child in node["any"]:
            result |= _evaluate(child, columns, ctx)
        return result
    term = _term(node, columns)
    return term.op.frame(term, ctx).to_numpy(dtype=bool)


def filter_frame(
    df: pd.DataFrame,
    spec: Any,
    columns: Mapping[str, str] | None = None,
    *,
    today: date | None = None,
    history: pd.DataFrame | None = None,
) -> pd.Series:
    """The pandas oracle: a boolean Series (same index as ``df``) of the rows ``spec`` selects.

    ``columns`` (name → DuckDB type) says how to read each column; without it the types are
    guessed from the dtypes. ``history`` (columns e164, mailing_id, status, replied_stop)
    answers ``_sms`` conditions.
    """
    cols = dict(columns) if columns is not None else frame_columns(df)
    normal = validate_spec(spec, cols)
    ctx = FrameContext(today or date.today(), df, history)
    return pd.Series(_evaluate(normal, cols, ctx), index=df.index)


def _describe(node: Mapping[str, Any], top: bool) -> str:
    for key, joiner, neutral in (("all", " and ", "everyone"), ("any", " or ", "no one")):
        if key in node:
            parts = [_describe(child, False) for child in node[key]]
            if not parts:
                return neutral
            if len(parts) == 1:
                return parts[0]
            text = joiner.join(parts)
            return text if top else f"({text})"
    op = OPERATORS[node["op"]]
    return op.human(node["field"], node.get("value"))


def describe(spec: Any, columns: Mapping[str, str] | None = None) -> str:
    """The human sentence for a spec: ``city contains "dam" and (age > 30 or ...)``.

    With ``columns`` the spec is fully validated (values shown as they will be compared);
    without, only its structure and value shapes are checked.
    """
    normal = _validate(_parse(spec), columns, "", 0)
    return _describe(normal, True)
