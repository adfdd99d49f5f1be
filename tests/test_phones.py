"""Phone-number normalisation: formats, statuses, backends, the parallel path, demo data."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core import phones

ROOT = Path(__file__).resolve().parent.parent
DEMO_SCRIPT = ROOT / "scripts" / "make_demo_data.py"

# Regions whose metadata is identical in the two backends (rphonenumbers 0.1.0 bundles
# libphonenumber metadata 9.0.41, phonenumbers is 9.0.43; numbers of regions changed in
# between, such as CN, RO or ZW, can be judged differently).
REGIONS = ["NL", "BE", "DE", "GB", "US", "FR"]
TRUNK_ZERO = {"NL", "BE", "DE", "GB", "FR"}
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _load_demo_module():
    spec = importlib.util.spec_from_file_location("make_demo_data", DEMO_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def norm_list(values, region="NL", **kw) -> pd.DataFrame:
    return phones.normalize(pd.Series(values, dtype=object), region, **kw)


def as_tuple(n: phones.NormalizedNumber) -> tuple[str, ...]:
    return (n.e164, n.country, n.number_type, n.status, n.reason)


@pytest.fixture(params=["rphonenumbers", "phonenumbers"])
def backend(request, monkeypatch):
    monkeypatch.setenv(phones.BACKEND_ENV, request.param)
    return request.param


# --- generated numbers and their renderings --------------------------------------------------
def _e164(num) -> str:
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _national_reading(text: str, region: str) -> str | None:
    """The E.164 the reference library makes of `text` in `region`, if valid."""
    try:
        num = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return _e164(num) if phonenumbers.is_valid_number(num) else None


@st.composite
def valid_numbers(draw):
    """A valid number of one of REGIONS (mobile or fixed line), per the reference library."""
    region = draw(st.sampled_from(REGIONS))
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    nsn = phonenumbers.national_significant_number(example)
    k = draw(st.integers(1, min(6, len(nsn) - 3)))
    candidate = nsn[:-k] + draw(st.text("0123456789", min_size=k, max_size=k))
    num = phonenumbers.parse(f"+{example.country_code}{candidate}")
    assume(phonenumbers.is_valid_number(num))
    assume(phonenumbers.region_code_for_number(num) == region)
    return region, num


@st.composite
def grouped(draw, digits: str) -> str:
    """`digits` split into random groups joined by random separators, maybe bracketed."""
    groups, rest = [], digits
    while rest:
        size = draw(st.integers(1, 5))
        if len(rest) - size == 1:
            size += 1  # no lone last digit: "3161234567.0" is a float, not a format
        groups.append(rest[:size])
        rest = rest[size:]
    seps = draw(
        st.lists(
            st.sampled_from(["", " ", "-", ".", "/", " - ", "  ", "\u00a0"]),
            min_size=len(groups),
            max_size=len(groups),
        )
    )
    if len(groups) > 1 and draw(st.booleans()):
        groups[0] = f"({groups[0]})"
    return groups[0] + "".join(s + g for s, g in zip(seps[1:], groups[1:], strict=True))


@st.composite
def renderings(draw, region: str, num) -> tuple[str, str]:
    """One way to write `num`, with the default region to read it with."""
    cc = str(num.country_code)
    nsn = phonenumbers.national_significant_number(num)
    national = re.sub(
        r"\D", "", phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    )
    styles = ["plus", "idd", "national", "digits_cc"]
    if region in TRUNK_ZERO:
        styles.append("plus_trunk")
    if region == "US":
        styles.append("us_one")
    style = draw(st.sampled_from(styles))
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    if style == "plus":
        text, default = "+" + draw(grouped(cc + nsn)), draw(st.sampled_from(REGIONS))
    elif style == "idd":  # 00 is the international prefix in NL
        text, default = "00" + draw(grouped(cc + nsn)), "NL"
    elif style == "national":
        text, default = draw(grouped(national)), region
    elif style == "digits_cc":  # country code without + or 00, as spreadsheets keep it
        text, default = cc + nsn, draw(st.sampled_from(REGIONS))
        # Documented rule: the default region's reading wins when it is valid there.
        assume(_national_reading(text, default) in (None, _e164(num)))
    elif style == "plus_trunk":
        text, default = f"+{cc} (0){draw(grouped(nsn))}", draw(st.sampled_from(REGIONS))
    else:
        text, default = "1 " + draw(grouped(national)), "US"
    return pad + text + pad, default


@st.composite
def number_and_renderings(draw):
    region, num = draw(valid_numbers())
    forms = draw(st.lists(renderings(region, num), min_size=1, max_size=6))
    return region, num, forms


JUNK_ALPHABET = "0123456789+-. ()/abcdeghilmnoprstvwxyzé,"
junk_text = st.text(JUNK_ALPHABET, max_size=22)
digit_runs = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(
        ["", "+31", "0031", "06", "0", "+32", "+49", "+44", "+1", "+33", "31", "32", "49", "44"]
    ),
    st.text("0123456789 -", max_size=13),
)


@st.composite
def messy_values(draw):
    """A realistic cell: a rendering of a valid number, digits, junk, or nothing."""
    kind = draw(st.sampled_from(["valid", "valid", "digits", "junk", "blank"]))
    if kind == "valid":
        region, num = draw(valid_numbers())
        text, _ = draw(renderings(region, num))
        return text
    if kind == "digits":
        return draw(digit_runs)
    if kind == "junk":
        return draw(junk_text)
    return draw(st.sampled_from([None, np.nan, "", "  ", "\u00a0"]))


# --- formats -------------------------------------------------------------------------------
@SETTINGS
@given(number_and_renderings())
def test_every_format_of_a_number_gives_its_e164(case):
    region, num, forms = case
    expected = _e164(num)
    for text, default in forms:
        got = phones.normalize_one(text, default)
        assert got.e164 == expected, (text, default, got)
        assert got.country == region
        assert got.status in ("valid_mobile", "not_mobile")
    # Several formats in one column, read with one default region where they allow it.
    same_region = [t for t, d in forms if d == region]
    if same_region:
        frame = norm_list(same_region, region)
        assert set(frame["e164"]) == {expected}


@pytest.mark.parametrize(
    "raw",
    [
        "06-12345678",
        "+31 6 1234 5678",
        "0031612345678",
        "0612345678",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "(06) 12345678",
        "+31 (0)6 1234 5678",
        "+31-6-12345678",
        "31612345678",
        "31612345678.0",
        "31612345678,0",
        "612345678.0",
        "612345678",
        " 06-12345678 ",
        "06-12345678 (mobiel)",
        "\u00a006\u00a012345678",
        "tel:+31612345678",
        "'0612345678",
        "\ufeff0612345678",
    ],
)
def test_dutch_mobile_in_export_formats(raw, backend):
    got = phones.normalize_one(raw, "NL")
    assert as_tuple(got) == ("+31612345678", "NL", "mobile", "valid_mobile", "")


@pytest.mark.parametrize(
    ("raw", "region", "e164", "country", "ntype"),
    [
        ("+32 470 12 34 56", "NL", "+32470123456", "BE", "mobile"),
        ("0470 12 34 56", "BE", "+32470123456", "BE", "mobile"),
        ("32470123456", "NL", "+32470123456", "BE", "mobile"),  # no + and not valid in NL
        ("0032470123456", "NL", "+32470123456", "BE", "mobile"),
        ("+49 151 23456789", "NL", "+4915123456789", "DE", "mobile"),
        ("4915123456789", "NL", "+4915123456789", "DE", "mobile"),
        ("0151 23456789", "DE", "+4915123456789", "DE", "mobile"),
        ("+44 7400 123456", "NL", "+447400123456", "GB", "mobile"),
        ("+44 (0)7400 123456", "NL", "+447400123456", "GB", "mobile"),
        ("07400 123456", "GB", "+447400123456", "GB", "mobile"),
        ("+1 (212) 555-0123", "NL", "+12125550123", "US", "fixed_line_or_mobile"),
        ("(212) 555-0123", "US", "+12125550123", "US", "fixed_line_or_mobile"),
        ("12125550123", "NL", "+12125550123", "US", "fixed_line_or_mobile"),
        ("0031612345678", "US", "+31612345678", "NL", "mobile"),  # 00 is not IDD in the US
    ],
)
def test_foreign_numbers(raw, region, e164, country, ntype, backend):
    got = phones.normalize_one(raw, region)
    assert as_tuple(got) == (e164, country, ntype, "valid_mobile", "")


# --- statuses and reasons ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (None, "missing", "no number"),
        (np.nan, "missing", "no number"),
        (pd.NA, "missing", "no number"),
        ("", "missing", "no number"),
        ("   ", "missing", "no number"),
        ("\t\u00a0\n", "missing", "no number"),
        ("onbekend", "invalid", "not a number"),
        ("n.v.t.", "invalid", "not a number"),
        ("-", "invalid", "not a number"),
        ("(geen)", "invalid", "not a number"),
        ("()", "invalid", "not a number"),
        ("?", "invalid", "not a number"),
        ("06-123", "invalid", "too short for NL"),
        ("0612", "invalid", "too short for NL"),
        ("1", "invalid", "too short"),
        ("06-12345678901", "invalid", "too long for NL"),
        ("06-123456789", "invalid", "wrong length for NL"),
        ("12345678901234567890", "invalid", "too long"),
        ("+999 123456", "invalid", "invalid country code"),
        ("+32 470 12", "invalid", "too short for BE"),
        ("+32 470 12 34 56 78 9", "invalid", "too long for BE"),
        ("0470 12 34 56", "invalid", "not a valid number for NL"),
        ("3.16123E+10", "invalid", "number mangled by a spreadsheet (scientific notation)"),
        ("6,12345E+08", "invalid", "number mangled by a spreadsheet (scientific notation)"),
        ("0612345678, 0687654321", "invalid", "more than one number"),
        ("06-12345678 of 06-87654321", "invalid", "more than one number"),
        ("0612345678;0687654321", "invalid", "more than one number"),
        ("020-1234567", "not_mobile", "fixed line, cannot receive SMS"),
        ("0800-1234", "not_mobile", "toll-free number, cannot receive SMS"),
        ("0900-1234567", "not_mobile", "premium-rate number, cannot receive SMS"),
        ("088-1234567", "not_mobile", "company number (UAN), cannot receive SMS"),
        ("085-1234567", "not_mobile", "VoIP number, cannot receive SMS"),
        ("066-1234567", "not_mobile", "pager number, cannot receive SMS"),
        ("+49 30 12345678", "not_mobile", "fixed line, cannot receive SMS"),
        ("06-12345678", "valid_mobile", ""),
    ],
)
def test_status_and_reason(raw, status, reason, backend):
    got = phones.normalize_one(raw, "NL")
    assert (got.status, got.reason) == (status, reason)
    assert bool(got.e164) == (status in ("valid_mobile", "not_mobile"))
    assert bool(got.country) == bool(got.e164) == bool(got.number_type)
    frame = norm_list([raw])
    assert tuple(frame.iloc[0]) == as_tuple(got)


def test_text_that_is_not_valid_unicode_is_judged_not_refused():
    values = ["06\ud80012345678", "\udcff"]
    frame = norm_list(values)
    assert list(frame["status"]) == ["invalid", "invalid"]
    for value, row in zip(values, frame.itertuples(index=False), strict=True):
        assert tuple(row) == as_tuple(phones.normalize_one(value, "NL"))


def test_non_geographic_numbers_have_country_001():
    got = phones.normalize_one("+800 1234 5678", "NL")
    assert as_tuple(got) == (
        "+80012345678",
        "001",
        "toll_free",
        "not_mobile",
        "toll-free number, cannot receive SMS",
    )


def test_numeric_columns_as_spreadsheets_deliver_them():
    ints = phones.normalize(pd.Series([31612345678, 32470123456]), "NL")
    floats = phones.normalize(pd.Series([31612345678.0, np.nan, 3.16123e25]), "NL")
    assert list(ints["e164"]) == ["+31612345678", "+32470123456"]
    assert list(floats["e164"]) == ["+31612345678", "", ""]
    assert list(floats["status"]) == ["valid_mobile", "missing", "invalid"]
    assert phones.normalize_one(31612345678.0, "NL").e164 == "+31612345678"


def test_the_float_rule_leaves_written_numbers_alone():
    # Written numbers ending in ".0" (a leading 0, a "+" or more separators): the 0 counts.
    assert phones.normalize_one("0612.345.670", "NL").e164 == "+31612345670"
    assert phones.normalize_one("+31.6.1234567.0", "NL").e164 == "+31612345670"
    assert phones.normalize_one("061234567.0", "NL").e164 == "+31612345670"
    assert phones.normalize_one("0612345670.0", "NL").reason == "wrong length for NL"


# --- the frame ------------------------------------------------------------------------------
def test_result_shape_dtypes_and_index():
    index = pd.Index(["z", "a", "a", "q", "b"], name="customer")
    raw = pd.Series(["06-12345678", None, "onbekend", "020-1234567", "+32470123456"], index=index)
    frame = phones.normalize(raw, "nl")
    assert list(frame.columns) == list(phones.COLUMNS)
    assert frame.index.equals(index)
    assert frame.index.name == "customer"
    for col in frame.columns:
        assert frame[col].dtype == "str"
        assert not frame[col].isna().any()
    assert list(frame["status"]) == [
        "valid_mobile",
        "missing",
        "invalid",
        "not_mobile",
        "valid_mobile",
    ]


def test_empty_input():
    frame = phones.normalize(pd.Series([], dtype=object), "NL")
    assert list(frame.columns) == list(phones.COLUMNS)
    assert len(frame) == 0


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="'XX' is not a region"):
        phones.normalize(pd.Series(["0612345678"]), "XX")
    with pytest.raises(ValueError, match="not a region"):
        phones.normalize_one("0612345678", "Nederland")


def test_duplicated_raw_strings_get_the_same_answer():
    values = [
        "06-12345678",
        "0612345678",
        "06-12345678",
        None,
        "onbekend",
        "onbekend",
        "06-12345678",
        "+31 6 1234 5678",
        None,
    ]
    frame = norm_list(values)
    for value, (_, row) in zip(values, frame.iterrows(), strict=True):
        assert tuple(row) == as_tuple(phones.normalize_one(value, "NL"))
    assert (frame["e164"].iloc[[0, 1, 2, 6, 7]] == "+31612345678").all()


@SETTINGS
@given(st.lists(messy_values(), max_size=30), st.sampled_from(REGIONS))
def test_column_equals_one_by_one(values, region):
    frame = norm_list(values, region)
    assert len(frame) == len(values)
    for value, row in zip(values, frame.itertuples(index=False), strict=True):
        assert tuple(row) == as_tuple(phones.normalize_one(value, region)), value
    assert set(frame["status"]) <= set(phones.STATUSES)
    valid = frame["e164"] != ""
    assert (valid == frame["status"].isin(["valid_mobile", "not_mobile"])).all()
    assert frame.loc[valid, "e164"].str.fullmatch(r"\+[1-9][0-9]{6,14}").all()
    assert (
        frame.loc[frame["status"] == "valid_mobile", "number_type"]
        .isin(phones.SMS_CAPABLE_TYPES)
        .all()
    )
    assert (frame.loc[frame["status"] != "valid_mobile", "reason"] != "").all()


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30), st.text("0123456789 .,+-()eE/\u00a0;of", max_size=24)))
def test_scalar_cleaning_matches_the_vectorised_cleaning(text):
    # Two regex engines (Arrow's RE2 and Python's re) must read every pattern alike.
    assert tuple(norm_list([text]).iloc[0]) == as_tuple(phones.normalize_one(text, "NL"))


# --- backends -------------------------------------------------------------------------------
def test_backend_selection(monkeypatch):
    monkeypatch.delenv(phones.BACKEND_ENV, raising=False)
    assert phones.backend_name() == "rphonenumbers"  # installed, so preferred
    monkeypatch.setenv(phones.BACKEND_ENV, "phonenumbers")
    assert phones.backend_name() == "phonenumbers"
    monkeypatch.setenv(phones.BACKEND_ENV, "libphonenumber")
    with pytest.raises(ValueError, match="SMS_STUDIO_PHONES_BACKEND"):
        phones.backend_name()


@SETTINGS
@given(st.lists(messy_values(), min_size=1, max_size=40), st.sampled_from(REGIONS))
def test_backends_agree_on_messy_input(values, region):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(phones.BACKEND_ENV, "phonenumbers")
        reference = norm_list(values, region)
        mp.setenv(phones.BACKEND_ENV, "rphonenumbers")
        fast = norm_list(values, region)
    pd.testing.assert_frame_equal(fast, reference)


@SETTINGS
@given(messy_values(), st.sampled_from(REGIONS))
def test_valid_means_what_the_reference_library_says(value, region):
    """A number we call valid is valid in phonenumbers, read as we read it."""
    got = phones.normalize_one(value, region)
    assume(got.e164)
    num = phonenumbers.parse(got.e164)
    assert phonenumbers.is_valid_number(num)
    assert phonenumbers.region_code_for_number(num) == got.country
    assert (
        got.number_type
        == phones.NUMBER_TYPES[
            [getattr(phonenumbers.PhoneNumberType, t.upper()) for t in phones.NUMBER_TYPES].index(
                phonenumbers.number_type(num)
            )
        ]
    )


# --- the parallel path ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def large_column():
    demo = _load_demo_module()
    values = demo.messy_numbers(
        np.random.default_rng(7), 200_000, duplicate_share=0.2, junk_share=0.05
    )
    return pd.Series(values, dtype=object, index=pd.RangeIndex(10, 200_010))


@pytest.fixture
def workers(monkeypatch):
    # Every value through the per-value parser, so that there is work for the workers.
    monkeypatch.setenv(phones.VECTORISED_ENV, "0")
    yield
    phones.shutdown_workers()


@pytest.mark.slow
def test_parallel_path_equals_serial_path(large_column, workers):
    assert phones.warm_up(1) == 1
    parallel = phones.normalize(large_column, "NL", workers=1)
    info = phones.last_run()
    assert info["distinct"] >= phones.PARALLEL_MIN_DISTINCT
    assert info["workers"] == 1
    assert info["worker_chunks"] >= 1, info  # a worker process really did some of it
    serial = phones.normalize(large_column, "NL", workers=0)
    assert phones.last_run()["workers"] == 0
    pd.testing.assert_frame_equal(parallel, serial)
    counts = phones.status_counts(serial)
    assert all(counts[s] > 0 for s in phones.STATUSES), counts


@pytest.mark.slow
def test_a_broken_pool_falls_back_to_this_process(large_column, workers, monkeypatch):
    dead = ProcessPoolExecutor(max_workers=1)
    dead.shutdown()
    monkeypatch.setattr(phones, "_get_pool", lambda n: dead)
    sample = large_column.iloc[:120_000]
    fallback = phones.normalize(sample, "NL", workers=1)
    assert phones.last_run()["worker_chunks"] == 0
    monkeypatch.undo()
    pd.testing.assert_frame_equal(fallback, phones.normalize(sample, "NL", workers=0))


def test_small_inputs_stay_in_process(workers):
    phones.normalize(pd.Series(["0612345678"] * 1000), "NL", workers=2)
    assert phones.last_run()["workers"] == 0


def test_workers_only_on_idle_cores(monkeypatch):
    monkeypatch.setattr(phones, "_cores", lambda: 4)
    monkeypatch.setattr(phones.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert phones._idle_workers(3) == 3
    monkeypatch.setattr(phones.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert phones._idle_workers(3) == 1
    monkeypatch.setattr(phones.os, "getloadavg", lambda: (7.5, 7.0, 7.0))
    assert phones._idle_workers(3) == 0


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(phones.WORKERS_ENV, "0")
    assert phones.default_workers() == 0
    monkeypatch.setenv(phones.WORKERS_ENV, "two")
    with pytest.raises(ValueError, match="SMS_STUDIO_PHONES_WORKERS"):
        phones.default_workers()


# --- demo data -----------------------------------------------------------------------------
def test_demo_data_script(tmp_path):
    out = tmp_path / "demo" / "contacts.csv"
    run = subprocess.run(
        [sys.executable, str(DEMO_SCRIPT), "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(frame) == 10_000
    assert frame["customer_id"].is_unique
    assert {
        "first_name",
        "last_name",
        "city",
        "birth_date",
        "customer_type",
        "last_order_date",
        "consent",
        "mobile",
    } <= set(frame.columns)
    assert pd.to_datetime(frame["birth_date"], format="%Y-%m-%d").notna().all()
    assert set(frame["consent"]) >= {"yes", "no", "ja", "nee", "1", "0"}
    assert (frame["consent"].isin(["yes", "ja", "1", "Yes"])).mean() > 0.6
    assert frame["first_name"].isin(["Zoë", "Şebnem", "Łukasz"]).any()
    result = phones.normalize(frame["mobile"], "NL")
    counts = phones.status_counts(result)
    assert all(counts[s] > 0 for s in phones.STATUSES), counts
    assert counts["valid_mobile"] > 9000
    assert set(result.loc[result["e164"] != "", "country"]) >= {"NL", "BE", "DE", "GB", "US"}
    assert result.loc[result["e164"] != "", "e164"].duplicated().sum() > 50  # shared numbers
    # Repeatable: the same seed gives the same bytes, another seed another file.
    again = tmp_path / "again.csv"
    other = tmp_path / "other.csv"
    subprocess.run(
        [sys.executable, str(DEMO_SCRIPT), "--output", str(again)], check=True, capture_output=True
    )
    subprocess.run(
        [sys.executable, str(DEMO_SCRIPT), "--output", str(other), "--seed", "7", "--rows", "500"],
        check=True,
        capture_output=True,
    )
    assert again.read_bytes() == out.read_bytes()
    assert len(pd.read_csv(other, dtype=str)) == 500


def test_demo_mobiles_are_all_valid_in_the_reference_library():
    demo = _load_demo_module()
    rng = np.random.default_rng(3)
    for country in ("NL", "BE", "DE", "GB", "US"):
        for nsn in demo._mobile(rng, country, 300):
            num = phonenumbers.parse(f"+{demo._COUNTRY_CODES[country]}{nsn}")
            assert phonenumbers.is_valid_number(num), (country, nsn)
            assert phonenumbers.number_type(num) in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
            )
