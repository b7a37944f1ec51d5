"""``POST /billing/webhooks/stripe``: the payment provider says an invoice was paid.

The signature is checked with the stripe library (``Stripe-Signature``, the secret ``STRIPE_WEBHOOK_SECRET``):
a bad one is a 400 and changes nothing. Handled: ``payment_intent.succeeded`` and
``checkout.session.completed`` whose ``metadata.invoice_number`` names one of our invoices; the payment is
recorded with the provider's payment id as its unique reference, so a replayed event is a no-op. Anything
else is acknowledged (200) so the provider does not retry it forever, and logged.
"""

import logging
from datetime import UTC, datetime

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import select

from ..api.parsing import DEPTH_MESSAGE, too_deep
from ..extensions import csrf, db
from ..models import Invoice, Payment
from .invoices import BillingError
from .payments import record_payment

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/billing/webhooks")
HANDLED = {"payment_intent.succeeded": "amount_received", "checkout.session.completed": "amount_total"}


def answer(code: int, **body):
    return jsonify(body), code


@bp.route("/stripe", methods=["POST"])
@csrf.exempt
def stripe_event():
    import stripe

    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        return answer(404, error="not_found", message="the stripe webhook is not configured")
    payload = request.get_data(cache=False)
    if too_deep(payload):  # the stripe library builds its event recursively: a RecursionError, a 500 before
        return answer(400, error="bad_request", message=DEPTH_MESSAGE)
    try:
        event = stripe.Webhook.construct_event(payload, request.headers.get("Stripe-Signature", ""), secret)
    except (ValueError, stripe.SignatureVerificationError) as exc:
        return answer(400, error="bad_request", message=f"not a signed stripe event: {str(exc)[:200]}")
    kind = event["type"]
    if kind not in HANDLED:
        return answer(200, status="ignored", reason=f"event type {kind} is not handled")
    obj = event["data"]["object"]
    number = (obj.get("metadata") or {}).get("invoice_number")
    reference = f"stripe:{obj.get('payment_intent') or obj.get('id')}"
    invoice = db.session.scalar(select(Invoice).where(Invoice.number == number)) if number else None
    if invoice is None:
        log.warning("stripe event %s: no invoice %r", event["id"], number)
        return answer(200, status="ignored", reason=f"no invoice {number!r}")
    if db.session.scalar(select(Payment.id).where(Payment.reference == reference)) is not None:
        return answer(200, status="duplicate", invoice=invoice.number)
    amount = obj.get(HANDLED[kind])
    if not isinstance(amount, int) or (obj.get("currency") or "").upper() != invoice.currency:
        log.warning(
            "stripe event %s: amount %r %r does not fit invoice %s", event["id"], amount, obj.get("currency"), number
        )
        return answer(200, status="refused", reason="amount or currency does not fit the invoice")
    paid_on = datetime.fromtimestamp(event.get("created") or 0, UTC).date()
    try:
        record_payment(invoice, amount, "card", reference, paid_on, note=f"stripe event {event['id']}")
    except BillingError as exc:
        db.session.rollback()
        log.warning("stripe event %s: %s", event["id"], exc)
        return answer(200, status="refused", reason=str(exc))
    return answer(200, status="recorded", invoice=invoice.number, state=invoice.status)
