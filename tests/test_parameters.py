"""Plan parameters (app/ops/parameters.py): declared once in the spec, enforced the same way by the API, the
pages, the console and the CLI before a command exists; forms built from them; a failed install is not a
dead end; the names built for one user's qualifier never equal another user's."""

import itertools
import re

import pytest

from app.extensions import db
from app.models import ServiceCommand, ServiceDeployment, ServicePlan, Status
from app.ops import engine
from app.ops.commands import CommandRefused, issue_command
from app.ops.parameters import ParameterError, declared, validate_params
from app.ops.specs import SpecError, parse_specs
from app.ops.tasks import storage_name

from .api_helpers import assert_error, with_key
from .engine_helpers import make_script_plan, write_script
from .factories import make_user
from .processes import load_shipped_services

COMMAND = "/admin/api/v2/service/command/"


def counts():
    db.session.expire_all()
    return (
        db.session.query(ServiceCommand).count(),
        db.session.query(ServiceDeployment).count(),
    )


@pytest.fixture
def shipped(app):
    load_shipped_services(app)
    return app


# the declaration, as the spec loader reads it


def spec_with(parameters: str) -> str:
    return f"""
- plan: svc
  parameters:
{parameters}
"""


@pytest.mark.parametrize(
    "parameters, words",
    [
        ("    - {name: size, type: float}", ["parameters[1]", "type", "float"]),
        ("    - {name: size, type: integer, minimum: 5, maximum: 1}", ["minimum", "greater than maximum"]),
        ("    - {name: size, type: integer, pattern: 'x'}", ["pattern", "string parameters only"]),
        ("    - {name: q, pattern: '[a-'}", ["pattern", "not a regular expression"]),
        ("    - {name: size, type: integer, maximum: 4, default: 9}", ["default", "from"]),
        ("    - {name: t, required: true, default: x}", ["required parameter has no default"]),
        ("    - {name: 'bad name!'}", ["name", "not a parameter name"]),
        ("    - {name: a}\n    - {name: a}", ["parameters[2]", "given twice"]),
        ("    - {name: a, colour: red}", ["unknown field 'colour'"]),
        ("    - {name: a, max_length: 0}", ["max_length"]),
        ("    - {name: a, secret: 'yes'}", ["secret", "true or false"]),
        ("    - {name: a, choices: []}", ["choices"]),
        ("    - {name: pin, secret: true}", ["secret", "unmasked"]),
        ("    - just text", ["parameters[1]", "mapping"]),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_parameter_and_field(app, parameters, words):
    with pytest.raises(SpecError) as caught:
        parse_specs(spec_with(parameters), "t.yaml", app.config["SCRIPTS_DIR"], {})
    for word in words:
        assert word in str(caught.value), str(caught.value)
    assert "plan 'svc'" in str(caught.value)


def test_the_declaration_is_stored_normalised(app):
    (plan,) = parse_specs(
        spec_with(
            "    - {name: size, type: integer, minimum: 0, maximum: 16, default: '02', description: How many}\n"
            "    - {name: debug, type: boolean, default: yes}\n"
            "    - {name: tier, choices: [small, large]}\n"
            "    - {name: token, secret: true, required: true}\n"
            "    - {name: db_password}"
        ),
        "t.yaml",
        app.config["SCRIPTS_DIR"],
        {},
    )
    assert plan.fields["parameters"] == [
        {"name": "size", "type": "integer", "description": "How many", "default": 2, "minimum": 0, "maximum": 16},
        {"name": "debug", "type": "boolean", "default": True},
        {"name": "tier", "type": "string", "choices": ["small", "large"]},
        {"name": "token", "type": "string", "required": True, "secret": True},
        {"name": "db_password", "type": "string", "secret": True},
    ]


# the rule itself


SIZE_0_16 = declared([{"name": "size", "type": "integer", "minimum": 0, "maximum": 16, "default": 1}])


@pytest.mark.parametrize(
    "value", ["abc", "", "1.5", "17", "-1", "1e3", "99999999999999999999", "1\x00", "½", "𝟙", " 2 3"]
)
def test_an_integer_outside_its_declaration_is_refused_naming_it(value):
    with pytest.raises(ParameterError) as caught:
        validate_params(SIZE_0_16, {"size": value}, install=True)
    assert caught.value.name == "size" and caught.value.message.startswith("params: size: must be")
    assert "from 0 to 16" in caught.value.message


@pytest.mark.parametrize("value, normal", [("0", "0"), ("16", "16"), (" 07 ", "7"), ("+3", "3")])
def test_integers_are_normalised(value, normal):
    assert validate_params(SIZE_0_16, {"size": value}, install=False) == {"size": normal}


def test_an_install_gets_the_defaults_an_update_keeps_what_it_does_not_give():
    assert validate_params(SIZE_0_16, {}, install=True) == {"size": "1"}
    assert validate_params(SIZE_0_16, {}, install=False) == {}


def test_unknown_names_are_refused_but_what_the_omegaml_client_sends_is_taken():
    with pytest.raises(ParameterError) as caught:
        validate_params(SIZE_0_16, {"colour": "red"}, install=True)
    assert caught.value.name == "colour" and "takes no such parameter" in caught.value.message
    # `om cloud add omegaml` without --specs sends "size=1,node-type=small,provider="
    taken = declared([])
    assert validate_params(taken, {"size": "1", "node-type": "small", "provider": ""}, install=True)
    with pytest.raises(ParameterError):
        validate_params(taken, {"provider": "aws;rm -rf /"}, install=True)


def test_a_secret_value_is_never_repeated_in_the_message():
    taken = declared([{"name": "token", "secret": True, "max_length": 8}])
    with pytest.raises(ParameterError) as caught:
        validate_params(taken, {"token": "hunter2-is-too-long"}, install=True)
    assert "hunter2" not in caught.value.message


def test_control_characters_never_reach_a_step():
    taken = declared([{"name": "note"}])
    for char in ("\x00", "\x07", "\n", "\x1b", "\x7f"):
        with pytest.raises(ParameterError):
            validate_params(taken, {"note": f"ACME{char}Inc"}, install=True)
    assert validate_params(taken, {"note": "Zürich ☃"}, install=True) == {"note": "Zürich ☃"}


# every interface, against the shipped worker's declaration (size: integer 0..16)


def test_the_api_refuses_size_abc_with_a_400_naming_it_and_creates_nothing(client, shipped):
    user, headers = with_key(userid="jane", email="jane@example.com")
    before = counts()
    body = {"offering": "worker", "user": "jane", "phase": "install", "params": "provider=,size=abc"}
    error = assert_error(client.post(COMMAND, json=body, headers=headers), 400, "bad_request", "size", "0 to 16")
    assert error["parameter"] == "size"
    body["params"] = "provider=,size=2,colour=red"
    error = assert_error(client.post(COMMAND, json=body, headers=headers), 400, "bad_request", "colour")
    assert error["parameter"] == "colour"
    assert counts() == before
    body["params"] = "provider=,size=2"
    created = client.post(COMMAND, json=body, headers=headers)
    assert created.status_code == 201 and created.get_json()["params"]["size"] == "2"
    # the defaults of what it did not give: the step sees them
    assert created.get_json()["params"]["qualifier"] == "default"


def test_the_cli_refuses_size_abc_in_one_line_and_exit_1(runner, shipped):
    make_user(userid="jane")
    before = counts()
    args = ["deployservice", "--phase", "install", "--service", "worker", "--user", "jane", "--params", "size=abc"]
    result = runner.invoke(args=args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "size" in lines[0] and "0 to 16" in lines[0], result.output
    assert "Traceback" not in result.output and counts() == before


def installed_worker(user, size="2") -> ServiceDeployment:
    command = issue_command(plan="worker", user=user, phase="install", params=f"size={size}", issuer=user)
    db.session.commit()
    assert engine.execute(command.id, worker="test") is Status.COMPLETED
    db.session.expire_all()
    return db.session.get(ServiceDeployment, command.deployment_id)


def test_the_page_builds_its_forms_from_the_declaration_and_shows_the_refusal_beside_the_field(client, shipped, login):
    user = make_user(userid="jane")
    login(user)
    catalog = client.get("/services").get_data(as_text=True)
    worker_form = catalog[catalog.index('data-install="worker"') :]
    worker_form = worker_form[: worker_form.index("</form>")]
    # one field per parameter, its description and its bounds
    assert 'data-parameter="size"' in worker_form and 'data-parameter="qualifier"' in worker_form
    assert 'min="0"' in worker_form and 'max="16"' in worker_form
    assert "How many runtime workers run" in worker_form
    assert "The environment to provision" in catalog  # omegaml's qualifier, described

    plan = ServicePlan.by_name("worker")
    before = counts()
    fields = {"size": "abc"}
    response = client.post("/services/worker/install", data=form_data(plan, fields, "install"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and counts() == before
    group = field_group(page, "size")
    assert "is-invalid" in group and "params: size: must be a whole number from 0 to 16" in group
    assert 'value="abc"' in group  # what was typed is kept

    response = client.post("/services/worker/install", data=form_data(plan, {"size": "3"}, "install"))
    assert response.status_code == 302
    command = db.session.scalars(db.select(ServiceCommand).order_by(ServiceCommand.id.desc())).first()
    assert command.params == {"size": "3", "qualifier": "default"}


def test_the_scale_form_takes_the_plans_bounds_and_a_plan_without_size_has_none(client, shipped, login):
    user = make_user(userid="jane")
    login(user)
    deployment = installed_worker(user, "2")
    page = client.get(f"/services/deployment/{deployment.id}").get_data(as_text=True)
    scale = page[page.index('id="scale-form"') :]
    scale = scale[: scale.index("</form>")]
    assert 'min="0"' in scale and 'max="16"' in scale and 'value="2"' in scale

    before = counts()
    response = client.post(f"/services/deployment/{deployment.id}/scale", data={"scale-p0": "50"})
    assert response.status_code == 400 and counts() == before
    assert "from 0 to 16" in field_group(response.get_data(as_text=True), "size")
    db.session.expire_all()
    assert db.session.get(ServiceDeployment, deployment.id).status == Status.COMPLETED  # still healthy

    omegaml = issue_command(plan="omegaml", user=user, phase="install", params="", issuer=user)
    db.session.commit()
    page = client.get(f"/services/deployment/{omegaml.deployment_id}").get_data(as_text=True)
    assert 'id="scale-form"' not in page
    response = client.post(f"/services/deployment/{omegaml.deployment_id}/scale", data={"scale-p0": "2"})
    assert response.status_code in (400, 409) and "takes no size" in response.get_data(as_text=True)


def test_the_console_refuses_the_same_values_with_the_same_message(client, shipped, login):
    admin = make_user(userid="root", email="root@example.com", admin=True)
    login(admin)
    deployment = installed_worker(make_user(userid="jane"), "2")
    page = client.get(f"/admin/servicedeployment/details/?id={deployment.id}").get_data(as_text=True)
    scale = page[page.index('id="console-scale"') :]
    assert 'max="16"' in scale[: scale.index("</form>")]
    before = counts()
    for data in ({"action": "scale", "size": "50"}, {"action": "update", "params": "size=abc"}):
        response = client.post(f"/admin/servicedeployment/{deployment.id}/command", data=data, follow_redirects=True)
        assert response.status_code == 200
        assert "params: size: must be a whole number from 0 to 16" in response.get_data(as_text=True)
    assert counts() == before
    response = client.post(f"/admin/servicedeployment/{deployment.id}/command", data={"action": "scale", "size": "4"})
    assert response.status_code == 302 and counts()[0] == before[0] + 1


def form_data(plan: ServicePlan, values: dict, prefix: str) -> dict:
    """The field names of a form built from ``plan``'s parameters, filled with ``values`` by parameter name."""
    names = [item["name"] for item in plan.parameters]
    return {f"{prefix}-{plan.id}-p{names.index(name)}": value for name, value in values.items()}


def field_group(page: str, parameter: str) -> str:
    """The form group of ``parameter``'s field: its input, its errors and its description."""
    start = page.index(f'data-parameter="{parameter}"')
    ends = [i for i in (page.find("data-parameter=", start + 1), page.find("</form>", start)) if i != -1]
    return page[start : min(ends)]


# a failed install is not a dead end


@pytest.fixture
def fragile(app, scripts):
    """``fragile``: one per user; its install fails while ``mode`` is ``bad``."""
    write_script("fragile.sh", 'test "$OMEGAOPS_PARAM_MODE" = good || { echo "mode $OMEGAOPS_PARAM_MODE"; exit 4; }\n')
    make_script_plan(
        "fragile",
        "- script: fragile.sh\n  phases: [install, update, uninstall]",
        one_per_user=True,
        parameters="  parameters:\n    - {name: mode, choices: [good, bad], default: bad}",
    )
    return "fragile"


def test_installing_again_after_a_failed_install_reuses_the_deployment(client, fragile):
    user, headers = with_key(userid="jane", email="jane@example.com")
    first = client.post(COMMAND, json={"offering": "fragile", "phase": "install", "params": ""}, headers=headers)
    assert first.status_code == 201
    first_id = first.get_json()["id"]
    assert engine.execute(first_id, worker="test") is Status.FAILED
    again = client.post(
        COMMAND, json={"offering": "fragile", "phase": "install", "params": "mode=good"}, headers=headers
    )
    assert again.status_code == 201, again.get_json()
    db.session.expire_all()
    second = db.session.get(ServiceCommand, again.get_json()["id"])
    assert second.deployment_id == db.session.get(ServiceCommand, first_id).deployment_id
    assert engine.execute(second.id, worker="test") is Status.COMPLETED
    db.session.expire_all()
    deployment = db.session.get(ServiceDeployment, second.deployment_id)
    assert deployment.status == Status.COMPLETED and deployment.params == {"mode": "good"}
    # once installed, the one-per-user rule holds again
    third = client.post(COMMAND, json={"offering": "fragile", "phase": "install"}, headers=headers)
    assert_error(third, 409, "conflict", "already has deployment")


def test_a_failed_install_is_retried_with_corrected_params(client, fragile):
    user, headers = with_key(userid="jane", email="jane@example.com")
    first = client.post(COMMAND, json={"offering": "fragile", "phase": "install"}, headers=headers).get_json()
    assert engine.execute(first["id"], worker="test") is Status.FAILED
    bad = client.post(f"{COMMAND}{first['id']}/retry/", json={"params": "mode=awful"}, headers=headers)
    assert_error(bad, 400, "bad_request", "mode", "'good'")
    retried = client.post(f"{COMMAND}{first['id']}/retry/", json={"params": "mode=good"}, headers=headers)
    assert retried.status_code == 201, retried.get_json()
    assert retried.get_json()["params"] == {"mode": "good"}
    assert engine.execute(retried.get_json()["id"], worker="test") is Status.COMPLETED
    # without a body the same params run again (as before this change)
    second = make_user(userid="bob")
    command = issue_command(plan="fragile", user=second, phase="install", params="", issuer=second)
    db.session.commit()
    engine.execute(command.id, worker="test")
    db.session.expire_all()
    again = engine.retry(db.session.get(ServiceCommand, command.id))
    assert again.params == {"mode": "bad"}


def test_the_page_offers_to_install_again_and_to_retry_with_corrected_params(client, fragile, login):
    user = make_user(userid="jane")
    login(user)
    command = issue_command(plan="fragile", user=user, phase="install", params="", issuer=user)
    db.session.commit()
    engine.execute(command.id, worker="test")
    catalog = client.get("/services").get_data(as_text=True)
    assert 'data-failed-install="fragile"' in catalog and 'data-install="fragile"' in catalog
    page = client.get(f"/commands/{command.id}").get_data(as_text=True)
    assert 'id="retry-form"' in page and 'data-parameter="mode"' in page
    response = client.post(f"/commands/{command.id}/retry", data={"retry-p0": "awful"})
    assert response.status_code == 400 and "params: mode: must be one of" in field_group(
        response.get_data(as_text=True), "mode"
    )
    response = client.post(f"/commands/{command.id}/retry", data={"retry-p0": "good"})
    assert response.status_code == 302
    again = int(response.headers["Location"].rsplit("/", 1)[1])
    assert engine.execute(again, worker="test") is Status.COMPLETED


# names built from a userid and a qualifier


def test_the_names_built_for_one_user_never_equal_another_users():
    userids = ["bob", "bob-x", "bob-x-y", "bob.x", "bob_x", "x", "b", "default", "bob-default"]
    qualifiers = ["default", "x", "y", "x-y", "dev", "bob"]
    names = {}
    for userid, qualifier in itertools.product(userids, qualifiers):
        name = storage_name(userid, qualifier)
        assert names.setdefault(name, (userid, qualifier)) == (userid, qualifier), (name, names[name])
    assert storage_name("bob", "x") != storage_name("bob-x", "default")
    with pytest.raises(ValueError):
        storage_name("bob", "x~y")


@pytest.mark.parametrize("qualifier", ["x-y", "a~b", "group:dev", "Dev", "1dev", "", "d" * 33, "dev\x00"])
def test_the_omegaml_plan_refuses_a_qualifier_outside_its_pattern(shipped, qualifier):
    user = make_user(userid="bob")
    with pytest.raises(CommandRefused) as caught:
        issue_command(plan="omegaml", user=user, phase="install", params=f"qualifier={qualifier}", issuer=user)
    assert caught.value.parameter == "qualifier"


def test_bob_with_qualifier_x_and_user_bob_x_get_different_databases(shipped):
    bob, bob_x = make_user(userid="bob"), make_user(userid="bob-x", email="bobx@example.com")
    settings = []
    for user, params in ((bob, "qualifier=x"), (bob_x, "")):
        command = issue_command(
            plan="omegaml", user=user, phase="install", params=params, issuer=user, privileged=True
        )
        db.session.commit()
        engine.execute(command.id, worker="test")
        db.session.expire_all()
        settings.append(db.session.get(ServiceDeployment, command.deployment_id).settings)
    bob_url = settings[0]["x"]["OMEGA_MONGO_URL"]
    bob_x_url = settings[1]["default"]["OMEGA_MONGO_URL"]
    assert re.search(r"/bob~x$", bob_url) and re.search(r"/bob-x$", bob_x_url)
    assert bob_url.rsplit("/", 1)[1] != bob_x_url.rsplit("/", 1)[1]
