"""Who owns a plan once an operator has edited it, and plans round-tripping through export and import.

`make run` loads the shipped specs at every start (`flask createservice --specs services/ --keep-edits`): an
operator's edit in the console must survive that, and a load that would overwrite an edit must say so.
"""

import html
import re
import shutil
from pathlib import Path

import pytest
import yaml

from app.extensions import db
from app.models import Metric, ServicePlan
from app.ops.ownership import plan_state

from .engine_helpers import issue
from .factories import make_user
from .test_cli import invoke

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "services"


@pytest.fixture
def shipped(app, runner):
    app.config["SCRIPTS_DIR"] = SHIPPED / "scripts"
    result = invoke(runner, "createservice", "--specs", str(SHIPPED))
    assert result.exit_code == 0, result.output


@pytest.fixture
def admin(app, login):
    user = make_user(email="root@example.com", userid="root", admin=True)
    login(user)
    return user


def spec_text(client, plan: ServicePlan) -> str:
    page = client.get(f"/admin/serviceplan/{plan.id}/spec").get_data(as_text=True)
    return html.unescape(re.search(r"<textarea[^>]*>(.*?)</textarea>", page, re.S).group(1))


def set_prices_in_the_console(client, name="omegaml", unit_price="0.002", included="1000"):
    """An operator sets the price of the plan's `api requests` metric in *Edit steps and env*."""
    plan = ServicePlan.by_name(name)
    spec = yaml.safe_load(spec_text(client, plan))
    for metric in spec["metrics"]:
        if metric["name"] == "api requests":
            metric.update(unit_price=unit_price, included=included)
    response = client.post(f"/admin/serviceplan/{plan.id}/spec", data={"spec": yaml.safe_dump(spec)})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]


def api_requests(name="omegaml") -> Metric:
    db.session.expire_all()
    plan = ServicePlan.by_name(name)
    return db.session.scalar(db.select(Metric).where(Metric.plan_id == plan.id, Metric.name == "api requests"))


def test_make_runs_load_keeps_prices_set_in_the_console_and_says_so(app, client, runner, shipped, admin):
    set_prices_in_the_console(client)
    # what `make run` does at every start
    result = invoke(runner, "createservice", "--specs", str(SHIPPED), "--keep-edits")
    assert result.exit_code == 0, result.output
    assert "omegaml: kept as an operator edited it" in result.output
    assert "metrics[api requests].unit_price" in result.output and "--overwrite" in result.output
    assert "worker: unchanged" in result.output  # the plans nobody edited are loaded as usual
    metric = api_requests()
    assert (metric.unit_price, metric.included) == ("0.002", "1000")
    # and at the next start again
    invoke(runner, "createservice", "--specs", str(SHIPPED), "--keep-edits")
    assert api_requests().unit_price == "0.002"


def test_a_load_that_would_overwrite_edits_is_refused_unless_told(app, client, runner, shipped, admin):
    set_prices_in_the_console(client)
    result = invoke(runner, "createservice", "--specs", str(SHIPPED))
    assert result.exit_code == 1
    assert "omegaml: metrics[api requests].included, metrics[api requests].unit_price" in result.output
    assert "Nothing was loaded" in result.output
    assert api_requests().unit_price == "0.002"

    result = invoke(runner, "createservice", "--specs", str(SHIPPED), "--overwrite")
    assert result.exit_code == 0, result.output
    assert "omegaml: the operator's edits were overwritten by the spec" in result.output
    assert api_requests().unit_price == "0"
    # the spec owns the plan again: a plain load is a no-op
    result = invoke(runner, "createservice", "--specs", str(SHIPPED))
    assert result.exit_code == 0 and "omegaml: unchanged" in result.output


def test_a_plan_nobody_edited_follows_its_spec_file(app, runner, shipped, tmp_path):
    specs = tmp_path / "services"
    shutil.copytree(SHIPPED, specs, ignore=shutil.ignore_patterns("scripts"))
    path = specs / "worker.yaml"
    path.write_text(path.read_text().replace("title: ", "title: New ", 1))
    result = invoke(runner, "createservice", "--specs", str(specs), "--keep-edits")
    assert result.exit_code == 0, result.output
    assert "worker: updated" in result.output and "kept" not in result.output
    db.session.expire_all()
    assert ServicePlan.by_name("worker").title.startswith("New ")


def test_a_retired_plan_stays_retired_through_make_run(app, client, runner, shipped, admin):
    plan = ServicePlan.by_name("worker")
    issue("worker", make_user())  # a plan with history is retired, not deleted
    response = client.post(f"/admin/serviceplan/{plan.id}/retire", data={"force": "yes"})
    assert response.status_code == 302
    db.session.expire_all()
    assert not ServicePlan.by_name("worker").active
    result = invoke(runner, "createservice", "--specs", str(SHIPPED), "--keep-edits")
    assert "worker: kept as an operator edited it" in result.output and "retired → active" in result.output
    db.session.expire_all()
    assert not ServicePlan.by_name("worker").active


def test_plans_loaded_before_digests_are_adopted_when_their_spec_matches(app, runner, shipped):
    for plan in db.session.scalars(db.select(ServicePlan)):
        plan.spec_digest = None  # as migration 0010 leaves them
    db.session.commit()
    result = invoke(runner, "createservice", "--specs", str(SHIPPED))
    assert result.exit_code == 0, result.output
    assert "kept" not in result.output and all(p.spec_digest for p in db.session.scalars(db.select(ServicePlan)))


# export -> import

EVERY_FIELD = """
- plan: everything
  title: Every field
  description: "A plan with every field set: ünïcode too"
  offered: true
  one_per_user: false
  base_fee: 1990
  defaults: {OMEGA_FLAG: "on", OMEGA_LIMIT: 3}
  configuration:
    env: {CLUSTER_ID: "${CLUSTER_ID}", REGION: eu-1}
  steps:
    - task: app.ops.tasks.deploy_user_service
      name: deploy
      params: "size=1"
      phases: [install, update]
      timeout: 120
      retries: 2
  metrics:
    - {name: calls, kind: api, action: request, aggregation: count, unit: calls, unit_price: "0.01", included: "100"}
    - name: storage
      kind: service
      action: bytes
      aggregation: max
      unit: GB
      tiers: [{up_to: 10, unit_price: "1"}, {up_to: null, unit_price: "0.5"}]
    - {name: people, kind: api, aggregation: unique, field: user, unit: users}
"""


def export_text(client, plan: ServicePlan) -> str:
    response = client.get(f"/admin/serviceplan/{plan.id}/export")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def import_text(client, text: str) -> str:
    response = client.post("/admin/serviceplan/import", data={"spec": text})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "alert-danger" not in page, page[:3000]
    return page


def test_every_stored_plan_field_round_trips_through_export_and_import(app, client, runner, shipped, admin):
    import_text(client, EVERY_FIELD)
    plans = db.session.scalars(db.select(ServicePlan).order_by(ServicePlan.name)).all()
    assert {p.name for p in plans} >= {"omegaml", "worker", "signup", "everything"}
    everything = ServicePlan.by_name("everything")
    assert everything.base_fee == 1990 and "base_fee: 1990" in export_text(client, everything)
    exported = {plan.name: export_text(client, plan) for plan in plans}
    before = {plan.name: plan_state(plan) for plan in plans}

    # onto the same plans: nothing changes
    for name, text in exported.items():
        assert "unchanged" in import_text(client, text), name
    db.session.expire_all()
    assert {p.name: plan_state(p) for p in db.session.scalars(db.select(ServicePlan))} == before

    # into an empty console: the same plans (none of these has a secret, which an export masks)
    db.drop_all()
    db.create_all()
    make_user(email="root2@example.com", userid="root2", admin=True)
    client.post("/login", data={"email": "root2@example.com", "password": "correct horse battery"})
    for text in exported.values():
        import_text(client, text)
    after = {p.name: plan_state(p) for p in db.session.scalars(db.select(ServicePlan))}
    assert after == before


def test_base_fee_is_on_the_plan_form_and_details(app, client, shipped, admin):
    plan = ServicePlan.by_name("worker")
    form = client.get(f"/admin/serviceplan/edit/?id={plan.id}").get_data(as_text=True)
    assert 'name="base_fee"' in form and "in cents" in form
    details = client.get(f"/admin/serviceplan/details/?id={plan.id}").get_data(as_text=True)
    assert "Base fee a month" in details
    assert "base_fee:" in spec_text(client, plan)
