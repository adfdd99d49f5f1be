"""The confirmation summary of a mailing (`plan_mailing`) and storing it (`confirm_mailing`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core import pricing
from core.errors import InvalidInput
from core.studio import Studio

T0 = datetime(2026, 12, 1, 8, 0, 0)
CSV = """customer_id,first_name,city,consent,mobile
1,Anna,Amsterdam,yes,0612345601
2,Bram,Rotterdam,yes,0612345602
3,Zoë,Utrecht,yes,0612345603
4,Dirk,Gent,yes,+32470123456
5,Joe,Boston,yes,+1 617 555 0123
6,Eva,Berlin,no,+49 151 23456789
7,Finn,Delft,yes,020-1234567
8,Gina,Leiden,yes,onbekend
"""


@pytest.fixture
def app(tmp_path: Path):
    csv = tmp_path / "contacts.csv"
    csv.write_text(CSV, encoding="utf-8")
    prices = tmp_path / "prices.csv"
    pricing.save_prices(pd.DataFrame({"country": ["*", "NL", "BE"],
                                      "price_per_segment": [0.5, 0.1, 0.2],
                                      "currency": ["EUR"] * 3}), prices)
    studio = Studio(tmp_path / "plan.duckdb", clock=lambda: T0)
    studio.prices_path = prices
    studio.import_contacts(csv, database="shop", key_field="customer_id",
                           consent_field="consent", consent_yes=["yes"], region="NL")
    studio.create_selection("everyone", spec={"all": []}, database="shop", sms=True)
    studio.create_selection("dutch", spec={"field": "_country", "op": "eq", "value": "NL"},
                            database="shop", sms=True)
    studio.create_selection("not_for_sms", spec={"all": []}, database="shop")
    yield studio
    studio.close()


def test_the_summary_counts_recipients_segments_and_cost_per_country(app: Studio) -> None:
    # Zoë's name forces UCS-2 (ë is not GSM-7): her 71 characters need 2 parts of 70
    app.create_document("promo", sender="Shop", body="Hi {{ first_name }}! " + "a" * 63)
    plan = app.plan_mailing(document="promo", selection="everyone")
    assert plan.recipients == 5  # Eva has no consent, Finn and Gina no mobile number
    assert plan.to_send == 5 and plan.skipped.empty
    assert plan.ucs2_recipients == 1 and plan.ucs2_share == pytest.approx(0.2)
    cost = plan.cost_by_country.set_index("country")
    assert cost.loc["NL", "recipients"] == 3 and cost.loc["NL", "segments"] == 4
    assert cost.loc["BE", "segments"] == 1 and cost.loc["US", "segments"] == 1
    assert plan.total_segments == 6
    assert plan.total_cost == pytest.approx(4 * 0.1 + 0.2 + 0.5)
    assert plan.currency == "EUR"
    assert plan.audience.steps[0][0] == "in_selection"


def test_warnings_alphanumeric_sender_abroad_and_unreachable_numbers(app: Studio) -> None:
    app.set_setting("invalid_share_warning", 0.2)
    app.create_document("promo", sender="Shop", body="Hello")
    plan = app.plan_mailing(document="promo", selection="everyone")
    text = " ".join(plan.warnings)
    assert "US" in text and "alphanumeric" in text
    assert "25% of the contacts" in text and "cannot receive SMS" in text
    app.set_setting("invalid_share_warning", 0.3)
    numeric = app.plan_mailing(sender="+31612345600", body="Hello", selection="everyone")
    assert numeric.warnings == []


def test_messages_over_the_parts_limit_are_skipped_listed_and_left_out_of_the_cost(
    app: Studio,
) -> None:
    app.create_document("promo", sender="Shop",
                        body="Hi {{ first_name }}! {% if city == 'Gent' %}" + "x" * 200
                        + "{% endif %}")  # fmt: skip
    plan = app.plan_mailing(document="promo", selection="everyone", split_max_parts=1)
    assert plan.recipients == 5 and plan.to_send == 4
    assert plan.skipped[["contact_key", "e164", "parts"]].to_dict("records") == [
        {"contact_key": "4", "e164": "+32470123456", "parts": 2}]
    assert plan.skipped["reason"].tolist() == ["needs 2 parts, the limit is 1"]
    assert "BE" not in set(plan.cost_by_country["country"])
    assert any("skipped and listed, never cut short" in w for w in plan.warnings)
    assert plan.estimate()["skipped"] == 1 and plan.estimate()["recipients"] == 4
    # with a higher limit nobody is skipped
    assert app.plan_mailing(document="promo", selection="everyone", split_max_parts=2
                            ).skipped.empty


def test_the_skipped_list_is_exactly_what_the_launch_skips(app: Studio) -> None:
    app.create_document("promo", sender="{{ city }}",
                        body="Hi {{ first_name }}{% if city == 'Utrecht' %}" + "y" * 170
                        + "{% endif %}")  # fmt: skip
    # the sender is each recipient's city: one city breaks the sender rule (dashes, length)
    app.storage.execute("UPDATE \"" + app.get_database("shop").table + "\" SET city = "
                        "'Rotterdam-Zuid-West' WHERE customer_id = 2")
    plan = app.plan_mailing(document="promo", selection="everyone", split_max_parts=1)
    mailing_id = app.confirm_mailing(plan, accept_rules=True)
    app.launch_mailing(mailing_id)
    launched = app.mailing_skipped(mailing_id, limit=None)
    assert sorted(plan.skipped["e164"]) == sorted(launched["e164"]) == [
        "+31612345602", "+31612345603"]
    by_number = dict(zip(plan.skipped["e164"], plan.skipped["reason"], strict=True))
    assert by_number == dict(zip(launched["e164"], launched["reason"], strict=True))
    assert by_number["+31612345602"].startswith("invalid sender")


def test_confirm_stores_the_estimate_for_the_statistics_page(app: Studio) -> None:
    app.create_document("promo", sender="Shop", body="Hello {{ first_name }}")
    plan = app.plan_mailing(document="promo", selection="dutch")
    mailing_id = app.confirm_mailing(plan, accept_rules=True)
    mailing = app.get_mailing(mailing_id)
    assert mailing["state"] == "scheduled" and mailing["scheduled_at"] == T0
    assert mailing["document"] == "promo" and mailing["split_max_parts"] == 4
    estimate = mailing["estimate"]
    assert estimate["recipients"] == 3 and estimate["segments"] == 3
    assert estimate["by_country"] == [
        {"country": "NL", "recipients": 3, "segments": 3, "price": 0.1, "cost": 0.3}]
    if hasattr(app, "cost_actual_vs_estimate"):
        app.launch_mailing(mailing_id)
        compared = app.cost_actual_vs_estimate(mailing_id)
        assert compared["estimate_source"] == "confirmation"
        assert compared["estimated_cost"] == pytest.approx(0.3)


def test_confirm_needs_the_rules_and_a_second_yes_above_the_threshold(app: Studio) -> None:
    app.create_document("promo", sender="Shop", body="Hello")
    app.set_setting("confirm_threshold", 4)
    plan = app.plan_mailing(document="promo", selection="everyone")
    assert plan.needs_second_confirmation
    with pytest.raises(InvalidInput, match="Accept the sending rules"):
        app.confirm_mailing(plan, confirm_large=True)
    with pytest.raises(InvalidInput, match="confirm it a second time"):
        app.confirm_mailing(plan, accept_rules=True)
    assert app.list_mailings().empty
    assert app.confirm_mailing(plan, accept_rules=True, confirm_large=True) > 0
    small = app.plan_mailing(document="promo", selection="dutch")
    assert not small.needs_second_confirmation


def test_only_targets_usable_for_sms_can_be_planned(app: Studio) -> None:
    app.create_document("promo", sender="Shop", body="Hello")
    with pytest.raises(InvalidInput, match="switch on SMS usage"):
        app.plan_mailing(document="promo", selection="not_for_sms")
    whole = app.plan_mailing(document="promo", database="shop")
    assert whole.selection is None and whole.recipients == 5
    app.set_opt_in_rule("shop", None, None)
    with pytest.raises(InvalidInput, match="opt-in rule"):
        app.plan_mailing(document="promo", database="shop")


def test_a_document_that_cannot_be_sent_is_refused_with_the_reason(app: Studio) -> None:
    app.create_document("nosender", body="Hello")
    with pytest.raises(InvalidInput, match="no sender"):
        app.plan_mailing(document="nosender", selection="everyone")
    app.create_document("badfield", sender="Shop", body="Hi {{ nickname }}")
    with pytest.raises(InvalidInput, match="nickname"):
        app.plan_mailing(document="badfield", selection="everyone")
    with pytest.raises(InvalidInput, match="between 1 and"):
        app.plan_mailing(sender="Shop", body="Hello", selection="everyone", split_max_parts=11)


def test_nobody_to_send_to_now_is_refused_but_may_be_scheduled(app: Studio) -> None:
    app.create_selection("nobody", spec={"field": "city", "op": "eq", "value": "Paris"},
                         database="shop", sms=True)
    plan = app.plan_mailing(sender="Shop", body="Hello", selection="nobody")
    assert plan.recipients == 0 and any("No recipients" in w for w in plan.warnings)
    with pytest.raises(InvalidInput, match="Nobody would receive"):
        app.confirm_mailing(plan, accept_rules=True)
    assert app.confirm_mailing(plan, at=T0 + timedelta(days=1), accept_rules=True) > 0
