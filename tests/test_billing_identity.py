"""The invoices' billing identity: set from OMEGAOPS_* variables, placeholders warned about everywhere, and
no invoice finalized in production while one is left."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.billing.identity import finalize_refusal, placeholder_warnings
from app.billing.invoices import BillingError, finalize, run_invoices, write_draft
from app.billing.jobs import enqueue_invoice_run
from app.extensions import db
from app.models import Invoice, InvoiceCounter, InvoiceStatus
from config import Config

from .engine_helpers import reload
from .factories import make_plan, make_user
from .test_invoices import NOW, installed

IDENTITY = {
    "OMEGAOPS_BILLING_COMPANY_NAME": "Omega Ops AG",
    "OMEGAOPS_BILLING_COMPANY_ADDRESS": "Bahnhofstrasse 1 | 8001 Zurich|Switzerland",
    "OMEGAOPS_BILLING_COMPANY_EMAIL": "billing@omegaops.ch",
    "OMEGAOPS_BILLING_COMPANY_TAX_ID": "CHE-123.456.789 MWST",
    "OMEGAOPS_BILLING_PAYMENT_INSTRUCTIONS": "Bank transfer to IBAN CH93 0076 2011 6238 5295 7|BIC POFICHBEXXX",
}
SETTINGS = [
    "OMEGAOPS_BILLING_COMPANY_NAME",
    "OMEGAOPS_BILLING_COMPANY_ADDRESS",
    "OMEGAOPS_BILLING_COMPANY_EMAIL",
    "OMEGAOPS_BILLING_COMPANY_TAX_ID",
    "OMEGAOPS_BILLING_PAYMENT_INSTRUCTIONS",
]


def set_identity(app):
    """The app's config as if started with IDENTITY in its environment."""
    values = Config.from_env(IDENTITY)
    for key in ("BILLING_COMPANY", "BILLING_PAYMENT_INSTRUCTIONS"):
        app.config[key] = values[key]


def test_the_billing_identity_is_read_from_omegaops_variables():
    values = Config.from_env(IDENTITY)
    assert values["BILLING_COMPANY"] == {
        "name": "Omega Ops AG",
        "address": ["Bahnhofstrasse 1", "8001 Zurich", "Switzerland"],
        "email": "billing@omegaops.ch",
        "tax_id": "CHE-123.456.789 MWST",
    }
    assert values["BILLING_PAYMENT_INSTRUCTIONS"] == [
        "Bank transfer to IBAN CH93 0076 2011 6238 5295 7",
        "BIC POFICHBEXXX",
    ]
    # newlines separate lines too (a multi-line value in an env file or a manifest); blank lines are dropped
    address = Config.from_env({"OMEGAOPS_BILLING_COMPANY_ADDRESS": "Bahnhofstrasse 1\n\n8001 Zurich\n"})
    assert address["BILLING_COMPANY"]["address"] == ["Bahnhofstrasse 1", "8001 Zurich"]
    # unset: the placeholders, and the class default is not shared with (or changed through) the result
    default = Config.from_env({})
    default["BILLING_COMPANY"]["address"].append("changed")
    assert Config.from_env({})["BILLING_COMPANY"]["address"] == Config.BILLING_COMPANY_ADDRESS


def test_every_placeholder_is_warned_about_with_the_variable_that_sets_it():
    warnings = placeholder_warnings(Config.from_env({}))
    assert len(warnings) == len(SETTINGS)
    for setting, warning in zip(SETTINGS, warnings, strict=True):
        assert warning.endswith(f"set {setting}.")
    assert "'Example Street 1 / 8000 Zurich / Switzerland'" in warnings[1]
    assert placeholder_warnings(Config.from_env(IDENTITY)) == []


@pytest.mark.parametrize(
    "variables, setting",
    [
        ({"OMEGAOPS_BILLING_COMPANY_EMAIL": "invoices@example.org"}, "BILLING_COMPANY_EMAIL"),
        ({"OMEGAOPS_BILLING_COMPANY_ADDRESS": "Example Street 1|8000 Zurich|Switzerland"}, "BILLING_COMPANY_ADDRESS"),
        ({"OMEGAOPS_BILLING_COMPANY_NAME": "omega|ml managed service"}, "BILLING_COMPANY_NAME"),
        ({"OMEGAOPS_BILLING_COMPANY_TAX_ID": "", "OMEGAOPS_BILLING_TAX_RATE": "0.081"}, "BILLING_COMPANY_TAX_ID"),
    ],
    ids=["example domain", "default address set again", "default name set again", "VAT without a VAT number"],
)
def test_a_placeholder_set_explicitly_is_still_one(variables, setting):
    environ = {key: value for key, value in IDENTITY.items() if key not in variables} | variables
    (warning,) = placeholder_warnings(Config.from_env(environ))
    assert warning.endswith(f"set OMEGAOPS_{setting}.")


def test_no_vat_number_is_needed_while_no_vat_is_charged():
    environ = {key: value for key, value in IDENTITY.items() if key != "OMEGAOPS_BILLING_COMPANY_TAX_ID"}
    assert placeholder_warnings(Config.from_env(environ | {"OMEGAOPS_BILLING_TAX_RATE": "0"})) == []
    values = Config.from_env(environ | {"OMEGAOPS_BILLING_TAX_RATE": "0"})
    values["BILLING_TAX_RATES"] = {"DE": "0.19"}
    assert placeholder_warnings(values)[0].endswith("set OMEGAOPS_BILLING_COMPANY_TAX_ID.")


def test_only_production_refuses_to_finalize_with_placeholders():
    assert finalize_refusal(Config.from_env({}) | {"ENV_NAME": "development"}) is None
    assert finalize_refusal(Config.from_env(IDENTITY) | {"ENV_NAME": "production"}) is None
    refusal = finalize_refusal(Config.from_env({}) | {"ENV_NAME": "production"})
    assert all(setting in refusal for setting in SETTINGS)


@pytest.fixture
def plan(app):
    """A 30.00-a-month plan."""
    plan = make_plan()
    plan.base_fee = 3000
    db.session.commit()
    return plan


def draft_of_october(user=None):
    """A new user's (or ``user``'s) draft of October, on the plan all month."""
    user = user or make_user()
    installed(user, since=datetime(2026, 10, 1, tzinfo=UTC))
    invoice = write_draft(user, "2026-10")
    db.session.commit()
    return invoice


def test_production_refuses_to_finalize_an_invoice_with_placeholder_details(plan, app):
    draft = draft_of_october()
    app.config["ENV_NAME"] = "production"
    with pytest.raises(BillingError, match="set OMEGAOPS_BILLING_COMPANY_ADDRESS") as refused:
        finalize(draft, NOW)
    assert "OMEGAOPS_BILLING_PAYMENT_INSTRUCTIONS" in str(refused.value)
    db.session.rollback()
    draft = reload(draft)
    assert draft.status == InvoiceStatus.DRAFT and draft.number is None
    assert db.session.scalar(select(func.count()).select_from(InvoiceCounter)) == 0  # no number taken
    # the run shares the rule: it stops before it writes a draft
    bob = make_user()
    installed(bob, since=datetime(2026, 10, 1, tzinfo=UTC))
    with pytest.raises(BillingError, match="placeholder billing details"):
        run_invoices("2026-10", now=NOW)
    assert db.session.scalar(select(Invoice).where(Invoice.user_id == bob.id)) is None
    with pytest.raises(BillingError, match="placeholder billing details"):  # the scheduler's: before any job
        enqueue_invoice_run("2020-01")
    # set: finalized
    set_identity(app)
    finalize(draft, NOW)
    db.session.commit()
    assert reload(draft).status == InvoiceStatus.OPEN and reload(draft).number == "2026-000001"


def test_the_console_says_which_setting_to_set_when_production_refuses(plan, app, client, login):
    draft = draft_of_october()
    app.config["ENV_NAME"] = "production"
    login(make_user(admin=True))
    client.post(f"/admin/invoice/{draft.id}/finalize")
    assert reload(draft).status == InvoiceStatus.DRAFT
    assert "set OMEGAOPS_BILLING_COMPANY_EMAIL" in client.get("/admin/").get_data(as_text=True)


def test_the_invoice_run_warns_loudly_about_placeholders(plan, app, runner):
    installed(make_user(), since=datetime(2026, 10, 1, tzinfo=UTC))
    result = runner.invoke(args=["invoices", "run", "--period", "2026-10"])
    assert result.exit_code == 0 and "2026-10: 1 invoices finalized" in result.stdout
    assert "WARNING: invoices go out with placeholder billing details" in result.stderr
    for setting in SETTINGS:
        assert f"set {setting}." in result.stderr
    # production: the warnings, then the refusal; nothing invoiced
    app.config["ENV_NAME"] = "production"
    installed(make_user(), since=datetime(2026, 10, 1, tzinfo=UTC))
    result = runner.invoke(args=["invoices", "run", "--period", "2026-10"])
    assert result.exit_code == 1 and "WARNING:" in result.stderr and "are not finalized in production" in result.stderr
    assert "Traceback" not in result.output
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1
    # everything set: no warning
    set_identity(app)
    result = runner.invoke(args=["invoices", "run", "--period", "2026-10"])
    assert result.exit_code == 0 and "1 invoices finalized, 1 existing" in result.stdout
    assert "WARNING" not in result.output


def test_the_pdf_shows_the_configured_identity(plan, app):
    from app.billing.pdf import invoice_html

    set_identity(app)
    draft = draft_of_october()
    html = invoice_html(draft)
    for text in ("Omega Ops AG", "Bahnhofstrasse 1<br>", "8001 Zurich<br>", "CHE-123.456.789 MWST", "BIC POFICHBEXXX"):
        assert text in html
    assert "Example Street" not in html and "example)" not in html
