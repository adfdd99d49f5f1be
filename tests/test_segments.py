"""The SMS segment meter: encodings, part boundaries, shift tables, bulk counting, smart fixes."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import segments
from core.gsm_tables import (
    GSM_BASIC,
    GSM_EXTENSION,
    NATIONAL_LANGUAGE_IDS,
    NATIONAL_SHIFT,
    NATIONAL_SHIFT_CODES,
    SMART_REPLACEMENTS,
)
from core.segments import (
    GSM7,
    UCS2,
    analyze,
    analyze_many,
    apply_smart_encoding,
    gsm7_septets,
    smart_suggestions,
    ucs2_units,
)

CYR = "ж"  # a BMP character outside GSM-7: one UTF-16 unit
EMOJI = "😀"  # outside the BMP: a surrogate pair, two UTF-16 units


def unit_cost(info: segments.SegmentInfo, c: str) -> int:
    if info.encoding == UCS2:
        return 2 if ord(c) > 0xFFFF else 1
    two = GSM_EXTENSION if info.national is None else NATIONAL_SHIFT[info.national]
    return 2 if c in two else 1


def part_units(info: segments.SegmentInfo, part: str) -> int:
    return sum(unit_cost(info, c) for c in part)


# --- the tables -----------------------------------------------------------------------------


def test_default_alphabet_has_127_characters_and_no_escape():
    assert len(GSM_BASIC) == 127
    assert "\x1b" not in GSM_BASIC
    assert {"@", "£", "\n", "\r", "Δ", "ß", "É", "¤", "¡", "§", "¿", "à", "Ç"} <= GSM_BASIC
    assert not {"ç", "`", "\t", "^", "€"} & GSM_BASIC


def test_extension_table_is_form_feed_brackets_and_euro():
    assert set("\f^{}\\[~]|€") == GSM_EXTENSION


def test_national_single_shift_tables_match_the_standard_cells():
    # TS 23.038 Annex A.2.1-A.2.3, value after ESC -> character
    turkish = {0x47: "Ğ", 0x49: "İ", 0x53: "Ş", 0x63: "ç", 0x67: "ğ", 0x69: "ı", 0x73: "ş"}
    spanish = {0x09: "ç", 0x41: "Á", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x61: "á", 0x69: "í",
               0x6F: "ó", 0x75: "ú"}  # fmt: skip
    portuguese = {0x05: "ê", 0x09: "ç", 0x0B: "Ô", 0x0C: "ô", 0x0E: "Á", 0x0F: "á", 0x12: "Φ",
                  0x13: "Γ", 0x15: "Ω", 0x16: "Π", 0x17: "Ψ", 0x18: "Σ", 0x19: "Θ", 0x1F: "Ê",
                  0x41: "À", 0x49: "Í", 0x4F: "Ó", 0x55: "Ú", 0x5B: "Ã", 0x5C: "Õ", 0x61: "Â",
                  0x69: "í", 0x6F: "ó", 0x75: "ú", 0x7B: "ã", 0x7C: "õ", 0x7F: "â"}  # fmt: skip
    default = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
               0x3E: "]", 0x40: "|", 0x65: "€"}  # fmt: skip
    for name, own in (("turkish", turkish), ("spanish", spanish), ("portuguese", portuguese)):
        assert dict(NATIONAL_SHIFT_CODES[name]) == {**default, **own}, name
        # Greek capitals of the Portuguese table are in the default alphabet: one septet
        assert NATIONAL_SHIFT[name] == (set(default.values()) | set(own.values())) - GSM_BASIC
    assert dict(NATIONAL_LANGUAGE_IDS) == {"turkish": 1, "spanish": 2, "portuguese": 3}


# --- capacities: derived from the header sizes ------------------------------------------------


@pytest.mark.parametrize(
    ("ie_octets", "septets"),
    [(0, 160), (5, 153), (3, 155), (5 + 3, 149)],  # none, concat, shift, concat + shift
)
def test_gsm7_capacity_follows_from_the_header_size_and_fill_bits(ie_octets, septets):
    assert gsm7_septets(ie_octets) == septets
    header_bits = 8 * (1 + ie_octets) if ie_octets else 0
    fill_bits = -header_bits % 7  # the text starts on a septet boundary
    assert header_bits + fill_bits + 7 * septets <= 140 * 8
    assert header_bits + fill_bits + 7 * (septets + 1) > 140 * 8


def test_ucs2_capacity_and_the_named_constants():
    assert (ucs2_units(0), ucs2_units(5)) == (70, 67)
    assert segments.capacities(GSM7) == (160, 153)
    assert segments.capacities(UCS2) == (70, 67)
    assert segments.capacities(GSM7, "turkish") == (155, 149)


# --- analyze: the rules at their boundaries ---------------------------------------------------


def test_160_gsm_characters_are_one_segment_and_161_are_two():
    one = analyze("a" * 160)
    assert (one.encoding, one.units, one.segments, one.capacity, one.units_left) == (
        GSM7, 160, 1, 160, 0)  # fmt: skip
    two = analyze("a" * 161)
    assert (two.units, two.segments, two.capacity) == (161, 2, 153)
    assert [len(p) for p in two.parts] == [153, 8]
    assert two.units_left == 153 - 8


@pytest.mark.parametrize("k", [2, 3, 7])
def test_153_times_k_fills_k_parts_and_one_more_opens_a_new_part(k):
    full = analyze("x" * (153 * k))
    assert full.segments == k and full.units_left == 0
    assert all(len(p) == 153 for p in full.parts)
    over = analyze("x" * (153 * k + 1))
    assert over.segments == k + 1 and over.parts[-1] == "x" and over.units_left == 152


def test_70_ucs2_units_are_one_segment_and_71_are_two():
    one = analyze(CYR * 70)
    assert (one.encoding, one.units, one.segments, one.capacity, one.units_left) == (
        UCS2, 70, 1, 70, 0)  # fmt: skip
    two = analyze(CYR * 71)
    assert (two.segments, two.capacity) == (2, 67)
    assert [len(p) for p in two.parts] == [67, 4]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_67_times_k_ucs2_units_fill_k_parts(k):
    assert analyze(CYR * (67 * k)).segments == k
    assert analyze(CYR * (67 * k + 1)).segments == k + 1


def test_an_escape_pair_is_never_split_across_parts():
    # 152 septets + € (2) would end at 154: the € moves to the second part
    info = analyze("a" * 152 + "€" + "b" * 10)
    assert info.units == 164 and info.segments == 2
    assert info.parts == ("a" * 152, "€" + "b" * 10)
    assert info.units_left == 153 - 12
    # with one septet less before it, € exactly ends the first part
    fits = analyze("a" * 151 + "€" + "b" * 10)
    assert fits.parts[0] == "a" * 151 + "€"


def test_escape_pairs_at_every_boundary_can_add_a_part():
    # 80 × € = 160 septets fits one message; 81 × € = 162 needs parts of 76 × € (152 septets)
    assert analyze("€" * 80).segments == 1
    info = analyze("€" * 81)
    assert [len(p) for p in info.parts] == [76, 5]
    # 153 × ^ = 306 septets: naive ceil(306/153) = 2, but pairs cannot straddle: 3 parts
    assert analyze("^" * 153).segments == 3


def test_a_surrogate_pair_is_never_split_across_parts():
    info = analyze(CYR * 66 + EMOJI + CYR * 5)
    assert info.units == 73 and info.segments == 2
    assert info.parts == (CYR * 66, EMOJI + CYR * 5)
    assert analyze(EMOJI * 35).segments == 1  # 70 units
    assert [len(p) for p in analyze(EMOJI * 36).parts] == [33, 3]  # 66 + 6 units


def test_an_emoji_counts_two_utf16_units():
    assert analyze(EMOJI).units == 2
    assert analyze("a" + EMOJI).units == 3


def test_escape_character_forces_ucs2():
    info = analyze("a\x1bb")
    assert info.encoding == UCS2 and info.non_gsm == ("\x1b",)


def test_no_normalisation_combining_accent_is_ucs2_precomposed_is_gsm():
    combining = analyze("e\u0301")
    assert combining.encoding == UCS2 and combining.units == 2
    assert combining.non_gsm == ("\u0301",)
    precomposed = analyze("\u00e9")
    assert precomposed.encoding == GSM7 and precomposed.units == 1


def test_empty_text_is_one_gsm_segment_of_zero_units():
    info = analyze("")
    assert (info.encoding, info.units, info.segments, info.parts) == (GSM7, 0, 1, ("",))
    assert (info.capacity, info.units_left, info.non_gsm, info.national) == (160, 160, (), None)


@pytest.mark.parametrize("char", sorted(GSM_EXTENSION))
def test_every_extension_character_costs_two_septets(char):
    info = analyze("a" + char)
    assert info.encoding == GSM7 and info.units == 3


def test_non_gsm_lists_distinct_characters_in_order_of_appearance():
    info = analyze(f"a{CYR}b`{CYR}{EMOJI}\tç")
    assert info.non_gsm == (CYR, "`", EMOJI, "\t", "ç")
    assert analyze("plain €").non_gsm == ()


def test_segment_info_is_frozen():
    info = analyze("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.units = 3  # type: ignore[misc]


def test_analyze_rejects_non_text_and_unknown_tables():
    with pytest.raises(TypeError, match="str"):
        analyze(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'turkish', 'spanish', 'portuguese'"):
        analyze("x", national="greek")


# --- national language single shift tables ---------------------------------------------------


def test_pure_gsm_text_keeps_160_and_153_with_a_shift_table_on():
    info = analyze("a" * 158 + "€", national="turkish")
    assert (info.units, info.segments, info.capacity, info.national) == (160, 1, 160, None)
    assert analyze("a" * 161, national="spanish").capacity == 153


def test_turkish_characters_cost_two_septets_and_155_fit_one_message():
    info = analyze("ş" + "a" * 153, national="turkish")
    assert (info.encoding, info.units, info.segments) == (GSM7, 155, 1)
    assert (info.capacity, info.units_left, info.national) == (155, 0, "turkish")
    over = analyze("ş" + "a" * 154, national="turkish")
    assert (over.units, over.segments, over.capacity) == (156, 2, 149)
    assert part_units(over, over.parts[0]) == 149


def test_without_the_setting_turkish_text_is_ucs2():
    info = analyze("şapka")
    assert info.encoding == UCS2 and info.national is None and info.non_gsm == ("ş",)


@pytest.mark.parametrize("k", [2, 3])
def test_149_times_k_septets_fill_k_parts_with_a_shift_table(k):
    text = "ğ" + "a" * (149 * k - 2)
    assert analyze(text, national="turkish").segments == k
    assert analyze(text + "a", national="turkish").segments == k + 1


def test_a_shift_pair_is_never_split_across_parts():
    info = analyze("a" * 148 + "ı" + "a" * 10, national="turkish")
    assert info.parts[0] == "a" * 148 and info.parts[1].startswith("ı")


@pytest.mark.parametrize(
    ("national", "text", "units"),
    [
        ("spanish", "Árbol, canción y más", 23),  # Á ó á: 2 septets each
        ("spanish", "ç", 2),
        ("portuguese", "Não, você está lá", 21),  # ã ê á á: 2 each
        ("portuguese", "ΦΓΩ õ", 6),  # Greek capitals stay one septet (default alphabet)
        ("turkish", "İyi günler, Şükrü", 19),  # İ Ş: 2 each; ü is default
        ("turkish", "ç€", 4),
    ],
)
def test_language_characters_of_each_table(national, text, units):
    info = analyze(text, national=national)
    assert (info.encoding, info.units, info.national) == (GSM7, units, national)


def test_a_character_outside_the_shift_table_still_forces_ucs2():
    mixed = analyze("şá", national="turkish")  # á is Spanish/Portuguese, not Turkish
    assert mixed.encoding == UCS2 and mixed.national is None and mixed.non_gsm == ("á",)
    emoji = analyze("ş" + EMOJI, national="turkish")
    assert emoji.encoding == UCS2 and emoji.non_gsm == (EMOJI,)


# --- analyze_many ------------------------------------------------------------------------------

BOUNDARY_TEXTS = [
    "", "a", "a" * 160, "a" * 161, "a" * 306, "a" * 307, "€" * 80, "€" * 81, "^" * 153,
    "a" * 152 + "€" + "b" * 10, "a" * 151 + "€" + "b" * 10, CYR * 70, CYR * 71, CYR * 134,
    CYR * 66 + EMOJI + CYR * 5, EMOJI * 35, EMOJI * 36, "e\u0301", "\u00e9", "a\x1bb",
    "ş" + "a" * 153, "ş" + "a" * 154, "ğ" * 80, "Árbol" * 40, "Não" * 60, "“quote”", "₤",
    "\u20ac\u20ac", "ガ" * 10, "x" * 5000 + "€", "{" * 3000, "Ω" * 200,
]  # fmt: skip


def as_rows(df: pd.DataFrame) -> list[tuple]:
    cols = ["encoding", "units", "segments"] + (["national"] if "national" in df else [])
    return list(df[cols].itertuples(index=False, name=None))


def expected_rows(texts, national=None) -> list[tuple]:
    rows = []
    for t in texts:
        info = analyze(t, national=national)
        row = (info.encoding, info.units, info.segments)
        rows.append((*row, info.national) if national else row)
    return rows


@pytest.mark.parametrize("national", [None, "turkish", "spanish", "portuguese"])
def test_analyze_many_equals_analyze_on_the_boundary_cases(national):
    df = analyze_many(BOUNDARY_TEXTS, national=national)
    assert as_rows(df) == expected_rows(BOUNDARY_TEXTS, national)
    extra = ["national"] if national else []
    assert list(df.columns) == ["encoding", "units", "segments", *extra]


def test_analyze_many_keeps_a_series_index_and_counts_missing_as_empty():
    texts = pd.Series(["hi", None, "ж", np.nan, "€"], index=[10, 11, 11, 30, 40], dtype=object)
    df = analyze_many(texts)
    assert list(df.index) == [10, 11, 11, 30, 40]
    assert as_rows(df) == [(GSM7, 2, 1), (GSM7, 0, 1), (UCS2, 1, 1), (GSM7, 0, 1), (GSM7, 2, 1)]
    assert df["units"].dtype == np.int64 and df["segments"].dtype == np.int64


def test_analyze_many_accepts_lists_arrays_generators_and_string_series():
    texts = ["a" * 161, "ж", None]
    expected = [(GSM7, 161, 2), (UCS2, 1, 1), (GSM7, 0, 1)]
    for given_ in (texts, np.array(texts, dtype=object), (t for t in texts), pd.Series(texts)):
        df = analyze_many(given_)
        assert as_rows(df) == expected
        assert list(df.index) == [0, 1, 2]


def test_analyze_many_reads_a_slice_of_a_larger_column():
    column = pd.Series(BOUNDARY_TEXTS * 3)  # pandas' default string dtype: Arrow memory
    part = column.iloc[40:70]
    df = analyze_many(part)
    assert list(df.index) == list(range(40, 70))
    assert as_rows(df) == expected_rows(part.tolist())


def test_analyze_many_of_nothing_is_an_empty_frame():
    df = analyze_many([])
    assert len(df) == 0 and list(df.columns) == ["encoding", "units", "segments"]


def test_analyze_many_counts_texts_arrow_cannot_hold_exactly():
    lone = "ok\ud83d"  # a lone surrogate: not valid UTF-8, still one UTF-16 unit
    df = analyze_many(["fine", lone])
    assert as_rows(df) == [(GSM7, 4, 1), (UCS2, 3, 1)]


def test_analyze_many_names_the_item_that_is_not_text():
    with pytest.raises(TypeError, match=r"position 1 \(index 'b'\) is a int"):
        analyze_many(pd.Series(["x", 5], index=["a", "b"], dtype=object))


def test_analyze_many_with_tiny_blocks_and_long_texts_counted_one_by_one(monkeypatch):
    # Block edges then fall inside texts and multi-byte characters' neighbourhoods, and
    # every text takes the one-by-one path for long texts.
    monkeypatch.setattr(segments, "_CHUNK_BYTES", 7)
    monkeypatch.setattr(segments, "_MAX_FAST_BYTES", 50)
    for national in (None, "portuguese"):
        df = analyze_many(BOUNDARY_TEXTS, national=national)
        assert as_rows(df) == expected_rows(BOUNDARY_TEXTS, national)


def test_analyze_many_encoding_column_compares_with_the_constants():
    df = analyze_many(["a", "ж"])
    assert (df["encoding"] == UCS2).tolist() == [False, True]


# --- properties --------------------------------------------------------------------------------

BASIC = sorted(GSM_BASIC)
EXT = sorted(GSM_EXTENSION)
NATIONAL_CHARS = sorted(set().union(*NATIONAL_SHIFT.values()) - GSM_EXTENSION)
OTHER = [CYR, "“", "—", "\u0301", "\x1b", "\t", "`", "ガ"]
ASTRAL = [EMOJI, "🎉", "𝄞"]

pools = st.sampled_from(
    [
        BASIC,
        BASIC * 3 + EXT * 20,  # many escape pairs
        BASIC * 3 + EXT * 10 + NATIONAL_CHARS * 5,
        BASIC * 2 + ASTRAL * 30,  # many surrogate pairs
        BASIC + OTHER * 5 + ASTRAL * 5 + EXT * 5,
        [CYR] * 5 + ASTRAL,
    ]
)
lengths = st.one_of(
    st.sampled_from([0, 1, 66, 67, 68, 69, 70, 71, 72, 133, 134, 135, 148, 149, 150, 151,
                     152, 153, 154, 155, 156, 159, 160, 161, 162, 305, 306, 307, 459, 460]),
    st.integers(0, 700),
)  # fmt: skip


@st.composite
def texts(draw) -> str:
    pool = draw(pools)
    n = draw(lengths)
    return "".join(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))


nationals = st.sampled_from([None, "turkish", "spanish", "portuguese"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts(), national=nationals)
def test_parts_join_to_the_text_and_none_is_over_capacity(text, national):
    info = analyze(text, national=national)
    assert "".join(info.parts) == text
    assert len(info.parts) == info.segments >= 1
    sizes = [part_units(info, p) for p in info.parts]
    assert sum(sizes) == info.units
    assert all(size <= info.capacity for size in sizes)
    assert info.units_left == info.capacity - sizes[-1] >= 0
    for part, following in zip(info.parts, info.parts[1:], strict=False):
        # greedy: the next part's first character did not fit in this one
        assert part_units(info, part) + unit_cost(info, following[0]) > info.capacity
    if info.segments == 1:
        assert info.capacity == segments.capacities(info.encoding, info.national)[0]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(texts(), max_size=25),
    national=nationals,
    block=st.sampled_from([5, 64, segments._CHUNK_BYTES]),
)
def test_analyze_many_equals_analyze_on_random_texts(batch, national, block):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segments, "_CHUNK_BYTES", block)  # block edges anywhere in the texts
        assert as_rows(analyze_many(batch, national=national)) == expected_rows(batch, national)


# --- smart encoding --------------------------------------------------------------------------

TSV = Path("/work/shared/research/smart_encoding.tsv")

# Rows where the sources disagree (or one source maps to something odd): our decision.
DECIDED = {
    "\t": " ",  # TAB: one space, not seven
    "\u00a0": " ",  # NO-BREAK SPACE: one space, not two
    "\u2007": " ",  # FIGURE SPACE
    "\u202f": " ",  # NARROW NO-BREAK SPACE
    "\u3000": " ",  # IDEOGRAPHIC SPACE
    "\x00": "",  # C0 control: removed, not a space
    "\x19": "",
    "\x80": "",  # C1 control: removed, not two spaces
    "\x9f": "",
    "\u200b": "",  # ZERO WIDTH SPACE
    "\u2060": "",  # WORD JOINER: removed, not a space
    "\ufeff": "",  # BOM / zero width no-break space
    "\u201a": "'",  # SINGLE LOW-9 QUOTATION MARK is a quote, not a comma
    "\u2039": "<",  # guillemets keep their direction
    "\u203a": ">",
    "\u2028": "\n",  # LINE SEPARATOR is a line break
    "\u2029": "\n",
    "\ufe10": ",",  # vertical comma is a comma
    "\ufe11": ",",
}


def test_disputed_rows_are_decided_as_a_reader_would_want():
    for char, replacement in DECIDED.items():
        assert SMART_REPLACEMENTS[char] == replacement, f"U+{ord(char):04X}"
    assert apply_smart_encoding("a\tb\u00a0c\u2060d") == "a b cd"
    assert apply_smart_encoding("\u201aja\u2018 \u2039x\u203a") == "'ja' <x>"


@pytest.mark.skipif(not TSV.exists(), reason="reference table not available here")
def test_the_table_covers_the_reference_and_differs_only_where_decided():
    with TSV.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == len(SMART_REPLACEMENTS) == 271
    for row in rows:
        char = chr(int(row["codepoint"][2:], 16))
        source = json.loads(row["replacement_json"])
        ours = SMART_REPLACEMENTS[char]
        if ours != source:  # only where the sources disagree, or where we decided otherwise
            assert row["note"] or char in DECIDED, row["codepoint"]


def test_every_replacement_is_gsm7_and_every_key_needs_one():
    default = GSM_BASIC | GSM_EXTENSION
    for char, replacement in SMART_REPLACEMENTS.items():
        assert char not in default
        assert set(replacement) <= default, f"U+{ord(char):04X}"
        assert not any(char in table for table in NATIONAL_SHIFT.values())


def test_curly_quotes_turn_three_segments_into_one():
    text = ("“Sale” — it’s on! " * 8)[:150]
    tip = smart_suggestions(text)
    assert (tip.before.encoding, tip.before.segments) == (UCS2, 3)
    assert (tip.after.encoding, tip.after.segments) == (GSM7, 1)
    assert tip.summary == "3 segments → 1" and tip.saving == 2
    assert tip.replacements == (("“", '"', 8), ("”", '"', 8), ("—", "-", 8), ("’", "'", 8))
    assert tip.text_after == apply_smart_encoding(text) and tip.blocking == ()
    assert analyze(tip.text_after) == tip.after


def test_an_emoji_without_look_alike_leaves_the_text_ucs2_and_says_so():
    tip = smart_suggestions(f"“Hi” {EMOJI}")
    assert tip.after.encoding == UCS2 and tip.blocking == (EMOJI,)
    assert tip.summary == f"1 segment → 1 (still UCS-2: no GSM-7 look-alike for {EMOJI})"
    assert tip.saving == 0
    invisible = smart_suggestions("“x” e\u0301 ж ㄱ ✓")
    assert invisible.summary.endswith("look-alike for U+0301, ж, ㄱ, …)")


def test_nothing_to_suggest_gives_an_empty_summary():
    for text in ("plain text €", CYR * 3, ""):
        tip = smart_suggestions(text)
        assert tip.summary == "" and tip.replacements == ()
        assert tip.after == tip.before and tip.text_after == text


def test_ellipsis_expands_and_the_after_state_is_real():
    tip = smart_suggestions("Wait…" * 30)  # 150 UCS-2 units -> 3 parts; 210 septets -> 2
    assert tip.after.units == 210 and tip.summary == "3 segments → 2"


def test_smart_suggestions_respect_the_national_table():
    tip = smart_suggestions("“Şeker” bayramı", national="turkish")
    assert tip.after.encoding == GSM7 and tip.after.national == "turkish"
    assert tip.blocking == ()


def test_apply_smart_encoding_only_replaces_what_was_accepted():
    text = "“A” – B…"
    assert apply_smart_encoding(text) == '"A" - B...'
    assert apply_smart_encoding(text, ["“", "”"]) == '"A" – B…'
    assert apply_smart_encoding(text, []) == text
    with pytest.raises(ValueError, match=r"U\+0436"):
        apply_smart_encoding(text, [CYR])
