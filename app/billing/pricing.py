"""Pricing maths, pure and in Decimal: money is an integer of minor units (cents) with a currency.

Amounts are computed exactly and rounded half-up to minor units once per invoice line, never before.
Unit prices are Decimal minor units per unit ("0.05" = 0.05 cents a request), so sub-cent prices stay exact.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)


class PriceError(ValueError):
    """A price that cannot be used; the message says which and why."""


def decimal(value, name: str) -> Decimal:
    """A non-negative, finite Decimal from text or a number (floats via their text, never their binary value)."""
    try:
        result = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise PriceError(f"{name}: {value!r} is not a number") from None
    if not result.is_finite() or result < 0:
        raise PriceError(f"{name}: must be a number of 0 or more, got {value!r}")
    return result


def round_minor(amount: Decimal) -> int:
    """Half-up to whole minor units: the one rounding of a line."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # the last unit (of the billable quantity) at this price; None: and beyond
    unit_price: Decimal


def parse_tiers(raw) -> list[Tier]:
    """``[{"up_to": 1000, "unit_price": "0.5"}, {"up_to": null, "unit_price": "0.2"}]``: ascending, last open."""
    if not raw:
        return []
    if not isinstance(raw, list):
        raise PriceError("tiers: must be a list of {up_to, unit_price}")
    tiers, previous = [], ZERO
    for number, item in enumerate(raw, start=1):
        if not isinstance(item, dict) or set(item) - {"up_to", "unit_price"} or "unit_price" not in item:
            raise PriceError(f"tiers[{number}]: must be {{up_to, unit_price}}")
        up_to = None if item.get("up_to") is None else decimal(item["up_to"], f"tiers[{number}].up_to")
        if up_to is None and number != len(raw):
            raise PriceError(f"tiers[{number}]: only the last tier may be open (up_to: null)")
        if up_to is not None and up_to <= previous:
            raise PriceError(f"tiers[{number}].up_to: must be above the previous tier's ({previous})")
        tiers.append(Tier(up_to, decimal(item["unit_price"], f"tiers[{number}].unit_price")))
        previous = up_to if up_to is not None else previous
    return tiers


def usage_amount(quantity: Decimal, included: Decimal, unit_price: Decimal, tiers: list[Tier]) -> Decimal:
    """The exact price of ``quantity`` units of which ``included`` are free.

    Without tiers, every billable unit costs ``unit_price``. With graduated tiers, each billable unit costs
    the price of the tier it falls in (tiers count billable units, after the included ones); units beyond
    a closed last tier cost its price.
    """
    billable = max(quantity - included, ZERO)
    if not tiers:
        return billable * unit_price
    amount, floor = ZERO, ZERO
    for tier in tiers:
        ceiling = billable if tier.up_to is None else min(billable, tier.up_to)
        if ceiling > floor:
            amount += (ceiling - floor) * tier.unit_price
        floor = max(floor, ceiling if tier.up_to is None else tier.up_to)
        if floor >= billable:
            return amount
    return amount + (billable - floor) * tiers[-1].unit_price


def prorated(base_fee: int, days_live: Decimal, days_in_period: int) -> Decimal:
    """A monthly fee for the part of the period a deployment existed (days may be fractional)."""
    if days_in_period <= 0:
        raise PriceError("days_in_period: must be at least 1")
    share = min(max(days_live, ZERO), Decimal(days_in_period)) / Decimal(days_in_period)
    return Decimal(base_fee) * share


@dataclass(frozen=True)
class TaxDecision:
    rate: Decimal  # e.g. Decimal("0.081")
    reverse_charge: bool
    note: str


def tax_for(
    country: str, tax_id: str, operator_country: str, default_rate: Decimal, rates: dict[str, Decimal]
) -> TaxDecision:
    """The tax of a customer: reverse charge for a business (with a tax id) in another country than the
    operator's; else the customer country's rate, or the default."""
    country = (country or "").upper()
    if tax_id and country and country != operator_country.upper():
        return TaxDecision(ZERO, True, f"Reverse charge: VAT to be accounted for by the recipient ({tax_id})")
    rate = rates.get(country, default_rate)
    return TaxDecision(rate, False, f"VAT {(rate * 100).normalize():f}%")


def tax_amount(subtotal: int, decision: TaxDecision) -> int:
    """The tax line, rounded once."""
    return round_minor(Decimal(subtotal) * decision.rate)
