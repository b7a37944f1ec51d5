"""``/admin/api/v2/service/plan/`` and ``configuration/``: admins manage the offerings in the spec format, users read
the catalog."""

import json
from datetime import datetime

import pytest
import yaml
from sqlalchemy import event, func, insert, select

from app.extensions import db
from app.models import (
    IdempotencyKey,
    ServiceCommand,
    ServiceConfiguration,
    ServiceDeployment,
    ServicePlan,
    ServiceStep,
    Status,
)
from app.ops import engine
from app.ops.specs import SpecError, parse_specs, spec_fallbacks

from .api_helpers import assert_error, with_key
from .engine_helpers import issue, reload
from .factories import make_plan, make_user

PREFIX = "/admin/api/v2/service"
PLANS = f"{PREFIX}/plan/"
CONFIGURATIONS = f"{PREFIX}/configuration/"
TASK = "app.ops.tasks.deploy_user_service"
SHA = "0123456789abcdef" * 4
MASK = "********"
DROP = object()  # plan_body(field=DROP) leaves the field out
PLAN_KEYS = {
    "id",
    "resource_uri",
    "name",
    "title",
    "description",
    "offered",
    "one_per_user",
    "active",
    "retired_at",
    "created_at",
    "updated_at",
    "defaults",
    "current_configuration",
    "base_fee",
    "parameters",
}
CONFIGURATION_KEYS = {
    "id",
    "resource_uri",
    "plan",
    "plan_uri",
    "version",
    "active",
    "digest",
    "env",
    "steps",
    "created_at",
}


@pytest.fixture
def admin(app):
    return with_key(admin=True)[1]


@pytest.fixture
def user(app):
    return with_key()[1]


def plan_body(name="svc", **changes):
    """A full plan spec, as JSON; ``field=DROP`` leaves a field out."""
    body = {
        "plan": name,
        "title": "A service",
        "description": "does things",
        "offered": True,
        "one_per_user": True,
        "defaults": {"OMEGA_RESTAPI_URL": "https://example.com"},
        "configuration": {"env": {"CLUSTER_ID": "c1", "MONGO_HOST": "mongo:27017"}},
        "steps": [{"task": TASK, "params": "size=1", "phases": ["install", "update"], "timeout": 60, "retries": 1}],
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not DROP}


def create_plan(client, headers, name="svc", **changes) -> dict:
    response = client.post(PLANS, json=plan_body(name, **changes), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def empty_plan(client, headers, name="svc", **changes) -> dict:
    """A plan without steps: an install completes at once, in process."""
    return create_plan(client, headers, name, steps=[], **changes)


def plan_uri(plan_id) -> str:
    return f"{PLANS}{plan_id}/"


def configuration_uri(configuration_id) -> str:
    return f"{CONFIGURATIONS}{configuration_id}/"


def configuration_id(body: dict) -> int:
    """The id in a plan's ``current_configuration`` link."""
    return int(body["current_configuration"].rstrip("/").rsplit("/", 1)[1])


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def loader_message(app, spec: dict) -> str:
    """What ``flask createservice`` says about ``spec`` written as a YAML file, without the file's name."""
    with pytest.raises(SpecError) as caught:
        parse_specs(
            yaml.safe_dump([spec]), "specs.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config), environ={}
        )
    return str(caught.value).removeprefix("specs.yaml: ")


def api_message(response) -> str:
    return assert_error(response, 400, "bad_request")["message"].removeprefix("request body: ")


def install(plan_name, owner) -> ServiceCommand:
    """Install ``plan_name`` for ``owner`` in process (a plan without steps completes at once)."""
    command = issue(plan_name, owner)
    assert engine.execute(command.id, worker="test") is Status.COMPLETED
    return reload(command)


def uninstall(plan_name, owner) -> ServiceCommand:
    command = issue(plan_name, owner, phase="uninstall")
    assert engine.execute(command.id, worker="test") is Status.COMPLETED
    return reload(command)


# who may do what


ADMIN_ROUTES = [
    ("POST", PLANS, plan_body("new")),
    ("PATCH", "{plan}", {"title": "x"}),
    ("DELETE", "{plan}", None),
    ("GET", CONFIGURATIONS, None),
    ("POST", CONFIGURATIONS, {"plan": "svc", "env": {}}),
    ("GET", "{configuration}", None),
    ("DELETE", "{configuration}", None),
]
READ_ROUTES = [("GET", PLANS, None), ("GET", "{plan}", None)]


def route_path(path: str, plan: dict) -> str:
    return path.format(plan=plan["resource_uri"], configuration=plan["current_configuration"])


def test_anonymous_callers_get_401(client, admin, subtests):
    plan = create_plan(client, admin)
    for method, path, body in ADMIN_ROUTES + READ_ROUTES:
        with subtests.test(method=method, path=path):
            response = client.open(route_path(path, plan), method=method, json=body)
            assert_error(response, 401, "unauthorized", "ApiKey")
            assert response.headers["WWW-Authenticate"].startswith("ApiKey")


def test_users_get_403_on_what_admins_do(client, admin, user, subtests):
    plan = create_plan(client, admin)
    for method, path, body in ADMIN_ROUTES:
        with subtests.test(method=method, path=path):
            response = client.open(route_path(path, plan), method=method, json=body, headers=user)
            assert_error(response, 403, "forbidden", "admin")
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1
    db.session.expire_all()
    assert db.session.get(ServicePlan, plan["id"]).title == "A service"
    assert db.session.get(ServiceConfiguration, configuration_id(plan)).active


def test_the_caller_is_checked_before_the_body(client, user, subtests):
    # as with login_required before the role check: anonymous callers get 401 and users 403 whatever
    # they send, and learn nothing about what a valid body is
    for body in ({"title": "no name"}, b"{"):
        kwargs = {"json": body} if isinstance(body, dict) else {"data": body, "content_type": "application/json"}
        with subtests.test(caller="anonymous", body=body):
            assert_error(client.post(PLANS, **kwargs), 401, "unauthorized")
        with subtests.test(caller="user", body=body):
            assert_error(client.post(PLANS, headers=user, **kwargs), 403, "forbidden")


def test_a_logged_in_session_may_read_plans_but_not_write(client, admin, login):
    plan = create_plan(client, admin)
    person = make_user()
    login(person)
    assert client.get(PLANS).get_json()["meta"]["total_count"] == 1
    assert client.get(plan["resource_uri"]).get_json()["name"] == "svc"
    # writes need the ApiKey header: the session cookie alone would allow cross-site requests
    assert_error(client.patch(plan["resource_uri"], json={"title": "x"}), 401, "unauthorized")
    assert_error(client.delete(plan["resource_uri"]), 401, "unauthorized")


def test_unsupported_methods_are_405_json(client, admin):
    plan = create_plan(client, admin)
    for method, path in [
        ("PUT", plan["resource_uri"]),
        ("DELETE", PLANS),
        ("PATCH", PLANS),
        ("PATCH", plan["current_configuration"]),
        ("PUT", CONFIGURATIONS),
    ]:
        response = client.open(path, method=method, json={}, headers=admin)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"]


# reading the catalog


def test_users_list_only_offered_active_plans(client, admin, user):
    create_plan(client, admin, "catalog")
    create_plan(client, admin, "internal", offered=False)
    retired = create_plan(client, admin, "retired")
    assert client.patch(retired["resource_uri"], json={"active": False}, headers=admin).status_code == 200
    response = client.get(PLANS, headers=user)
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"] == {"limit": 20, "offset": 0, "total_count": 1, "next": None, "previous": None}
    [obj] = body["objects"]
    assert set(obj) == PLAN_KEYS
    assert obj["name"] == "catalog" and obj["offered"] is True and obj["active"] is True
    assert obj["defaults"] is None, "defaults are for admins only"
    # filters cannot widen a user's catalog
    for query in ("?offered=false", "?active=false", "?name=internal", "?name=retired"):
        assert client.get(PLANS + query, headers=user).get_json()["objects"] == [], query


def test_users_get_404_for_internal_and_retired_plans_as_if_absent(client, admin, user):
    catalog = create_plan(client, admin, "catalog")
    internal = create_plan(client, admin, "internal", offered=False)
    retired = create_plan(client, admin, "retired")
    client.patch(retired["resource_uri"], json={"active": False}, headers=admin)
    response = client.get(catalog["resource_uri"], headers=user)
    assert response.status_code == 200 and response.get_json()["name"] == "catalog"
    missing = assert_error(client.get(plan_uri(99999), headers=user), 404, "not_found")
    for hidden in (internal, retired):
        body = assert_error(client.get(hidden["resource_uri"], headers=user), 404, "not_found")
        assert body["message"].replace(str(hidden["id"]), "N") == missing["message"].replace("99999", "N")
        assert client.get(hidden["resource_uri"], headers=admin).get_json()["name"] == hidden["name"]


def test_defaults_are_shown_to_admins_and_null_for_users(client, admin, user):
    plan = create_plan(client, admin, defaults={"OMEGA_MONGO_URL": "mongodb://x"})
    assert plan["defaults"] == {"OMEGA_MONGO_URL": "mongodb://x"}
    assert client.get(plan["resource_uri"], headers=admin).get_json()["defaults"] == {"OMEGA_MONGO_URL": "mongodb://x"}
    assert client.get(plan["resource_uri"], headers=user).get_json()["defaults"] is None
    assert client.get(PLANS, headers=user).get_json()["objects"][0]["defaults"] is None


def test_the_plan_detail_shows_the_plan(client, admin):
    plan = create_plan(client, admin)
    body = client.get(plan["resource_uri"], headers=admin).get_json()
    assert set(body) == PLAN_KEYS and body == plan
    assert body["resource_uri"] == plan_uri(body["id"])
    assert body["current_configuration"] == configuration_uri(configuration_id(body))
    assert datetime.fromisoformat(body["created_at"]).utcoffset().total_seconds() == 0
    assert body["retired_at"] is None
    assert client.get(plan["resource_uri"].rstrip("/"), headers=admin).status_code == 200
    for bad in ("abc", "-1", str(2**31), "9" * 30):
        assert_error(client.get(f"{PLANS}{bad}/", headers=admin), 404, "not_found")


def test_admins_list_every_plan_and_filter_by_name_active_offered(client, admin):
    create_plan(client, admin, "catalog")
    create_plan(client, admin, "internal", offered=False)
    retired = create_plan(client, admin, "retired")
    client.patch(retired["resource_uri"], json={"active": False}, headers=admin)

    def names(query=""):
        body = client.get(PLANS + query, headers=admin).get_json()
        assert body["meta"]["total_count"] == len(body["objects"])
        return [obj["name"] for obj in body["objects"]]

    assert names() == ["catalog", "internal", "retired"]
    assert names("?name=internal") == ["internal"]
    assert names("?name=nope") == []
    assert names("?active=true") == ["catalog", "internal"]
    assert names("?active=false") == ["retired"]
    assert names("?offered=true") == ["catalog"]
    assert names("?offered=false") == ["internal", "retired"]
    assert names("?offered=false&active=true") == ["internal"]
    assert names("?order_by=-created_at") == ["retired", "internal", "catalog"]
    assert names("?format=json") == ["catalog", "internal", "retired"]
    assert client.get(PLANS, headers=admin).get_json()["objects"][0]["defaults"] == {
        "OMEGA_RESTAPI_URL": "https://example.com"
    }


def test_plans_paginate_with_limit_and_offset_keeping_filters(client, admin):
    for n in range(5):
        make_plan(name=f"p{n}", offered=n != 4)
    body = client.get(PLANS + "?limit=2", headers=admin).get_json()
    assert [obj["name"] for obj in body["objects"]] == ["p0", "p1"]
    assert body["meta"] == {
        "limit": 2,
        "offset": 0,
        "total_count": 5,
        "next": f"{PLANS}?limit=2&offset=2",
        "previous": None,
    }
    body = client.get(body["meta"]["next"], headers=admin).get_json()
    assert [obj["name"] for obj in body["objects"]] == ["p2", "p3"]
    assert body["meta"]["previous"] == f"{PLANS}?limit=2&offset=0"
    body = client.get(body["meta"]["next"], headers=admin).get_json()
    assert [obj["name"] for obj in body["objects"]] == ["p4"] and body["meta"]["next"] is None
    body = client.get(PLANS + "?offered=true&limit=3&offset=1", headers=admin).get_json()
    assert [obj["name"] for obj in body["objects"]] == ["p1", "p2", "p3"]
    assert body["meta"]["total_count"] == 4 and body["meta"]["next"] is None
    assert body["meta"]["previous"] == f"{PLANS}?offered=true&limit=3&offset=0"
    body = client.get(PLANS + "?offset=10", headers=admin).get_json()
    assert body["objects"] == [] and body["meta"]["previous"] == f"{PLANS}?limit=20&offset=0"
    body = client.get(PLANS + "?limit=100&offset=0", headers=admin).get_json()
    assert len(body["objects"]) == 5 and body["meta"]["limit"] == 100


BAD_QUERIES = [
    ("?limit=0", ["limit"]),
    ("?limit=101", ["limit", "100"]),
    ("?limit=-1", ["limit"]),
    ("?limit=abc", ["limit"]),
    ("?limit=", ["limit"]),
    ("?limit=1.5", ["limit"]),
    ("?limit=\u00b2", ["limit"]),
    ("?offset=-1", ["offset"]),
    ("?offset=1.5", ["offset"]),
    ("?offset=x", ["offset"]),
    ("?offset=99999999999999999999999999", ["offset"]),
    ("?offset=" + "9" * 5000, ["offset"]),
    ("?order_by=id", ["order_by"]),
    ("?format=xml", ["format"]),
    ("?active=maybe", ["active"]),
    ("?bogus=1", ["unknown query parameter 'bogus'"]),
    ("?user__email=x@example.com", ["unknown query parameter 'user__email'"]),
    ("?limit=2&sort=name", ["unknown query parameter 'sort'"]),
]


def test_bad_plan_list_parameters_are_400_naming_them(client, admin, subtests):
    for query, words in BAD_QUERIES:
        with subtests.test(query=query[:40]):
            assert_error(client.get(PLANS + query, headers=admin), 400, "bad_request", *words)


def test_bad_configuration_list_parameters_are_400_naming_them(client, admin, subtests):
    for query, words in [*BAD_QUERIES, ("?name=svc", ["unknown query parameter 'name'"])]:
        with subtests.test(query=query[:40]):
            assert_error(client.get(CONFIGURATIONS + query, headers=admin), 400, "bad_request", *words)


def test_unknown_query_parameters_are_400_on_every_route(client, admin, subtests):
    # as on the lists (and the user resource's detail): a misspelt parameter is not silently ignored
    plan = create_plan(client, admin)
    for method, path, body in [
        ("GET", "{plan}", None),
        ("GET", "{configuration}", None),
        ("POST", PLANS, plan_body("other")),
        ("PATCH", "{plan}", {"title": "x"}),
        ("POST", CONFIGURATIONS, {"plan": "svc", "env": {"V": "2"}}),
    ]:
        with subtests.test(method=method, path=path):
            response = client.open(route_path(path, plan) + "?dry_run=1", method=method, json=body, headers=admin)
            assert_error(response, 400, "bad_request", "'dry_run'")
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1


def test_users_get_the_same_400_for_bad_list_parameters(client, user):
    assert_error(client.get(PLANS + "?limit=0", headers=user), 400, "bad_request", "limit")
    assert_error(client.get(PLANS + "?owner=me", headers=user), 400, "bad_request", "'owner'")


# creating plans


def test_admins_create_a_plan_from_a_spec(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    response = client.post(PLANS, json=plan_body("omegaml"), headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    plan = ServicePlan.by_name("omegaml")
    assert response.headers["Location"] == body["resource_uri"] == plan_uri(plan.id)
    assert set(body) == PLAN_KEYS
    assert (body["name"], body["title"], body["description"]) == ("omegaml", "A service", "does things")
    assert body["offered"] is True and body["one_per_user"] is True and body["active"] is True
    assert body["defaults"] == {"OMEGA_RESTAPI_URL": "https://example.com"}
    assert body["retired_at"] is None
    assert datetime.fromisoformat(body["created_at"]).utcoffset().total_seconds() == 0
    [configuration] = plan.configurations
    assert body["current_configuration"] == configuration_uri(configuration.id)
    assert configuration.version == 1 and configuration.env == {"CLUSTER_ID": "c1", "MONGO_HOST": "mongo:27017"}
    [step] = configuration.steps
    assert (step.kind, step.target, step.name, step.params) == ("task", TASK, "deploy_user_service", "size=1")
    assert (step.phases, step.timeout, step.retries) == (["install", "update"], 60, 1)
    detail = client.get(body["current_configuration"], headers=admin).get_json()
    assert set(detail) == CONFIGURATION_KEYS
    assert detail["plan"] == "omegaml" and detail["plan_uri"] == body["resource_uri"]
    assert detail["version"] == 1 and detail["active"] is True
    assert detail["env"] == {"CLUSTER_ID": "c1", "MONGO_HOST": "mongo:27017"}
    assert detail["steps"] == [
        {
            "task": TASK,
            "name": "deploy_user_service",
            "phases": ["install", "update"],
            "params": "size=1",
            "timeout": 60,
            "retries": 1,
        }
    ]


def test_a_bare_spec_makes_an_internal_plan_with_the_loaders_defaults(client, admin):
    response = client.post(PLANS.rstrip("/"), json={"plan": "bare"}, headers=admin)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["title"] == "bare" and body["description"] == ""
    assert body["offered"] is False and body["one_per_user"] is True and body["defaults"] == {}
    detail = client.get(body["current_configuration"], headers=admin).get_json()
    assert detail["version"] == 1 and detail["env"] == {} and detail["steps"] == []
    nulls = client.post(PLANS, json={"plan": "nulls", "configuration": None, "steps": None}, headers=admin)
    assert nulls.status_code == 201, nulls.get_json()


def test_a_spec_creates_the_same_plan_through_the_api_and_the_loader(app, client, admin):
    body = plan_body("viaapi")
    create_plan(client, admin, "viaapi")
    [spec] = parse_specs(yaml.safe_dump([body]), "specs.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    assert ServicePlan.by_name("viaapi").configurations[0].digest == spec.digest


@pytest.mark.parametrize("retire", [False, True], ids=["active", "retired"])
def test_a_second_plan_of_the_same_name_is_a_conflict(any_app, retire):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    first = create_plan(client, admin, "omegaml")
    if retire:
        client.patch(first["resource_uri"], json={"active": False}, headers=admin)
    response = client.post(PLANS, json=plan_body("omegaml", title="Other"), headers=admin)
    assert_error(response, 409, "conflict", "'omegaml'", "exists already", "PATCH")
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1
    assert ServicePlan.by_name("omegaml").title == "A service"


def test_a_plan_created_twice_at_once_is_a_conflict_not_a_500(any_app, monkeypatch):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    create_plan(client, admin, "omegaml")
    # the other request committed its plan after this one looked for the name: both checks see none
    monkeypatch.setattr(ServicePlan, "by_name", classmethod(lambda cls, name: None))
    response = client.post(PLANS, json=plan_body("omegaml"), headers=admin)
    assert_error(response, 409, "conflict", "'omegaml'")
    monkeypatch.undo()
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1


def task_step(**changes):
    step = {"task": TASK}
    step.update(changes)
    return step


SPEC_ERRORS = [
    ("name-uppercase-space", {"plan": "Bad Name"}, "not a valid plan name"),
    ("name-digit-first", {"plan": "1st"}, "not a valid plan name"),
    ("name-too-long", {"plan": "x" * 64}, "not a valid plan name"),
    ("name-empty", {"plan": ""}, "not a valid plan name"),
    ("title-too-long", {"title": "x" * 201}, "longer than 200"),
    ("env-key", {"configuration": {"env": {"1BAD": "x"}}}, "'1BAD' is not a valid variable name"),
    ("env-list", {"configuration": {"env": {"A": [1]}}}, "configuration.env.A: must be a single value"),
    ("env-unset", {"configuration": {"env": {"A": "${NOT_SET_ANYWHERE}"}}}, "NOT_SET_ANYWHERE"),
    ("step-unknown-field", {"steps": [task_step(bogus=1)]}, "step 1: unknown field 'bogus'"),
    ("step2-unknown", {"steps": [task_step(), task_step(image="x")]}, "step 2: unknown field 'image'"),
    ("no-module", {"steps": [{"task": "nope.module.run"}]}, "module 'nope.module' cannot be imported"),
    ("no-func", {"steps": [{"task": "app.ops.tasks.nothing_here"}]}, "has no callable 'nothing_here'"),
    ("task-not-dotted", {"steps": [{"task": "deploy"}]}, "not a dotted path"),
    ("task-and-script", {"steps": [{"task": TASK, "script": "x.sh"}]}, "exactly one of"),
    ("neither", {"steps": [{"name": "nothing"}]}, "exactly one of"),
    ("language-on-task", {"steps": [task_step(language="shell")]}, "applies to scripts only"),
    ("phase-unknown", {"steps": [task_step(phases=["deploy"])]}, "'deploy' is not a phase"),
    ("phases-empty", {"steps": [task_step(phases=[])]}, "non-empty list"),
    ("phase-twice", {"steps": [task_step(phases=["install", "install"])]}, "lists a phase twice"),
    ("phases-mapping", {"steps": [task_step(phases={"install": 1})]}, "non-empty list"),
    ("timeout-0", {"steps": [task_step(timeout=0)]}, "timeout: must be a whole number"),
    ("timeout-too-long", {"steps": [task_step(timeout=86401)]}, "between 1 and 86400"),
    ("timeout-negative", {"steps": [task_step(timeout=-5)]}, "timeout"),
    ("timeout-text", {"steps": [task_step(timeout="60")]}, "got '60'"),
    ("timeout-float", {"steps": [task_step(timeout=1.5)]}, "got 1.5"),
    ("timeout-bool", {"steps": [task_step(timeout=True)]}, "got True"),
    ("retries", {"steps": [task_step(retries=11)]}, "retries: must be a whole number between 0 and 10"),
    ("params", {"steps": [task_step(params="a=1,,b=2")]}, "item 2 is empty"),
    ("params-number", {"steps": [task_step(params=5)]}, "params: must be a k=v"),
    ("step-name-blank", {"steps": [task_step(name=" ")]}, "name: must be non-empty text"),
    ("no-script", {"steps": [{"script": "missing.sh"}]}, "does not exist under the scripts directory"),
    ("script-escapes", {"steps": [{"script": "../outside.sh"}]}, "outside the scripts directory"),
    ("script-empty", {"steps": [{"script": ""}]}, "script: is empty"),
    ("git-no-path", {"steps": [{"script": {"git": "https://g/r.git", "ref": "main"}}]}, "script.path"),
    (
        "git-absolute",
        {"steps": [{"script": {"git": "https://g/r.git", "ref": "main", "path": "/etc/x.sh"}}]},
        "must be a relative path",
    ),
    ("url-no-sha", {"steps": [{"script": {"url": "https://h/x.sh"}}]}, "script.sha256"),
    ("url-scheme", {"steps": [{"script": {"url": "ftp://h/x.sh", "sha256": SHA}}]}, "http(s)://"),
    ("script-mapping", {"steps": [{"script": {"path": "x.sh"}}]}, "a mapping needs"),
    ("no-language", {"steps": [{"script": {"url": "https://h/tool", "sha256": SHA}}]}, "cannot tell from"),
    ("language", {"steps": [{"script": "run.sh", "language": "ruby"}]}, "must be shell or python"),
]


def test_spec_errors_are_400_with_the_loaders_message(app, client, admin, scripts, subtests):
    (scripts.parent / "outside.sh").write_text("echo outside\n")
    (scripts / "run.sh").write_text("echo run\n")
    for case, changes, words in SPEC_ERRORS:
        with subtests.test(case):
            spec = {"plan": "svc", **changes}
            message = api_message(client.post(PLANS, json=spec, headers=admin))
            assert words in message
            assert message == loader_message(app, spec)
    assert count(ServicePlan) == 0 and count(ServiceConfiguration) == 0 and count(ServiceStep) == 0


# the request schema checks these before the spec parser: the issue wants the loader's messages for them too
SCHEMA_CHECKED_SPEC_ERRORS = [
    ("plan-field", {"bogus": 1}),
    ("configuration-field", {"configuration": {"env": {}, "files": []}}),
    ("configuration-text", {"configuration": "env"}),
    ("offered-text", {"offered": "yes"}),
    ("title-number", {"title": 5}),
    ("defaults-list", {"defaults": ["x"]}),
    ("steps-text", {"steps": "install.sh"}),
    ("first-step-text", {"steps": ["install.sh"]}),
    ("second-step-text", {"steps": [task_step(), "install.sh"]}),
]


def test_schema_checked_spec_errors_are_400_with_the_loaders_message(app, client, admin, subtests):
    for case, changes in SCHEMA_CHECKED_SPEC_ERRORS:
        with subtests.test(case):
            spec = {"plan": "svc", **changes}
            assert api_message(client.post(PLANS, json=spec, headers=admin)) == loader_message(app, spec)
    assert count(ServicePlan) == 0


def test_specs_the_loader_accepts_are_accepted(app, client, admin, subtests):
    valid = [
        ("env-null", {"configuration": {"env": None}}),
        ("env-value-null", {"configuration": {"env": {"A": None}}}),
        ("env-value-number", {"configuration": {"env": {"A": 1.5}}}),
        ("configuration-null", {"configuration": None}),
        ("steps-null", {"steps": None}),
        ("defaults-null", {"defaults": None}),
        ("title-null", {"title": None, "description": None}),
        ("phases-text", {"steps": [task_step(phases="check")]}),
        ("timeout-null", {"steps": [task_step(timeout=None, retries=None, params=None)]}),
    ]
    for number, (case, changes) in enumerate(valid):
        with subtests.test(case):
            spec = {"plan": f"p{number}", **changes}
            parse_specs(yaml.safe_dump([spec]), "specs.yaml", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
            response = client.post(PLANS, json=spec, headers=admin)
            assert response.status_code == 201, response.get_json()


def test_bad_plan_fields_are_400_naming_the_field(client, admin, subtests):
    for body, words in [
        ({}, ["plan", "Missing data"]),
        ({"title": "no name"}, ["plan"]),
        ({"plan": None}, ["plan"]),
        ({"plan": 42}, ["plan"]),
        ({"plan": "svc", "one_per_user": "false"}, ["one_per_user"]),
        ({"plan": "svc", "offered": None}, ["offered"]),
    ]:
        with subtests.test(body=body):
            assert_error(client.post(PLANS, json=body, headers=admin), 400, "bad_request", *words)
    assert count(ServicePlan) == 0


def test_env_is_not_read_from_the_servers_environment(app, client, admin, monkeypatch):
    monkeypatch.setenv("OMEGAOPS_SECRET_KEY", "server-secret-value")
    spec = plan_body(configuration={"env": {"LEAK": "${OMEGAOPS_SECRET_KEY}"}})
    response = client.post(PLANS, json=spec, headers=admin)
    body = assert_error(response, 400, "bad_request", "configuration.env.LEAK", "OMEGAOPS_SECRET_KEY", ":-default")
    assert "server-secret-value" not in response.get_data(as_text=True)
    assert body["message"].removeprefix("request body: ") == loader_message(app, spec)
    assert count(ServicePlan) == 0
    # nor in a default's place, nor through a new configuration of an existing plan
    with_default = plan_body(configuration={"env": {"LEAK": "${OMEGAOPS_SECRET_KEY:-public}"}})
    plan = create_plan(client, admin, **{k: v for k, v in with_default.items() if k != "plan"})
    detail = client.get(plan["current_configuration"], headers=admin).get_json()
    assert detail["env"]["LEAK"] == "public"
    response = client.post(
        CONFIGURATIONS, json={"plan": "svc", "env": {"X": "a-${OMEGAOPS_SECRET_KEY}-b"}}, headers=admin
    )
    assert_error(response, 400, "bad_request", "configuration.env.X", "OMEGAOPS_SECRET_KEY")
    assert "server-secret-value" not in response.get_data(as_text=True)
    stored = json.dumps([c.env for c in db.session.scalars(select(ServiceConfiguration))])
    assert "server-secret-value" not in stored


def test_env_defaults_and_the_cluster_id_fallback_expand(app, client, admin, monkeypatch):
    app.config["CLUSTER_ID"] = "cluster-7"
    monkeypatch.setenv("CLUSTER_ID", "from-the-server")
    monkeypatch.setenv("REGION", "from-the-server")
    env = {"CLUSTER_ID": "${CLUSTER_ID}", "REGION": "${REGION:-eu-west}", "URL": "https://${HOST:-db}:${PORT:-5432}/"}
    plan = create_plan(client, admin, configuration={"env": env})
    detail = client.get(plan["current_configuration"], headers=admin).get_json()
    assert detail["env"] == {"CLUSTER_ID": "cluster-7", "REGION": "eu-west", "URL": "https://db:5432/"}


# configurations


def test_configuration_detail_round_trips_in_the_spec_format(client, admin, scripts):
    (scripts / "omegaml").mkdir()
    (scripts / "omegaml" / "check.sh").write_text("echo ok\n")
    (scripts / "tool").write_text("echo tool\n")
    steps = [
        {"task": TASK, "params": "qualifier=default"},
        {"script": "omegaml/check.sh", "phases": ["check"], "timeout": 60, "retries": 1},
        {"script": "tool", "language": "python", "name": "the tool"},
        {"script": {"git": "https://git.example.com/r.git", "ref": "main", "path": "deploy/install.sh"}},
        {"script": {"url": "https://example.com/install.py?v=2", "sha256": SHA.upper()}, "phases": "update"},
    ]
    plan = create_plan(client, admin, steps=steps, configuration={"env": {"CLUSTER_ID": "c1", "N": 5, "B": True}})
    detail = client.get(plan["current_configuration"], headers=admin).get_json()
    assert detail["env"] == {"CLUSTER_ID": "c1", "N": "5", "B": "true"}
    assert [step.get("task") or step["script"] for step in detail["steps"]] == [
        TASK,
        "omegaml/check.sh",
        "tool",
        {"git": "https://git.example.com/r.git", "ref": "main", "path": "deploy/install.sh"},
        {"url": "https://example.com/install.py?v=2", "sha256": SHA},
    ]
    assert [step["name"] for step in detail["steps"]] == [
        "deploy_user_service",
        "check.sh",
        "the tool",
        "install.sh",
        "install.py",
    ]
    assert [step.get("language") for step in detail["steps"]] == [None, "shell", "python", "shell", "python"]
    assert detail["steps"][1]["timeout"] == 60 and "timeout" not in detail["steps"][0]
    assert detail["steps"][4]["phases"] == ["update"]
    again = client.post(
        CONFIGURATIONS, json={"plan": "svc", "env": detail["env"], "steps": detail["steps"]}, headers=admin
    )
    assert again.status_code == 200, again.get_json()
    assert again.get_json() == detail and "Location" in again.headers
    assert count(ServiceConfiguration) == 1
    # the list shows the same document
    assert client.get(CONFIGURATIONS, headers=admin).get_json()["objects"] == [detail]


def test_a_changed_env_or_step_list_makes_a_new_version(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    plan = create_plan(client, admin)
    v1 = client.get(plan["current_configuration"], headers=admin).get_json()
    response = client.post(
        CONFIGURATIONS, json={"plan": "svc", "env": {"CLUSTER_ID": "c2"}, "steps": v1["steps"]}, headers=admin
    )
    assert response.status_code == 201, response.get_json()
    v2 = response.get_json()
    assert response.headers["Location"] == v2["resource_uri"] == configuration_uri(v2["id"])
    assert v2["version"] == 2 and v2["env"] == {"CLUSTER_ID": "c2"} and v2["steps"] == v1["steps"]
    assert v2["digest"] != v1["digest"] and v2["plan"] == "svc" and v2["plan_uri"] == plan["resource_uri"]
    assert client.get(plan["resource_uri"], headers=admin).get_json()["current_configuration"] == v2["resource_uri"]
    same = client.post(
        CONFIGURATIONS, json={"plan": "svc", "env": {"CLUSTER_ID": "c2"}, "steps": v1["steps"]}, headers=admin
    )
    assert same.status_code == 200 and same.get_json()["id"] == v2["id"]
    fewer = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"CLUSTER_ID": "c2"}, "steps": []}, headers=admin)
    assert fewer.status_code == 201 and fewer.get_json()["version"] == 3 and fewer.get_json()["steps"] == []
    other = client.post(
        CONFIGURATIONS,
        json={"plan": "svc", "env": {"CLUSTER_ID": "c2"}, "steps": [task_step(params="size=2")]},
        headers=admin,
    )
    assert other.status_code == 201 and other.get_json()["version"] == 4
    # older versions stay, for the deployments they installed
    versions = client.get(CONFIGURATIONS + "?plan=svc", headers=admin).get_json()
    assert [(obj["version"], obj["active"]) for obj in versions["objects"]] == [
        (1, True),
        (2, True),
        (3, True),
        (4, True),
    ]
    db.session.expire_all()
    plan_row = db.session.get(ServicePlan, plan["id"])
    assert plan_row.title == "A service" and plan_row.offered, "a configuration leaves the plan's fields alone"


def test_two_configurations_written_at_once_are_a_conflict_not_a_500(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    plan = create_plan(client, admin)
    session, done = db.session(), []

    def another_request_commits_first(session, flush_context, instances):
        # another POST took the same version number between this one's look and its write
        new = [obj for obj in session.new if isinstance(obj, ServiceConfiguration)]
        if new and not done:
            done.append(new[0].version)
            with db.engine.begin() as connection:
                connection.execute(
                    insert(ServiceConfiguration).values(
                        plan_id=plan["id"], version=new[0].version, env={}, digest="0" * 64, active=True
                    )
                )

    event.listen(session, "before_flush", another_request_commits_first)
    try:
        response = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"V": "2"}}, headers=admin)
    finally:
        event.remove(session, "before_flush", another_request_commits_first)
    assert done == [2]
    assert_error(response, 409, "conflict", "at the same time")
    assert count(ServiceConfiguration) == 2, "the other request's version, and no second one"


def test_configuration_posts_for_unknown_or_retired_plans_are_refused(client, admin):
    assert_error(
        client.post(CONFIGURATIONS, json={"plan": "nope", "env": {}}, headers=admin), 404, "not_found", "'nope'"
    )
    plan = create_plan(client, admin)
    client.patch(plan["resource_uri"], json={"active": False}, headers=admin)
    response = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"A": "1"}}, headers=admin)
    assert_error(response, 409, "conflict", "retired", "active=true")
    assert count(ServiceConfiguration) == 1
    db.session.expire_all()
    assert not db.session.get(ServicePlan, plan["id"]).active, "a configuration does not reactivate the plan"


def test_bad_configuration_fields_are_400_naming_them(client, admin, subtests):
    create_plan(client, admin)
    for body, words in [
        ({"env": {}}, ["plan", "Missing data"]),
        ({"plan": "svc", "title": "x"}, ["unknown field 'title'"]),
        ({"plan": "svc", "configuration": {"env": {}}}, ["unknown field 'configuration'"]),
        ({"plan": "svc", "env": "A=1"}, ["env"]),
        ({"plan": "svc", "steps": {"task": TASK}}, ["steps"]),
        ({"plan": 7}, ["plan"]),
    ]:
        with subtests.test(body=body):
            assert_error(client.post(CONFIGURATIONS, json=body, headers=admin), 400, "bad_request", *words)
    assert count(ServiceConfiguration) == 1


def test_configuration_spec_errors_are_400_with_the_loaders_message(app, client, admin, subtests):
    create_plan(client, admin)
    for case, env, steps in [
        ("step-field", {}, [task_step(bogus=1)]),
        ("task-import", {}, [{"task": "nope.module.run"}]),
        ("phase", {}, [task_step(phases=["deploy"])]),
        ("timeout", {}, [task_step(timeout=100000)]),
        ("env-key", {"bad-key": "x"}, []),
        ("env-unset", {"A": "${UNSET_VARIABLE}"}, []),
    ]:
        with subtests.test(case):
            response = client.post(CONFIGURATIONS, json={"plan": "svc", "env": env, "steps": steps}, headers=admin)
            spec = {"plan": "svc", "configuration": {"env": env}, "steps": steps}
            assert api_message(response) == loader_message(app, spec)
    assert count(ServiceConfiguration) == 1


def test_retiring_a_configuration_makes_new_installs_use_the_newest_active_one(client, admin):
    plan = empty_plan(client, admin)
    v2 = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"V": "2"}, "steps": []}, headers=admin).get_json()
    v3 = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"V": "3"}, "steps": []}, headers=admin).get_json()
    response = client.delete(v3["resource_uri"], headers=admin)
    assert response.status_code == 200
    assert response.get_json()["active"] is False and response.get_json()["version"] == 3
    assert client.get(plan["resource_uri"], headers=admin).get_json()["current_configuration"] == v2["resource_uri"]
    command = install("svc", make_user())
    assert command.configuration.version == 2
    # retiring again is harmless; the retired version stays readable and listable
    assert client.delete(v3["resource_uri"], headers=admin).status_code == 200
    assert client.get(v3["resource_uri"], headers=admin).get_json()["active"] is False
    listed = client.get(CONFIGURATIONS + "?active=false", headers=admin).get_json()["objects"]
    assert [obj["version"] for obj in listed] == [3]
    # the retired env posted again is a new version, not the retired one brought back
    again = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"V": "3"}, "steps": []}, headers=admin)
    assert again.status_code == 201 and again.get_json()["version"] == 4 and again.get_json()["active"] is True
    assert_error(client.delete(configuration_uri(99999), headers=admin), 404, "not_found")


def test_configurations_list_filters_by_plan_and_active(client, admin):
    create_plan(client, admin, "one")
    create_plan(client, admin, "two")
    client.post(CONFIGURATIONS, json={"plan": "two", "env": {"V": "2"}}, headers=admin)

    def listed(query=""):
        body = client.get(CONFIGURATIONS + query, headers=admin).get_json()
        return [(obj["plan"], obj["version"]) for obj in body["objects"]]

    assert listed() == [("one", 1), ("two", 1), ("two", 2)]
    assert listed("?plan=two") == [("two", 1), ("two", 2)]
    assert listed("?plan=nope") == []
    assert listed("?active=false") == []
    assert listed("?plan=two&limit=1&offset=1") == [("two", 2)]
    body = client.get(CONFIGURATIONS + "?plan=two&limit=1", headers=admin).get_json()
    assert body["meta"]["next"] == f"{CONFIGURATIONS}?plan=two&limit=1&offset=1"
    assert_error(client.get(configuration_uri(99999), headers=admin), 404, "not_found")
    assert_error(client.get(configuration_uri(10**30), headers=admin), 404, "not_found")


SECRET_ENV = {
    "DB_PASSWORD": "s3cret-value",
    "DATABASE_URL": "postgres://app:s3cret-value@db:5432/app",
    "BROKER_URL": "amqp://omega:broker-pw@mq:5672//",
    "API_TOKEN": "tok-123456",
    "MONGO_HOST": "mongo:27017",
}


def test_env_secrets_are_masked_wherever_a_configuration_is_shown(client, admin):
    response = client.post(PLANS, json=plan_body(configuration={"env": SECRET_ENV}), headers=admin)
    plan = response.get_json()
    expected = {
        "DB_PASSWORD": MASK,
        "DATABASE_URL": f"postgres://app:{MASK}@db:5432/app",
        "BROKER_URL": f"amqp://omega:{MASK}@mq:5672//",
        "API_TOKEN": MASK,
        "MONGO_HOST": "mongo:27017",
    }
    detail = client.get(plan["current_configuration"], headers=admin)
    assert detail.get_json()["env"] == expected
    listing = client.get(CONFIGURATIONS, headers=admin)
    assert listing.get_json()["objects"][0]["env"] == expected
    posted = client.post(CONFIGURATIONS, json={"plan": "svc", "env": {**SECRET_ENV, "X": "1"}}, headers=admin)
    assert posted.status_code == 201 and posted.get_json()["env"] == {**expected, "X": "1"}
    for answer in (detail, listing, posted):
        text = answer.get_data(as_text=True)
        assert "s3cret-value" not in text and "broker-pw" not in text and "tok-123456" not in text
    # masked on the way out only: the engine gets the real values
    db.session.expire_all()
    assert db.session.get(ServiceConfiguration, configuration_id(plan)).env == SECRET_ENV


def test_an_empty_secret_does_not_garble_the_shown_env(client, admin):
    env = {"API_TOKEN": "", "MONGO_HOST": "mongo:27017"}
    plan = create_plan(client, admin, configuration={"env": env})
    detail = client.get(plan["current_configuration"], headers=admin).get_json()
    assert detail["env"] == env


# changing plans


def test_admins_patch_a_plans_fields(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    plan = create_plan(client, admin)
    changes = {
        "title": "New title",
        "description": "new words",
        "offered": False,
        "one_per_user": False,
        "defaults": {"OMEGA_X": "y"},
    }
    response = client.patch(plan["resource_uri"], json=changes, headers=admin)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {key: body[key] for key in changes} == changes
    assert body["active"] is True and body["current_configuration"] == plan["current_configuration"]
    db.session.expire_all()
    row = db.session.get(ServicePlan, plan["id"])
    assert (row.title, row.description, row.offered, row.one_per_user) == ("New title", "new words", False, False)
    assert row.defaults == {"OMEGA_X": "y"}
    assert count(ServiceConfiguration) == 1, "plan fields are not part of a configuration version"
    partial = client.patch(plan["resource_uri"], json={"offered": True}, headers=admin).get_json()
    assert partial["offered"] is True and partial["title"] == "New title"
    assert client.patch(plan["resource_uri"], json={}, headers=admin).status_code == 200


def test_patching_active_retires_and_reactivates_a_plan(client, admin, user):
    plan = create_plan(client, admin)
    retired = client.patch(plan["resource_uri"], json={"active": False}, headers=admin).get_json()
    assert retired["active"] is False and retired["offered"] is False
    assert datetime.fromisoformat(retired["retired_at"]).utcoffset().total_seconds() == 0
    assert client.get(PLANS, headers=user).get_json()["objects"] == []
    # a retired plan is not in the catalog, whatever the same patch says
    still = client.patch(plan["resource_uri"], json={"offered": True}, headers=admin).get_json()
    assert still["offered"] is False and still["retired_at"] == retired["retired_at"]
    back = client.patch(plan["resource_uri"], json={"active": True}, headers=admin).get_json()
    assert back["active"] is True and back["retired_at"] is None and back["offered"] is False
    offered = client.patch(plan["resource_uri"], json={"offered": True}, headers=admin).get_json()
    assert offered["offered"] is True
    assert [obj["name"] for obj in client.get(PLANS, headers=user).get_json()["objects"]] == ["svc"]
    both = client.patch(plan["resource_uri"], json={"active": False, "offered": True}, headers=admin).get_json()
    assert both["active"] is False and both["offered"] is False


def test_bad_patches_are_400_naming_the_field_and_change_nothing(client, admin, subtests):
    plan = create_plan(client, admin)
    for body, words in [
        ({"name": "renamed"}, ["'name'"]),
        ({"id": 5}, ["'id'"]),
        ({"retired_at": None}, ["'retired_at'"]),
        ({"current_configuration": None}, ["'current_configuration'"]),
        ({"resource_uri": "/x/"}, ["'resource_uri'"]),
        ({"bogus": 1}, ["unknown field 'bogus'"]),
        ({"offered": "yes"}, ["offered"]),
        ({"offered": "true"}, ["offered"]),
        ({"offered": None}, ["offered"]),
        ({"one_per_user": "no"}, ["one_per_user"]),
        ({"title": ""}, ["title", "empty"]),
        ({"title": "   "}, ["title", "empty"]),
        ({"title": "x" * 201}, ["title", "200"]),
        ({"title": None}, ["title"]),
        ({"title": 5}, ["title"]),
        ({"description": ["x"]}, ["description"]),
        ({"defaults": ["OMEGA_X"]}, ["defaults"]),
        ({"defaults": None}, ["defaults"]),
        ({"title": "Fine", "offered": "yes"}, ["offered"]),
    ]:
        with subtests.test(body=str(body)[:60]):
            assert_error(client.patch(plan["resource_uri"], json=body, headers=admin), 400, "bad_request", *words)
            assert client.get(plan["resource_uri"], headers=admin).get_json() == plan


def test_flags_are_json_booleans_not_numbers(client, admin, subtests):
    """``schemas.flag``: true or false, not "yes" or 1 (nor does the spec loader take 1 for true)."""
    for number, (field, value) in enumerate([("offered", 1), ("one_per_user", 0), ("offered", 1.0)]):
        with subtests.test(method="POST", field=field, value=value):
            response = client.post(PLANS, json={"plan": f"p{number}", field: value}, headers=admin)
            assert_error(response, 400, "bad_request", field)
    plan = create_plan(client, admin)
    for field, value in [("offered", 0), ("active", 0), ("one_per_user", 1.0)]:
        with subtests.test(method="PATCH", field=field, value=value):
            response = client.patch(plan["resource_uri"], json={field: value}, headers=admin)
            assert_error(response, 400, "bad_request", field)
        client.patch(plan["resource_uri"], json={"active": True, "offered": True, "one_per_user": True}, headers=admin)


def test_patching_an_unknown_plan_is_404(client, admin):
    assert_error(client.patch(plan_uri(99999), json={"title": "x"}, headers=admin), 404, "not_found")
    assert_error(client.patch(plan_uri(10**30), json={"title": "x"}, headers=admin), 404, "not_found")


# removing plans


def test_deleting_a_never_used_plan_deletes_it(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    plan = create_plan(client, admin)
    client.post(CONFIGURATIONS, json={"plan": "svc", "env": {"V": "2"}}, headers=admin)
    other = create_plan(client, admin, "other")
    response = client.delete(plan["resource_uri"], headers=admin)
    assert response.status_code == 204 and response.data == b""
    assert_error(client.get(plan["resource_uri"], headers=admin), 404, "not_found")
    assert_error(client.delete(plan["resource_uri"], headers=admin), 404, "not_found")
    assert_error(client.get(plan["current_configuration"], headers=admin), 404, "not_found")
    assert ServicePlan.by_name("svc") is None
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1 and count(ServiceStep) == 1
    assert client.get(other["resource_uri"], headers=admin).status_code == 200
    # the name is free again
    assert client.post(PLANS, json=plan_body("svc"), headers=admin).status_code == 201


def test_deleting_a_plan_with_history_retires_it_and_keeps_the_history(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    _, user = with_key()
    owner = make_user()
    plan = empty_plan(client, admin)
    install("svc", owner)
    removed = uninstall("svc", owner)
    assert removed.deployment.status is Status.REMOVED
    response = client.delete(plan["resource_uri"], headers=admin)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == plan["id"] and body["active"] is False and body["offered"] is False
    assert datetime.fromisoformat(body["retired_at"]).utcoffset().total_seconds() == 0
    assert count(ServiceCommand) == 2 and count(ServiceDeployment) == 1 and count(ServiceConfiguration) == 1
    assert client.get(plan["resource_uri"], headers=admin).get_json() == body
    assert_error(client.get(plan["resource_uri"], headers=user), 404, "not_found")
    # removing it again changes nothing
    again = client.delete(plan["resource_uri"], headers=admin)
    assert again.status_code == 200 and again.get_json()["retired_at"] == body["retired_at"]
    assert client.get(PLANS + "?active=false", headers=admin).get_json()["objects"][0]["name"] == "svc"


def test_deleting_a_plan_with_live_deployments_is_a_conflict_unless_forced(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    owner = make_user(userid="jane")
    plan = empty_plan(client, admin)
    deployment_id = install("svc", owner).deployment_id
    response = client.delete(plan["resource_uri"], headers=admin)
    assert_error(response, 409, "conflict", "1 live deployment", f"{deployment_id} (jane, COMPLETED)", "force=true")
    assert client.get(plan["resource_uri"], headers=admin).get_json()["active"] is True
    assert_error(client.delete(plan["resource_uri"] + "?force=false", headers=admin), 409, "conflict")
    forced = client.delete(plan["resource_uri"] + "?force=true", headers=admin)
    assert forced.status_code == 200, forced.get_json()
    assert forced.get_json()["active"] is False and forced.get_json()["retired_at"] is not None
    # the deployment keeps running until uninstalled, but the plan takes no new ones
    assert reload(db.session.get(ServiceDeployment, deployment_id)).status is Status.COMPLETED
    assert count(ServicePlan) == 1 and count(ServiceDeployment) == 1


def test_bad_delete_parameters_are_400_and_delete_nothing(client, admin, subtests):
    plan = create_plan(client, admin)
    for query, words in [("?force=maybe", ["force"]), ("?forse=true", ["unknown query parameter 'forse'"])]:
        with subtests.test(query=query):
            assert_error(client.delete(plan["resource_uri"] + query, headers=admin), 400, "bad_request", *words)
    assert count(ServicePlan) == 1


def test_deleting_an_unknown_plan_is_404(client, admin):
    assert_error(client.delete(plan_uri(99999), headers=admin), 404, "not_found")
    assert_error(client.delete(plan_uri(2**31), headers=admin), 404, "not_found")


# Idempotency-Key


def test_a_repeated_idempotency_key_replays_the_first_answer(any_app):
    client = any_app.test_client()
    _, admin = with_key(admin=True)
    headers = {**admin, "Idempotency-Key": "create-svc-1"}
    first = client.post(PLANS, json=plan_body(), headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    # the same JSON, spaced and ordered differently
    body = json.dumps(dict(reversed(list(plan_body().items()))), indent=2)
    again = client.post(PLANS, data=body, content_type="application/json", headers=headers)
    assert again.status_code == 201, again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.headers["Location"] == first.headers["Location"]
    assert count(ServicePlan) == 1 and count(IdempotencyKey) == 1
    # without the key, it is a second request
    assert_error(client.post(PLANS, json=plan_body(), headers=admin), 409, "conflict")


def test_an_idempotency_key_reused_for_another_request_is_409(client, admin):
    headers = {**admin, "Idempotency-Key": "k-1"}
    assert client.post(PLANS, json=plan_body("one"), headers=headers).status_code == 201
    response = client.post(PLANS, json=plan_body("two"), headers=headers)
    assert_error(response, 409, "idempotency_key_reused", "k-1")
    other_path = client.post(CONFIGURATIONS, json={"plan": "one", "env": {"A": "1"}}, headers=headers)
    assert_error(other_path, 409, "idempotency_key_reused")
    assert [plan.name for plan in db.session.scalars(select(ServicePlan))] == ["one"]
    assert count(ServiceConfiguration) == 1


def test_a_failed_request_does_not_use_up_its_idempotency_key(client, admin):
    headers = {**admin, "Idempotency-Key": "k-1"}
    assert_error(client.post(PLANS, json={"plan": "Bad Name"}, headers=headers), 400, "bad_request")
    assert count(IdempotencyKey) == 0
    response = client.post(PLANS, json=plan_body(), headers=headers)
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers


def test_idempotency_keys_are_per_user(client, admin):
    _, other_admin = with_key(admin=True)
    assert client.post(PLANS, json=plan_body("one"), headers={**admin, "Idempotency-Key": "same"}).status_code == 201
    response = client.post(PLANS, json=plan_body("two"), headers={**other_admin, "Idempotency-Key": "same"})
    assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert count(ServicePlan) == 2


def test_a_configuration_post_replays_its_first_answer(client, admin):
    create_plan(client, admin)
    headers = {**admin, "Idempotency-Key": "conf-2"}
    body = {"plan": "svc", "env": {"V": "2"}}
    first = client.post(CONFIGURATIONS, json=body, headers=headers)
    assert first.status_code == 201
    again = client.post(CONFIGURATIONS, json=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.headers["Location"] == first.headers["Location"]
    assert count(ServiceConfiguration) == 2


def test_invalid_idempotency_keys_are_400(client, admin, subtests):
    for key in ["x" * 201, "cl\u00e9", "two words", "", "tab\tinside"]:
        with subtests.test(key=key[:20]):
            response = client.post(PLANS, json=plan_body(), headers={**admin, "Idempotency-Key": key})
            assert_error(response, 400, "bad_request", "Idempotency-Key")
    assert count(ServicePlan) == 0 and count(IdempotencyKey) == 0


def test_the_longest_idempotency_key_is_accepted(client, admin):
    key = "k" * 200
    assert client.post(PLANS, json=plan_body(), headers={**admin, "Idempotency-Key": key}).status_code == 201
    again = client.post(PLANS, json=plan_body(), headers={**admin, "Idempotency-Key": key})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


# malformed requests


MALFORMED = [
    ("empty", b"", None, "JSON object"),
    ("blank", b"   ", "application/json", "JSON object"),
    ("truncated", b'{"plan": ', "application/json", "not valid JSON"),
    ("bad-utf8", b"\xff\xfe{}", "application/json", "UTF-8"),
    ("latin1", b'{"plan": "\xe9"}', "application/json", "UTF-8"),
    ("list", b"[]", "application/json", "JSON object"),
    ("list-of-plans", b'[{"plan": "svc"}]', "application/json", "JSON object"),
    ("string", b'"svc"', "application/json", "JSON object"),
    ("null", b"null", "application/json", "JSON object"),
    ("nan", b'{"plan": "svc", "steps": [{"task": "a.b", "timeout": NaN}]}', "application/json", "NaN"),
    ("infinity", b'{"plan": "svc", "title": Infinity}', "application/json", "not valid JSON"),
    ("form", b"plan=svc", "application/x-www-form-urlencoded", "not valid JSON"),
    ("yaml", b"- plan: svc\n", "application/yaml", "not valid JSON"),
    ("deep", b"[" * 100_000, "application/json", "nested"),
]


@pytest.mark.parametrize(
    "method, path, idempotency",
    [("POST", PLANS, False), ("POST", PLANS, True), ("POST", CONFIGURATIONS, True), ("PATCH", "{plan}", False)],
    ids=["plan", "plan-with-key", "configuration-with-key", "patch"],
)
def test_malformed_bodies_are_400_json(client, admin, subtests, method, path, idempotency):
    plan = create_plan(client, admin)
    headers = {**admin, "Idempotency-Key": "k"} if idempotency else admin
    for case, data, content_type, words in MALFORMED:
        with subtests.test(case):
            response = client.open(
                route_path(path, plan), method=method, data=data, content_type=content_type, headers=headers
            )
            assert_error(response, 400, "bad_request", words)
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1 and count(IdempotencyKey) == 0
    assert client.get(plan["resource_uri"], headers=admin).get_json() == plan


def test_an_oversized_body_is_413_json(app, client, admin, subtests):
    plan = create_plan(client, admin)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    body = json.dumps(plan_body("big", description="x" * 2000))
    for method, path in [("POST", PLANS), ("POST", CONFIGURATIONS), ("PATCH", "{plan}")]:
        for headers in (admin, {**admin, "Idempotency-Key": "big"}):
            with subtests.test(method=method, path=path, key="Idempotency-Key" in headers):
                response = client.open(
                    route_path(path, plan), method=method, data=body, content_type="application/json", headers=headers
                )
                assert response.status_code == 413 and response.mimetype == "application/json"
                assert set(response.get_json()) == {"error", "message"} and response.get_json()["error"]
    assert count(ServicePlan) == 1 and count(ServiceConfiguration) == 1
