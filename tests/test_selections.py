"""Selections: spec → DuckDB SQL and the pandas oracle, checked on real DuckDB tables.

Every operator is run on a hand-built contacts table (the returned rows are checked, not
the SQL text), the oracle must return the same rows, and a hypothesis property compares
both engines on random frames and random nested specs.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.selections import (
    OPERATORS,
    SelectionError,
    column_kind,
    compile_chain,
    compile_spec,
    describe,
    filter_frame,
    operators_for,
    validate_spec,
)

TODAY = date(2024, 1, 31)

ODD = {
    "first name": "VARCHAR",
    'say "hi"': "VARCHAR",
    "straße": "VARCHAR",
    "select": "VARCHAR",
    "😀": "BIGINT",
    'x"); DROP TABLE contacts; --': "VARCHAR",
}

COLUMNS: dict[str, str] = {
    "id": "BIGINT",
    "city": "VARCHAR",
    "age": "BIGINT",
    "score": "DOUBLE",
    "age_text": "VARCHAR",
    "birth": "DATE",
    "seen": "TIMESTAMP",
    "vip": "BOOLEAN",
    "joined_text": "VARCHAR",
    "_e164": "VARCHAR",
    "_country": "VARCHAR",
    "_number_type": "VARCHAR",
    "_phone_status": "VARCHAR",
    **ODD,
}

NAN = float("nan")
D, T = date, datetime
# fmt: off
ROWS: list[tuple[Any, ...]] = [
    # id, city, age, score, age_text, birth, seen, vip, joined_text,
    # _e164, _country, _number_type, _phone_status, then the odd columns
    (1, "Amsterdam", 30, 1.5, "31", D(1990, 2, 28), T(2024, 1, 31, 23, 59), True, "2024-01-31",
     "+31612345601", "NL", "mobile", "valid_mobile", "Anna", "yes", "Hauptstraße", "a", 1, "p"),
    (2, "Rotterdam", 45, NAN, " 4.5e1 ", D(1992, 2, 29), T(2024, 1, 1), False, "2024-1-5 10:00",
     "+31612345602", "NL", "mobile", "valid_mobile", "Bob", 'he said "hi"', None, "b", 2, None),
    (3, "amsterdam ", 17, None, "n/a", D(2000, 1, 31), T(2023, 12, 31, 12), None, "2024/01/29",
     "+32470000003", "BE", "mobile", "valid_mobile", "anna", None, "Straße", "c", 3, None),
    (4, None, None, -2.0, None, None, None, True, None,
     "", None, None, "invalid", None, None, None, None, None, None),
    (5, "", 62, 1e10, "", D(1960, 7, 4), T(2020, 6, 1), False, "2023-02-29",
     "+31201234567", "NL", "fixed_line", "not_mobile", "Émile", None, None, None, None, None),
    (6, "100% Dam_x", 30, 0.0, "+7", D(2010, 1, 31), T(2024, 1, 30, 8), True,
     " 2024-01-30T08:00:00", "+447700900006", "GB", "mobile", "valid_mobile", None, None, None,
     None, None, None),
    (7, "İstanbul", 51, 2.5, "50.0", D(1984, 12, 1), T(2024, 1, 25), False, "2024-01-25 ",
     "+905320000007", "TR", "mobile", "valid_mobile", None, None, None, None, None, None),
    (8, "  \t ", 29, None, "0x1F", D(1996, 2, 29), T(2023, 2, 28), None, "31-01-2024",
     None, None, None, None, None, None, None, None, None, None),
]
# fmt: on
ALL_IDS = {1, 2, 3, 4, 5, 6, 7, 8}

HISTORY = [
    ("+31612345601", 1, "delivered", False),
    ("+31612345602", 1, "failed", False),
    ("+32470000003", 1, "skipped", False),
    ("+31612345601", 2, "undelivered", True),
    ("+447700900006", 2, "delivered", True),
    ("+905320000007", 2, "queued", None),
    ("", 1, "delivered", True),  # an empty number never matches contact 4's empty _e164
    (None, 2, "delivered", False),
]


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path: Path = tmp_path_factory.mktemp("selections") / "contacts.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE contacts (" + ", ".join(f"{q(n)} {t}" for n, t in COLUMNS.items()) + ")"
    )
    con.executemany("INSERT INTO contacts VALUES (" + ", ".join("?" * len(COLUMNS)) + ")", ROWS)
    con.execute(
        "CREATE TABLE history (e164 VARCHAR, mailing_id BIGINT, status VARCHAR, "
        "replied_stop BOOLEAN)"
    )
    con.executemany("INSERT INTO history VALUES (?, ?, ?, ?)", HISTORY)
    con.execute("CREATE VIEW sms_history AS SELECT * FROM history")
    yield con
    con.close()


@pytest.fixture(scope="module")
def frames(db: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The contacts and the history as the storage layer reads them back from DuckDB."""
    return (
        db.execute("SELECT * FROM contacts").df(),
        db.execute("SELECT * FROM history").df(),
    )


def sql_ids(con: duckdb.DuckDBPyConnection, spec: Any, today: date = TODAY) -> set[int]:
    where, params = compile_spec(spec, COLUMNS, today=today)
    return {r[0] for r in con.execute(f"SELECT id FROM contacts WHERE {where}", params).fetchall()}


def frame_ids(frames: tuple[pd.DataFrame, pd.DataFrame], spec: Any, today: date = TODAY) -> set:
    df, history = frames
    mask = filter_frame(df, spec, COLUMNS, today=today, history=history)
    assert mask.index.equals(df.index) and mask.dtype == bool
    return set(df.loc[mask, "id"].tolist())


def c(field: str, op: str, value: Any = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"field": field, "op": op}
    if value is not None or op in ("delivered", "failed", "replied_stop"):
        cond["value"] = value
    return cond


def test_the_fixture_holds_a_real_nan_and_real_nulls(db: duckdb.DuckDBPyConnection) -> None:
    assert db.execute("SELECT count(*) FROM contacts WHERE isnan(score)").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM contacts WHERE score IS NULL").fetchone() == (2,)


OPERATOR_CASES: list[tuple[dict[str, Any], set[int]]] = [
    # eq / ne: exact, in the column's own type; NULL is "not equal"
    (c("city", "eq", "Amsterdam"), {1}),
    (c("age", "eq", 30), {1, 6}),
    (c("age", "eq", "30"), {1, 6}),
    (c("score", "eq", 2.5), {7}),
    (c("vip", "eq", True), {1, 4, 6}),
    (c("vip", "eq", "false"), {2, 5, 7}),
    (c("birth", "eq", "1990-02-28"), {1}),
    (c("seen", "eq", "2024-01-31"), {1}),
    (c("age_text", "eq", 31), {1}),
    (c("city", "ne", "Amsterdam"), ALL_IDS - {1}),
    (c("age", "ne", 30), ALL_IDS - {1, 6}),
    (c("vip", "ne", True), {2, 3, 5, 7, 8}),
    # case-insensitive text matching, with LIKE wildcards taken literally
    (c("city", "contains", "DAM"), {1, 2, 3, 6}),
    (c("city", "contains", "%"), {6}),
    (c("city", "contains", "_"), {6}),
    (c("city", "contains", "IST"), {7}),  # 'İ' lowercases to a plain 'i' on both sides
    (c("city", "starts_with", "ams"), {1, 3}),
    (c("city", "starts_with", "100%"), {6}),
    (c("city", "ends_with", "DAM"), {1, 2}),
    (c("straße", "contains", "STRASSE"), set()),  # no full case folding: ß stays ß
    (c("straße", "contains", "straße"), {1, 3}),
    # membership
    (c("city", "in", ["Amsterdam", "Rotterdam", "Utrecht"]), {1, 2}),
    (c("age", "in", [30, 45, 99]), {1, 2, 6}),
    (c("age", "in", [29.5, 51]), {7}),
    (c("birth", "in", ["2000-01-31", "2010-01-31"]), {3, 6}),
    (c("city", "in", []), set()),
    (c("city", "not_in", ["Amsterdam", "Rotterdam"]), ALL_IDS - {1, 2}),
    (c("age", "not_in", [30]), ALL_IDS - {1, 6}),
    (c("city", "not_in", []), ALL_IDS),
    # ordering on numbers (NaN and NULL never compare)
    (c("age", "gt", 40), {2, 5, 7}),
    (c("age", "ge", 45), {2, 5, 7}),
    (c("age", "lt", 30), {3, 8}),
    (c("age", "le", 30), {1, 3, 6, 8}),
    (c("age", "between", [29, 45]), {1, 2, 6, 8}),
    (c("score", "gt", 1), {1, 5, 7}),
    (c("score", "lt", 1), {4, 6}),
    (c("score", "gt", 2.25), {5, 7}),
    # a number value reads a text column as numbers (TRY_CAST); junk is NULL
    (c("age_text", "gt", 30), {1, 2, 7}),
    (c("age_text", "le", "7"), {6}),
    (c("age_text", "between", [7, 45]), {1, 2, 6}),
    # dates, timestamps by calendar day, and ISO dates inside text
    (c("birth", "gt", "2000-01-01"), {3, 6}),
    (c("birth", "between", ["1990-01-01", "1999-12-31"]), {1, 2, 8}),
    (c("seen", "ge", "2024-01-30"), {1, 6}),
    (c("seen", "lt", "2024-01-01"), {3, 5, 8}),
    (c("seen", "le", "2024-01-31"), {1, 2, 3, 5, 6, 7, 8}),
    (c("joined_text", "gt", "2024-01-24"), {1, 6, 7}),
    (c("joined_text", "between", ["2024-01-01", "2024-01-25"]), {2, 7}),
    # emptiness: NULL or whitespace-only text; NaN is empty too
    (c("city", "empty"), {4, 5, 8}),
    (c("city", "not_empty"), {1, 2, 3, 6, 7}),
    (c("score", "empty"), {2, 3, 8}),
    (c("score", "not_empty"), {1, 4, 5, 6, 7}),
    (c("age", "empty"), {4}),
    (c("birth", "empty"), {4}),
    (c("seen", "not_empty"), ALL_IDS - {4}),
    (c("vip", "empty"), {3, 8}),
    (c("_e164", "empty"), {4, 8}),
    # regex (search)
    (c("city", "regex", "^[A-Z].*dam$"), {1, 2}),
    (c("city", "regex", "Dam_"), {6}),
    (c("age_text", "regex", "^[0-9]+$"), {1}),
    (c("city", "regex", r"\d"), {6}),
    # date-relative
    (c("birth", "birthday_today"), {3, 6}),
    (c("joined_text", "birthday_today"), {1}),
    (c("seen", "within_last_days", 0), {1}),
    (c("seen", "within_last_days", 1), {1, 6}),
    (c("seen", "within_last_days", 7), {1, 6, 7}),
    (c("seen", "within_last_days", "30"), {1, 2, 6, 7}),
    (c("birth", "within_last_days", 10000), {3, 6}),
    (c("joined_text", "within_last_days", 10), {1, 6, 7}),
    # derived phone fields are ordinary VARCHAR columns
    (c("_country", "eq", "NL"), {1, 2, 5}),
    (c("_number_type", "in", ["mobile"]), {1, 2, 3, 6, 7}),
    (c("_phone_status", "ne", "valid_mobile"), {4, 5, 8}),
    # SMS history
    (c("_sms", "received", 1), {1, 2}),
    (c("_sms", "received", 2), {1, 6, 7}),
    (c("_sms", "delivered", None), {1, 6}),
    (c("_sms", "delivered", 1), {1}),
    (c("_sms", "delivered", 2), {6}),
    (c("_sms", "failed", None), {1, 2}),
    (c("_sms", "failed", 1), {2}),
    (c("_sms", "failed", 2), {1}),
    (c("_sms", "replied_stop", None), {1, 6}),
    (c("_sms", "replied_stop", 1), set()),
    # groups
    ({"all": []}, ALL_IDS),
    ({"any": []}, set()),
    ({"all": [{"any": []}]}, set()),
    ({"any": [{"all": []}, c("age", "gt", 1000)]}, ALL_IDS),
    (
        {
            "all": [
                c("city", "contains", "dam"),
                {"any": [c("age", "gt", 40), c("vip", "eq", True)]},
            ]
        },
        {1, 2, 6},
    ),
    ({"any": [c("_country", "eq", "BE"), c("_sms", "delivered", 2)]}, {3, 6}),
]


@pytest.mark.parametrize(
    ("spec", "expected"), OPERATOR_CASES, ids=[json.dumps(s)[:70] for s, _ in OPERATOR_CASES]
)
def test_operator_returns_the_expected_rows_in_duckdb_and_pandas(
    db: duckdb.DuckDBPyConnection,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    spec: Any,
    expected: set[int],
) -> None:
    assert sql_ids(db, spec) == expected
    assert frame_ids(frames, spec) == expected


def test_every_operator_is_exercised() -> None:
    used = {cond["op"] for spec, _ in OPERATOR_CASES for cond in _conditions(spec)}
    assert used == set(OPERATORS)


def _conditions(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("all", "any"):
        if key in spec:
            for child in spec[key]:
                yield from _conditions(child)
            return
    yield spec


def test_conditions_are_two_valued_so_not_is_the_exact_complement(
    db: duckdb.DuckDBPyConnection,
) -> None:
    for spec, expected in OPERATOR_CASES:
        where, params = compile_spec(spec, COLUMNS, today=TODAY)
        rows = db.execute(f"SELECT id FROM contacts WHERE NOT ({where})", params).fetchall()
        assert {r[0] for r in rows} == ALL_IDS - expected, spec


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2023, 2, 28), {1, 2, 8}),  # common year: 29 Feb birthdays are on 28 Feb
        (date(2023, 3, 1), set()),
        (date(2024, 2, 28), {1}),  # leap year: they wait for the 29th
        (date(2024, 2, 29), {2, 8}),
        (date(2100, 2, 28), {1, 2, 8}),  # 2100 is not a leap year
    ],
)
def test_birthday_on_29_february_is_celebrated_on_28_february_in_common_years(
    db: duckdb.DuckDBPyConnection,
    frames: tuple[pd.DataFrame, pd.DataFrame],
    today: date,
    expected: set[int],
) -> None:
    spec = c("birth", "birthday_today")
    assert sql_ids(db, spec, today) == expected
    assert frame_ids(frames, spec, today) == expected


# Each text with what it reads as on both sides: only a leading ISO date is a date, and
# only a plain decimal is a number.
TRICKY_TEXTS: list[tuple[str | None, str | None]] = [
    ("2024-01-31", "date"),
    (" 2024-1-5", "date"),
    ("2024-01-05\n", "date"),
    ("2024-01-05T10:00", "date"),
    ("2024-01-05 10:00", "date"),
    ("\t2024-01-05", "date"),
    ("2024-01-05x", None),
    ("2024/01/05", None),
    ("2024.01.05", None),
    ("20240105", "number"),
    ("12024-01-01", None),
    ("-2024-01-01", None),
    ("infinity", None),
    ("0000-02-29", None),
    ("0001-02-29", None),
    ("2023-02-29", None),
    ("2024-13-01", None),
    ("31-01-2024", None),
    ("12", "number"),
    (" 12 ", "number"),
    ("\n12\t", "number"),
    ("+5", "number"),
    ("-0", "number"),
    (".5", "number"),
    ("5.", "number"),
    ("1e3", "number"),
    ("1E+05", "number"),
    ("1e400", "number"),
    ("0x1F", None),
    ("1_000", None),
    ("nan", None),
    ("inf", None),
    ("1 2", None),
    ("", None),
    (None, None),
]


def test_tricky_texts_read_as_dates_and_numbers_identically_on_both_sides() -> None:
    """Only a leading ISO date counts as a date and only a plain decimal as a number."""
    texts = [text for text, _ in TRICKY_TEXTS]
    df = pd.DataFrame({"id": range(len(texts)), "v": pd.Series(texts, dtype="str")})
    columns = {"id": "BIGINT", "v": "VARCHAR"}
    con = duckdb.connect()
    found = {}
    for spec in (
        c("v", "ge", "0001-01-01"),
        c("v", "lt", -1e300),
        c("v", "gt", -1e300),
        c("v", "birthday_today"),
        c("v", "within_last_days", 10000),
    ):
        where, params = compile_spec(spec, columns, today=date(2024, 1, 5))
        in_sql = {r[0] for r in con.execute(f"SELECT id FROM df WHERE {where}", params).fetchall()}
        mask = filter_frame(df, spec, columns, today=date(2024, 1, 5))
        assert set(df.loc[mask, "id"]) == in_sql, spec
        found[spec["op"]] = {texts[i] for i in in_sql}
    dates = {text for text, reads_as in TRICKY_TEXTS if reads_as == "date"}
    assert found["ge"] == dates
    assert found["gt"] == {text for text, reads_as in TRICKY_TEXTS if reads_as == "number"}
    assert found["birthday_today"] == dates - {"2024-01-31"}  # today is 5 January


def test_today_defaults_to_the_real_date() -> None:
    _, params = compile_spec(c("seen", "within_last_days", 3), COLUMNS)
    assert params[1] == date.today()


def test_odd_column_names_are_quoted_and_work(
    db: duckdb.DuckDBPyConnection, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    cases = [
        (c("first name", "eq", "Anna"), {1}),
        (c("first name", "starts_with", "ANN"), {1, 3}),
        (c('say "hi"', "contains", '"HI"'), {2}),
        (c("straße", "not_empty"), {1, 3}),
        (c("select", "in", ["a", "c"]), {1, 3}),
        (c("😀", "ge", 2), {2, 3}),
        (c('x"); DROP TABLE contacts; --', "eq", "p"), {1}),
    ]
    for spec, expected in cases:
        where, _ = compile_spec(spec, COLUMNS)
        assert '"' + spec["field"].replace('"', '""') + '"' in where
        assert sql_ids(db, spec) == expected
        assert frame_ids(frames, spec) == expected
    assert db.execute("SELECT count(*) FROM contacts").fetchone() == (8,)


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE contacts; --", "x' OR '1'='1", '") OR TRUE --', "%", "_", "\\", "?"],
)
def test_values_that_look_like_sql_are_bound_never_pasted(
    db: duckdb.DuckDBPyConnection, frames: tuple[pd.DataFrame, pd.DataFrame], value: str
) -> None:
    for op in ("eq", "contains", "starts_with", "in"):
        spec = c("city", op, [value] if op == "in" else value)
        where, params = compile_spec(spec, COLUMNS)
        neutral = c("city", op, ["zzz"] if op == "in" else "zzz")
        assert where == compile_spec(neutral, COLUMNS)[0]  # the SQL text ignores the value
        assert value in params or [value] in params
        expected = {6} if op == "contains" and value in ("%", "_") else set()
        assert sql_ids(db, spec) == expected
        assert frame_ids(frames, spec) == expected
    assert db.execute("SELECT count(*) FROM contacts").fetchone() == (8,)


def test_a_field_name_that_is_not_a_column_is_refused_not_pasted() -> None:
    with pytest.raises(SelectionError, match="unknown field"):
        compile_spec(c('city" = city OR "1', "eq", "x"), COLUMNS)


def test_a_long_in_list_is_one_bound_list(db: duckdb.DuckDBPyConnection) -> None:
    values = [f"town {i}" for i in range(5000)] + ["Rotterdam"]
    where, params = compile_spec(c("city", "in", values), COLUMNS)
    assert len(params) == 1 and where.count("?") == 1
    assert sql_ids(db, c("city", "in", values)) == {2}


def test_compile_chain_is_the_and_of_a_selection_and_its_ancestors(
    db: duckdb.DuckDBPyConnection,
) -> None:
    parent = c("_country", "eq", "NL")
    child = c("age", "gt", 40)
    grandchild = {"any": [c("vip", "eq", False), c("city", "empty")]}
    where, params = compile_chain([parent, child, grandchild], COLUMNS, today=TODAY)
    rows = db.execute(f"SELECT id FROM contacts WHERE {where}", params).fetchall()
    assert {r[0] for r in rows} == {2, 5}
    assert compile_chain([], COLUMNS) == ("TRUE", [])
    assert compile_chain([parent], COLUMNS) == compile_spec(parent, COLUMNS)


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("contains", "σ", {0, 1}),  # a final Σ lowercases to σ, never to ς
        ("ends_with", "οσ", {0}),
        ("ends_with", "Σ", {0, 1}),
        ("starts_with", "is", {2}),  # İ lowercases to a single plain i
        ("ends_with", "i", {3}),
        ("contains", "ss", {4}),  # no full case folding: ß does not become ss
        ("contains", "ß", {5}),
        ("starts_with", "STRASSE", {4}),
    ],
)
def test_case_insensitive_matching_uses_simple_lowercase_on_both_sides(
    op: str, value: str, expected: set[int]
) -> None:
    words = ["ΟΔΟΣ", "aΣ", "İstanbul", "xİ", "STRASSE", "Straße"]
    df = pd.DataFrame({"id": range(len(words)), "w": pd.Series(words, dtype="str")})
    columns = {"id": "BIGINT", "w": "VARCHAR"}
    spec = c("w", op, value)
    where, params = compile_spec(spec, columns)
    con = duckdb.connect()
    rows = con.execute(f"SELECT id FROM df WHERE {where}", params).fetchall()
    assert {r[0] for r in rows} == expected
    assert set(df.loc[filter_frame(df, spec, columns), "id"]) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"\d", {3}),  # ASCII digits only: Arabic-Indic ٣ is not \d in RE2 nor with re.ASCII
        (r"^\w+$", {3, 4}),  # é is not a word character in RE2's \w
        (r"\bm", {1}),
        ("é", {0}),
        ("(?i)ABC", {4}),
        ("^$", {5}),
    ],
)
def test_regex_classes_are_ascii_on_both_sides(pattern: str, expected: set[int]) -> None:
    words = ["café", "la mer", "٣", "a1", "abc", "", None]
    df = pd.DataFrame({"id": range(len(words)), "w": pd.Series(words, dtype="str")})
    columns = {"id": "BIGINT", "w": "VARCHAR"}
    spec = c("w", "regex", pattern)
    where, params = compile_spec(spec, columns)
    con = duckdb.connect()
    rows = con.execute(f"SELECT id FROM df WHERE {where}", params).fetchall()
    assert {r[0] for r in rows} == expected
    assert set(df.loc[filter_frame(df, spec, columns), "id"]) == expected


def test_lowercasing_agrees_between_duckdb_and_the_oracle_on_every_known_character() -> None:
    """DuckDB's lower() and pyarrow's utf8_lower() both use utf8proc's simple mapping;
    only characters unknown to this Python's Unicode database may differ."""
    cps = [cp for cp in range(0x110000) if unicodedata.category(chr(cp)) not in ("Cn", "Cs", "Co")]
    chars = pa.table({"i": pa.array(cps), "ch": pa.array([chr(cp) for cp in cps])})
    con = duckdb.connect()
    duck = con.sql("SELECT lower(ch) AS l FROM chars ORDER BY i").to_arrow_table().column("l")
    differ = pc.sum(pc.not_equal(duck, pc.utf8_lower(chars.column("ch")))).as_py()
    assert differ == 0


# ---------------------------------------------------------------------------------------
# describe, operators_for, validation
# ---------------------------------------------------------------------------------------


def test_describe_reads_like_a_sentence() -> None:
    spec = {
        "all": [
            c("city", "contains", "dam"),
            {"any": [c("age", "gt", 30), c("customer_type", "in", ["gold", "silver"])]},
        ]
    }
    assert (
        describe(spec)
        == 'city contains "dam" and (age > 30 or customer_type is one of gold, silver)'
    )


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"all": []}, "everyone"),
        ({"any": []}, "no one"),
        ({"all": [{"any": [c("age", "ge", 18)]}]}, "age ≥ 18"),
        (c("age", "between", [18, 30]), "age is between 18 and 30"),
        (c("city", "eq", "Amsterdam"), 'city is "Amsterdam"'),
        (c("city", "ne", "Amsterdam"), 'city is not "Amsterdam"'),
        (c("birth", "lt", "2000-01-01"), "birth < 2000-01-01"),
        (c("city", "not_in", ["a, b", "c"]), 'city is not one of "a, b", c'),
        (c("city", "empty"), "city is empty"),
        (c("city", "not_empty"), "city is not empty"),
        (c("city", "starts_with", "Am"), 'city starts with "Am"'),
        (c("city", "regex", "^A"), 'city matches regex "^A"'),
        (c("birth", "birthday_today"), "birth has a birthday today"),
        (c("seen", "within_last_days", 30), "seen is within the last 30 days"),
        (c("seen", "within_last_days", 1), "seen is within the last 1 day"),
        (c("vip", "eq", True), "vip is true"),
        (c("_sms", "received", 12), "received mailing 12"),
        (c("_sms", "delivered", None), "had any mailing delivered"),
        (c("_sms", "failed", 3), "had mailing 3 fail"),
        (c("_sms", "replied_stop", None), "replied STOP to any mailing"),
        (
            {"any": [{"all": [c("a", "eq", 1), c("b", "eq", 2)]}, c("c", "eq", 3)]},
            "(a is 1 and b is 2) or c is 3",
        ),
    ],
)
def test_describe_examples(spec: Any, text: str) -> None:
    assert describe(spec) == text


def test_describe_with_columns_shows_values_as_they_are_compared() -> None:
    assert describe(c("age", "gt", "30"), COLUMNS) == "age > 30"
    assert describe(c("city", "eq", 30), COLUMNS) == 'city is "30"'


def test_operators_for_each_column_type() -> None:
    def keys(t: str) -> set[str]:
        return {op.key for op in operators_for(t)}

    text = keys("VARCHAR")
    assert {"contains", "starts_with", "ends_with", "regex", "gt", "birthday_today"} <= text
    assert "received" not in text
    assert {"gt", "between", "in", "empty"} <= keys("BIGINT")
    assert not {"contains", "regex", "birthday_today"} & keys("DOUBLE")
    assert keys("DECIMAL(18,3)") == keys("INTEGER")
    assert {"birthday_today", "within_last_days", "lt"} <= keys("TIMESTAMP WITH TIME ZONE")
    assert keys("BOOLEAN") == {"eq", "ne", "in", "not_in", "empty", "not_empty"}
    assert keys("VARCHAR[]") == {"empty", "not_empty"}
    assert keys("_sms") == {"received", "delivered", "failed", "replied_stop"}
    assert [op.label for op in operators_for("VARCHAR")][:3] == ["is", "is not", "contains"]
    assert OPERATORS["empty"].label == "is empty" and OPERATORS["empty"].value_kind == "none"
    assert OPERATORS["between"].value_kind == "pair"
    assert OPERATORS["in"].value_kind == "list"
    assert OPERATORS["within_last_days"].value_kind == "int"
    assert OPERATORS["delivered"].value_optional and not OPERATORS["received"].value_optional
    assert OPERATORS["contains"].applies_to("VARCHAR(30)")
    assert column_kind("TIMESTAMP_NS") == "timestamp" and column_kind("UUID") == "other"


def test_validate_normalises_values_for_their_columns() -> None:
    spec = {
        "all": [
            c("age", "eq", "30"),
            c("city", "eq", 30),
            c("city", "in", [1, True, "x"]),
            c("birth", "ge", date(2000, 1, 2)),
            c("seen", "between", ["2024-1-2", "2024-01-31"]),
            c("age_text", "gt", " 4.5 "),
            c("vip", "eq", "yes"),
            c("seen", "within_last_days", "7"),
            c("city", "empty", None),
            c("_sms", "delivered", None),
        ]
    }
    assert validate_spec(spec, COLUMNS) == {
        "all": [
            {"field": "age", "op": "eq", "value": 30},
            {"field": "city", "op": "eq", "value": "30"},
            {"field": "city", "op": "in", "value": ["1", "true", "x"]},
            {"field": "birth", "op": "ge", "value": "2000-01-02"},
            {"field": "seen", "op": "between", "value": ["2024-01-02", "2024-01-31"]},
            {"field": "age_text", "op": "gt", "value": 4.5},
            {"field": "vip", "op": "eq", "value": True},
            {"field": "seen", "op": "within_last_days", "value": 7},
            {"field": "city", "op": "empty"},
            {"field": "_sms", "op": "delivered", "value": None},
        ]
    }


def test_validate_accepts_a_json_string() -> None:
    text = json.dumps({"any": [c("age", "lt", 18)]})
    assert validate_spec(text, COLUMNS) == {"any": [{"field": "age", "op": "lt", "value": 18}]}


def _deep(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = c("age", "gt", 1)
    for _ in range(levels):
        spec = {"all": [spec]}
    return spec


@pytest.mark.parametrize(
    ("spec", "path", "fragment"),
    [
        (5, "spec", "expected a condition"),
        ("{not json", "spec", "not valid JSON"),
        (
            {"all": [c("city", "eq", "x"), c("citty", "eq", "x")]},
            "all[1].field",
            "unknown field 'citty' (did you mean 'city'",
        ),
        (c("CITY", "eq", "x"), "field", "did you mean 'city'"),
        ({"any": [c("city", "contain", "x")]}, "any[0].op", "did you mean 'contains'"),
        (
            {"all": [{"field": "city", "op": "eq", "vale": "x"}]},
            "all[0].vale",
            "did you mean 'value'",
        ),
        ({"all": [], "any": []}, "spec", "exactly one key"),
        ({"all": "city"}, "all", "a list"),
        ({"all": [{"any": [5]}]}, "all[0].any[0]", "expected a condition"),
        ({"op": "eq", "value": 1}, "field", "needs a field"),
        ({"field": "age", "value": 1}, "op", "needs an op"),
        (c("city", "gt", "abc"), "value", "needs a number or a date"),
        (c("age", "gt", "abc"), "value", "needs a number"),
        (c("age", "gt", float("inf")), "value", "finite"),
        (c("age", "eq", True), "value", "needs a number"),
        (c("birth", "eq", "2024-02-30"), "value", "YYYY-MM-DD"),
        (c("birth", "lt", 2024), "value", "YYYY-MM-DD"),
        (c("vip", "eq", "maybe"), "value", "true or false"),
        (c("age", "contains", "3"), "op", "“contains” does not apply to 'age'"),
        (c("age", "contains", "3"), "op", "use one of: “is” (eq), “is not” (ne)"),
        (c("vip", "gt", 1), "op", "does not apply"),
        (c("city", "eq", None), "value",
         "“is” (eq) needs a value; to find missing values use “is empty” (empty)"),
        (c("city", "eq", ["a"]), "value", "single value"),
        (c("city", "in", "Amsterdam"), "value", "a list"),
        ({"all": [c("age", "in", [1, "x"])]}, "all[0].value[1]", "needs a number"),
        (c("age", "between", [5]), "value", "[low, high]"),
        (c("age", "between", [5, 1]), "value", "low ≤ high"),
        (c("age_text", "between", [5, "2024-01-01"]), "value", "two numbers or two dates"),
        (c("city", "contains", ""), "value", "non-empty"),
        (c("city", "regex", "["), "value", "not a valid regular expression"),
        (c("city", "regex", "a(?=b)"), "value", "RE2"),
        (c("city", "regex", r"(a)\1"), "value", "RE2"),
        (c("city", "empty", "x"), "value", "takes no value"),
        (c("seen", "within_last_days", -1), "value", "whole number from 0"),
        (c("seen", "within_last_days", 1.5), "value", "whole number"),
        (c("_sms", "eq", 1), "op", "does not apply to _sms"),
        (c("city", "received", 1), "op", "“received mailing” (received) applies only to the _sms"),
        ({"field": "_sms", "op": "received"}, "value", "needs a mailing id"),
        (_deep(40), "", "deeper than"),
    ],
)
def test_bad_specs_are_refused_with_what_and_where(spec: Any, path: str, fragment: str) -> None:
    with pytest.raises(SelectionError) as info:
        validate_spec(spec, COLUMNS)
    if path:
        assert info.value.path == path
        assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_sms_conditions_need_the_e164_column_and_the_history() -> None:
    spec = c("_sms", "received", 1)
    with pytest.raises(SelectionError, match="_e164"):
        validate_spec(spec, {"city": "VARCHAR"})
    df = pd.DataFrame({"_e164": ["+31612345601"]})
    with pytest.raises(SelectionError, match="history"):
        filter_frame(df, spec)


def test_compile_chain_errors_name_the_selection() -> None:
    with pytest.raises(SelectionError) as info:
        compile_chain([{"all": []}, {"all": [c("nope", "eq", 1)]}], COLUMNS)
    assert info.value.path == "selection[1].all[0].field"
    with pytest.raises(SelectionError) as info:
        compile_chain([7], COLUMNS)
    assert info.value.path == "selection[0]"


def test_filter_frame_guesses_types_when_no_columns_are_given() -> None:
    index = [10, 20, 30]
    df = pd.DataFrame(
        {
            "city": pd.Series(["Amsterdam", None, "Delft"], index=index, dtype="str"),
            "age": pd.Series([31, None, 12], index=index, dtype="Int64"),
            "birth": pd.Series([date(1990, 1, 31), None, date(2000, 5, 5)], index=index),
            "vip": pd.Series([True, False, True], index=index),
        }
    )
    spec = {"all": [c("age", "gt", 18), c("birth", "birthday_today"), c("vip", "eq", True)]}
    assert filter_frame(df, spec, today=TODAY).tolist() == [True, False, False]
    assert filter_frame(df, c("city", "ne", "Delft")).index.tolist() == [10, 20, 30]
    assert filter_frame(df, c("city", "ne", "Delft")).tolist() == [True, True, False]


# ---------------------------------------------------------------------------------------
# Properties: pandas ≡ DuckDB, mini-selections stay inside their parents
# ---------------------------------------------------------------------------------------

PROP_TYPES = {
    "id": "BIGINT",
    "s": "VARCHAR",
    'we"ird col': "VARCHAR",
    "n": "BIGINT",
    "f": "DOUBLE",
    "d": "DATE",
    "ts": "TIMESTAMP",
    "b": "BOOLEAN",
    "_e164": "VARCHAR",
}
ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "BOOLEAN": pa.bool_(),
}
NUMBERS = [
    "2024-01-31",
    " 2024-1-5",
    "2023-02-29",
    "2024-02-29T10:00",
    "2024-01-31 x",
    "2024/01/05",
    "12024-01-01",
    "-2024-01-01",
    "infinity",
    "0000-02-29",
    "12",
    " 3.5 ",
    "1e3",
    "-0",
    "+7",
    ".5",
    "5.",
    "1e400",
    "00012",
    "0x1F",
    "1_000",
]
WORDS = [
    "",
    "  ",
    "\t",
    " \t ",
    "abc",
    "DAM",
    "Amsterdam",
    "ΟΔΟΣ",
    "aΣ",
    "xİ",
    "İstanbul",
    "straße",
    "50%",
    "a_b",
]
ALPHABET = "aAbBdDmM 0123456789-.:+eET%_İßΣσé\t"
PHONES = ["+31600000001", "+31600000002", "+31600000003", "", None]
REGEXES = ["^a", "b$", "[0-9]+", "a|Z", "^$", r"\d{2}", "e.", r"\s", "(?i)dam", "^.{3}$", "İ"]

texts = st.one_of(st.sampled_from(NUMBERS + WORDS), st.text(ALPHABET, max_size=6))
prop_dates = st.one_of(
    st.dates(date(1995, 1, 1), date(2026, 12, 31)),
    st.sampled_from([date(2000, 2, 29), date(2023, 2, 28), date(2024, 2, 29), date(2024, 3, 1)]),
)
prop_floats = st.sampled_from([0.0, -0.0, 1.5, -2.25, 3.0, 1e10, NAN, float("inf"), 12.0])
prop_ints = st.integers(-20, 40)


@st.composite
def frames_strategy(draw: st.DrawFn) -> pa.Table:
    n = draw(st.integers(0, 10))

    def column(values: st.SearchStrategy[Any]) -> list[Any]:
        return [draw(st.one_of(st.none(), values)) for _ in range(n)]

    data = {
        "id": list(range(n)),
        "s": column(texts),
        'we"ird col': column(texts),
        "n": column(prop_ints),
        "f": column(prop_floats),
        "d": column(prop_dates),
        "ts": column(
            st.builds(
                datetime.combine, prop_dates, st.times().map(lambda t: t.replace(microsecond=0))
            )
        ),
        "b": column(st.booleans()),
        "_e164": [draw(st.sampled_from(PHONES)) for _ in range(n)],
    }
    return pa.table({k: pa.array(v, ARROW_TYPES[PROP_TYPES[k]]) for k, v in data.items()})


history_strategy = st.lists(
    st.tuples(
        st.sampled_from(PHONES),
        st.one_of(st.none(), st.integers(1, 3)),
        st.one_of(
            st.none(),
            st.sampled_from(
                [
                    "queued",
                    "submitted",
                    "delivered",
                    "undelivered",
                    "failed",
                    "expired",
                    "unknown",
                    "skipped",
                ]
            ),
        ),
        st.one_of(st.none(), st.booleans()),
    ),
    max_size=6,
)


def _pair(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(values, min_size=2, max_size=2).map(sorted)


iso = prop_dates.map(date.isoformat)
number_values = st.one_of(prop_ints, st.sampled_from([0.5, -0.0, 3.0, 12.0, 1e10, 2.25]))


def _equality(values: st.SearchStrategy[Any], most: int = 3) -> dict[str, st.SearchStrategy[Any]]:
    """eq, ne, in and not_in, which every field type offers, over the type's values."""
    some = st.lists(values, max_size=most)
    return {"eq": values, "ne": values, "in": some, "not_in": some}


def _order(values: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    return {"gt": values, "ge": values, "lt": values, "le": values}


EMPTINESS = {"empty": st.none(), "not_empty": st.none()}
DAY_BASED = {"birthday_today": st.none(), "within_last_days": st.integers(0, 4000)}
iso_pairs = _pair(prop_dates).map(lambda p: [d.isoformat() for d in p])
VALUES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "text": {
        **_equality(texts),
        "contains": st.text(ALPHABET, min_size=1, max_size=3),
        "starts_with": st.text(ALPHABET, min_size=1, max_size=3),
        "ends_with": st.text(ALPHABET, min_size=1, max_size=3),
        **_order(st.one_of(number_values, iso)),
        "between": st.one_of(_pair(number_values), iso_pairs),
        **EMPTINESS,
        **DAY_BASED,
        "regex": st.sampled_from(REGEXES),
    },
    "number": {**_equality(number_values), **_order(number_values),
               "between": _pair(number_values), **EMPTINESS},
    "date": {**_equality(iso), **_order(iso), "between": iso_pairs, **EMPTINESS, **DAY_BASED},
    "bool": {**_equality(st.booleans(), most=2), **EMPTINESS},
    "sms": {
        "received": st.integers(1, 3),
        "delivered": st.one_of(st.none(), st.integers(1, 3)),
        "failed": st.one_of(st.none(), st.integers(1, 3)),
        "replied_stop": st.one_of(st.none(), st.integers(1, 3)),
    },
}
FIELD_KINDS = {
    "s": "text",
    'we"ird col': "text",
    "_e164": "text",
    "n": "number",
    "f": "number",
    "d": "date",
    "ts": "date",
    "b": "bool",
    "_sms": "sms",
}


@st.composite
def condition_strategy(draw: st.DrawFn, op: str | None = None) -> dict[str, Any]:
    fields = sorted(f for f, kind in FIELD_KINDS.items() if op is None or op in VALUES[kind])
    field = draw(st.sampled_from(fields))
    ops = VALUES[FIELD_KINDS[field]]
    op = op or draw(st.sampled_from(sorted(ops)))
    value = draw(ops[op])
    if OPERATORS[op].value_kind == "none":
        return {"field": field, "op": op}
    return {"field": field, "op": op, "value": value}


spec_strategy = st.recursive(
    condition_strategy(),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3).map(lambda xs: {"all": xs}),
        st.lists(kids, max_size=3).map(lambda xs: {"any": xs}),
    ),
    max_leaves=6,
)
today_strategy = st.one_of(
    st.dates(date(2023, 1, 1), date(2026, 12, 31)),
    st.sampled_from([date(2023, 2, 28), date(2024, 2, 28), date(2024, 2, 29)]),
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE history (e164 VARCHAR, mailing_id BIGINT, status VARCHAR, "
        "replied_stop BOOLEAN)"
    )
    con.execute("CREATE VIEW sms_history AS SELECT * FROM history")
    yield con
    con.close()


def _load(con: duckdb.DuckDBPyConnection, arrow_rows: pa.Table, history: list[tuple]) -> None:
    con.register("t", arrow_rows)
    con.execute("DELETE FROM history")
    if history:
        con.executemany("INSERT INTO history VALUES (?, ?, ?, ?)", history)


def _rows(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> set[int]:
    return {r[0] for r in con.execute(f"SELECT id FROM t WHERE {where}", params).fetchall()}


def _check_same_rows(
    con: duckdb.DuckDBPyConnection, table: pa.Table, history: list[tuple], spec: Any, today: date
) -> None:
    """DuckDB, NOT-complement, and the oracle on two frame shapes all agree."""
    _load(con, table, history)
    where, params = compile_spec(spec, PROP_TYPES, today=today)
    in_sql = _rows(con, where, params)
    assert _rows(con, f"NOT ({where})", params) == set(range(table.num_rows)) - in_sql

    hist = con.execute("SELECT * FROM history").df()
    # as the storage layer reads a table back, and as Arrow hands it over (dates as objects)
    for df in (con.execute("SELECT * FROM t").df(), table.to_pandas()):
        mask = filter_frame(df, spec, PROP_TYPES, today=today, history=hist)
        assert set(df.loc[mask, "id"].tolist()) == in_sql, (spec, df.to_dict("records"))


@pytest.mark.parametrize("op", list(OPERATORS))
def test_each_operator_agrees_between_pandas_and_duckdb(
    scratch: duckdb.DuckDBPyConnection, op: str
) -> None:
    @settings(max_examples=15, deadline=None)
    @given(
        table=frames_strategy(),
        history=history_strategy,
        spec=condition_strategy(op),
        today=today_strategy,
    )
    def check(table: pa.Table, history: list[tuple], spec: Any, today: date) -> None:
        _check_same_rows(scratch, table, history, spec, today)

    check()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=frames_strategy(), history=history_strategy, spec=spec_strategy, today=today_strategy)
def test_pandas_oracle_and_duckdb_select_the_same_rows_for_nested_specs(
    scratch: duckdb.DuckDBPyConnection,
    table: pa.Table,
    history: list[tuple],
    spec: Any,
    today: date,
) -> None:
    _check_same_rows(scratch, table, history, spec, today)


@settings(max_examples=50, deadline=None)
@given(
    table=frames_strategy(),
    history=history_strategy,
    parent=spec_strategy,
    child=spec_strategy,
    today=today_strategy,
)
def test_a_mini_selection_is_a_subset_of_its_parent(
    scratch: duckdb.DuckDBPyConnection,
    table: pa.Table,
    history: list[tuple],
    parent: Any,
    child: Any,
    today: date,
) -> None:
    _load(scratch, table, history)
    both = _rows(scratch, *compile_chain([parent, child], PROP_TYPES, today=today))
    only_parent = _rows(scratch, *compile_chain([parent], PROP_TYPES, today=today))
    only_child = _rows(scratch, *compile_spec(child, PROP_TYPES, today=today))
    assert both <= only_parent
    assert both == only_parent & only_child


@settings(max_examples=150, deadline=None)
@given(spec=spec_strategy)
def test_validation_is_idempotent_and_json_safe(spec: Any) -> None:
    normal = validate_spec(spec, PROP_TYPES)
    assert validate_spec(normal, PROP_TYPES) == normal
    assert json.loads(json.dumps(normal)) == normal
    assert describe(normal, PROP_TYPES) == describe(spec, PROP_TYPES)
    assert not any(isinstance(v, float) and math.isnan(v) for v in _values(normal))


def _values(spec: dict[str, Any]) -> Iterator[Any]:
    for cond in _conditions(spec):
        value = cond.get("value")
        yield from value if isinstance(value, list) else [value]


def test_filter_frame_keeps_any_index_even_with_duplicate_labels() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "y"]}, index=["k", "k", "z"])
    spec = {"any": [c("a", "gt", 2), c("b", "empty")]}
    mask = filter_frame(df, spec)
    assert mask.index.tolist() == ["k", "k", "z"]
    assert mask.tolist() == [False, True, True]
