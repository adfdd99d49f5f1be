"""Stored selections and mini-selections on real DuckDB files: rules, nesting, usage settings."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput, NotFound
from core.studio import Studio

CSV = """customer_id,first_name,city,age,consent,birthday,mobile
1,Anna,Amsterdam,34,yes,1990-03-15,06-12345678
2,Bram,Rotterdam,41,no,1983-07-01,+31 6 1234 5679
3,Chloé,Utrecht,29,ja,1995-03-15,0031612345680
4,Dirk,Gent,52,yes,1972-12-24,+32 470 12 34 56
5,Eva,Berlin,38,yes,1986-03-16,+49 151 23456789
6,Finn,Den Haag,45,yes,1979-01-02,020-1234567
7,Gina,Leiden,23,yes,2001-03-15,onbekend
8,Hugo,Delft,31,yes,1993-05-05,
9,Iris,Haarlem,27,yes,1997-11-11,06-12345678
10,Jan,Amsterdam,61,yes,1963-06-30,06 1234 5681
11,Kees,Utrecht,19,no,2005-02-28,06 1234 5682
12,Lot,Amsterdam,44,yes,1980-08-08,06 1234 5683
"""
FIXED_NOW = datetime(2026, 3, 15, 10, 0, 0)  # UTC; 11:00 in Amsterdam


@pytest.fixture
def app(tmp_path: Path):
    csv = tmp_path / "contacts.csv"
    csv.write_text(CSV, encoding="utf-8")
    studio = Studio(tmp_path / "sel.duckdb", clock=lambda: FIXED_NOW)
    studio.import_contacts(csv, database="main", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes", "ja"], region="NL")
    try:
        yield studio
    finally:
        studio.close()


def keys(app: Studio, **target) -> set[str]:
    frame = app.audience_step_frame("in_selection", **target)
    return set(frame["customer_id"].astype(str))


def test_a_selection_is_stored_and_counted_with_the_time_of_counting(app: Studio) -> None:
    sel_id = app.create_selection(
        "amsterdam", spec={"field": "city", "op": "eq", "value": "Amsterdam"}, database="main"
    )
    info = app.get_selection("amsterdam")
    assert info.id == sel_id and info.database == "main" and info.parent is None
    assert info.last_count is None and info.counted_at is None
    count, at = app.count_selection("amsterdam")
    assert (count, at) == (3, FIXED_NOW)
    info = app.get_selection("amsterdam")
    assert (info.last_count, info.counted_at) == (3, FIXED_NOW)


def test_a_selection_is_a_rule_so_new_matching_contacts_are_included(app: Studio,
                                                                    tmp_path: Path) -> None:
    app.create_selection("utrecht", spec={"field": "city", "op": "eq", "value": "Utrecht"},
                         database="main")
    assert app.count_selection("utrecht")[0] == 2
    more = tmp_path / "more.csv"
    more.write_text("customer_id,first_name,city,age,consent,birthday,mobile\n"
                    "13,Mia,Utrecht,50,yes,1976-01-01,06 1234 5690\n", encoding="utf-8")
    app.import_contacts(more, database="main")
    assert app.count_selection("utrecht")[0] == 3


def test_names_are_unique_and_required(app: Studio) -> None:
    spec = {"field": "age", "op": "ge", "value": 30}
    app.create_selection("thirties", spec=spec, database="main")
    with pytest.raises(InvalidInput, match="already exists"):
        app.create_selection("thirties", spec=spec, database="main")
    with pytest.raises(InvalidInput, match="name"):
        app.create_selection("  ", spec=spec, database="main")


def test_an_invalid_rule_is_refused_saying_what_and_where(app: Studio) -> None:
    bad = {"all": [{"field": "age", "op": "ge", "value": 30},
                   {"field": "ctiy", "op": "eq", "value": "Gent"}]}
    with pytest.raises(InvalidInput) as err:
        app.create_selection("bad", spec=bad, database="main")
    message = str(err.value)
    assert "all[1].field" in message and "ctiy" in message and "'bad'" in message
    with pytest.raises(InvalidInput, match="not valid JSON"):
        app.create_selection("bad", spec='{"field": "age",', database="main")
    with pytest.raises(InvalidInput, match="database"):
        app.create_selection("bad", spec={"all": []})
    with pytest.raises(NotFound, match="nowhere"):
        app.create_selection("bad", spec={"all": []}, database="nowhere")
    assert app.list_selections().empty


def test_a_rule_may_be_given_as_json_text(app: Studio) -> None:
    app.create_selection("ja", spec='{"field": "consent", "op": "eq", "value": "ja"}',
                         database="main")
    assert app.get_selection("ja").spec == {"field": "consent", "op": "eq", "value": "ja"}
    assert app.count_selection("ja")[0] == 1


def test_mini_selections_nest_and_list_in_tree_order(app: Studio) -> None:
    app.create_selection("b-adults", spec={"field": "age", "op": "ge", "value": 25},
                         database="main")
    app.create_selection("a-young", spec={"field": "age", "op": "lt", "value": 25},
                         database="main")
    app.create_selection("adam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                         parent="b-adults")
    app.create_selection("adam-40", spec={"field": "age", "op": "ge", "value": 40},
                         parent="adam")
    app.create_selection("nl", spec={"field": "_country", "op": "eq", "value": "NL"},
                         parent="b-adults")
    frame = app.list_selections()
    assert list(frame.columns) == ["id", "name", "database", "parent", "sms_enabled", "usable",
                                   "last_count", "counted_at", "depth"]
    assert list(frame["name"]) == ["a-young", "b-adults", "adam", "adam-40", "nl"]
    assert list(frame["depth"]) == [0, 0, 1, 2, 1]
    assert [None if p != p else p for p in frame["parent"]] == [None, None, "b-adults", "adam",
                                                                "b-adults"]
    chain = app.selection_chain("adam-40")
    assert [c.name for c in chain] == ["b-adults", "adam", "adam-40"]
    assert [c.depth for c in chain] == [0, 1, 2]
    assert app.get_selection("adam-40").database == "main"
    assert keys(app, selection="adam-40") == {"10", "12"}


def test_a_mini_selection_cannot_leave_its_parents_database(app: Studio, tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("id,mobile\n1,0612345678\n", encoding="utf-8")
    app.import_contacts(other, database="other")
    app.create_selection("parent", spec={"all": []}, database="main")
    with pytest.raises(InvalidInput, match="parent's database"):
        app.create_selection("child", spec={"all": []}, parent="parent", database="other")
    with pytest.raises(NotFound, match="no selection named 'ghost'"):
        app.create_selection("child", spec={"all": []}, parent="ghost")


# A handful of conditions over the test database, combined at random into chains.
CONDITIONS = [
    {"field": "age", "op": "ge", "value": 30},
    {"field": "age", "op": "between", "value": [20, 45]},
    {"field": "city", "op": "in", "value": ["Amsterdam", "Utrecht", "Gent"]},
    {"field": "city", "op": "contains", "value": "e"},
    {"field": "consent", "op": "ne", "value": "no"},
    {"field": "_country", "op": "eq", "value": "NL"},
    {"field": "_phone_status", "op": "eq", "value": "valid_mobile"},
    {"field": "first_name", "op": "regex", "value": "^[A-H]"},
    {"field": "birthday", "op": "birthday_today"},
    {"field": "mobile", "op": "empty"},
]
condition = st.sampled_from(CONDITIONS)
spec_strategy = st.one_of(
    condition,
    st.builds(lambda items: {"all": items}, st.lists(condition, max_size=3)),
    st.builds(lambda items: {"any": items}, st.lists(condition, min_size=1, max_size=3)),
)
_names = itertools.count()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(spec_strategy, min_size=2, max_size=4))
def test_a_mini_selection_is_always_a_subset_of_its_parent(app: Studio, chain: list) -> None:
    parent = None
    made = []
    for spec in chain:
        name = f"s{next(_names)}"
        app.create_selection(name, spec=spec, database=None if parent else "main",
                             parent=parent)
        made.append(name)
        parent = name
    previous = keys(app, database="main")
    for name, spec in zip(made, chain, strict=True):
        own = keys(app, selection=name)
        assert own <= previous
        # ... and exactly the parent's contacts that also match its own rule.
        alone = app.sample_selection(spec=spec, database="main", limit=500)
        assert own == previous & set(alone["customer_id"].astype(str))
        assert app.count_selection(name)[0] == len(own)
        previous = own


def test_draft_rules_are_counted_without_saving(app: Studio) -> None:
    app.create_selection("adults", spec={"field": "age", "op": "ge", "value": 25},
                         database="main")
    draft = {"field": "city", "op": "eq", "value": "Amsterdam"}
    assert app.count_selection(spec=draft, database="main")[0] == 3
    assert app.count_selection(spec=draft, parent="adults")[0] == 3
    assert app.count_selection(spec={"field": "age", "op": "lt", "value": 25},
                               parent="adults")[0] == 0
    # An edited rule of a stored selection is counted but its stored count is untouched.
    assert app.count_selection("adults", spec=draft)[0] == 3
    assert app.get_selection("adults").last_count is None
    assert len(app.list_selections()) == 1


def test_samples_are_a_page_of_matching_contacts(app: Studio) -> None:
    app.create_selection("all", spec={"all": []}, database="main")
    sample = app.sample_selection("all", limit=5)
    assert list(sample["customer_id"].astype(str)) == ["1", "2", "3", "4", "5"]
    assert {"_e164", "_phone_status"} <= set(sample.columns)
    assert len(app.sample_selection("all", limit=10_000)) == 12
    assert len(app.sample_selection(spec={"field": "city", "op": "eq", "value": "Gent"},
                                    database="main")) == 1


def test_today_is_the_studio_clock_in_the_configured_time_zone(app: Studio) -> None:
    app.create_selection("birthday", spec={"field": "birthday", "op": "birthday_today"},
                         database="main")
    assert keys(app, selection="birthday") == {"1", "3", "7"}  # 15 March
    late = Studio(app.db_path, clock=lambda: datetime(2026, 3, 15, 23, 30))
    try:  # 23:30 UTC is already 16 March in Amsterdam
        assert late.count_selection("birthday")[0] == 1
    finally:
        late.close()


def test_update_rename_and_duplicate(app: Studio) -> None:
    app.create_selection("x", spec={"field": "age", "op": "ge", "value": 40}, database="main",
                         sms=True)
    app.count_selection("x")
    app.update_selection("x", spec={"field": "age", "op": "ge", "value": 50})
    info = app.get_selection("x")
    assert info.spec["value"] == 50 and info.last_count is None  # a new rule, a new count
    assert app.count_selection("x")[0] == 2
    app.rename_selection("x", "over-50")
    with pytest.raises(NotFound):
        app.get_selection("x")
    app.create_selection("child", spec={"field": "city", "op": "eq", "value": "Gent"},
                         parent="over-50")
    assert app.get_selection("child").parent == "over-50"
    new_id = app.duplicate_selection("over-50", "over-50 copy")
    copy = app.get_selection("over-50 copy")
    assert copy.id == new_id and copy.spec == app.get_selection("over-50").spec
    assert copy.sms_enabled and copy.parent is None
    assert app._descendant_ids(new_id) == []  # children are not copied
    with pytest.raises(InvalidInput, match="already exists"):
        app.rename_selection("over-50 copy", "child")
    with pytest.raises(InvalidInput, match="age"):
        app.update_selection("child", spec={"field": "age", "op": "contains", "value": "5"})


def test_delete_refuses_while_mini_selections_exist_unless_cascading(app: Studio) -> None:
    app.create_selection("top", spec={"all": []}, database="main")
    app.create_selection("mid", spec={"all": []}, parent="top")
    app.create_selection("low", spec={"all": []}, parent="mid")
    with pytest.raises(InvalidInput, match="mini-selections \\(mid\\)"):
        app.delete_selection("top")
    assert app.delete_selection("low") == ["low"]
    assert app.delete_selection("top", cascade=True) == ["mid", "top"]
    assert app.list_selections().empty


def test_delete_refuses_while_a_scheduled_or_sending_mailing_uses_it(app: Studio) -> None:
    app.create_selection("top", spec={"all": []}, database="main")
    app.create_selection("low", spec={"all": []}, parent="top")
    low = app.get_selection("low").id
    app.storage.execute("INSERT INTO mailings (selection_id, state) VALUES (?, 'scheduled')",
                        [low])
    with pytest.raises(InvalidInput, match="mailing 1, which is scheduled"):
        app.delete_selection("top", cascade=True)
    with pytest.raises(InvalidInput, match="scheduled"):
        app.delete_selection("low")
    app.storage.execute("UPDATE mailings SET state = 'finished'")
    assert app.delete_selection("top", cascade=True) == ["low", "top"]


def test_selection_where_is_the_and_of_the_chain(app: Studio) -> None:
    app.create_selection("adults", spec={"field": "age", "op": "ge", "value": 25},
                         database="main")
    app.create_selection("adam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                         parent="adults")
    sql, params = app.selection_where("adam")
    assert params == [25, "Amsterdam"]
    table = app.get_database("main").table
    found = app.storage.rows(f'SELECT customer_id FROM "{table}" WHERE {sql} ORDER BY 1',
                             params)
    assert [r[0] for r in found] == ["1", "10", "12"]


def test_describe_selection_reads_the_chain(app: Studio) -> None:
    app.create_selection("adults", spec={"field": "age", "op": "ge", "value": 25},
                         database="main")
    app.create_selection("adam", spec={"field": "city", "op": "eq", "value": "Amsterdam"},
                         parent="adults")
    assert app.describe_selection("adam") == '(age ≥ 25) and (city is "Amsterdam")'


def test_frequent_values_for_value_pickers(app: Studio) -> None:
    assert app.frequent_values("main", "city", limit=2) == ["Amsterdam", "Utrecht"]
    assert app.frequent_values("main", "age", limit=1) == [19]
    with pytest.raises(InvalidInput, match="no field 'town'"):
        app.frequent_values("main", "town")


# -- usage settings: enforced by Studio, with the reason ---------------------------------------
def test_a_selection_is_usable_only_when_switched_on(app: Studio) -> None:
    app.create_selection("off", spec={"all": []}, database="main")
    app.create_selection("on", spec={"all": []}, database="main", sms=True)
    assert app.sms_usable_reason("off") == "switch on SMS usage for this selection"
    assert app.sms_usable_reason("on") is None
    with pytest.raises(InvalidInput, match="'off' cannot be used for SMS: switch on SMS usage"):
        app.require_sms_usable("off")
    app.require_sms_usable("on")
    assert app.usable_selections() == ["on"]
    assert list(app.list_selections()["usable"]) == [False, True]
    app.set_sms_usage("off", True)
    app.set_sms_usage("on", False)
    assert app.usable_selections() == ["off"]


def test_a_database_without_opt_in_rule_makes_no_selection_usable(app: Studio,
                                                                 tmp_path: Path) -> None:
    csv = tmp_path / "no_consent.csv"
    csv.write_text("id,mobile\n1,0612345678\n2,0612345679\n", encoding="utf-8")
    app.import_contacts(csv, database="bare")
    app.create_selection("bare-all", spec={"all": []}, database="bare", sms=True)
    reason = "database bare has no opt-in rule (consent field and values)"
    assert app.sms_usable_reason("bare-all") == reason
    with pytest.raises(InvalidInput, match="no opt-in rule"):
        app.require_sms_usable("bare-all")
    with pytest.raises(InvalidInput, match="Database 'bare' cannot be used for SMS: database "
                                           "bare has no opt-in rule"):
        app.require_sms_usable(database="bare")
    app.require_sms_usable(database="main")
    assert app.usable_selections() == []
    app.set_opt_in_rule("bare", "id", ["1"])
    assert app.usable_selections() == ["bare-all"]


def test_a_database_without_mobile_field_makes_no_selection_usable(app: Studio) -> None:
    app.create_selection("s", spec={"all": []}, database="main", sms=True)
    app.storage.execute("UPDATE databases SET mobile_field = NULL WHERE name = 'main'")
    assert app.sms_usable_reason("s") == "database main has no mobile field"
    with pytest.raises(InvalidInput, match="no mobile field"):
        app.require_sms_usable(database="main")
    assert not app.list_selections()["usable"].any()


def test_require_sms_usable_needs_a_target(app: Studio) -> None:
    with pytest.raises(InvalidInput, match="Name the selection"):
        app.require_sms_usable()
    with pytest.raises(NotFound):
        app.require_sms_usable("ghost")


def test_rules_on_sms_history_match_nobody_before_any_mailing(app: Studio) -> None:
    app.create_selection("got-one", spec={"field": "_sms", "op": "delivered"}, database="main")
    assert app.count_selection("got-one")[0] == 0
    either = {"any": [{"field": "_sms", "op": "failed"}, {"field": "age", "op": "ge",
                                                           "value": 60}]}
    assert app.count_selection(spec=either, database="main")[0] == 1
    assert app.audience(selection="got-one").recipients == 0


def test_stored_specs_are_normalised_json(app: Studio) -> None:
    app.create_selection("n", spec={"field": "age", "op": "ge", "value": "30"}, database="main")
    raw = app.storage.one("SELECT spec FROM selections WHERE name = 'n'")
    assert json.loads(raw) == {"field": "age", "op": "ge", "value": 30}
