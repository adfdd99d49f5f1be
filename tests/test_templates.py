"""Message templates: sandboxing, errors people can act on, Smarty, and the fast path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.templates import (
    TemplateError,
    explain_smarty,
    prepare,
    render,
    translate_smarty,
)

FIELDS = ["first_name", "last_name", "city", "birth_date", "amount", "key"]


def contact(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "first_name": "anna",
        "last_name": None,
        "city": "Utrecht",
        "birth_date": dt.date(1990, 3, 5),
        "amount": 3.0,
        "key": "__class__",
    }
    base.update(values)
    return base


# --- the sandbox ------------------------------------------------------------------------------

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ first_name.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self }}",
    "{{ first_name['__class__'] }}",
    "{% set x = first_name.__class__ %}{{ x }}",
    "{{ range(10) }}",
    "{% include 'secrets.txt' %}",
    "{% import 'macros.txt' as m %}",
    "{% from 'macros.txt' import m %}",
    "{% extends 'base.txt' %}",
    "{% macro m() %}x{% endmacro %}{{ m() }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused_before_rendering(source: str) -> None:
    with pytest.raises(TemplateError) as err:
        prepare(source, FIELDS)
    assert err.value.kind == "forbidden"
    assert "not allowed" in str(err.value) or "not available" in str(err.value)
    assert err.value.line == 1


def test_attr_filter_is_not_available() -> None:
    with pytest.raises(TemplateError, match="Unknown filter 'attr'"):
        prepare("{{ first_name | attr('__class__') }}", FIELDS)


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name[key] }}",  # the attribute name comes from contact data
        "{{ '{0.__class__}'.format(first_name) }}",
        "{{ 'x' * 1000000 }}",
        "{{ amount ** 100000 }}",
    ],
)
def test_runtime_sandbox_refuses_what_static_checks_cannot_see(source: str) -> None:
    compiled = prepare(source, FIELDS)
    with pytest.raises(TemplateError) as err:
        compiled.render(contact())
    assert err.value.kind == "forbidden"


def test_escape_payload_has_no_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"
    with pytest.raises(TemplateError):
        render(source, contact())
    assert not marker.exists()


def test_method_calls_on_values_still_work() -> None:
    assert render("{{ first_name.upper() }}", contact()) == "ANNA"


# --- errors -------------------------------------------------------------------------------------


def test_unknown_field_names_it_and_suggests_the_closest() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("Hi {{ frist_name }}", FIELDS)
    e = err.value
    assert str(e) == "Unknown field 'frist_name' on line 1; did you mean 'first_name'?"
    assert (e.field, e.line, e.column, e.suggestions) == ("frist_name", 1, 7, ["first_name"])
    assert e.kind == "field"


def test_unknown_field_suggestion_ignores_case_and_reports_the_first_unknown() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("Hallo\n{{ voornaam }} {{ zzz }}", ["Voornaam", "Achternaam"])
    assert err.value.field == "voornaam"
    assert err.value.line == 2
    assert err.value.suggestions == ["Voornaam"]


def test_unknown_field_without_anything_close_has_no_suggestion() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("{{ qqq }}", FIELDS)
    assert err.value.suggestions == []
    assert str(err.value) == "Unknown field 'qqq' on line 1."


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        ("Hi {{ first_name }", 1, 18),  # unbalanced: the stray brace
        ("Line one\nHi {{ first_name !}}", 2, 18),  # a character the lexer cannot read
        ("a\n\n  {{ first_name city }}", 3, 17),  # the unexpected token
        ("{{ first_name(}}", 1, 15),
        ("{% endif %}", 1, 4),
        ("x\n{% if city %}hello", 2, 19),  # unclosed block: just past the end
    ],
)
def test_syntax_errors_give_line_and_column(source: str, line: int, column: int) -> None:
    with pytest.raises(TemplateError) as err:
        prepare(source, FIELDS)
    assert (err.value.line, err.value.column) == (line, column)
    assert err.value.kind == "syntax"
    assert f"line {line}, column {column}" in str(err.value)


def test_unknown_filter_suggests_the_right_one() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("{{ first_name | uper }}", FIELDS)
    assert err.value.suggestions == ["upper"]
    assert (err.value.line, err.value.column) == (1, 17)


def test_render_error_names_field_and_value() -> None:
    compiled = prepare("{{ city | date }}", FIELDS)
    with pytest.raises(TemplateError) as err:
        compiled.render(contact(city="Utrecht"))
    assert err.value.field == "city"
    assert "'Utrecht'" in str(err.value)
    assert err.value.kind == "render"


def test_render_many_error_names_the_row() -> None:
    df = pd.DataFrame({"city": ["2024-01-02", "soon"]}, index=["a", "b"])
    with pytest.raises(TemplateError) as err:
        prepare("{{ city | date }}", ["city"]).render_many(df)
    assert err.value.row == "b"
    assert "row b" in str(err.value)


# --- values, filters ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, ""),
        (np.nan, ""),
        (pd.NA, ""),
        (pd.NaT, ""),
        (3.0, "3"),
        (np.float64(3.0), "3"),
        (2.5, "2.5"),
        (np.int64(42), "42"),
        (1e20, "1e+20"),
        (dt.date(2024, 1, 31), "2024-01-31"),
        (pd.Timestamp("2024-01-31"), "2024-01-31"),
        (pd.Timestamp("2024-01-31 14:30"), "2024-01-31 14:30"),
        (dt.datetime(2024, 1, 31, 14, 30, 5), "2024-01-31 14:30:05"),
        ("Zoë 😀", "Zoë 😀"),
    ],
)
def test_values_show_as_an_analyst_expects(value: object, shown: str) -> None:
    assert render("{{ v }}", {"v": value}) == shown


@pytest.mark.parametrize("empty", [None, np.nan, pd.NA, "", "   "])
def test_default_applies_to_missing_and_empty_values(empty: object) -> None:
    assert render('Beste {{ first_name | default("klant") }}', contact(first_name=empty)) == (
        "Beste klant"
    )


def test_default_keeps_real_values_including_zero() -> None:
    assert render('{{ n | default("x") }}', {"n": 0}) == "0"
    assert render('{{ n | default("x", true) }}', {"n": 0}) == "x"
    assert render('{{ n | d("x") }}', {"n": "Bram"}) == "Bram"


def test_missing_values_pass_through_filters_as_empty() -> None:
    assert render("[{{ v | upper }}][{{ v | title }}]", {"v": None}) == "[][]"


@pytest.mark.parametrize(
    "value",
    [
        dt.date(1990, 3, 5),
        dt.datetime(1990, 3, 5, 8, 0),
        pd.Timestamp("1990-03-05"),
        "1990-03-05",
        "1990-03-05T08:00:00",
    ],
)
def test_date_filter_reads_dates_timestamps_and_iso_text(value: object) -> None:
    assert render('{{ d | date("%d-%m-%Y") }}', {"d": value}) == "05-03-1990"


def test_date_filter_defaults_and_names() -> None:
    d = {"d": dt.date(2024, 3, 5)}
    assert render("{{ d | date }}", d) == "05-03-2024"
    assert render('{{ d | date("%d %B") }}', d) == "05 March"
    assert render('{{ d | date("%A %d %B", "nl") }}', d) == "dinsdag 05 maart"
    assert render('{{ d | date("%a %d %b %%B", "nl") }}', d) == "di 05 mrt %B"
    assert render("{{ d | date }}", {"d": None}) == ""


def test_sms_filters() -> None:
    c = {"n": "jan de VRIES", "t": "Een hele lange zin over niets"}
    assert render("{{ n | title }}", c) == "Jan De Vries"
    assert render("{{ n | upper }}", c) == "JAN DE VRIES"
    assert render("{{ n | ucfirst }}", c) == "Jan de VRIES"
    assert render("{{ t | truncate(15) }}", c) == "Een hele..."  # at most 15 characters


def test_statements_and_trailing_newline() -> None:
    source = "{% if city %}In {{ city }}{% else %}Overal{% endif %}\n"
    assert render(source, contact()) == "In Utrecht\n"
    assert render(source, contact(city=None)) == "Overal\n"


# --- Smarty -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smarty", "jinja"),
    [
        ("Hoi {$first_name}!", "Hoi {{ first_name }}!"),
        ("{$first_name|default:'klant'}", '{{ first_name | default("klant") }}'),
        ('{$first_name|default:"it\'s"}', '{{ first_name | default("it\'s") }}'),
        ("{$profile.Voornaam|upper}", "{{ Voornaam | upper }}"),
        ("{$first_name|ucfirst}", "{{ first_name | ucfirst }}"),
        ("{$first_name|lower}", "{{ first_name | lower }}"),
        ("{$city|truncate:20}", '{{ city | truncate(20, false, "...") }}'),
        ("{$d|date_format:'%d-%m'}", '{{ d | date("%d-%m") }}'),
        ("{{ city }} { not smarty }", "{{ city }} { not smarty }"),
    ],
)
def test_smarty_translation(smarty: str, jinja: str) -> None:
    assert translate_smarty(smarty) == jinja


def test_smarty_translation_is_shown_and_renders() -> None:
    source = "Beste {$profile.first_name|default:'klant'},\nuw order in {$city|upper}."
    explained = explain_smarty(source)
    assert explained.translated
    assert [(c.smarty, c.line, c.column) for c in explained.changes] == [
        ("{$profile.first_name|default:'klant'}", 1, 7),
        ("{$city|upper}", 2, 13),
    ]
    compiled = prepare(source, FIELDS)
    assert compiled.translated
    assert compiled.source == source
    assert compiled.jinja_source == explained.jinja_source
    assert compiled.render(contact(first_name=None)) == "Beste klant,\nuw order in UTRECHT."
    assert not prepare("Hi {{ city }}", FIELDS).translated


def test_untranslatable_smarty_is_reported_where_it_stands() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("Hoi\nx {if $city}y{/if}", FIELDS)
    assert (err.value.kind, err.value.line, err.value.column) == ("smarty", 2, 3)
    with pytest.raises(TemplateError, match="no automatic translation"):
        prepare("{$city|escape:'html'}", FIELDS)


def test_error_positions_refer_to_what_the_user_typed() -> None:
    with pytest.raises(TemplateError) as err:
        prepare("{$first_name|upper} {{ frist_name }}", FIELDS)
    assert (err.value.line, err.value.column) == (1, 24)


# --- whole selections ----------------------------------------------------------------------------


def test_plain_templates_are_detected() -> None:
    assert prepare("Hi {{ first_name }}, {{ city | default('x') }}!", FIELDS).is_plain
    assert prepare("{$first_name|default:'klant'}", FIELDS).is_plain
    assert prepare("No fields at all", FIELDS).is_plain
    assert not prepare("Hi {{ first_name | title }}", FIELDS).is_plain
    assert not prepare("{% if city %}x{% endif %}", FIELDS).is_plain
    assert prepare("{{ city }} {{ first_name }} {{ city }}", FIELDS).fields == (
        "city",
        "first_name",
    )


@pytest.mark.parametrize(
    "source", ["Hi {{ first_name }} in {{ city }}", "Hi {{ first_name | title }}"]
)
def test_render_many_keeps_index_and_reports_progress(source: str) -> None:
    df = pd.DataFrame(
        {"first_name": ["Anna", None, "Chloë"], "city": ["Utrecht", "Gent", None]},
        index=pd.Index([30, 10, 20], name="row_id"),
    )
    seen: list[tuple[int, int]] = []
    out = prepare(source, FIELDS).render_many(df, lambda done, total: seen.append((done, total)))
    assert out.index.equals(df.index)
    assert out.dtype == "str"
    assert seen[-1] == (3, 3)
    assert out.loc[10].startswith("Hi ")


def test_render_many_plain_output() -> None:
    df = pd.DataFrame(
        {"first_name": ["Anna", None, "Chloë"], "city": ["Utrecht", "Gent", None]},
        index=[30, 10, 20],
    )
    out = prepare("Hi {{ first_name }} in {{ city }}", FIELDS).render_many(df)
    assert out.tolist() == ["Hi Anna in Utrecht", "Hi  in Gent", "Hi Chloë in "]
    assert out.loc[20] == "Hi Chloë in "


def test_row_by_row_progress_is_regular() -> None:
    df = pd.DataFrame({"first_name": [f"n{i}" for i in range(1050)]})
    seen: list[tuple[int, int]] = []
    out = prepare("{{ first_name | upper }}", FIELDS).render_many(
        df, lambda done, total: seen.append((done, total))
    )
    assert out.iloc[-1] == "N1049"
    assert 50 <= len(seen) <= 110
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})
    assert seen[-1] == (1050, 1050)


def test_render_many_on_empty_frame_and_unknown_column() -> None:
    compiled = prepare("Hi {{ first_name }}", FIELDS)
    assert compiled.render_many(pd.DataFrame({"first_name": []})).tolist() == []
    with pytest.raises(TemplateError, match="'first_name'; did you mean 'firstname'"):
        compiled.render_many(pd.DataFrame({"firstname": ["x"]}))


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
BLANKS = st.sampled_from(["", " ", "  \t", "\n"])


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 12))
    col = lambda s: draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    floats = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**16), 10**16).map(float),
        st.sampled_from([0.5, -0.0, 3.0, 1e15, 1e-7]),
    )
    stamps = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))
    stamps = stamps | stamps.map(lambda d: d.replace(hour=0, minute=0, second=0, microsecond=0))
    stamps = stamps | stamps.map(lambda d: d.replace(second=0, microsecond=0))
    df = pd.DataFrame(
        {
            "text": pd.Series(col(st.none() | TEXT | BLANKS), dtype="str"),
            "obj": pd.Series(col(st.none() | TEXT | st.integers() | st.dates()), dtype=object),
            "flt": pd.Series(col(floats), dtype="float64"),
            "nint": pd.Series(col(st.none() | st.integers(-(2**63), 2**63 - 1)), dtype="Int64"),
            "int": pd.Series(col(st.integers(-(2**63), 2**63 - 1)), dtype="int64"),
            "ts": pd.Series(col(st.none() | stamps), dtype="datetime64[us]"),
            "flag": pd.Series(col(st.booleans()), dtype=bool),
        }
    )
    df.index = pd.Index(draw(st.permutations(range(100, 100 + n))))
    assert df.notna().any().any() or n == 0
    return df


PLAIN = (
    "Hi {{ text }}|{{ text | default('klant') }}|{{ obj }}|{{ obj | d('-') }}|{{ flt }}|"
    "{{ flt | default(0) }}|{{ nint }}|{{ int }}|{{ ts }}|{{ ts | default('?') }}|{{ flag }}"
    "|{{ 'é' }}|{{ 3.0 }}\n"
)


@settings(max_examples=150, deadline=None)
@given(frames())
def test_fast_path_equals_jinja_row_by_row(df: pd.DataFrame) -> None:
    compiled = prepare(PLAIN, list(df.columns))
    assert compiled.is_plain
    fast = compiled.render_many(df)
    slow = compiled.render_many(df, engine="jinja")
    pd.testing.assert_series_equal(fast, slow)
    assert fast.index.equals(df.index)
    first = {c: df[c].iloc[0] for c in df.columns}
    assert fast.iloc[0] == compiled.render(first)


def test_plain_fast_path_handles_columns_in_several_arrow_chunks():
    """A column read in several Arrow chunks (large imports) renders like any other."""
    import pyarrow as pa

    from core.templates import prepare

    frame = pa.table({"a": pa.chunked_array([["x"], ["y"]])}).to_pandas()
    assert list(prepare("Hi {{ a }}", ["a"]).render_many(frame)) == ["Hi x", "Hi y"]
