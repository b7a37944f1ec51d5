"""Money as people read it: template filters for invoices and billing pages."""

from decimal import Decimal

from flask import Flask


def money(minor: int) -> str:
    """Minor units as major with two decimals and thousands separators: 123456 -> '1,234.56'."""
    sign = "-" if minor < 0 else ""
    major, cents = divmod(abs(int(minor)), 100)
    return f"{sign}{major:,}.{cents:02d}"


def minor_units(value: str, currency: str = "") -> str:
    """A unit price in minor units (exact decimal text) as major units, without losing sub-cent digits."""
    major = Decimal(value) / 100
    text = format(
        major.quantize(Decimal("0.01")) if major == major.quantize(Decimal("0.01")) else major.normalize(), "f"
    )
    return text


def init_format(app: Flask) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(minor_units, "minor_units")
