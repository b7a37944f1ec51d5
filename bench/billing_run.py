"""Billing benchmark: the invoice PDF against WeasyPrint alone, and the monthly run over real workers.

1. PDF: the median warm render of a one-page invoice through ``app.billing.pdf.invoice_pdf`` (our template,
   our URL fetcher, the per-process FontConfiguration) beside the floor: ``weasyprint.HTML(string=the same
   html).write_pdf()`` with WeasyPrint's defaults. Target: ours / floor <= 1.2.
2. The run: U users (``--billing-users``, default 10,000), each with a deployment of a 30.00-a-month plan
   installed in the last month and daily usage of a priced metric; ``enqueue_invoice_run`` (jobs of 500
   users), then two real ``flask worker --burst`` processes; the total time until both exit, invoices per
   second, each worker's peak RSS (VmHWM), and the numbers checked gapless.

    python -m bench --only billing_run [--postgres] [--billing-users N] [--billing-renders N]
"""

import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta


def add_arguments(parser) -> None:
    parser.add_argument("--billing-users", type=int, default=10_000, help="users invoiced (default 10,000)")
    parser.add_argument("--billing-renders", type=int, default=30, help="timed PDF renders (default 30)")


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _seed(users: int, period_start: datetime) -> None:
    """Users, a priced plan, one installed deployment each and usage on three days, in bulk."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Metric, Phase, ServiceCommand, ServiceDeployment, ServicePlan, Status, UsageDaily, User
    from app.ops.specs import apply_specs, parse_specs, spec_fallbacks

    spec = """
- plan: bench-billed
  offered: true
  one_per_user: false
  base_fee: 3000
  metrics:
    - {name: requests, kind: api, action: request, aggregation: count, unit: requests,
       unit_price: "0.05", included: 1000}
"""
    from flask import current_app

    apply_specs(parse_specs(spec, "bench", current_app.config["SCRIPTS_DIR"], spec_fallbacks(current_app.config)))
    db.session.commit()
    plan = ServicePlan.by_name("bench-billed")
    configuration_id = plan.current_configuration.id
    metric_id = db.session.scalar(select(Metric.id).where(Metric.plan_id == plan.id))
    since = period_start + timedelta(days=3)
    db.session.execute(
        insert(User),
        [{"email": f"billed{i}@bench.example.com", "userid": f"billed{i}", "country": "CH"} for i in range(users)],
    )
    user_ids = db.session.scalars(select(User.id).where(User.userid.like("billed%")).order_by(User.id)).all()
    db.session.execute(
        insert(ServiceDeployment),
        [
            {
                "user_id": u,
                "plan_id": plan.id,
                "configuration_id": configuration_id,
                "status": Status.COMPLETED,
                "created_at": since,
            }
            for u in user_ids
        ],
    )
    deployments = db.session.execute(
        select(ServiceDeployment.id, ServiceDeployment.user_id).where(ServiceDeployment.plan_id == plan.id)
    ).all()
    db.session.execute(
        insert(ServiceCommand),
        [
            {
                "user_id": u,
                "plan_id": plan.id,
                "deployment_id": d,
                "configuration_id": configuration_id,
                "phase": Phase.INSTALL.value,
                "status": Status.COMPLETED,
                "created_at": since,
                "finished_at": since,
            }
            for d, u in deployments
        ],
    )
    days = [(period_start + timedelta(days=n)).date().isoformat() for n in (5, 12, 20)]
    db.session.execute(
        insert(UsageDaily),
        [
            {"user_id": u, "plan_id": plan.id, "metric_id": metric_id, "day": day, "value": 700 + (u % 500)}
            for u in user_ids
            for day in days
        ],
    )
    db.session.commit()


def _pdf(renders: int) -> tuple[float, float, float, float]:
    import weasyprint

    from app.billing.invoices import finalize, period_of, write_draft
    from app.billing.pdf import invoice_html, invoice_pdf
    from app.extensions import db
    from app.models import User

    user = db.session.query(User).filter(User.userid == "billed0").one()
    period = period_of(datetime.now(UTC).replace(day=1) - timedelta(days=1))
    invoice = write_draft(user, period)
    db.session.flush()
    finalize(invoice)
    html = invoice_html(invoice)
    for _ in range(3):
        invoice_pdf(invoice)
        weasyprint.HTML(string=html).write_pdf()
    ours, floor = [], []
    for _ in range(renders):
        started = time.perf_counter()
        invoice_pdf(invoice)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        weasyprint.HTML(string=html).write_pdf()
        floor.append(time.perf_counter() - started)
    db.session.rollback()  # the invoice stays a draft: the run below makes it
    q = max(int(len(ours) * 0.95) - 1, 0)
    return statistics.median(ours), sorted(ours)[q], statistics.median(floor), sorted(floor)[q]


def run(args) -> None:
    from bench.setup_app import bench_app, project_root

    root = project_root()
    users = args.billing_users
    if users < 1 or args.billing_renders < 1:
        raise ValueError("--billing-users and --billing-renders must be at least 1")
    with bench_app("billing", "billing", getattr(args, "postgres", False), detail=f"{users} users, ") as setup:
        from sqlalchemy import func, select

        from app.billing.invoices import period_of
        from app.billing.jobs import enqueue_invoice_run
        from app.extensions import db
        from app.models import Invoice

        now = datetime.now(UTC)
        period_start = (now.replace(day=1) - timedelta(days=1)).replace(
            day=1, hour=0, minute=0, second=0, microsecond=0
        )
        period = period_of(period_start)
        started = time.perf_counter()
        _seed(users, period_start)
        print(f"billing: seeded {users} users in {time.perf_counter() - started:.1f} s", flush=True)

        ours, ours95, floor, floor95 = _pdf(args.billing_renders)
        print(
            f"billing: PDF median {ours * 1000:.1f} ms (p95 {ours95 * 1000:.1f}), WeasyPrint alone "
            f"{floor * 1000:.1f} ms (p95 {floor95 * 1000:.1f}): ratio {ours / floor:.2f} (target <= 1.2)"
        )

        started = time.perf_counter()
        jobs = enqueue_invoice_run(period)
        workers = [
            subprocess.Popen(  # noqa: S603 -- our own flask, our own arguments
                [str(root / ".venv" / "bin" / "flask"), "worker", "--burst"],
                cwd=root,
                env=setup.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        peaks = [0.0, 0.0]
        while any(worker.poll() is None for worker in workers):
            for i, worker in enumerate(workers):
                if worker.poll() is None:
                    peaks[i] = max(peaks[i], _peak_rss_mb(worker.pid) or 0.0)
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        db.session.expire_all()
        numbers = db.session.scalars(select(Invoice.number).where(Invoice.period == period)).all()
        year = now.year
        gapless = sorted(numbers) == [f"{year}-{n:06d}" for n in range(1, len(numbers) + 1)]
        opened = db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "open"))
        pdfs = db.session.scalar(select(func.count()).select_from(Invoice).where(Invoice.pdf.is_not(None)))
        print(
            f"billing: run of {period}: {jobs} jobs, {opened} invoices finalized, {pdfs} PDFs stored, "
            f"in {elapsed:.1f} s with "
            f"2 workers = {opened / elapsed:.1f} invoices/s; peak RSS per worker {peaks[0]:.0f} / {peaks[1]:.0f} MB; "
            f"numbers gapless: {gapless}; exit codes {[w.returncode for w in workers]}",
            flush=True,
        )
        if not gapless or opened != users or pdfs != users:
            print(
                f"billing: CHECK FAILED: {opened} of {users} invoices, {pdfs} PDFs, gapless {gapless}", file=sys.stderr
            )
            raise SystemExit(1)
