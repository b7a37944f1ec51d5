"""The OpenAPI document covers the whole API, and its plan schema is the spec loader's.

1. Every API rule of ``app.url_map`` (``/admin/api/v2/...`` and ``/api/v1/config/``) is an operation of the
   document, with its request schema, its answers and its errors in the error format.
2. The plan, step, metric and parameter schemas list exactly the keys the loader (``app.ops.specs``,
   ``app.ops.parameters``) accepts, with the types, enums and bounds it checks; and every bound or enum the
   document states is held to the loader itself: the loader takes the value at the bound and refuses the
   one beyond it.
3. The plan resource shows ``parameters``; ``RetryArgs`` and the error's ``parameter``.
"""

import re

import marshmallow as ma
import pytest

from app import create_app
from app.api import schemas
from app.models import Phase
from app.ops import parameters as loader_parameters
from app.ops import specs as loader
from app.ops.specs import SpecError, parse_plan, spec_fallbacks
from config import TestConfig

from .api_helpers import with_key
from .factories import make_plan
from .test_openapi import operations as documented_operations
from .test_openapi import resolve as resolve_in

OPENAPI = "/admin/api/v2/openapi.json"
API_PREFIXES = ("/admin/api/", "/api/")
# the document itself and the page that shows it: not operations of the API
NOT_OPERATIONS = {"api-docs.openapi_json", "api_docs.docs", "api_docs.asset"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# anyone may sign up or ask for a password reset: no API key
PUBLIC = {("/admin/api/v2/auth/signup/", "post"), ("/admin/api/v2/auth/reset/", "post")}


def load():
    app = create_app(TestConfig)
    document = app.test_client().get(OPENAPI).get_json()
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIXES) and rule.endpoint not in NOT_OPERATIONS:
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
    return document, sorted(routes)


DOCUMENT, ROUTES = load()
COMPONENTS = DOCUMENT["components"]["schemas"]


def operations():
    return documented_operations(DOCUMENT)


def resolve(item: dict) -> dict:
    return resolve_in(item, DOCUMENT)


# 1. every route, documented


def test_every_api_route_is_an_operation_of_the_document():
    documented = {(path, method) for path, method, _ in operations()}
    missing = sorted(set(ROUTES) - documented)
    assert not missing, f"API routes without an operation in the document: {missing}"
    assert sorted(documented - set(ROUTES)) == [], "operations without a route"
    for prefix in ("/admin/api/v2/auth/", "/admin/api/v2/usage/", "/api/v1/config/", "/admin/api/v2/service/"):
        assert any(path.startswith(prefix) for path, _ in ROUTES), prefix


@pytest.mark.parametrize("path, method, operation", operations(), ids=[f"{m.upper()} {p}" for p, m, _ in operations()])
def test_every_operation_has_its_schemas_and_errors(path, method, operation):
    responses = operation["responses"]
    successes = {code: resolve(answer) for code, answer in responses.items() if code.startswith("2")}
    assert successes, "no success answer"
    for code, answer in successes.items():
        if code != "204":
            schema = answer["content"]["application/json"]["schema"]
            assert "$ref" in schema or schema.get("type"), f"{code} has no schema"
    if method in ("post", "patch", "put") and "/cancel/" not in path:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "$ref" in body, "the request body is a component schema"
    errors = {code: resolve(answer) for code, answer in responses.items() if code.startswith("4")}
    assert "400" in errors, "bad input is a documented 400"
    for code, answer in errors.items():
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, code
    if (path, method) in PUBLIC:
        assert operation["security"] == [], "public: no API key"
        assert "401" not in responses
    else:
        assert "security" not in operation or operation["security"] == [{"ApiKey": []}]
        assert "401" in responses
    assert operation.get("summary"), "every operation says what it does"


def test_the_path_count_is_every_api_rule():
    assert len(DOCUMENT["paths"]) == len({path for path, _ in ROUTES})


# 2. the plan schema is the loader's


def items_of(schema: dict) -> dict:
    return resolve(schema["items"])


PLAN = COMPONENTS["PlanCreateArgs"]
STEP = COMPONENTS["Step"]
METRIC = items_of(PLAN["properties"]["metrics"])
PARAMETER = items_of(PLAN["properties"]["parameters"])
LEVELS = {
    "plan": (PLAN, loader.PLAN_KEYS),
    "step": (STEP, loader.STEP_KEYS),
    "metric": (METRIC, loader.METRIC_KEYS),
    "parameter": (PARAMETER, set(loader_parameters.PARAMETER_KEYS)),
}


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_lists_exactly_the_keys_the_loader_accepts(level):
    schema, keys = LEVELS[level]
    assert set(schema["properties"]) == set(keys)
    assert schema["additionalProperties"] is False, "the loader refuses other keys"
    for name, spec in schema["properties"].items():
        assert {"type", "oneOf", "anyOf", "not", "$ref"} & set(spec), f"{level}.{name} says nothing of its type"


def prop(level: str, name: str) -> dict:
    return LEVELS[level][0]["properties"][name]


def has(spec: dict, **expected) -> bool:
    return spec.items() >= expected.items()


def test_the_bounds_and_enums_are_the_loaders_constants():
    assert prop("plan", "plan")["pattern"] == loader.PLAN_NAME_RE.pattern
    assert PLAN["required"] == ["plan"]
    assert prop("plan", "title")["maxLength"] == loader.MAX_TITLE
    assert has(prop("plan", "base_fee"), type="integer", minimum=0, maximum=loader.MAX_BASE_FEE)
    assert loader.MAX_BASE_FEE == 2**31 - 1
    for name in ("offered", "one_per_user"):
        assert prop("plan", name)["type"] == "boolean"
    assert has(prop("step", "timeout"), type="integer", minimum=1, maximum=loader.MAX_TIMEOUT)
    assert loader.MAX_TIMEOUT == 86400
    assert has(prop("step", "retries"), type="integer", minimum=0, maximum=loader.MAX_RETRIES)
    assert loader.MAX_RETRIES == 10
    assert set(prop("step", "language")["enum"]) == {*loader.LANGUAGES.values(), None}
    phases = [p.value for p in Phase]
    one, many = prop("step", "phases")["oneOf"]
    assert one["enum"] == phases and many["items"]["enum"] == phases and many["uniqueItems"] is True
    assert prop("metric", "aggregation")["enum"] == list(loader.AGGREGATIONS)
    assert prop("parameter", "type")["enum"] == list(loader_parameters.TYPES) == ["integer", "string", "boolean"]
    assert prop("parameter", "name")["pattern"] == loader_parameters.KEY_RE.pattern
    assert PARAMETER["required"] == ["name"]
    limit = loader_parameters.MAX_INTEGER
    for name in ("minimum", "maximum"):
        assert has(prop("parameter", name), type="integer", minimum=-limit, maximum=limit)
    assert has(prop("parameter", "max_length"), minimum=1, maximum=loader_parameters.MAX_VALUE_LENGTH)
    for name in ("required", "secret"):
        assert prop("parameter", name)["type"] == "boolean"


TASK = "app.ops.tasks.deploy_user_service"


def body_with(level: str, name: str, value) -> dict:
    """A plan that is valid but for ``name`` at ``level``."""
    if level == "plan":
        return {"plan": "bounds", name: value}
    if level == "step":
        return {"plan": "bounds", "steps": [{"task": TASK, name: value}]}
    if level == "metric":
        return {"plan": "bounds", "metrics": [{"name": "m", "kind": "api", "field": "f", name: value}]}
    kind = "integer" if name in ("minimum", "maximum") else "string"
    return {"plan": "bounds", "parameters": [{"name": "p", "type": kind, name: value}]}


def loads(app, body) -> bool:
    try:
        parse_plan(body, "bounds", app.config["SCRIPTS_DIR"], spec_fallbacks(app.config), environ={})
    except SpecError:
        return False
    return True


def stated_bounds():
    """Every bound and enum the document states, as (level, name, value the loader must take, value it must refuse)."""
    for level, (schema, _) in LEVELS.items():
        for name, spec in schema["properties"].items():
            if name == "script":  # a script's bounds need a file under the scripts directory
                continue
            for choice in [spec, *spec.get("oneOf", [])]:
                if choice.get("type") == "integer":
                    if "minimum" in choice:
                        yield level, name, choice["minimum"], choice["minimum"] - 1
                    if "maximum" in choice:
                        yield level, name, choice["maximum"], choice["maximum"] + 1
                if choice.get("type") == "string" and "enum" in choice:
                    for value in filter(None, choice["enum"]):  # null: where the loader takes it, as absent
                        yield level, name, value, value + "-not-one"
                if choice.get("type") == "string" and "maxLength" in choice:
                    yield level, name, "x" * choice["maxLength"], "x" * (choice["maxLength"] + 1)


BOUNDS = list(stated_bounds())


def test_the_document_states_bounds_for_what_the_loader_bounds():
    stated = {(level, name) for level, name, _, _ in BOUNDS}
    for expected in [
        ("plan", "base_fee"),
        ("plan", "title"),
        ("step", "timeout"),
        ("step", "retries"),
        ("step", "language"),
        ("step", "phases"),
        ("metric", "aggregation"),
        ("parameter", "type"),
        ("parameter", "minimum"),
        ("parameter", "max_length"),
    ]:
        assert expected in stated, expected


@pytest.mark.parametrize(
    "level, name, taken, refused", BOUNDS, ids=[f"{b[0]}.{b[1]}={str(b[2])[:10]}" for b in BOUNDS]
)
def test_the_loader_takes_each_stated_bound_and_refuses_beyond_it(app, level, name, taken, refused):
    if level == "step" and name == "language":
        step = {"script": {"url": "https://example.com/tool", "sha256": "0" * 64}, "language": taken}
        assert loads(app, {"plan": "bounds", "steps": [step]})
        assert not loads(app, {"plan": "bounds", "steps": [{**step, "language": refused}]})
        return
    if level == "step" and name == "phases":
        taken, refused = [taken], [refused]
    assert loads(app, body_with(level, name, taken)), (level, name, taken)
    assert not loads(app, body_with(level, name, refused)), (level, name, refused)


def test_the_loader_refuses_a_key_at_each_level_that_the_document_does_not_list(app):
    for level in LEVELS:
        assert not loads(app, body_with(level, "not_a_key", 1)), level


# 3. the plan resource, RetryArgs, the error's parameter


def test_the_plan_resource_shows_its_parameters_and_base_fee(client):
    plan = make_plan(name="sized")
    _, headers = with_key(admin=True)
    body = client.get(f"/admin/api/v2/service/plan/{plan.id}/", headers=headers).get_json()
    assert [p["name"] for p in body["parameters"]] == [p["name"] for p in plan.parameters]
    assert {"size", "qualifier", "db_password"} <= {p["name"] for p in body["parameters"]}
    assert body["base_fee"] == 0
    listed = client.get("/admin/api/v2/service/plan/", headers=headers).get_json()["objects"][0]
    assert listed["parameters"] == body["parameters"]
    plan.parameters = None  # a spec in the original format declares none
    from app.extensions import db

    db.session.commit()
    assert client.get(f"/admin/api/v2/service/plan/{plan.id}/", headers=headers).get_json()["parameters"] is None
    documented = COMPONENTS["Plan"]["properties"]
    assert documented["parameters"]["nullable"] is True
    assert resolve(documented["parameters"]["items"]) == PARAMETER
    assert documented["base_fee"]["type"] == "integer"


def test_a_secret_parameters_default_is_masked(client):
    plan = make_plan(name="secretive", parameters="  parameters:\n    - {name: token, secret: true, default: hunter2}")
    _, headers = with_key(admin=True)
    body = client.get(f"/admin/api/v2/service/plan/{plan.id}/", headers=headers).get_data(as_text=True)
    assert "hunter2" not in body and '"secret":true' in body.replace(" ", "")


def test_retry_args_take_an_optional_params_string():
    args = schemas.RetryArgs()
    assert args.load({}) == {}
    assert args.load({"params": "size=2,qualifier=dev"}) == {"params": "size=2,qualifier=dev"}
    assert args.load({"params": None}) == {"params": None}
    for bad in ({"params": 2}, {"params": ["size=2"]}, {"size": "2"}):
        with pytest.raises(ma.ValidationError):
            args.load(bad)
    documented = COMPONENTS["RetryArgs"]
    assert documented["properties"]["params"]["type"] == "string"
    assert documented["additionalProperties"] is False


def test_a_retry_may_send_no_body_at_all(app):
    from flask import request

    from app.api.errors import ApiError
    from app.api.rest import StrictParser

    parser = StrictParser()
    with app.test_request_context(method="POST", data=b"", content_type="application/json"):
        assert parser.parse(schemas.RetryArgs(), request, location="json") == {}
        with pytest.raises(ApiError, match="JSON object"):
            parser.parse(schemas.PlanUpdateArgs(), request, location="json")
    with app.test_request_context(method="POST", json={"params": "size=2"}):
        assert parser.parse(schemas.RetryArgs(), request, location="json") == {"params": "size=2"}
    with (
        app.test_request_context(method="POST", json={"size": 2}),
        pytest.raises(ApiError, match="unknown field 'size'"),
    ):
        parser.parse(schemas.RetryArgs(), request, location="json")


def test_the_error_format_names_a_refused_parameter():
    error = COMPONENTS["Error"]
    assert error["properties"]["parameter"].items() >= {"type": "string", "nullable": True}.items()
    assert set(error["required"]) == {"error", "message"}
