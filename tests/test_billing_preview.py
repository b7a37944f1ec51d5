"""The "this month so far" preview bills what was used up to now, not the month to its end; the monthly run
of a closed period is unchanged."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.billing.invoices import compute, write_draft
from app.extensions import db
from app.models import Metric

from .factories import make_plan, make_user
from .test_invoices import installed, usage

NOVEMBER_4TH = datetime(2026, 11, 4, 0, 0, tzinfo=UTC)  # 3 whole days of November's 30 have passed


@pytest.fixture
def plan(app):
    """A 30.00-a-month plan (1.00 a day in November) with requests at 0.5 cents beyond 100 included."""
    plan = make_plan()
    plan.base_fee = 3000
    db.session.add(
        Metric(
            plan=plan,
            name="api requests",
            kind="api",
            action="request",
            aggregation="count",
            unit="requests",
            unit_price="0.5",
            included="100",
        )
    )
    db.session.commit()
    return plan


def test_the_preview_bills_base_fees_to_the_second_and_usage_up_to_now(plan):
    ada = make_user()
    installed(ada, since=datetime(2026, 11, 1, tzinfo=UTC))
    metric = db.session.scalar(select(Metric))
    usage(ada, metric, "2026-11-02", 150)
    usage(ada, metric, "2026-11-04", 50)  # the day in progress: what it recorded so far counts
    usage(ada, metric, "2026-11-05", 999)  # not yet (a clock ahead somewhere): not billed so far
    # the 4th, noon: 3.5 of 30 days; 200 requests, 100 of them included
    (base, requests), totals = compute(ada, "2026-11", until=datetime(2026, 11, 4, 12, tzinfo=UTC))
    assert (base.quantity, base.unit, base.amount) == (Decimal("3.5"), "days of 30", 350)
    assert "2026-11-01 to 2026-11-04" in base.description
    assert (requests.quantity, requests.amount) == (Decimal(100), 50)
    assert totals["subtotal"] == 400
    # midnight: the day that just began has no time and no usage yet (150 of the 2nd, 100 included)
    (base, requests), _ = compute(ada, "2026-11", until=NOVEMBER_4TH)
    assert (base.amount, requests.quantity) == (300, Decimal(50))
    # before the period or before the install: nothing yet
    assert compute(ada, "2026-11", until=datetime(2026, 10, 20, tzinfo=UTC))[0] == []
    bob = make_user()
    installed(bob, since=datetime(2026, 11, 10, tzinfo=UTC))
    assert compute(bob, "2026-11", until=NOVEMBER_4TH)[0] == []


def test_a_closed_period_is_billed_whole_whatever_until_says(plan):
    ada = make_user()
    installed(ada, since=datetime(2026, 10, 5, tzinfo=UTC), removed=datetime(2026, 10, 20, 12, tzinfo=UTC))
    carol = make_user()
    installed(carol, since=datetime(2026, 10, 10, tzinfo=UTC))
    for user in (ada, carol):
        whole = compute(user, "2026-10")
        assert compute(user, "2026-10", until=datetime(2026, 12, 1, 3, tzinfo=UTC)) == whole
        assert compute(user, "2026-10", until=datetime(2026, 11, 1, tzinfo=UTC)) == whole
    (line,) = write_draft(carol, "2026-10").lines
    assert (line.quantity, line.amount) == ("22", 2129)  # 22 of 31 days of 30.00


def test_the_invoices_page_previews_the_month_so_far(plan, client, login, monkeypatch):
    from app.views import billing

    ada = make_user(country="CH")
    installed(ada, since=datetime(2026, 11, 1, tzinfo=UTC))
    monkeypatch.setattr(billing, "utcnow", lambda: NOVEMBER_4TH)
    login(ada)
    page = client.get("/invoices").get_data(as_text=True)
    # 3 of 30 days: 3.00 + 8.1% VAT (0.243 -> 0.24), not the whole month's 32.43
    assert '<td class="text-right" id="preview-total">3.24</td>' in page
    assert "3 days of 30" in page and "2026-11-04 00:00 UTC" in page
