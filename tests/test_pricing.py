"""Pricing maths: Decimal throughout, half-up rounding once per line, graduated tiers, proration, tax."""

from decimal import Decimal

import pytest

from app.billing.pricing import (
    PriceError,
    Tier,
    parse_tiers,
    prorated,
    round_minor,
    tax_amount,
    tax_for,
    usage_amount,
)

D = Decimal


@pytest.mark.parametrize(
    "amount, minor", [(D("0.5"), 1), (D("1.5"), 2), (D("2.5"), 3), (D("0.4999"), 0), (D("12345.5"), 12346)]
)
def test_rounding_is_half_up_not_bankers(amount, minor):
    assert round_minor(amount) == minor


def test_flat_unit_price_beyond_the_included_quantity():
    assert usage_amount(D(1500), D(1000), D("0.05"), []) == D("25.00")
    assert usage_amount(D(900), D(1000), D("0.05"), []) == 0
    # sub-cent prices stay exact until the line's one rounding: 3 x 0.3333 cents
    assert round_minor(usage_amount(D(3), D(0), D("0.3333"), [])) == 1


def test_graduated_tiers_price_each_unit_in_its_tier():
    tiers = parse_tiers(
        [{"up_to": 100, "unit_price": "2"}, {"up_to": 1000, "unit_price": "1"}, {"up_to": None, "unit_price": "0.5"}]
    )
    assert tiers == [Tier(D(100), D(2)), Tier(D(1000), D(1)), Tier(None, D("0.5"))]
    assert usage_amount(D(50), D(0), D(0), tiers) == 100
    assert usage_amount(D(100), D(0), D(0), tiers) == 200
    assert usage_amount(D(101), D(0), D(0), tiers) == 201
    assert usage_amount(D(2000), D(0), D(0), tiers) == 200 + 900 + 500
    # included units come off first: tiers count the billable ones
    assert usage_amount(D(150), D(50), D(0), tiers) == 200
    # a closed last tier: units beyond it cost its price
    closed = parse_tiers([{"up_to": 10, "unit_price": "3"}])
    assert usage_amount(D(15), D(0), D(0), closed) == 45


@pytest.mark.parametrize(
    "raw, message",
    [
        ([{"up_to": None, "unit_price": 1}, {"up_to": 5, "unit_price": 1}], "only the last tier may be open"),
        ([{"up_to": 10, "unit_price": 1}, {"up_to": 5, "unit_price": 1}], "must be above the previous"),
        ([{"up_to": 10, "unit_price": -1}], "0 or more"),
        ([{"up_to": 10}], "must be {up_to, unit_price}"),
        ("cheap", "must be a list"),
        ([{"up_to": "NaN", "unit_price": 1}], "0 or more"),
    ],
)
def test_bad_tiers_are_refused(raw, message):
    with pytest.raises(PriceError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_tiers(raw)


@pytest.mark.parametrize(
    "days_live, days_in_period, fee, minor",
    [
        (D(31), 31, 1000, 1000),  # a whole 31-day month
        (D(15), 30, 999, 500),  # 499.5 -> 500 (half-up)
        (D(1), 29, 2900, 100),  # a leap-year February
        (D(1), 28, 2800, 100),
        (D(40), 31, 1000, 1000),  # never more than the whole fee
        (D(0), 31, 1000, 0),
        (D("0.5"), 31, 3100, 50),  # half a day
    ],
)
def test_proration_by_days_live(days_live, days_in_period, fee, minor):
    assert round_minor(prorated(fee, days_live, days_in_period)) == minor


def test_tax_rates_per_country_and_reverse_charge_for_foreign_businesses():
    rates = {"DE": D("0.19")}
    swiss = tax_for("CH", "", "CH", D("0.081"), rates)
    assert swiss.rate == D("0.081") and not swiss.reverse_charge and tax_amount(10000, swiss) == 810
    german_consumer = tax_for("de", "", "CH", D("0.081"), rates)
    assert german_consumer.rate == D("0.19") and tax_amount(999, german_consumer) == 190  # 189.81
    german_business = tax_for("DE", "DE123456789", "CH", D("0.081"), rates)
    assert german_business.reverse_charge and german_business.rate == 0 and "DE123456789" in german_business.note
    swiss_business = tax_for("CH", "CHE-123.456.789", "CH", D("0.081"), rates)
    assert not swiss_business.reverse_charge and swiss_business.rate == D("0.081")
