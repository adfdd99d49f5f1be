"""The audience reconciliation on hand-built databases with known answers for every step."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.audience import STEPS
from core.errors import InvalidInput
from core.studio import Studio
from tests.conftest import import_csv, write_csv

# Each contact's expected fate, by customer id:
#   1 recipient (NL)                 8  no_number
#   2 no_consent ("no")              9  duplicate_number (same number as 1, later row)
#   3 recipient (" JA " trims, any case)   10 no_consent (same number as 1, but no consent:
#   4 recipient (BE)                        removed before duplicates are considered)
#   5 suppressed (suppressed in another spelling)   11 no_consent, though also suppressed
#   6 not_mobile (fixed line)        12 no_consent (consent empty)
#   7 invalid_number, though also without consent: counted once, at the first step
#  13 recipient (NL)                14 duplicate_number (same number as 13)
CSV = """customer_id,first_name,city,consent,mobile
1,Anna,Amsterdam,yes,06-12345678
2,Bram,Rotterdam,no,+31 6 1234 5679
3,Chloé,Utrecht, JA ,0031612345680
4,Dirk,Gent,yes,+32 470 12 34 56
5,Eva,Berlin,Yes,+49 151 23456789
6,Finn,Den Haag,yes,020-1234567
7,Gina,Leiden,no,onbekend
8,Hugo,Delft,yes,
9,Iris,Haarlem,yes,06-12345678
10,Jan,Amsterdam,no,06 1234 5678
11,Kees,Utrecht,no,06 1234 5681
12,Lot,Amsterdam,,06 1234 5682
13,Mia,Amsterdam,YES,06 1234 5683
14,Noor,Rotterdam,yes,+31612345683
"""
EXPECTED = {
    "in_selection": 14, "no_number": 1, "invalid_number": 1, "not_mobile": 1,
    "no_consent": 4, "suppressed": 1, "duplicate_number": 2,
}
EXPECTED_KEYS = {
    "in_selection": [str(i) for i in range(1, 15)], "no_number": ["8"],
    "invalid_number": ["7"], "not_mobile": ["6"], "no_consent": ["2", "10", "11", "12"],
    "suppressed": ["5"], "duplicate_number": ["9", "14"], "recipients": ["1", "3", "4", "13"],
}


@pytest.fixture
def app(tmp_path: Path):
    studio = Studio(tmp_path / "aud.duckdb")
    import_csv(studio, write_csv(tmp_path, CSV), database="main", consent_yes=("yes", "ja"))
    studio.suppress(["0049 151 23456789", "+31612345681"], reason="manual")
    try:
        yield studio
    finally:
        studio.close()


def test_every_step_has_its_known_count(app: Studio) -> None:
    result = app.audience(database="main")
    assert [name for name, _ in result.steps] == list(STEPS)
    assert dict(result.steps) == EXPECTED
    assert result.recipients == 4
    assert result.recipients == EXPECTED["in_selection"] - sum(
        n for step, n in EXPECTED.items() if step != "in_selection")
    assert result.by_country == {"NL": 3, "BE": 1}


def test_to_json_has_exactly_the_documented_shape(app: Studio) -> None:
    data = app.audience(database="main").to_json()
    assert list(data) == ["steps", "recipients", "by_country"]
    assert data["steps"] == [{"step": s, "count": EXPECTED[s]} for s in STEPS]
    assert all(list(item) == ["step", "count"] for item in data["steps"])
    assert data["recipients"] == 4 and data["by_country"] == {"NL": 3, "BE": 1}


@pytest.mark.parametrize("step", [*STEPS, "recipients"])
def test_each_step_lists_the_contacts_it_removes(app: Studio, step: str) -> None:
    frame = app.audience_step_frame(step, database="main")
    assert list(frame["customer_id"].astype(str)) == EXPECTED_KEYS[step]
    assert {"first_name", "city", "consent", "mobile", "_row_id", "_e164",
            "_phone_status"} <= set(frame.columns)


def test_duplicates_name_the_contact_that_was_kept(app: Studio) -> None:
    frame = app.audience_step_frame("duplicate_number", database="main")
    kept = app.audience_step_frame("in_selection", database="main").set_index("_row_id")
    originals = kept.loc[frame["_duplicate_of"], "customer_id"].astype(str)
    assert list(originals) == ["1", "13"]


def test_step_csv_is_a_spreadsheet_safe_download(app: Studio) -> None:
    data = app.audience_step_csv("recipients", database="main").decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data)))
    assert [r["customer_id"] for r in rows] == ["1", "3", "4", "13"]
    assert rows[0]["_e164"] == "'+31612345678"  # text a spreadsheet would run is quoted


def test_the_recipients_frame_is_one_row_per_number(app: Studio) -> None:
    frame = app.audience_frame(database="main")
    assert list(frame.columns) == ["customer_id", "first_name", "city", "consent", "mobile",
                                   "_row_id", "_e164", "_country"]
    assert list(frame["customer_id"].astype(str)) == ["1", "3", "4", "13"]
    assert frame["_e164"].is_unique
    assert list(frame["_country"]) == ["NL", "NL", "BE", "NL"]
    narrow = app.audience_frame(database="main", columns=["first_name"])
    assert list(narrow.columns) == ["first_name", "_row_id", "_e164", "_country"]
    with pytest.raises(InvalidInput, match="no column 'town'"):
        app.audience_frame(database="main", columns=["town"])


def test_a_selection_reconciles_only_its_own_contacts(app: Studio) -> None:
    app.create_selection("adam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                         database="main")
    app.create_selection("adam-a", spec={"field": "first_name", "op": "starts_with",
                                         "value": "a"}, parent="adam")
    result = app.audience(selection="adam")
    # Amsterdam: 1 (recipient), 10 (no consent), 12 (no consent), 13 (recipient)
    assert dict(result.steps) == {"in_selection": 4, "no_number": 0, "invalid_number": 0,
                                  "not_mobile": 0, "no_consent": 2, "suppressed": 0,
                                  "duplicate_number": 0}
    assert result.recipients == 2 and result.selection == "adam"
    assert app.audience(selection="adam-a").recipients == 1
    frame = app.audience_frame(selection="adam-a")
    assert list(frame["customer_id"].astype(str)) == ["1"]


def test_suppression_changes_are_seen_at_once(app: Studio) -> None:
    app.suppress(["06-12345678"])
    result = app.audience(database="main")
    # Contact 1 is suppressed now, so 9 (same number) is suppressed too, not a duplicate.
    assert dict(result.steps)["suppressed"] == 3
    assert dict(result.steps)["duplicate_number"] == 1
    assert result.recipients == 3
    app.unsuppress(["+31 6 1234 5678"])
    assert app.audience(database="main").recipients == 4


def test_without_an_opt_in_rule_nobody_has_consent(app: Studio, tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text("id,mobile\n1,0612345678\n2,\n3,0612345679\n", encoding="utf-8")
    app.import_contacts(path, database="bare")
    result = app.audience(database="bare")
    assert dict(result.steps) == {"in_selection": 3, "no_number": 1, "invalid_number": 0,
                                  "not_mobile": 0, "no_consent": 2, "suppressed": 0,
                                  "duplicate_number": 0}
    assert result.recipients == 0 and not result.consent_rule


def test_audience_needs_a_target_that_exists(app: Studio) -> None:
    with pytest.raises(InvalidInput, match="Name a selection or a contact database"):
        app.audience()
    with pytest.raises(InvalidInput, match="no reconciliation step 'spam'"):
        app.audience_step_frame("spam", database="main")
    app.create_selection("s", spec={"all": []}, database="main")
    with pytest.raises(InvalidInput, match="belongs to database 'main'"):
        app.audience(selection="s", database="other")


# -- the same answers as a plain-Python reading of the rules, on random databases --------------
PHONES = ["0612345601", "0612345602", "0612345603", "+32470123456", "020-1234567",
          "onbekend", "", "06 1234 5601"]
CONSENTS = ["yes", "no", " JA ", "Yes", "", "maybe"]
contact = st.tuples(st.sampled_from(PHONES), st.sampled_from(CONSENTS))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(contacts=st.lists(contact, min_size=1, max_size=25),
       suppressed=st.sets(st.sampled_from(["+31612345601", "+31612345603", "+32470123456"])))
def test_counts_match_a_plain_reading_of_the_rules(tmp_path_factory, contacts, suppressed
                                                   ) -> None:
    from core import phones

    tmp = tmp_path_factory.mktemp("oracle")
    lines = ["id,consent,mobile"] + [f"{i},{c},{p}" for i, (p, c) in enumerate(contacts, 1)]
    (tmp / "c.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Studio(tmp / "o.duckdb") as app:
        app.import_contacts(tmp / "c.csv", database="d", consent_field="consent",
                            consent_yes=["yes", "ja"], region="NL")
        if suppressed:
            app.suppress(sorted(suppressed))
        result = app.audience(database="d")
        recipients = app.audience_frame(database="d")

    expected: Counter[str] = Counter()
    seen: set[str] = set()
    kept = []
    for i, (raw, consent) in enumerate(contacts, 1):
        norm = phones.normalize_one(raw, "NL")
        if norm.status == "missing":
            expected["no_number"] += 1
        elif norm.status == "invalid":
            expected["invalid_number"] += 1
        elif norm.status == "not_mobile":
            expected["not_mobile"] += 1
        elif consent.strip().lower() not in ("yes", "ja"):
            expected["no_consent"] += 1
        elif norm.e164 in suppressed:
            expected["suppressed"] += 1
        elif norm.e164 in seen:
            expected["duplicate_number"] += 1
        else:
            seen.add(norm.e164)
            kept.append(i)
    assert dict(result.steps) == {"in_selection": len(contacts),
                                  **{s: expected[s] for s in STEPS[1:]}}
    assert result.recipients == len(kept)
    assert list(recipients["_row_id"]) == kept
    assert sum(result.by_country.values()) == result.recipients
