"""Who the invoices say they are from: the operator's billing identity, and the placeholders still in it.

The identity is configuration (``OMEGAOPS_BILLING_COMPANY_*`` and ``OMEGAOPS_BILLING_PAYMENT_INSTRUCTIONS``,
joined by ``Config.from_env`` into ``BILLING_COMPANY``). The shipped defaults are placeholders: a value still
equal to its default, empty, or an email address at a reserved example domain (RFC 2606) is one. Everywhere
they show as warnings (the console, the invoice run); in production no invoice is finalized with one.
No Flask import: the functions take the app's config mapping.
"""

from decimal import Decimal, InvalidOperation

from config import PREFIX, Config

EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")


def _is_placeholder(value, default) -> bool:
    """Empty, or the shipped default (a text or a list of lines)."""
    lines = [value] if isinstance(value, str) else list(value or [])
    defaults = [default] if isinstance(default, str) else list(default)
    return not any(line.strip() for line in lines) or [line.strip() for line in lines] == defaults


def _tax_charged(config) -> bool:
    rates = [config.get("BILLING_TAX_RATE") or "0", *(config.get("BILLING_TAX_RATES") or {}).values()]
    try:
        return any(Decimal(str(rate)) > 0 for rate in rates)
    except InvalidOperation:  # refused, with its name, where invoices are computed
        return True


def placeholder_warnings(config) -> list[str]:
    """Say what is still a placeholder in the invoices' company details and payment instructions, and which
    variable sets it; an empty list when everything is set."""
    company = config.get("BILLING_COMPANY") or {}
    warnings = []
    for key, setting, what in (
        ("name", "BILLING_COMPANY_NAME", "the company name"),
        ("address", "BILLING_COMPANY_ADDRESS", "the company address"),
        ("email", "BILLING_COMPANY_EMAIL", "the billing email address"),
    ):
        value = company.get(key) or ""
        shown = " / ".join(value) if isinstance(value, list | tuple) else value
        if _is_placeholder(value, getattr(Config, setting)):
            state = f"the placeholder {shown!r}" if shown else "empty"
            warnings.append(f"Invoices show {what} as {state}: set {PREFIX}{setting}.")
        elif key == "email" and value.strip().lower().rpartition("@")[2] in EXAMPLE_DOMAINS:
            warnings.append(f"Invoices show {what} as {value!r}, an example domain: set {PREFIX}{setting}.")
    if not (company.get("tax_id") or "").strip() and _tax_charged(config):
        warnings.append(
            f"Invoices charge VAT but show no VAT number of the company: set {PREFIX}BILLING_COMPANY_TAX_ID."
        )
    instructions = config.get("BILLING_PAYMENT_INSTRUCTIONS") or []
    if _is_placeholder(instructions, Config.BILLING_PAYMENT_INSTRUCTIONS):
        shown = " / ".join(instructions)
        state = f"the placeholder {shown!r}" if shown else "empty"
        warnings.append(
            f"Invoices show the payment instructions as {state}: set {PREFIX}BILLING_PAYMENT_INSTRUCTIONS."
        )
    return warnings


def finalize_refusal(config) -> str | None:
    """Why no invoice may be finalized with this config (production with a placeholder left), or None."""
    if config.get("ENV_NAME") != "production":
        return None
    warnings = placeholder_warnings(config)
    if not warnings:
        return None
    return "invoices are not finalized in production with placeholder billing details. " + " ".join(warnings)
