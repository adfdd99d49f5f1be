"""Documents: storing drafts, checking senders and templates, previews, the whole-selection
view with its segment histogram, UCS-2 causes and cost, and the price table."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from core import pricing, segments, templates
from core.errors import InvalidInput, NotFound

# Known answers for the selection view (body "{{ first_name }}: {{ note }}"):
#   1 Anna NL  short GSM-7          1 segment
#   2 Zoë  NL  UCS-2 because of ë   1 segment
#   3 Bob  BE  205 GSM-7 characters 2 segments
#   4 Zoë  DE  UCS-2 because of ë   1 segment
#   5 Eve  NL  405 GSM-7 characters 3 segments  (the longest)
#   6 Finn NL  no consent           not a recipient
#   7 Gus  NL  invalid number       not a recipient
#   8 Anna NL  same number as 1     not a recipient (duplicate number)
VIEW_CSV = (
    "customer_id,first_name,note,consent,mobile\n"
    "1,Anna,,yes,0612345671\n"
    "2,Zoë,,yes,0612345672\n"
    f"3,Bob,{'x' * 200},yes,+32470123456\n"
    "4,Zoë,,yes,+4915123456789\n"
    f"5,Eve,{'y' * 400},yes,0612345675\n"
    "6,Finn,,no,0612345676\n"
    "7,Gus,,yes,12\n"
    "8,Anna,,yes,0612345671\n"
)
TEST_PRICES = pd.DataFrame({
    "country": ["*", "NL", "BE"],
    "price_per_segment": [0.5, 0.1, 0.2],
    "currency": ["EUR", "EUR", "EUR"],
})


@pytest.fixture
def view_db(studio, tmp_path: Path):
    path = tmp_path / "view.csv"
    path.write_text(VIEW_CSV, encoding="utf-8")
    studio.import_contacts(path, database="shop", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes"], region="NL")
    studio.prices_path = tmp_path / "prices.csv"
    pricing.save_prices(TEST_PRICES, studio.prices_path)
    return studio


# -- storing documents ------------------------------------------------------------------------
def test_create_list_get_update_rename_duplicate_delete(studio):
    doc_id = studio.create_document("Welcome", sender="Shop", body="Hi {{ first_name }}")
    assert isinstance(doc_id, int)
    doc = studio.get_document("Welcome")
    assert (doc.id, doc.sender, doc.body) == (doc_id, "Shop", "Hi {{ first_name }}")

    studio.update_document("Welcome", body="Hello")
    assert studio.get_document("Welcome").body == "Hello"
    assert studio.get_document("Welcome").sender == "Shop"  # untouched when not given

    studio.rename_document("Welcome", "Welcome NL")
    with pytest.raises(NotFound, match="Welcome NL"):  # the error lists what exists
        studio.get_document("Welcome")
    copy_id = studio.duplicate_document("Welcome NL", "Welcome BE")
    assert copy_id != doc_id
    assert studio.get_document("Welcome BE").body == "Hello"

    listed = studio.list_documents()
    assert listed["name"].tolist() == ["Welcome BE", "Welcome NL"]
    assert listed["characters"].tolist() == [5, 5]

    studio.delete_document("Welcome BE")
    assert studio.document_names() == ["Welcome NL"]


def test_names_must_be_unique_and_not_empty(studio):
    studio.create_document("A")
    studio.create_document("B")
    with pytest.raises(InvalidInput, match="already a document named 'A'"):
        studio.create_document(" A ")
    with pytest.raises(InvalidInput, match="already"):
        studio.rename_document("B", "A")
    with pytest.raises(InvalidInput, match="already"):
        studio.duplicate_document("B", "A")
    with pytest.raises(InvalidInput, match="name"):
        studio.create_document("   ")
    studio.rename_document("A", "A")  # its own name is not a clash
    assert studio.document_names() == ["A", "B"]


@pytest.mark.parametrize("state, refused", [
    ("scheduled", True), ("sending", True), ("finished", False), ("cancelled", False),
])
def test_delete_is_refused_while_a_mailing_needs_the_document(studio, state, refused):
    doc_id = studio.create_document("Promo", sender="Shop", body="Sale!")
    studio.storage.execute(
        "INSERT INTO mailings (document_id, state) VALUES (?, ?)", [doc_id, state]
    )
    if refused:
        with pytest.raises(InvalidInput, match=rf"mailing #\d+ \({state}\)"):
            studio.delete_document("Promo")
        assert studio.document_names() == ["Promo"]
    else:
        studio.delete_document("Promo")
        assert studio.document_names() == []


# -- senders and templates on save -------------------------------------------------------------
@pytest.mark.parametrize("sender, fragment", [
    ("MyVeryLongShop", "14 characters"),
    ("Shop!", "'!'"),
    ("+12345678901234567", "17 digits"),
    (" Shop", "space"),
])
def test_a_fixed_sender_breaking_the_rule_is_refused_with_the_rule(studio, sender, fragment):
    studio.create_document("Doc", sender="Shop", body="x")
    with pytest.raises(InvalidInput, match=fragment) as caught:
        studio.update_document("Doc", sender=sender, body="changed")
    assert "1 to 11 letters" in str(caught.value)  # the rule itself is named
    doc = studio.get_document("Doc")
    assert (doc.sender, doc.body) == ("Shop", "x")  # nothing was changed
    with pytest.raises(InvalidInput):
        studio.create_document("Other", sender=sender)
    assert studio.document_names() == ["Doc"]


def test_empty_numeric_and_personalised_senders_are_stored(studio):
    studio.create_document("Draft")
    studio.create_document("Numeric", sender="+31612345678")
    studio.create_document("Personal", sender="{{ shop_name }}")
    assert studio.get_document("Personal").sender == "{{ shop_name }}"


def test_check_document_reports_sender_warnings_and_errors(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="db", key_field="customer_id")
    check = studio.check_document(body="Hi", sender="Shop", database="db")
    assert check.sender_check.ok and check.sender_check.warnings  # alphanumeric warning
    check = studio.check_document(body="Hi", sender="Shop!", database="db")
    assert not check.sender_check.ok and not check.ok
    check = studio.check_document(body="Hi", sender="{{ cty }}", database="db")
    assert check.sender_personalised and check.sender_error.suggestions == ["city"]


def test_a_draft_with_a_template_error_is_saved_and_the_error_located(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="db", key_field="customer_id")
    body = "Hello\n{{ frist_name }}, see you"
    studio.create_document("Draft", sender="Shop", body=body)
    assert studio.get_document("Draft").body == body
    check = studio.check_document(body=body, database="db")
    error = check.template_error
    assert (error.line, error.field, error.suggestions) == (2, "frist_name", ["first_name"])
    assert not check.ok

    broken = "Hi {{ first_name }"
    studio.update_document("Draft", body=broken)
    error = studio.check_document(body=broken, database="db").template_error
    assert error.kind == "syntax" and error.line == 1 and error.column is not None
    # Without a database only the syntax counts: any field name is accepted.
    assert studio.check_document(body="Hi {{ anything }}").ok
    assert studio.check_document(body=broken).template_error is not None


def test_smarty_is_translated_and_the_jinja_form_offered(studio, contacts_csv):
    studio.import_contacts(contacts_csv, database="db", key_field="customer_id")
    check = studio.check_document(body="Hi {$profile.first_name|default:'klant'}",
                                  database="db")
    assert check.ok
    assert check.translated_source == 'Hi {{ first_name | default("klant") }}'


# -- meter and preview ---------------------------------------------------------------------
def test_the_meter_follows_the_national_shift_setting(studio):
    text = "Güle güle, ağabey"  # ğ: Turkish shift table; ü is in the default alphabet
    assert studio.message_meter(text).encoding == "UCS-2"
    studio.set_setting("national_shift", "turkish")
    meter = studio.message_meter(text)
    assert (meter.encoding, meter.national, meter.capacity) == ("GSM-7", "turkish", 155)
    studio.set_setting("national_shift", "klingon")
    with pytest.raises(InvalidInput, match="national_shift"):
        studio.message_meter(text)


def test_smart_fix_offers_the_replacement_and_its_saving(studio):
    text = "Don’t miss it " * 6  # 84 characters with a curly apostrophe: UCS-2, 2 parts
    fix = studio.smart_fix(text)
    assert fix.summary == "2 segments → 1"
    assert [r[0] for r in fix.replacements] == ["’"]
    assert segments.apply_smart_encoding(text, ["’"]) == fix.text_after


def test_preview_for_the_default_destination_and_a_picked_contact(view_db):
    studio = view_db
    with pytest.raises(InvalidInput, match="default destination"):
        studio.preview_document(body="Hi {{ first_name }}", database="shop")
    studio.set_default_destination("shop", contact_key="2")
    preview = studio.preview_document(body="Hi {{ first_name }}", sender="Shop",
                                      database="shop")
    assert preview.text == "Hi Zoë"
    assert (preview.meter.encoding, preview.meter.non_gsm) == ("UCS-2", ("ë",))
    assert preview.label == "customer_id 2 · +31612345672"
    assert preview.sender_check.ok

    row_id = int(studio.browse_contacts("shop", search="Bob")[0]["_row_id"].iloc[0])
    picked = studio.preview_document(body="Hi {{ first_name }}", sender="{{ first_name }}Shop",
                                     database="shop", row_id=row_id)
    assert (picked.text, picked.sender) == ("Hi Bob", "BobShop")
    assert picked.meter.encoding == "GSM-7"

    with pytest.raises(templates.TemplateError, match="did you mean 'first_name'"):
        studio.preview_document(body="Hi {{ firstname }}", database="shop")


def test_preview_for_a_typed_test_number_renders_empty_fields(view_db):
    studio = view_db
    studio.set_default_destination("shop", number="0612345699")
    preview = studio.preview_document(body="Hi {{ first_name | default('friend') }}",
                                      database="shop")
    assert preview.text == "Hi friend"


# -- the whole selection ----------------------------------------------------------------------
def test_selection_view_known_answers(view_db):
    studio = view_db
    studio.create_document("Note", sender="Shop", body="{{ first_name }}: {{ note }}")
    fractions: list[float] = []
    view = studio.selection_view("Note", database="shop",
                                 progress=lambda f, label: fractions.append(f))
    assert view.recipients == 5
    assert dict(zip(view.segments_histogram["segments"], view.segments_histogram["recipients"],
                    strict=True)) == {1: 3, 2: 1, 3: 1}
    assert view.total_segments == 8
    assert view.ucs2_recipients == 2
    causes = view.ucs2_causes
    assert causes[["field", "value", "characters", "recipients"]].values.tolist() == [
        ["first_name", "Zoë", "ë", 2]
    ]
    assert view.longest.contact_key == "5"
    assert (view.longest.segments, view.longest.characters) == (3, 405)
    assert view.longest.text.startswith("Eve: yyy")

    cost = view.cost_by_country.set_index("country")
    assert cost.loc["NL", ["recipients", "segments"]].tolist() == [3, 5]
    assert cost.loc["NL", "cost"] == pytest.approx(0.5)
    assert cost.loc["BE", "cost"] == pytest.approx(0.4)
    assert (cost.loc["DE", "price"], cost.loc["DE", "priced_by"]) == (0.5, "default")
    assert view.total_cost == pytest.approx(1.4)
    assert view.currency == "EUR"
    assert view.fast_path is True
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert view.over_max_parts == 0


def test_selection_view_of_a_draft_and_its_document_text_cause(view_db):
    studio = view_db
    view = studio.selection_view(body="Don’t forget, {{ first_name }}!", database="shop")
    assert view.ucs2_recipients == 5
    causes = view.ucs2_causes.set_index("field")
    assert causes.loc["(document text)", "characters"] == "’"
    assert causes.loc["(document text)", "recipients"] == 5
    assert causes.loc["first_name", "value"] == "Zoë"
    assert "The document has no sender yet; a mailing needs one." in view.warnings


def test_selection_view_with_a_stored_selection_and_the_max_parts_setting(view_db):
    studio = view_db
    studio.create_selection("long notes", database="shop",
                            spec={"field": "first_name", "op": "in", "value": ["Bob", "Eve"]})
    studio.set_setting("split_max_parts", 2)
    view = studio.selection_view(body="{{ note }}", sender="Shop", selection="long notes")
    assert (view.recipients, view.total_segments, view.over_max_parts) == (2, 5, 1)
    assert view.selection == "long notes" and view.database == "shop"
    assert any("more than 2 parts" in w for w in view.warnings)
    with pytest.raises(InvalidInput, match="belongs to database"):
        studio.selection_view(body="x", selection="long notes", database="other")


def test_selection_view_counts_with_the_national_shift_table(view_db):
    studio = view_db
    body = "Merhaba {{ first_name }}, ağabey!"
    assert studio.selection_view(body=body, database="shop").ucs2_recipients == 5
    studio.set_setting("national_shift", "turkish")
    view = studio.selection_view(body=body, database="shop")
    assert view.national == "turkish"
    assert view.ucs2_recipients == 2  # only the Zoë contacts: ë is in no table
    assert view.ucs2_causes["value"].tolist() == ["Zoë"]


def test_selection_view_lists_invalid_personalised_senders(view_db):
    studio = view_db
    view = studio.selection_view(body="Hi", sender="{{ first_name }} Webshop", database="shop")
    bad = view.invalid_senders.set_index("sender")
    assert bad.loc["Anna Webshop", "recipients"] == 1  # 12 characters
    assert "Zoë Webshop" in bad.index  # ë is not allowed
    assert "Bob Webshop" not in bad.index  # 11 characters: fine
    assert any("invalid for" in w for w in view.warnings)


def test_selection_view_refuses_a_template_that_cannot_render(view_db):
    with pytest.raises(templates.TemplateError) as caught:
        view_db.selection_view(body="Hi {{ frist_name }}", database="shop")
    assert caught.value.suggestions == ["first_name"]


def test_selection_view_matches_rendering_and_counting_each_recipient(studio, tmp_path):
    """The aggregates equal a per-recipient oracle (Jinja2 row by row + analyze)."""
    rng = random.Random(7)
    names = ["Anna", "Zoë", "Ελένη", "Jo", "Chloé", "Émile", "Bob😀", "Dré"]
    lines = ["id,first_name,city,consent,mobile"]
    for i in range(1, 301):
        city = rng.choice(["Amsterdam", "Köln", "Łódź", "Gent"]) * rng.randint(1, 40)
        lines.append(f"{i},{rng.choice(names)},{city},yes,06{20000000 + i}")
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    studio.import_contacts(path, database="many", key_field="id", consent_field="consent",
                           consent_yes=["yes"], region="NL")
    studio.prices_path = tmp_path / "prices.csv"
    pricing.save_prices(TEST_PRICES, studio.prices_path)
    body = "Dear {{ first_name }}, news from {{ city }}."
    view = studio.selection_view(body=body, database="many")

    frame = studio.audience_frame(database="many")
    compiled = templates.prepare(body, ["id", "first_name", "city", "consent", "mobile"])
    infos = [segments.analyze(compiled.render(row)) for _, row in frame.iterrows()]
    expected = pd.Series([i.segments for i in infos]).value_counts().sort_index()
    assert view.recipients == len(frame) == 300
    assert view.segments_histogram.set_index("segments")["recipients"].to_dict() == \
        expected.to_dict()
    assert view.total_segments == sum(i.segments for i in infos)
    assert view.ucs2_recipients == sum(i.encoding == "UCS-2" for i in infos)
    assert view.longest.segments == max(i.segments for i in infos)
    assert view.total_cost == pytest.approx(0.1 * view.total_segments)  # all NL
    causes = view.ucs2_causes.groupby("field")["value"].apply(set).to_dict()
    assert causes["first_name"] == {"Zoë", "Ελένη", "Bob😀"}
    assert {c.split("Łódź")[0] for c in causes["city"]} == {""}  # only Łódź cities


# -- prices -------------------------------------------------------------------------------------
def test_the_shipped_price_table_is_valid():
    table = pricing.load_prices(Path(__file__).resolve().parent.parent / "data" / "prices.csv")
    assert table["country"].iloc[0] == "*"
    assert len(table) >= 25
    assert (table["price_per_segment"] > 0).all()
    assert set(table["currency"]) == {"EUR"}


def test_prices_round_trip_and_are_normalised(tmp_path):
    path = tmp_path / "p.csv"
    saved = pricing.save_prices(pd.DataFrame({
        "country": [" nl", "*", "be"], "price_per_segment": ["0,07", 0.09, 0.08],
        "currency": ["eur", "EUR", None],
    }), path)
    assert saved["country"].tolist() == ["*", "BE", "NL"]
    loaded = pricing.load_prices(path)
    pd.testing.assert_frame_equal(loaded, saved)
    assert loaded["price_per_segment"].tolist() == [0.09, 0.08, 0.07]


@pytest.mark.parametrize("rows, message", [
    ([("*", 0.1), ("NL", -0.01)], "0 or more"),
    ([("*", 0.1), ("NL", "cheap")], "0 or more"),
    ([("*", 0.1), ("NL", float("inf"))], "0 or more"),
    ([("*", 0.1), ("UK", 0.05)], "did you mean GB"),
    ([("*", 0.1), ("Netherlands", 0.05)], "not an ISO"),
    ([("NL", 0.05)], "exactly one row with country \\*"),
    ([("*", 0.1), ("*", 0.2)], "more than once"),
    ([("*", 0.1), ("NL", 0.05), ("nl", 0.06)], "NL more than once"),
    ([("*", 0.1), ("", 0.06)], "country is empty"),
])
def test_bad_price_tables_are_refused_and_the_file_kept(tmp_path, rows, message):
    path = tmp_path / "p.csv"
    pricing.save_prices(TEST_PRICES, path)
    before = path.read_bytes()
    frame = pd.DataFrame(rows, columns=["country", "price_per_segment"])
    with pytest.raises(InvalidInput, match=message):
        pricing.save_prices(frame, path)
    assert path.read_bytes() == before


def test_mixed_currencies_are_refused():
    frame = TEST_PRICES.assign(currency=["EUR", "EUR", "USD"])
    with pytest.raises(InvalidInput, match="mixes currencies"):
        pricing.validate_prices(frame)


def test_estimate_cost_uses_the_default_row_for_unknown_countries():
    cost = pricing.estimate_cost(
        pd.DataFrame({"country": ["nl", "FR", "unknown"], "segments": [10, 4, 2],
                      "recipients": [5, 4, 2]}),
        TEST_PRICES,
    ).set_index("country")
    assert cost.loc["nl", "cost"] == pytest.approx(1.0)
    assert cost.loc["FR", ["price", "priced_by"]].tolist() == [0.5, "default"]
    assert cost.loc["unknown", "cost"] == pytest.approx(1.0)


def test_a_missing_price_file_still_prices_every_country(tmp_path):
    table = pricing.load_prices(tmp_path / "absent.csv")
    assert table["country"].tolist() == ["*"]


def test_the_studio_saves_the_price_table_where_it_is_told(studio, tmp_path):
    studio.prices_path = tmp_path / "mine.csv"
    studio.save_price_table(TEST_PRICES)
    assert studio.price_table()["country"].tolist() == ["*", "BE", "NL"]
    with pytest.raises(InvalidInput):
        studio.save_price_table(TEST_PRICES.iloc[1:])


def test_without_the_audience_service_every_valid_mobile_contact_counts(view_db):
    """The fallback for installations without reconciliation: valid mobile numbers only."""
    studio = view_db

    class Bare(type(studio)):
        audience_frame = None  # as if the audience service were not installed

    bare = Bare(studio.db_path)
    bare.prices_path = studio.prices_path
    try:
        view = bare.selection_view(body="{{ first_name }}: {{ note }}", database="shop")
        # Finn (no consent) and the second Anna (duplicate number) count here; Gus does not.
        assert view.recipients == 7
        assert view.total_segments == 10
        assert "opt-in and suppressions not applied" in view.audience
        studio.create_selection("Zoës", database="shop",
                                spec={"field": "first_name", "op": "eq", "value": "Zoë"})
        assert bare.selection_view(body="Hi", selection="Zoës").recipients == 2
    finally:
        bare.close()
