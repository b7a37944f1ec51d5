"""Invoices: lines from deployments and usage, the idempotent monthly run, gapless numbering under
concurrency, and a database that refuses to change a finalized invoice."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DatabaseError

from app.billing.invoices import (
    BillingError,
    finalize,
    period_bounds,
    render_missing,
    run_invoices,
    store_pdf,
    write_draft,
)
from app.extensions import db
from app.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Metric,
    Payment,
    ServiceCommand,
    ServiceDeployment,
    ServicePlan,
    UsageDaily,
)
from app.ops import engine

from .engine_helpers import issue, reload
from .factories import make_plan, make_user
from .test_mail import smtp_fixture  # noqa: F401 -- registers the smtp fixture here

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # after the November run's time


def installed(user, plan_name="omegaml", since=None, removed=None):
    """A deployment installed at ``since`` (and removed at ``removed``), as the engine leaves it."""
    command = issue(plan_name, user)
    engine.execute(command.id, worker="test")
    db.session.execute(update(ServiceCommand).where(ServiceCommand.id == command.id).values(finished_at=since))
    values = {"created_at": since}
    if removed is not None:
        values["removed_at"] = removed
    db.session.execute(update(ServiceDeployment).where(ServiceDeployment.id == command.deployment_id).values(**values))
    db.session.commit()
    return reload(command).deployment


def october_invoice(user=None):
    """A 30.00-a-month plan, ``user`` (new by default) on it all October, and October's invoice (finalized)."""
    plan = ServicePlan.by_name("omegaml") or make_plan()
    plan.base_fee = 3000
    db.session.commit()
    user = user or make_user()
    installed(user, since=datetime(2026, 10, 1, tzinfo=UTC))
    run_invoices("2026-10", now=NOW)
    return user, db.session.scalar(select(Invoice).where(Invoice.user_id == user.id))


@pytest.fixture
def priced(any_app):
    plan = make_plan()
    plan.base_fee = 3000  # 30.00 a month
    metric = Metric(
        plan=plan,
        name="api requests",
        kind="api",
        action="request",
        aggregation="count",
        unit="requests",
        unit_price="0.5",
        included="100",
    )
    db.session.add(metric)
    db.session.commit()
    return plan, metric


def usage(user, metric, day, value):
    db.session.add(UsageDaily(user_id=user.id, plan_id=metric.plan_id, metric_id=metric.id, day=day, value=value))
    db.session.commit()


def test_periods_are_half_open_utc_months():
    assert period_bounds("2026-11") == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    assert period_bounds("2028-02")[1] - period_bounds("2028-02")[0] == timedelta(days=29)  # leap year
    with pytest.raises(BillingError, match="is not a month"):
        period_bounds("November")


def test_the_run_bills_prorated_base_fees_and_usage_beyond_the_included(priced):
    plan, metric = priced
    ada = make_user(country="CH")
    installed(ada, since=datetime(2026, 11, 16, tzinfo=UTC))  # 15 of 30 days
    usage(ada, metric, "2026-11-20", 150)
    usage(ada, metric, "2026-11-30", 50)
    usage(ada, metric, "2026-12-01", 999)  # the next period: not billed here
    nobody = make_user()  # no deployment, no usage: no invoice
    assert run_invoices("2026-11", now=NOW) == {
        "period": "2026-11",
        "finalized": 1,
        "existing": 0,
        "nothing billable": 0,
        "pdfs": 1,
        "pdf failures": 0,
    }
    invoice = db.session.scalar(select(Invoice).where(Invoice.user_id == ada.id))
    base, requests = invoice.lines
    assert (base.kind, base.amount, base.quantity) == ("base", 1500, "15")
    assert (requests.kind, requests.quantity, requests.amount) == ("usage", "100", 50)  # 200 - 100 included, x 0.5
    assert invoice.subtotal == 1550 and invoice.tax == 126 and invoice.total == 1676  # 8.1% of 1550 = 125.55
    assert invoice.status == InvoiceStatus.OPEN and invoice.number == "2026-000001" and invoice.currency == "CHF"
    assert invoice.customer["email"] == ada.email and invoice.due_at == NOW + timedelta(days=30)
    assert db.session.scalar(select(Invoice).where(Invoice.user_id == nobody.id)) is None
    # again: nothing new
    assert run_invoices("2026-11", now=NOW)["existing"] == 1
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1


def test_removal_within_the_period_and_leap_february(priced):
    ada = make_user()
    installed(ada, since=datetime(2028, 2, 1, tzinfo=UTC), removed=datetime(2028, 2, 15, 12, tzinfo=UTC))
    invoice = write_draft(ada, "2028-02")
    (line,) = invoice.lines
    assert line.quantity == "14.5" and line.amount == 1500  # 3000 x 14.5 / 29
    with pytest.raises(BillingError, match="has not ended"):
        run_invoices("2028-02", now=datetime(2028, 2, 20, tzinfo=UTC))


def test_reverse_charge_for_a_business_abroad(priced):
    ada = make_user(country="DE", tax_id="DE123456789")
    installed(ada, since=datetime(2026, 11, 1, tzinfo=UTC))
    invoice = write_draft(ada, "2026-11")
    assert (
        invoice.reverse_charge and invoice.tax == 0 and invoice.total == 3000 and "Reverse charge" in invoice.tax_note
    )


def finalized_invoice(pdf=True):
    """A new user's November invoice, finalized, with its PDF (or without: as a worker that died between
    its two commits leaves it)."""
    ada = make_user()
    installed(ada, since=datetime(2026, 11, 1, tzinfo=UTC))
    invoice = write_draft(ada, "2026-11")
    db.session.flush()
    finalize(invoice, NOW)
    db.session.commit()
    if pdf:
        store_pdf(invoice)
        db.session.commit()
    return invoice


@pytest.mark.parametrize(
    "change",
    [
        lambda i: update(Invoice).where(Invoice.id == i.id).values(total=1),
        lambda i: update(Invoice).where(Invoice.id == i.id).values(number="2026-999999"),
        lambda i: update(Invoice).where(Invoice.id == i.id).values(status="draft"),
        lambda i: delete(Invoice).where(Invoice.id == i.id),
        lambda i: update(InvoiceLine).where(InvoiceLine.invoice_id == i.id).values(amount=0),
        lambda i: delete(InvoiceLine).where(InvoiceLine.invoice_id == i.id),
    ],
    ids=["total", "number", "back to draft", "delete", "line amount", "delete lines"],
)
def test_the_database_refuses_to_change_a_finalized_invoice(priced, change):
    invoice = finalized_invoice()
    with pytest.raises(DatabaseError, match="finalized invoice"):
        db.session.execute(change(invoice))
    db.session.rollback()


def test_a_finalized_invoice_still_moves_on_in_status_and_payments_stay(priced):
    invoice = finalized_invoice()
    db.session.execute(update(Invoice).where(Invoice.id == invoice.id).values(status="paid", paid_at=NOW))
    db.session.add(
        Payment(invoice_id=invoice.id, amount=invoice.total, method="card", reference="ch_1", paid_on=NOW.date())
    )
    db.session.commit()
    with pytest.raises(DatabaseError, match="payments cannot be deleted"):
        db.session.execute(delete(Payment))
    db.session.rollback()


@pytest.mark.postgres
def test_numbers_stay_gapless_with_two_processes_finalizing_at_once(postgres_url, redis_url, tmp_path):
    from .conftest import make_app

    app = make_app(postgres_url, redis_url, tmp_path)
    with app.app_context():
        db.create_all()
        make_plan().base_fee = 100
        db.session.commit()
        for _ in range(1000):
            db.session.add(
                Invoice(user=make_user(password=None), period="2026-11", currency="CHF", subtotal=1, total=1)
            )
        db.session.commit()
        ids = db.session.scalars(select(Invoice.id).order_by(Invoice.id)).all()
        db.session.remove()

    errors = []

    def finalize_share(share):
        with app.app_context():
            try:
                for invoice_id in share:
                    invoice = db.session.get(Invoice, invoice_id)
                    finalize(invoice, NOW)  # the numbers are the point here: the PDFs come after
                    db.session.commit()
            except Exception as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=finalize_share, args=(ids[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with app.app_context():
        numbers = db.session.scalars(select(Invoice.number)).all()
        assert sorted(numbers) == [f"2026-{n:06d}" for n in range(1, 1001)]
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_flask_invoices_run_by_hand_and_its_bad_input(priced, any_app):
    ada = make_user()
    installed(ada, since=datetime(2026, 10, 5, tzinfo=UTC))
    runner = any_app.test_cli_runner()
    result = runner.invoke(args=["invoices", "run", "--period", "2026-10"])
    assert result.exit_code == 0 and "2026-10: 1 invoices finalized" in result.output
    result = runner.invoke(args=["invoices", "run", "--period", "2026-10"])
    assert "0 invoices finalized, 1 existing" in result.output
    result = runner.invoke(args=["invoices", "run", "--period", "October"])
    assert result.exit_code == 1 and "is not a month" in result.output and "Traceback" not in result.output


def test_finalizing_renders_the_pdf_once_with_its_sha256(priced):
    import hashlib

    invoice = finalized_invoice()
    assert invoice.pdf.startswith(b"%PDF") and hashlib.sha256(invoice.pdf).hexdigest() == invoice.pdf_sha256
    for values in ({"pdf": b"%PDF-forged"}, {"pdf_sha256": "0" * 64}, {"pdf": None, "pdf_sha256": None}):
        with pytest.raises(DatabaseError, match="finalized invoice"):
            db.session.execute(update(Invoice).where(Invoice.id == invoice.id).values(**values))
        db.session.rollback()
    stored = invoice.pdf
    assert store_pdf(reload(invoice)) == stored  # stored: not rendered again


def test_the_pdf_comes_after_the_number_and_only_once(priced):
    """finalize takes the number and commits without a PDF (the counter row is not held over a render); the
    database takes the PDF once, both columns together, and refuses a second one."""
    invoice = finalized_invoice(pdf=False)
    assert invoice.number and invoice.pdf is None
    with pytest.raises(DatabaseError, match="finalized invoice"):  # half of it is not the PDF
        db.session.execute(update(Invoice).where(Invoice.id == invoice.id).values(pdf=b"%PDF-half"))
    db.session.rollback()
    with pytest.raises(BillingError, match="is a draft"):
        store_pdf(Invoice(status="draft"))
    db.session.rollback()
    data = store_pdf(invoice)
    db.session.commit()
    assert reload(invoice).pdf == data and data.startswith(b"%PDF")
    with pytest.raises(DatabaseError, match="finalized invoice"):
        db.session.execute(update(Invoice).where(Invoice.id == invoice.id).values(pdf=b"%PDF-2", pdf_sha256="1"))
    db.session.rollback()


def test_the_run_stores_the_pdfs_a_dead_worker_left_out(priced):
    ada, bob = make_user(), make_user()
    for user in (ada, bob):
        installed(user, since=datetime(2026, 11, 1, tzinfo=UTC))
    first = run_invoices("2026-11", now=NOW)
    assert first["finalized"] == 2 and first["pdfs"] == 2
    invoice = finalized_invoice(pdf=False)
    assert render_missing("2026-11", [ada.id]) == (0, 0)  # only the users asked for
    again = run_invoices("2026-11", now=NOW)
    assert again["finalized"] == 0 and again["existing"] == 3 and again["pdfs"] == 1
    assert reload(invoice).pdf.startswith(b"%PDF")
    assert run_invoices("2026-11", now=NOW)["pdfs"] == 0


def test_the_pdf_renderer_fetches_nothing_outside_our_static_files(app):
    from app.billing.pdf import check_local, render_pdf

    with pytest.raises(ValueError, match="may not fetch"):
        check_local("https://cdn.example.com/font.woff")
    with pytest.raises(ValueError, match="may not fetch"):
        check_local("file:///etc/passwd")
    inside = f"file://{app.static_folder}/js/poll.js"
    assert check_local(inside) == inside
    # a page naming an outside image still renders, without it (WeasyPrint logs the refusal)
    assert render_pdf('<p>hello</p><img src="https://example.com/x.png">').startswith(b"%PDF")


# payments and pages


def test_partial_payments_leave_a_balance_and_the_last_one_pays(priced):
    from app.billing.payments import balance, close, record_payment

    invoice = finalized_invoice()  # 3000 + 8.1% = 3243
    assert invoice.total == 3243 and balance(invoice) == 3243
    record_payment(invoice, 1000, "bank transfer", "BANK-1", NOW.date())
    assert balance(invoice) == 2243 and invoice.status == InvoiceStatus.OPEN
    with pytest.raises(BillingError, match="recorded already"):
        record_payment(invoice, 100, "card", "BANK-1", NOW.date())
    with pytest.raises(BillingError, match="at most the balance"):
        record_payment(invoice, 5000, "card", "BANK-2", NOW.date())
    with pytest.raises(BillingError, match="is not one of"):
        record_payment(invoice, 100, "cash", "BANK-3", NOW.date())
    with pytest.raises(BillingError, match="has payments"):
        close(invoice, "void")
    record_payment(invoice, 2243, "card", "ch_2", NOW.date())
    invoice = reload(invoice)
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_at is not None and balance(invoice) == 0
    with pytest.raises(BillingError, match="only open invoices take payments"):
        record_payment(invoice, 1, "card", "ch_3", NOW.date())


def test_users_see_their_invoices_a_preview_and_download_their_pdfs(client, login, app):
    ada, invoice = october_invoice()
    bob = make_user()
    login(ada)
    page = client.get("/invoices").get_data(as_text=True)
    assert f'data-invoice="{invoice.number}"' in page and "32.43 CHF" in page and 'id="preview-total"' in page
    response = client.get(f"/invoices/{invoice.id}.pdf")
    assert response.status_code == 200 and response.data == invoice.pdf and response.mimetype == "application/pdf"
    client.post("/logout")
    login(bob)
    assert client.get(f"/invoices/{invoice.id}.pdf").status_code == 404
    assert 'id="no-invoices"' in client.get("/invoices").get_data(as_text=True)
    # finalized by a worker that stopped before storing its PDF: rendered and stored on the first download
    carol = make_user()
    installed(carol, since=datetime(2026, 10, 1, tzinfo=UTC))
    draft = write_draft(carol, "2026-10")
    db.session.commit()
    client.post("/logout")
    login(carol)
    assert client.get(f"/invoices/{draft.id}.pdf").status_code == 404  # a draft has no PDF
    finalize(reload(draft), NOW)
    db.session.commit()
    response = client.get(f"/invoices/{draft.id}.pdf")
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    assert reload(draft).pdf == response.data


def test_admins_record_payments_and_close_invoices_in_the_console(client, login, app):
    ada, invoice = october_invoice()
    login(make_user(admin=True))
    page = client.get(f"/admin/invoice/details/?id={invoice.id}").get_data(as_text=True)
    assert 'id="payment-form"' in page and "32.43" in page and 'id="void"' in page
    url = f"/admin/invoice/{invoice.id}/payment"
    client.post(url, data={"amount": "12.5x", "method": "card", "reference": "r1", "paid_on": "2026-11-02"})
    assert "is not an amount" in client.get("/admin/").get_data(as_text=True)
    client.post(url, data={"amount": "10.00", "method": "card", "reference": "r1", "paid_on": "2026-11-02"})
    client.post(url, data={"amount": "22.43", "method": "bank transfer", "reference": "r2", "paid_on": "2026-11-03"})
    assert reload(invoice).status == InvoiceStatus.PAID
    assert client.get("/admin/payment/").status_code == 200 and client.get("/admin/invoice/").status_code == 200
    _, second = october_invoice()
    client.post(f"/admin/invoice/{second.id}/close/uncollectible")
    assert reload(second).status == InvoiceStatus.UNCOLLECTIBLE


def test_the_console_shows_an_invoice_as_money_and_readable_lines(client, login, app):
    import re

    metric = Metric(
        plan=make_plan(), name="api requests", kind="api", action="request", unit="requests", unit_price="0.5"
    )
    db.session.add(metric)
    db.session.commit()
    ada = make_user(company="Lovelace Ltd", billing_address="Main Street 1\n8000 Zurich", country="CH", tax_id="CHE-1")
    usage(ada, metric, "2026-10-10", 1000)  # 5.00
    _, invoice = october_invoice(ada)  # 35.00 + 8.1% = 37.84
    login(make_user(admin=True))
    page = client.get(f"/admin/invoice/details/?id={invoice.id}").get_data(as_text=True)
    # the details table: money with its currency, the rate as a percentage, the customer as lines
    for label, value in (("Subtotal", "35.00 CHF"), ("Tax", "2.84 CHF"), ("Total", "37.84 CHF"), ("Tax rate", "8.1%")):
        assert re.search(rf"<td>\s*<b>{label}</b>\s*</td>\s*<td>\s*{re.escape(value)}\s*</td>", page), label
    assert ">3500<" not in page and ">3784<" not in page and "{&#34;" not in page and "Unit price (minor)" not in page
    customer = f"{ada.full_name}<br>Lovelace Ltd<br>Main Street 1<br>8000 Zurich<br>CH<br>VAT CHE-1<br>{ada.email}"
    assert customer in page
    # the line: the unit price in major units and the currency
    assert "30.00 CHF / month" in page and "0.005 CHF" in page and "5.00 CHF" in page
    # every irreversible form asks first, saying what will happen (static/js/confirm.js reads data-confirm)
    questions = re.findall(r'<form [^>]*data-confirm="([^"]*)"', page)
    assert f"Void invoice {invoice.number} (37.84 CHF)? It is no longer owed. This cannot be undone." in questions
    assert any(q.startswith(f"Mark invoice {invoice.number} (37.84 CHF) as uncollectible?") for q in questions)
    assert f"Record this payment on invoice {invoice.number}? A recorded payment cannot be deleted." in questions
    # the lists: money with its currency
    client.post(
        f"/admin/invoice/{invoice.id}/payment",
        data={"amount": "10.00", "method": "card", "reference": "r1", "paid_on": "2026-11-02"},
    )
    assert "37.84 CHF" in client.get("/admin/invoice/").get_data(as_text=True)
    payments = client.get("/admin/payment/").get_data(as_text=True)
    assert "10.00 CHF" in payments and ">1000<" not in payments
    (payment,) = db.session.scalars(select(Payment)).all()
    assert "10.00 CHF" in client.get(f"/admin/payment/details/?id={payment.id}").get_data(as_text=True)
    # a draft: finalizing asks too; its customer is taken only then
    carol = make_user()
    installed(carol, since=datetime(2026, 10, 1, tzinfo=UTC))
    draft = write_draft(carol, "2026-10")
    db.session.commit()
    page = client.get(f"/admin/invoice/details/?id={draft.id}").get_data(as_text=True)
    assert re.findall(r'<form [^>]*data-confirm="([^"]*)"', page) == [
        f"Finalize the 2026-10 draft of {carol.email} (32.43 CHF)? "
        "It takes the next invoice number and can never be changed again."
    ]
    assert "not yet: taken when the invoice is finalized" in page


def test_admins_finalize_a_draft_in_the_console_with_its_pdf(client, login, app):
    plan = ServicePlan.by_name("omegaml") or make_plan()
    plan.base_fee = 3000
    db.session.commit()
    ada = make_user()
    installed(ada, since=datetime(2026, 10, 1, tzinfo=UTC))
    draft = write_draft(ada, "2026-10")
    db.session.commit()
    login(make_user(admin=True))
    client.post(f"/admin/invoice/{draft.id}/finalize")
    invoice = reload(draft)
    assert invoice.status == InvoiceStatus.OPEN and invoice.number and invoice.pdf.startswith(b"%PDF")
    assert f"Invoice {invoice.number} is finalized." in client.get("/admin/").get_data(as_text=True)
    client.post(f"/admin/invoice/{draft.id}/finalize")
    assert "is open already" in client.get("/admin/").get_data(as_text=True)
    assert reload(draft).pdf == invoice.pdf


def signed(payload: str, secret: str, timestamp: int | None = None) -> dict:
    import hashlib
    import hmac
    import time

    timestamp = timestamp or int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


def test_the_stripe_webhook_marks_invoices_paid_once_and_refuses_bad_signatures(client, app):
    import json

    app.config["STRIPE_WEBHOOK_SECRET"] = "whsec_test"
    _, invoice = october_invoice()
    event = {
        "id": "evt_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1764547200,
        "data": {
            "object": {
                "id": "pi_1",
                "object": "payment_intent",
                "amount_received": invoice.total,
                "currency": "chf",
                "metadata": {"invoice_number": invoice.number},
            }
        },
    }
    payload = json.dumps(event)
    url = "/billing/webhooks/stripe"
    response = client.post(url, data=payload, headers=signed(payload, "whsec_wrong"))
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"
    assert reload(invoice).status == InvoiceStatus.OPEN
    assert client.post(url, data=payload, headers={"Content-Type": "application/json"}).status_code == 400
    response = client.post(url, data=payload, headers=signed(payload, "whsec_test"))
    assert response.get_json() == {"status": "recorded", "invoice": invoice.number, "state": "paid"}
    assert reload(invoice).status == InvoiceStatus.PAID
    response = client.post(url, data=payload, headers=signed(payload, "whsec_test"))  # a replay
    assert response.get_json()["status"] == "duplicate"
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    other = json.dumps({**event, "id": "evt_2", "type": "customer.created"})
    assert client.post(url, data=other, headers=signed(other, "whsec_test")).get_json()["status"] == "ignored"
    app.config["STRIPE_WEBHOOK_SECRET"] = ""
    assert client.post(url, data=payload, headers=signed(payload, "whsec_test")).status_code == 404


def test_overdue_invoices_are_reminded_once_per_threshold_with_the_pdf(app, smtp):
    from app.billing.reminders import send_reminders

    ada, invoice = october_invoice()
    due = invoice.due_at
    assert send_reminders(due + timedelta(days=1)) == {"reminders sent": 0, "failed": 0}  # not yet (3 days)
    assert send_reminders(due + timedelta(days=4))["reminders sent"] == 1
    (message,) = smtp.messages
    assert message["To"] == ada.email and invoice.number in message["Subject"]
    attachment = next(part for part in message.iter_attachments())
    assert attachment.get_filename() == f"invoice-{invoice.number}.pdf" and attachment.get_content() == invoice.pdf
    assert send_reminders(due + timedelta(days=5))["reminders sent"] == 0  # once per threshold
    assert send_reminders(due + timedelta(days=15))["reminders sent"] == 1
    from app.billing.payments import record_payment

    record_payment(reload(invoice), invoice.total, "card", "paid-1", NOW.date())
    assert send_reminders(due + timedelta(days=40))["reminders sent"] == 0  # paid: no more


def test_the_monthly_run_spreads_over_the_workers_in_chunks(app):
    from rq import Queue, SimpleWorker

    from app.billing.jobs import enqueue_invoice_run
    from app.jobs.queues import PERIODIC, get_redis
    from app.jobs.worker import AppJob

    plan = make_plan()
    plan.base_fee = 3000
    db.session.commit()
    for _ in range(5):
        installed(make_user(), since=datetime(2026, 10, 1, tzinfo=UTC))
    assert enqueue_invoice_run("2026-10", chunk=2) == 3
    SimpleWorker([Queue(PERIODIC, connection=get_redis())], connection=get_redis(), job_class=AppJob).work(burst=True)
    numbers = sorted(db.session.scalars(select(Invoice.number)).all())
    assert numbers == [f"2026-{n:06d}" for n in range(1, 6)]


def test_the_dashboard_charts_revenue_per_month(client, login, app):
    from app.views.admin.dashboard import revenue_per_month

    plan = make_plan()
    plan.base_fee = 3000
    db.session.commit()
    installed(make_user(), since=datetime(2026, 10, 1, tzinfo=UTC))
    run_invoices("2026-10", now=NOW)
    periods, unpaid, paid = revenue_per_month(NOW)
    assert periods[-1] == "2026-11" and periods[-2] == "2026-10" and len(periods) == 12
    assert unpaid[-2] == 32.43 and paid[-2] == 0
    login(make_user(admin=True))
    assert "Invoiced per month" in client.get("/admin/").get_data(as_text=True)


def test_a_pdf_that_cannot_be_rendered_stops_nothing_and_is_made_later(client, login, app, smtp, monkeypatch):
    """The invoice stays finalized; the run reports it, the others get theirs, the download says to try
    again (503, no traceback), the reminders go on; once the renderer works the next run stores it."""
    from app.billing import pdf
    from app.billing.reminders import send_reminders

    plan = ServicePlan.by_name("omegaml") or make_plan()
    plan.base_fee = 3000
    db.session.commit()
    ada, bob = make_user(), make_user()
    for user in (ada, bob):
        installed(user, since=datetime(2026, 10, 1, tzinfo=UTC))
    real = pdf.invoice_pdf

    def broken_for_ada(invoice):
        if invoice.user_id == ada.id:
            raise RuntimeError("a font went missing")
        return real(invoice)

    monkeypatch.setattr(pdf, "invoice_pdf", broken_for_ada)
    result = run_invoices("2026-10", now=NOW)
    assert (result["finalized"], result["pdfs"], result["pdf failures"]) == (2, 1, 1)
    ada_invoice = db.session.scalar(select(Invoice).where(Invoice.user_id == ada.id))
    assert ada_invoice.status == InvoiceStatus.OPEN and ada_invoice.number and ada_invoice.pdf is None
    login(ada)
    response = client.get(f"/invoices/{ada_invoice.id}.pdf")
    assert response.status_code == 503 and "try again later" in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert f'href="/invoices/{ada_invoice.id}.pdf"' in client.get("/invoices").get_data(as_text=True)
    sent = send_reminders(ada_invoice.due_at + timedelta(days=4))
    assert sent == {"reminders sent": 1, "failed": 1} and len(smtp.messages) == 1  # bob's went out
    monkeypatch.setattr(pdf, "invoice_pdf", real)
    assert run_invoices("2026-10", now=NOW)["pdfs"] == 1
    assert reload(ada_invoice).pdf.startswith(b"%PDF")
    assert client.get(f"/invoices/{ada_invoice.id}.pdf").status_code == 200
