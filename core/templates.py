"""Personalised message texts: Jinja2 templates over contact fields, rendered safely and fast.

A template is written by an analyst, not by a developer, and is rendered for every contact of
a selection, so three things matter:

* **Safety.** Templates run in Jinja2's immutable sandbox with no loader, no globals and a short
  list of filters, and every attribute starting with ``_`` is refused before anything runs.
  A template can read contact fields and format them; it cannot reach Python internals,
  other templates or files. The sandbox stays in place as a second line behind that check.
* **Errors a person can act on.** Unknown fields name the closest existing ones; syntax errors
  give line and column (Jinja only knows the line, so the column is recovered from the token
  positions); rendering errors name the field and the value that could not be used.
* **Speed.** A template made only of text and plain field substitutions (optionally with
  ``default("x")``) is rendered for a whole selection by column-wise string concatenation in
  Arrow, roughly a hundred times faster than Jinja2 row by row. Everything else goes through
  Jinja2 per row with a progress callback. Both paths format values identically.

Values are shown the way an analyst expects from a spreadsheet: missing values (None, NaN,
pd.NA, NaT) as an empty text, whole numbers stored as floats (3.0) as ``3``, dates as
``2024-01-31``, timestamps as ``2024-01-31 14:30``.

Copernica users write Smarty (``{$profile.firstname|default:'klant'}``); its simple forms are
translated to Jinja2 first, and the translation is shown so they learn the new syntax.
"""

from __future__ import annotations

import difflib
import math
import re
import traceback
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2 import TemplateError as JinjaError
from jinja2.defaults import DEFAULT_NAMESPACE
from jinja2.exceptions import SecurityError, TemplateAssertionError
from jinja2.filters import FILTERS
from jinja2.lexer import TokenStream
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "CompiledTemplate",
    "SmartyChange",
    "SmartyTranslation",
    "TemplateError",
    "explain_smarty",
    "prepare",
    "render",
    "translate_smarty",
]

Progress = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class TemplateError(ValueError):
    """A template that cannot be used, with where and why, ready to show to the user.

    ``kind`` says what went wrong: ``syntax`` (the text does not parse), ``field`` (an unknown
    field), ``forbidden`` (something a template may not do), ``smarty`` (Smarty code that has
    no automatic translation) or ``render`` (a value that could not be used for one contact).
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        suggestions: Sequence[str] = (),
        kind: str = "syntax",
        row: Any = None,
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.field = field
        self.suggestions = list(suggestions)
        self.kind = kind
        self.row = row
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message.rstrip(".")
        if self.line is not None:
            where = f"line {self.line}"
            # A column helps to find a stray brace; for a field name the line is enough.
            if self.column is not None and self.kind in ("syntax", "smarty", "forbidden"):
                where += f", column {self.column}"
            text += f" on {where}"
        if self.suggestions:
            text += f"; did you mean {_either(self.suggestions)}?"
        if self.row is not None:
            text += f" (contact at row {self.row})"
        return text if text.endswith("?") else text + "."


def _either(names: Sequence[str]) -> str:
    quoted = [f"'{n}'" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _suggest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The closest names, case-insensitively (``Voornaam`` vs ``voornaam`` is the usual slip).

    Only names about as close as the best one are offered: for ``frist_name`` that is
    ``first_name`` alone, not also ``last_name``.
    """
    key = name.lower()
    scored = sorted(
        ((difflib.SequenceMatcher(None, key, c.lower()).ratio(), c) for c in candidates),
        key=lambda sc: -sc[0],
    )
    if not scored or scored[0][0] < 0.6:
        return []
    best = scored[0][0]
    return [c for score, c in scored[:n] if score >= 0.6 and score >= best - 0.1]


class _FilterValueError(Exception):
    """Raised by our filters for a value they cannot use; turned into a TemplateError."""

    def __init__(self, value: Any, message: str) -> None:
        super().__init__(message)
        self.value = value
        self.message = message


# --------------------------------------------------------------------------------------------
# Values: from pandas cells to what a template sees, and how a value is shown
# --------------------------------------------------------------------------------------------

# Whitespace that makes a text "empty" for `default`. An explicit ASCII set, so the vectorised
# path (Arrow's utf8_trim) and the per-row path (str.strip) agree exactly.
_BLANK = " \t\n\r\f\v"
# Floats with an integral value below this show without ".0"; beyond it floats lose integer
# precision and Python's own repr (1e+16) is the honest display.
_INT_LIMIT = 1e15


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return isinstance(value, np.datetime64 | np.timedelta64) and bool(np.isnat(value))


def _to_template_value(value: Any) -> Any:
    """A pandas cell as a template sees it: missing → "", numpy scalars → Python, 3.0 → 3."""
    if _is_missing(value):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT_LIMIT:
        return int(value)
    return value


def _format_value(value: Any) -> str:
    """How a value is shown in a message (Jinja's ``finalize``; the fast path mirrors it)."""
    if isinstance(value, Undefined):
        return str(value)  # StrictUndefined raises here with Jinja's own message
    if _is_missing(value):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < _INT_LIMIT:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.strftime("%Y-%m-%d")
        if (value.second, value.microsecond) == (0, 0):
            return value.strftime("%Y-%m-%d %H:%M")
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def _format_column(s: pd.Series) -> pd.Series:
    """`_format_value` for a whole column at once (str dtype, no missing values)."""
    dtype = s.dtype
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        out = s.fillna("")
    elif pd.api.types.is_integer_dtype(dtype):
        out = s.astype("str").fillna("")
    elif pd.api.types.is_float_dtype(dtype):
        out = pd.Series(
            _format_floats(s.to_numpy(dtype="float64", na_value=np.nan)), index=s.index, dtype="str"
        )
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        out = _format_datetimes(s)
    elif pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(s, skipna=True) in (
        "string",
        "empty",
    ):
        out = s.where(s.notna(), "").astype("str")
    else:
        # Mixed Python objects (dates from an object column, Decimals, booleans...): only a
        # per-value conversion knows them, and it is still far cheaper than a Jinja render.
        out = s.astype(object).map(_format_value).astype("str")
    return out.astype("str")


def _format_floats(values: np.ndarray) -> np.ndarray:
    out = np.full(values.shape, "", dtype=object)
    finite = ~np.isnan(values)
    whole = finite & (np.floor(values) == values) & (np.abs(values) < _INT_LIMIT)
    rest = finite & ~whole
    out[whole] = values[whole].astype(np.int64).astype(str)
    out[rest] = values[rest].astype(str)  # numpy's float str is Python's repr
    return out


def _format_datetimes(s: pd.Series) -> pd.Series:
    midnight = (s.dt.hour == 0) & (s.dt.minute == 0) & (s.dt.second == 0) & (s.dt.microsecond == 0)
    whole_minute = (s.dt.second == 0) & (s.dt.microsecond == 0)
    out = s.dt.strftime("%Y-%m-%d %H:%M:%S")
    out = out.mask(whole_minute, s.dt.strftime("%Y-%m-%d %H:%M"))
    out = out.mask(midnight, s.dt.strftime("%Y-%m-%d"))
    return out.fillna("").astype("str")


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    if isinstance(value, Undefined):
        return True
    value = _to_template_value(value)
    return isinstance(value, str) and not value.strip(_BLANK)


def _filter_default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    """Jinja's ``default``, but an empty or missing field also takes the default.

    A contact's field always exists (it is a column), so Jinja's "undefined only" meaning would
    never apply; what people mean by ``default("klant")`` is "when there is no first name".
    With ``boolean=true`` falsy values such as 0 take the default as well, as in Jinja.
    """
    if _is_blank(value) or (boolean and not value):
        return default_value
    return value


# Month and weekday names per language: full names, then the usual abbreviations.
_DATE_NAMES: dict[str, tuple[str, str, str, str]] = {
    "en": (
        "January February March April May June July August September October November December",
        "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec",
        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
        "Mon Tue Wed Thu Fri Sat Sun",
    ),
    "nl": (
        "januari februari maart april mei juni juli augustus september oktober november december",
        "jan feb mrt apr mei jun jul aug sep okt nov dec",
        "maandag dinsdag woensdag donderdag vrijdag zaterdag zondag",
        "ma di wo do vr za zo",
    ),
    "de": (
        "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
        "Jan Feb Mär Apr Mai Jun Jul Aug Sep Okt Nov Dez",
        "Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag",
        "Mo Di Mi Do Fr Sa So",
    ),
    "fr": (
        "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
        "janv. févr. mars avr. mai juin juil. août sept. oct. nov. déc.",
        "lundi mardi mercredi jeudi vendredi samedi dimanche",
        "lun. mar. mer. jeu. ven. sam. dim.",
    ),
    "es": (
        "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre",
        "ene feb mar abr may jun jul ago sep oct nov dic",
        "lunes martes miércoles jueves viernes sábado domingo",
        "lun mar mié jue vie sáb dom",
    ),
}
_NAME_DIRECTIVE = re.compile(r"%([%aAbB])")


def _as_date(value: Any) -> date | None:
    value = _to_template_value(value)
    if isinstance(value, date):  # datetime and pd.Timestamp are dates too
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise _FilterValueError(
        value, f"Cannot read {value!r} as a date (expected a date or an ISO date like 2024-01-31)"
    )


def _filter_date(value: Any, format: str = "%d-%m-%Y", locale: str | None = None) -> str:
    """Format a date, timestamp or ISO date text; an empty field gives an empty text.

    ``locale`` ("nl", "de", "fr", "es", "en") names months and weekdays for %B/%b/%A/%a
    without touching the process locale, which is shared by every thread of the app.
    """
    when = _as_date(value)
    if when is None:
        return ""
    if locale:
        lang = locale.lower()[:2]
        if lang not in _DATE_NAMES:
            raise _FilterValueError(
                locale, f"Unknown date language {locale!r}; use one of {', '.join(_DATE_NAMES)}"
            )
        names = {code: words.split() for code, words in zip("BbAa", _DATE_NAMES[lang], strict=True)}

        def name(m: re.Match[str]) -> str:
            code = m.group(1)
            if code == "%":
                return "%%"
            index = when.month - 1 if code in "Bb" else when.weekday()
            return names[code][index].replace("%", "%%")

        format = _NAME_DIRECTIVE.sub(name, format)
    return when.strftime(format)


def _filter_ucfirst(value: Any) -> str:
    """Smarty's ucfirst: upper-case the first letter and leave the rest as it is."""
    text = _format_value(_to_template_value(value))
    return text[:1].upper() + text[1:]


# The filters a message template needs; nothing that builds large texts from small input
# (center, indent, wordwrap, format) and nothing that reaches attributes (attr, map, ...).
_ALLOWED_JINJA_FILTERS = (
    "abs",
    "capitalize",
    "first",
    "float",
    "int",
    "join",
    "last",
    "length",
    "lower",
    "replace",
    "round",
    "string",
    "title",
    "trim",
    "truncate",
    "upper",
    "wordcount",
)
_FILTERS: dict[str, Callable[..., Any]] = {name: FILTERS[name] for name in _ALLOWED_JINJA_FILTERS}
_FILTERS.update(
    default=_filter_default, d=_filter_default, date=_filter_date, ucfirst=_filter_ucfirst
)


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------

_MAX_REPEAT = 10_000  # longest text or list `*` may build
_MAX_EXPONENT = 100


class _MessageSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox plus bounds on the two operators that can exhaust memory/CPU."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_REPEAT
                ):
                    raise SecurityError(f"repetition beyond {_MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _build_environment() -> _MessageSandbox:
    env = _MessageSandbox(
        autoescape=False,  # SMS is plain text
        undefined=StrictUndefined,
        keep_trailing_newline=True,  # what is typed is what is sent
        finalize=_format_value,
    )
    env.globals.clear()  # no range, lipsum, cycler, joiner, namespace, dict
    env.filters = dict(_FILTERS)
    env.policies["truncate.leeway"] = 0  # truncate(20) means at most 20 characters
    return env


_ENV = _build_environment()


# --------------------------------------------------------------------------------------------
# Smarty → Jinja2
# --------------------------------------------------------------------------------------------

_Q = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
_ARG = rf"(?:{_Q}|[^|:}}'\"\s]+)"
_SMARTY_VAR = re.compile(
    rf"\{{\$(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?P<mods>(?:\|\w+(?::{_ARG})*)*)\}}"
)
_SMARTY_MOD = re.compile(rf"\|(?P<name>\w+)(?P<args>(?::{_ARG})*)")
_SMARTY_ARG = re.compile(rf":({_ARG})")
_SMARTY_LEFTOVER = re.compile(
    r"\{\$[^}\n]*\}?|\{/?(?:if|elseif|else|foreach|foreachelse|section|capture|assign|"
    r"literal|ldelim|rdelim|include|loadsubprofile|loadprofile|math|cycle)\b[^}\n]*\}"
)
# Copernica's objects for the addressee: {$profile.x}, {$subprofile.x}, {$destination.x}.
_COPERNICA_OBJECTS = ("profile", "subprofile", "destination")


@dataclass(frozen=True)
class SmartyChange:
    """One Smarty tag and the Jinja2 that replaced it (for the "translated" hint on the page)."""

    smarty: str
    jinja: str
    line: int
    column: int
    offset: int  # where the Smarty tag starts in the source


@dataclass(frozen=True)
class SmartyTranslation:
    """The result of translating Smarty: the Jinja2 source and every replacement made."""

    source: str
    jinja_source: str
    changes: tuple[SmartyChange, ...] = ()

    @property
    def translated(self) -> bool:
        return bool(self.changes)

    def original_offset(self, offset: int) -> int:
        """Map an offset in ``jinja_source`` back to ``source`` (for error columns)."""
        shift = 0
        for start, end, new_start, new_end in self._spans:
            if offset < new_start:
                break
            if offset < new_end:
                return start
            shift = end - new_end
        return offset + shift

    @property
    def _spans(self) -> list[tuple[int, int, int, int]]:
        spans, shift = [], 0
        for change in self.changes:
            start = change.offset
            end = start + len(change.smarty)
            spans.append((start, end, start + shift, start + shift + len(change.jinja)))
            shift += len(change.jinja) - len(change.smarty)
        return spans


def _jinja_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _smarty_arg(raw: str) -> str | None:
    """A Smarty modifier argument as a Jinja2 literal, or None when it is not a literal."""
    if raw[:1] in "'\"":
        body = raw[1:-1]
        body = re.sub(r"\\(.)", r"\1", body)
        return _jinja_str(body)
    if re.fullmatch(r"-?\d+(?:\.\d+)?", raw):
        return raw
    if raw.lower() in ("true", "false"):
        return raw.lower()
    return None


def _smarty_modifier(name: str, args: list[str]) -> str | None:
    """One Smarty modifier as a Jinja2 filter, or None when there is no faithful one."""
    simple = {
        "upper": "upper",
        "lower": "lower",
        "ucfirst": "ucfirst",
        "capitalize": "title",
        "count_characters": "length",
        "trim": "trim",
    }
    if name in simple and not args:
        return simple[name]
    if name == "default" and len(args) <= 1:
        return f"default({args[0] if args else _jinja_str('')})"
    if name == "truncate" and len(args) <= 3:
        length = args[0] if args else "80"
        end = args[1] if len(args) > 1 else '"..."'
        killwords = args[2] if len(args) > 2 else "false"
        return f"truncate({length}, {killwords}, {end})"
    if name == "date_format" and len(args) <= 1:
        return f"date({args[0] if args else _jinja_str('%b %e, %Y')})"
    if name == "replace" and len(args) == 2:
        return f"replace({args[0]}, {args[1]})"
    return None


def _translate_tag(m: re.Match[str]) -> str | None:
    parts = m.group("path").split(".")
    if len(parts) > 1 and parts[0] in _COPERNICA_OBJECTS:
        parts = parts[1:]
    expr = ".".join(parts)
    for mod in _SMARTY_MOD.finditer(m.group("mods")):
        args = [_smarty_arg(a) for a in _SMARTY_ARG.findall(mod.group("args"))]
        if any(a is None for a in args):
            return None
        jinja_filter = _smarty_modifier(mod.group("name"), [a for a in args if a is not None])
        if jinja_filter is None:
            return None
        expr += f" | {jinja_filter}"
    return "{{ " + expr + " }}"


def explain_smarty(source: str) -> SmartyTranslation:
    """Translate the simple Smarty forms and list every change, for the page to show."""
    pieces: list[str] = []
    changes: list[SmartyChange] = []
    last = 0
    for m in _SMARTY_VAR.finditer(source):
        jinja = _translate_tag(m)
        if jinja is None:
            continue  # left as it is; `prepare` reports it with its position
        line, column = _line_col(source, m.start())
        pieces += [source[last : m.start()], jinja]
        changes.append(SmartyChange(m.group(0), jinja, line, column, m.start()))
        last = m.end()
    pieces.append(source[last:])
    return SmartyTranslation(source, "".join(pieces), tuple(changes))


def translate_smarty(source: str) -> str:
    """The template with its simple Smarty tags (``{$field|default:'x'}``) written as Jinja2."""
    return explain_smarty(source).jinja_source


# --------------------------------------------------------------------------------------------
# Positions
# --------------------------------------------------------------------------------------------


_NEWLINES = re.compile(r"\r\n?")


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of an offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass
class _Token:
    lineno: int
    kind: str
    raw: str
    offset: int


class _Located:
    """Tokenises the Jinja source while remembering where every token starts.

    Jinja's lexer reports only line numbers, so the positions are recovered by finding each
    token's raw text in the source from the previous token's end (tokens come in order).
    """

    def __init__(self, source: str) -> None:
        self.source = _NEWLINES.sub("\n", source)  # as Jinja's lexer normalises it
        self.tokens: list[_Token] = []
        self.end = 0  # where the last good token ended
        self.lexer_failed = False
        self._by_id: dict[int, int] = {}

    def _raw(self) -> Iterator[tuple[int, str, str]]:
        try:
            for lineno, kind, raw in _ENV.lexer.tokeniter(self.source, None):
                found = self.source.find(raw, self.end) if raw else -1
                offset = found if found >= 0 else self.end
                self.tokens.append(_Token(lineno, kind, raw, offset))
                self.end = offset + len(raw)
                yield lineno, kind, raw
        except TemplateSyntaxError:
            self.lexer_failed = True
            raise

    def stream(self) -> TokenStream:
        def tagged() -> Iterator[Any]:
            for token in _ENV.lexer.wrap(self._raw()):
                self._by_id[id(token)] = self.tokens[-1].offset
                yield token

        return TokenStream(tagged(), None, None)

    def offset_of_token(self, token: Any) -> int | None:
        return self._by_id.get(id(token))

    def next_char_offset(self) -> int:
        """Offset of the first non-blank character after the last good token."""
        rest = self.source[self.end :]
        return self.end + (len(rest) - len(rest.lstrip()))

    def first_name(self, name: str) -> int | None:
        for t in self.tokens:
            if t.kind == "name" and t.raw == name:
                return t.offset
            if t.kind == "string" and t.raw[1:-1] == name:
                return t.offset
        return None


# --------------------------------------------------------------------------------------------
# Compiled templates
# --------------------------------------------------------------------------------------------

# ("text", literal) or ("field", name, default text or None)
_Part = tuple[str, str] | tuple[str, str, str | None]


@dataclass(frozen=True, eq=False)
class CompiledTemplate:
    """A checked template, ready to render for one contact or for a whole selection."""

    source: str
    jinja_source: str
    translated: bool
    fields: tuple[str, ...]
    is_plain: bool
    smarty: SmartyTranslation = field(repr=False)
    _template: Template = field(repr=False)
    _plan: tuple[_Part, ...] | None = field(repr=False, default=None)

    # -- one contact -------------------------------------------------------------------------

    def render(self, contact: Mapping[str, Any]) -> str:
        """The message for one contact (a dict, or a pandas row)."""
        self._check_fields(contact, contact.keys())
        values = {f: _to_template_value(contact[f]) for f in self.fields}
        return self._render_values(values)

    def _check_fields(self, available: Container[Any], names: Iterable[Any]) -> None:
        """Refuse a contact or a frame that lacks a field the template uses, naming the closest
        of its ``names``, before anything is rendered (one error, not one per row)."""
        missing = [f for f in self.fields if f not in available]
        if missing:
            raise TemplateError(
                f"Unknown field '{missing[0]}'",
                field=missing[0],
                kind="field",
                suggestions=_suggest(missing[0], [str(n) for n in names]),
            )

    def _render_values(self, values: dict[str, Any], row: Any = None) -> str:
        try:
            return self._template.render(values)
        except _FilterValueError as exc:
            culprit = next((f for f, v in values.items() if _same(v, exc.value)), None)
            message = exc.message + (f" in field '{culprit}'" if culprit else "")
            raise _render_error(message, exc, row, field=culprit) from None
        except SecurityError as exc:
            raise _render_error(
                f"Not allowed in a message template: {exc}", exc, row, kind="forbidden"
            ) from None
        except TemplateError:
            raise
        except (
            JinjaError,
            TypeError,
            ValueError,
            ArithmeticError,
            LookupError,
            AttributeError,
            RecursionError,
            AssertionError,
        ) as exc:
            raise _render_error(f"Could not render the template: {exc}", exc, row) from None

    # -- a whole selection -------------------------------------------------------------------

    def render_many(
        self,
        df: pd.DataFrame,
        progress: Progress | None = None,
        *,
        engine: Literal["auto", "jinja"] = "auto",
    ) -> pd.Series:
        """The message for every row of ``df`` (same index, str dtype).

        Plain templates are concatenated column-wise; others (or ``engine="jinja"``) render
        row by row, calling ``progress(done, total)`` about a hundred times on the way.
        """
        self._check_fields(df.columns, df.columns)
        if self._plan is not None and engine == "auto":
            out = _concatenate(self._plan, df)
            if progress is not None:
                progress(len(df), len(df))
            return out
        return self._render_rows(df, progress)

    def _render_rows(self, df: pd.DataFrame, progress: Progress | None) -> pd.Series:
        total = len(df)
        columns = {f: [_to_template_value(v) for v in df[f].tolist()] for f in self.fields}
        labels = df.index
        step = max(1, total // 100)
        out: list[str] = [""] * total
        for i in range(total):
            values = {f: col[i] for f, col in columns.items()}
            out[i] = self._render_values(values, row=labels[i])
            if progress is not None and (i + 1) % step == 0:
                progress(i + 1, total)
        if progress is not None and (total == 0 or total % step):
            progress(total, total)
        return pd.Series(out, index=df.index, dtype="str")


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:
        return False


def _template_line(exc: BaseException) -> int | None:
    """The template line of a rendering error (Jinja rewrites the traceback to show it)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
    return frames[-1].lineno if frames else None


def _render_error(
    message: str, exc: BaseException, row: Any, *, kind: str = "render", field: str | None = None
) -> TemplateError:
    """A failure while rendering, placed where it happened: the template line and the row."""
    return TemplateError(message, line=_template_line(exc), field=field, kind=kind, row=row)


def _concatenate(plan: tuple[_Part, ...], df: pd.DataFrame) -> pd.Series:
    """Render a plain template for every row by joining Arrow string columns."""
    large = pa.large_string()
    formatted: dict[str, pd.Series] = {}
    pieces: list[Any] = []
    for part in plan:
        if part[0] == "text":
            pieces.append(pa.scalar(part[1], large))
            continue
        name, fallback = part[1], part[2]  # type: ignore[misc]
        if name not in formatted:
            formatted[name] = _format_column(df[name])
        col = formatted[name]
        if fallback is not None:
            col = col.mask(col.str.strip(_BLANK) == "", fallback)
        array = pa.array(col, type=large)
        if isinstance(array, pa.ChunkedArray):  # a column read in several Arrow chunks
            array = array.combine_chunks()
        pieces.append(array)
    if not any(isinstance(p, pa.Array) for p in pieces):
        text = "".join(p.as_py() for p in pieces)
        return pd.Series([text] * len(df), index=df.index, dtype="str")
    joined = pc.binary_join_element_wise(*pieces, pa.scalar("", large))
    return pd.Series(joined, index=df.index, dtype="str")


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------

_SPECIAL_NAMES = frozenset({"self", "loop", "caller", "varargs", "kwargs", *DEFAULT_NAMESPACE})


def prepare(source: str, fields: Sequence[str]) -> CompiledTemplate:
    """Translate Smarty, parse, check every referenced field exists, and compile.

    Raises TemplateError (with line, column, field and suggestions) for anything that would
    fail or is not allowed, so a mailing never starts with a template that cannot render.
    """
    return _prepare(str(source), tuple(str(f) for f in fields))


def render(source: str, contact: Mapping[str, Any]) -> str:
    """Render ``source`` for one contact; the contact's keys are the available fields."""
    return prepare(source, [str(k) for k in contact.keys()]).render(contact)  # noqa: SIM118


@lru_cache(maxsize=256)
def _prepare(source: str, fields: tuple[str, ...]) -> CompiledTemplate:
    # Positions are computed on the text as Jinja's lexer sees it (newlines as "\n").
    smarty = explain_smarty(_NEWLINES.sub("\n", source))
    jinja_source = smarty.jinja_source
    located = _Located(jinja_source)

    def where(offset: int | None) -> tuple[int | None, int | None]:
        if offset is None:
            return None, None
        return _line_col(smarty.source, smarty.original_offset(offset))

    leftover = _SMARTY_LEFTOVER.search(jinja_source)
    if leftover:
        line, column = where(leftover.start())
        raise TemplateError(
            f"The Smarty code {leftover.group(0)!r} has no automatic translation; write it in "
            'Jinja2, e.g. {{ field | default("x") }} or {% if field %}...{% endif %}',
            line=line,
            column=column,
            kind="smarty",
        )

    parser = Parser(_ENV, "")  # its token stream is replaced by one that records positions
    try:
        parser.stream = located.stream()
        ast = parser.parse()
    except TemplateSyntaxError as exc:
        raise _syntax_error(exc, parser, located, where) from None

    _check_forbidden(ast, located, where)

    try:
        referenced = find_undeclared_variables(ast)
        code = _ENV.compile(ast)
    except TemplateAssertionError as exc:  # e.g. "No filter named 'uper'"
        raise _assertion_error(exc, located, where) from None

    unknown = sorted(
        referenced - set(fields),
        key=lambda n: (located.first_name(n) is None, located.first_name(n) or 0),
    )
    if unknown:
        name = unknown[0]
        line, column = where(located.first_name(name))
        if name in _SPECIAL_NAMES:
            raise TemplateError(
                f"'{name}' is not available in message templates (only contact fields are)",
                line=line,
                column=column,
                field=name,
                kind="forbidden",
            )
        raise TemplateError(
            f"Unknown field '{name}'",
            line=line,
            column=column,
            field=name,
            suggestions=_suggest(name, fields),
            kind="field",
        )

    template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)

    ordered = tuple(sorted(referenced, key=lambda n: located.first_name(n) or 0))
    plan = _plain_plan(ast)
    return CompiledTemplate(
        source=source,
        jinja_source=jinja_source,
        translated=smarty.translated,
        fields=ordered,
        is_plain=plan is not None,
        smarty=smarty,
        _template=template,
        _plan=plan,
    )


# An offset in the Jinja source -> (line, column) in the text the user typed.
_Where = Callable[[int | None], tuple[int | None, int | None]]


def _syntax_error(
    exc: TemplateSyntaxError, parser: Parser, located: _Located, where: _Where
) -> TemplateError:
    message = exc.message or "invalid template"
    char_at = re.search(r" at (\d+)$", message)
    current = parser.stream.current
    if char_at:  # the lexer names the offset of a character it cannot read
        offset: int | None = int(char_at.group(1))
        message = message[: char_at.start()]
    elif located.lexer_failed:
        # e.g. an unbalanced brace: the problem is where the lexer stopped reading.
        offset = located.next_char_offset()
    elif current.type == "eof":
        offset = len(located.source)
    else:
        offset = located.offset_of_token(current)
    line, column = where(offset)
    return TemplateError(
        f"Syntax error: {message}", line=line or exc.lineno, column=column, kind="syntax"
    )


def _assertion_error(
    exc: TemplateAssertionError, located: _Located, where: _Where
) -> TemplateError:
    message = exc.message or "invalid template"
    m = re.search(r"No (filter|test) named '(\w+)'", message)
    if not m:
        return TemplateError(message, line=exc.lineno, kind="syntax")
    kind, name = m.groups()
    known = sorted(_ENV.filters if kind == "filter" else _ENV.tests)
    line, column = where(located.first_name(name))
    return TemplateError(
        f"Unknown {kind} '{name}'",
        line=line or exc.lineno,
        column=column,
        suggestions=_suggest(name, known),
        kind="syntax",
    )


_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Macro: "{% macro %}",
    nodes.CallBlock: "{% call %}",
}


def _check_forbidden(ast: nodes.Template, located: _Located, where: _Where) -> None:
    """Refuse, before anything runs, what a message template never needs."""
    for node in ast.find_all(tuple(_FORBIDDEN_TAGS)):
        tag = _FORBIDDEN_TAGS[type(node)]
        word = tag.split()[1]
        line, column = where(located.first_name(word))
        raise TemplateError(
            f"{tag} is not allowed: a message template cannot use other templates or define macros",
            line=line or node.lineno,
            column=column,
            kind="forbidden",
        )
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if not (isinstance(arg, nodes.Const) and isinstance(arg.value, str)):
                continue
            name = arg.value
        else:
            name = node.name
            if name != "self":
                continue
        if name.startswith("_") or name == "self":
            line, column = where(located.first_name(name))
            raise TemplateError(
                f"Access to '{name}' is not allowed in a message template",
                line=line or node.lineno,
                column=column,
                kind="forbidden",
            )


def _plain_plan(ast: nodes.Template) -> tuple[_Part, ...] | None:
    """The template as text and field pieces, if it is nothing more than that."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None if ast.body else ()
    parts: list[_Part] = []
    for node in ast.body[0].nodes:
        if isinstance(node, nodes.TemplateData):
            parts.append(("text", node.data))
        elif isinstance(node, nodes.Const):
            parts.append(("text", _format_value(node.value)))
        elif isinstance(node, nodes.Name):
            parts.append(("field", node.name, None))
        elif (
            isinstance(node, nodes.Filter)
            and node.name in ("default", "d")
            and isinstance(node.node, nodes.Name)
            and len(node.args) == 1
            and isinstance(node.args[0], nodes.Const)
            and not node.kwargs
            and node.dyn_args is None
            and node.dyn_kwargs is None
            and _plain_const(node.args[0].value)
        ):
            parts.append(("field", node.node.name, _format_value(node.args[0].value)))
        else:
            return None
    return tuple(parts)


def _plain_const(value: Any) -> bool:
    return isinstance(value, str | int | float) and not (
        isinstance(value, float) and math.isnan(value)
    )
