"""Every page a user can reach from /services answers, renders cleanly, and offers only forms that are safe:
a user with a deployment of each offered shipped plan (and the internal sign-up one) is crawled in the browser."""

from sqlalchemy import select

from app import accounts
from app.extensions import db
from app.jobs.provisioning import enqueue_command
from app.models import ServiceDeployment, ServicePlan
from app.ops.commands import issue_command

from ..factories import make_user
from ..processes import ROOT
from .crawl_pages_helpers import Crawler
from .helpers import log_in, wait_for_deployment


def install(plan: str, user, privileged: bool = False) -> int:
    command = issue_command(plan=plan, user=user, phase="install", params="", privileged=privileged)
    db.session.commit()
    enqueue_command(command.id)
    return command.id


def test_a_crawl_of_the_user_pages_finds_no_error_and_no_unsafe_form(page, live_server, live_app, console_errors):
    user = make_user()
    accounts.create_api_key(user, "crawler")
    db.session.commit()
    signup = install("signup", user, privileged=True)  # as sign-up does: it installs omegaml
    wait_for_deployment(user.email, "signup")
    wait_for_deployment(user.email, "omegaml")
    shipped = {path.stem for path in (ROOT / "services").glob("*.yaml")}  # the live database has other tests' plans
    offered = db.session.scalars(
        select(ServicePlan.name).where(
            ServicePlan.offered.is_(True), ServicePlan.active.is_(True), ServicePlan.name.in_(shipped)
        )
    ).all()
    assert {"omegaml", "worker"} <= set(offered)
    for name in offered:
        if name != "omegaml":
            install(name, user)
            wait_for_deployment(user.email, name)
    deployments = {
        d.plan.name: d.id
        for d in db.session.scalars(select(ServiceDeployment).where(ServiceDeployment.user_id == user.id))
    }

    log_in(page, user.email)
    crawler = Crawler(page, live_server.url, user.id, console_errors)
    crawl = crawler.run("/services")
    print(crawl.summary())

    for path in ("/services", "/account", "/usage", "/invoices"):
        assert path in crawl.pages, path
    for name in offered:
        assert f"/services/deployment/{deployments[name]}" in crawl.pages, name
        assert f"/services/deployment/{deployments[name]}/update" in crawl.submitted, name
        assert f"/services/deployment/{deployments[name]}/uninstall" in crawl.pages, name
    assert any(path.startswith("/commands/") for path in crawl.pages)
    # size where the plan takes one: the worker reports its size, omegaml has none
    assert f"/services/deployment/{deployments['worker']}/scale" in crawl.submitted
    assert f"/services/deployment/{deployments['omegaml']}/scale" not in crawler.actions_seen()
    # the internal sign-up deployment and its command are linked from nowhere
    assert not {f"/services/deployment/{deployments['signup']}", f"/commands/{signup}"} & crawler.seen
    # every destructive form asks first, on a page that loads the script that asks
    assert not crawl.unconfirmed, f"destructive forms without data-confirm: {crawl.unconfirmed}"
    assert not crawl.without_script, f"data-confirm forms on pages without confirm.js: {crawl.without_script}"
    for name in offered:
        assert f"/services/deployment/{deployments[name]}/uninstall" in crawl.declined, name
