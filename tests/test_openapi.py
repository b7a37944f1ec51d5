"""The API's OpenAPI document (``/admin/api/v2/openapi.json``), its docs page, and the API held to it.

The document must be valid OpenAPI 3.0 and describe every API route: the service API (``/admin/api/v2/service/``),
the accounts (``auth/``), usage events and the client's ``/api/v1/config/`` (a new route without docs fails
here). Then schemathesis generates requests from the document, for every operation in it, and sends them to
the app in process (WSGI), as an admin and as an ordinary user, on SQLite with a few objects to find
(and, fewer, as an admin on PostgreSQL): no answer may be a 5xx, and every status, content type, header
and body must be the documented one. Last, the refusals the generated requests rarely reach, by hand.
"""

import re
import shutil
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from openapi_spec_validator import OpenAPIV30SpecValidator, validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app import accounts, create_app
from app.extensions import db
from app.models import Status
from app.models.types import utcnow
from app.ops import engine
from config import TestConfig

from .conftest import make_app
from .engine_helpers import issue, make_script_plan, write_script
from .factories import make_plan, make_user

OPENAPI = "/admin/api/v2/openapi.json"
DOCS = "/admin/api/v2/docs"
SERVICE = "/admin/api/v2/service/"
AUTH = "/admin/api/v2/auth/"
API_PREFIXES = ("/admin/api/", "/api/")
# the document itself and the page that shows it
NOT_OPERATIONS = {"api-docs.openapi_json", "api_docs.docs", "api_docs.asset"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def load_document() -> tuple[dict, list[tuple[str, str]]]:
    """The document as the app serves it, and every (path, method) of the API routes in its url_map."""
    app = create_app(TestConfig)
    response = app.test_client().get(OPENAPI)
    assert response.status_code == 200, response.data[:500]
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(API_PREFIXES) and rule.endpoint not in NOT_OPERATIONS:
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes += [(path, method.lower()) for method in rule.methods - IGNORED_METHODS]
    return response.get_json(), sorted(routes)


DOCUMENT, ROUTES = load_document()


def operations(document: dict = DOCUMENT) -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def resolve(item: dict, document: dict = DOCUMENT) -> dict:
    """``item``, or the component of ``document`` its ``$ref`` names."""
    if "$ref" not in item:
        return item
    _, _, kind, name = item["$ref"].split("/")
    return document["components"][kind][name]


# the document


def test_the_document_is_valid_openapi_3_0(client):
    response = client.get(OPENAPI)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"].startswith("3.0.")
    validate(document, cls=OpenAPIV30SpecValidator)


def test_every_api_route_is_documented_with_each_method():
    documented = sorted((path, method) for path, method, _ in operations())
    missing = sorted(set(ROUTES) - set(documented))
    assert not missing, f"routes of the url_map without an operation in the document: {missing}"
    extra = sorted(set(documented) - set(ROUTES))
    assert not extra, f"operations in the document without a route: {extra}"


# each operation's successes, as the views answer them
SUCCESS = {
    ("post", "plan/"): {"201"},
    ("delete", "plan/{plan_id}/"): {"200", "204"},  # retired, or deleted when never used
    ("post", "configuration/"): {"200", "201"},  # unchanged, or a new version
    ("post", "command/"): {"201"},
    ("get", "command/{command_id}/"): {"200", "201"},  # 201 + Location for ApiKey callers (omegaml 0.18)
    ("post", "command/{command_id}/cancel/"): {"202"},
    ("post", "command/{command_id}/retry/"): {"201"},
    ("post", f"{AUTH}signup/"): {"201"},
    ("post", f"{AUTH}reset/"): {"200", "202"},  # a password set, or a link asked for
}
# anyone may sign up and ask for a reset: no API key, so no 401
PUBLIC = {("post", f"{AUTH}signup/"), ("post", f"{AUTH}reset/")}


@pytest.mark.parametrize("path, method, operation", operations(), ids=[f"{m.upper()} {p}" for p, m, _ in operations()])
def test_every_operation_documents_401_and_its_successes(path, method, operation):
    responses = operation["responses"]
    if (method, path) in PUBLIC:
        assert "401" not in responses and operation["security"] == []
    else:
        assert "401" in responses, "every other operation needs an API key (or a session, for reads)"
    expected = SUCCESS.get((method, path.removeprefix(SERVICE)), {"200"})
    assert {code for code in responses if code.startswith("2")} == expected
    for code in expected:
        response = responses[code]
        if code != "204":
            assert "application/json" in response["content"], f"{code} has no JSON body"
        if code == "201":
            assert "Location" in response.get("headers", {}), f"{code} does not document its Location"
    for code, response in responses.items():
        if code.startswith(("4", "5")) or code == "default":
            schema = resolve(response)["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{code} is not the error format"
    assert operation.get("summary"), "every operation says what it does"


def test_the_command_detail_documents_200_for_sessions_and_201_with_location_for_the_client():
    responses = DOCUMENT["paths"][f"{SERVICE}command/{{command_id}}/"]["get"]["responses"]
    assert set(responses) >= {"200", "201"}
    assert "Location" in responses["201"]["headers"]
    assert "omegaml" in responses["201"]["description"]
    assert responses["200"]["content"] == responses["201"]["content"]


def test_every_error_response_is_the_error_format():
    error = DOCUMENT["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    for name, response in DOCUMENT["components"]["responses"].items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, name


# the docs page


class AssetLinks(HTMLParser):
    """The URLs of a page's scripts, stylesheets and icons, and its data-spec-url."""

    def __init__(self):
        super().__init__()
        self.urls, self.spec_urls = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and "src" in attrs:
            self.urls.append(attrs["src"])
        elif tag == "link" and "href" in attrs:
            self.urls.append(attrs["href"])
        if "data-spec-url" in attrs:
            self.spec_urls.append(attrs["data-spec-url"])


CONTENT_TYPES = {
    ".css": {"text/css"},
    ".js": {"text/javascript", "application/javascript"},
    ".png": {"image/png"},
}


@pytest.mark.parametrize("path", [DOCS, f"{DOCS}/"])
def test_the_docs_page_uses_local_assets_only(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = AssetLinks()
    page.feed(response.get_data(as_text=True))
    assert page.spec_urls == [OPENAPI]
    assert len(page.urls) >= 4, page.urls  # Swagger UI's css, its two scripts and ours, the icon
    remote = [url for url in page.urls if re.match(r"^(https?:)?//", url, re.IGNORECASE)]
    assert not remote, f"the docs page loads assets from elsewhere (no CDN): {remote}"
    assert "http://" not in response.get_data(as_text=True) and "https://" not in response.get_data(as_text=True)
    for url in page.urls:
        asset = client.get(url)
        data = asset.get_data()
        asset.close()
        assert asset.status_code == 200, url
        assert data, url
        suffix = re.search(r"\.\w+$", url.split("?")[0]).group()
        assert asset.mimetype in CONTENT_TYPES[suffix], (url, asset.mimetype)


@pytest.mark.parametrize(
    "name",
    ["nothing.js", "index.html", "swagger-ui.js.map", "../docs.py", "%2e%2e/__init__.py", "oauth2-redirect.html"],
)
def test_an_unknown_asset_is_a_404(client, name):
    response = client.get(f"{DOCS}/assets/{name}")
    response.close()
    assert response.status_code == 404


# the API against its document: schemathesis, in process


def seed() -> dict:
    """An admin; jane with a completed deployment, a failed command and two in flight; plans. Commits.

    Returns the roles' ``Authorization`` headers. The objects have ids 1 to 4, which the generated requests
    are steered to now and then (``steer_*``); the other ids are 404s.
    """
    admin = make_user(email="root@example.com", userid="root", admin=True)
    jane = make_user(email="jane@example.com", userid="jane")
    make_user(email="bob@example.com", userid="bob")
    headers = {}
    for role, user in (("admin", admin), ("user", jane)):
        _, key = accounts.create_api_key(user, "schemathesis")
        headers[role] = {"Authorization": f"ApiKey {user.userid}:{key}"}
    db.session.commit()
    make_plan(name="omegaml", one_per_user=True)
    make_plan(name="worker", title="Worker", one_per_user=False)
    make_plan(name="internal", offered=False)
    retired = make_plan(name="retired")
    retired.active, retired.offered, retired.retired_at = False, False, utcnow()
    db.session.commit()
    write_script("fail.sh", "echo going down\nexit 1\n")
    make_script_plan("flaky", "- script: fail.sh\n  phases: [install, update]", one_per_user=False)
    assert engine.execute(issue("omegaml", jane).id, worker="schemathesis") is Status.COMPLETED
    assert engine.execute(issue("flaky", jane).id, worker="schemathesis") is Status.FAILED
    issue("worker", jane)  # in flight: INITIATED, never run (cancel: 202)
    issue("worker", jane)  # a second deployment of the plan, in flight too
    return headers


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory, redis_server):
    """The seeded SQLite file, made once: each test gets a copy (seeding runs commands, a script among them)."""
    where = tmp_path_factory.mktemp("seeded")
    app = make_app(f"sqlite:///{where / 'seed.db'}", redis_server.url, where, SCRIPTS_DIR=where / "scripts")
    (where / "scripts").mkdir()
    with app.app_context():
        db.create_all()
        headers = seed()
        db.session.remove()
        db.engine.dispose()
    return where, headers


def close_redis(app) -> None:
    """Close the app's Redis client (the API's request log writes there): schemathesis keeps every test's app
    until the session ends, and an open pool collected then is an unclosed-socket warning (an error here)."""
    redis = app.extensions.get("omegaops.redis")
    if redis is not None:
        redis.close()


@pytest.fixture
def seeded(seeded_database, redis_url, tmp_path):
    """An app on a copy of the seeded database, in its context, and the roles' Authorization headers."""
    where, headers = seeded_database
    shutil.copy(where / "seed.db", tmp_path / "test.db")
    app = make_app(f"sqlite:///{tmp_path / 'test.db'}", redis_url, tmp_path, SCRIPTS_DIR=where / "scripts")
    with app.app_context():
        yield app, headers
        db.session.remove()
        db.engine.dispose()
    close_redis(app)


# steering: random names and ids are almost all 404s, so most well-typed ones become the seeded objects',
# to reach the answers behind them (201s, 409s, retired plans, ...); ill-typed values stay as they are
SEEDED_IDS = st.integers(1, 4)
PLAN_NAMES = st.sampled_from(["omegaml", "worker", "flaky", "internal", "retired", "fresh-plan"])
USER_NAMES = st.sampled_from(["jane", "root", "bob", "jane@example.com"])
# a registered email (a sign-up conflict, a reset link mailed), an unknown one, one that signs up once
EMAILS = st.sampled_from(["jane@example.com", "ghost@example.com", "new.user@example.com"])
QUALIFIERS = st.sampled_from(["default", "dev", "nosuch"])
# a few keys, so that POSTs repeat one: with the same body (a replay) or another (a 409)
IDEMPOTENCY_KEYS = st.sampled_from(["key-1", "key-2"])


def well_typed_id(value, minimum=0) -> bool:
    return type(value) is int and minimum <= value <= 2**31 - 1


def steer(original: dict, strategies: dict) -> st.SearchStrategy:
    """``original`` a quarter of the time, else with the values drawn from ``strategies``."""
    if not strategies:
        return st.just(original)
    steered = st.fixed_dictionaries(strategies).map(lambda new: {**original, **new})
    return st.integers(0, 3).flatmap(lambda n: steered if n else st.just(original))


def steer_path_parameters(context, path_parameters):
    values = path_parameters or {}
    return steer(values, {name: SEEDED_IDS for name, value in values.items() if well_typed_id(value)})


def steer_body(context, body):
    if not isinstance(body, dict):
        return st.just(body)
    strategies = {
        name: strategy
        for name, strategy in (("offering", PLAN_NAMES), ("plan", PLAN_NAMES), ("user", USER_NAMES), ("email", EMAILS))
        if isinstance(body.get(name), str)
    }
    if well_typed_id(body.get("deployment"), minimum=1):
        strategies["deployment"] = SEEDED_IDS
    return steer(body, strategies)


def steer_query(context, query):
    values = query or {}
    strategies = {
        name: strategy
        for name, strategy in (("qualifier", QUALIFIERS), ("user", USER_NAMES), ("email", EMAILS))
        if isinstance(values.get(name), str)
    }
    return steer(values, strategies) if strategies else st.just(query)


def steer_headers(context, headers):
    values = headers or {}
    key = values.get("Idempotency-Key")
    if not (isinstance(key, str) and re.fullmatch(r"[\x21-\x7e]{1,200}", key)):
        return st.just(headers)
    return steer(values, {"Idempotency-Key": IDEMPOTENCY_KEYS})


def load_schema(**config) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config.from_dict(config))
    schema.hooks.register_hook_with_name(steer_path_parameters, "flatmap_path_parameters")
    schema.hooks.register_hook_with_name(steer_body, "flatmap_body")
    schema.hooks.register_hook_with_name(steer_query, "flatmap_query")
    schema.hooks.register_hook_with_name(steer_headers, "flatmap_headers")
    return schema


ADMIN_SCHEMA = load_schema()
# the user's run: the coverage phase's cases are the admin's again; fuzzing finds what differs
USER_SCHEMA = load_schema(phases={"coverage": {"enabled": False}})
EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def call_and_check(case, app, headers):
    """Send ``case`` to ``app`` and hold the answer to the document.

    schemathesis's checks: no 5xx, the status, content type, headers and body as documented, invalid
    data refused, the API key enforced (it probes again without it). Not ``positive_data_acceptance``:
    the views validate more than a JSON schema says (plan names, the spec format), a 400 by design.
    """
    # the document was loaded before this test's app existed: the probes go to the app too
    case.operation.app = case.operation.schema.app = app
    response = case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])
    label = f"{case.method} {case.formatted_path}"
    repro = case.as_curl_command(headers=dict(response.request.headers))
    item = DOCUMENT["paths"][case.operation.path]
    if case.method.lower() not in item:  # schemathesis tries the methods the path has not
        if case.method == "OPTIONS":  # Flask answers it on every route, with Allow
            assert response.status_code == 200 and response.headers["allow"], (label, response.headers)
        else:
            assert response.status_code == 405, (label, response.status_code)
        return response
    # "default" (flask-smorest's) documents any error: the status must be one the operation names
    documented = item[case.method.lower()]["responses"]
    assert str(response.status_code) in documented, (
        f"{label} answered {response.status_code}, which the document does not list: {response.text[:300]}\n{repro}"
    )
    if response.request.headers.get("Authorization") == headers["Authorization"]:
        assert response.status_code != 401, f"{label}: the API key was refused: {response.text[:300]}\n{repro}"
    if response.status_code == 201:
        location = response.json()["resource_uri"]
        assert response.headers.get("location") == [location], (label, response.headers, repro)
    return response


@ADMIN_SCHEMA.parametrize()
@EXAMPLES
def test_the_api_answers_as_documented_to_an_admin(seeded, case):
    app, headers = seeded
    call_and_check(case, app, headers["admin"])


@USER_SCHEMA.parametrize()
@EXAMPLES
def test_the_api_answers_as_documented_to_a_user(seeded, case):
    app, headers = seeded
    call_and_check(case, app, headers["user"])


@pytest.fixture
def seeded_postgres(postgres_url, redis_url, tmp_path):
    """The seeded objects in a PostgreSQL database of the test's own."""
    (tmp_path / "scripts").mkdir()
    app = make_app(postgres_url, redis_url, tmp_path, SCRIPTS_DIR=tmp_path / "scripts")
    with app.app_context():
        db.create_all()
        headers = seed()
        yield app, headers
        db.session.remove()
        db.engine.dispose()
    close_redis(app)


# PostgreSQL refuses what SQLite takes (NUL in text, integers over 32 bits): fuzzing, as an admin, fewer examples
POSTGRES_SCHEMA = load_schema(phases={"coverage": {"enabled": False}})


@pytest.mark.postgres
@POSTGRES_SCHEMA.parametrize()
@settings(EXAMPLES, max_examples=10)
def test_the_api_answers_as_documented_on_postgresql(seeded_postgres, case):
    app, headers = seeded_postgres
    call_and_check(case, app, headers["admin"])


# answers the property run reaches rarely or not at all (a parameter the document does not declare):
# each must be an answer its operation documents
REFUSALS = [
    # deactivating a plan with live deployments (jane's omegaml)
    ("PATCH", "plan/1/", {"active": False}, None, 409),
    ("POST", "configuration/", {"plan": "retired"}, None, 409),
    # the same Idempotency-Key with another body (after FIRST_WITH_THE_KEY)
    ("POST", "configuration/", {"plan": "omegaml"}, "key-1", 409),
    ("POST", "command/", {"offering": "worker", "phase": "install"}, "key-1", 409),
    # unknown query parameters and format=xml are refused on every operation
    ("GET", "plan/1/?foo=1", None, None, 400),
    ("GET", "configuration/1/?foo=1", None, None, 400),
    ("DELETE", "configuration/1/?foo=1", None, None, 400),
    ("GET", "deployment/1/?format=xml", None, None, 400),
    ("GET", "command/1/?foo=1", None, None, 400),
    ("POST", "command/1/cancel/?foo=1", None, None, 400),
    ("POST", "command/2/retry/?foo=1", None, None, 400),
    ("GET", "task/1/?foo=1", None, None, 400),
    ("GET", "plan/?foo=1", None, None, 400),
    ("PATCH", "plan/1/?foo=1", {}, None, 400),
    ("POST", "command/?foo=1", {"offering": "worker", "phase": "install"}, None, 400),
]
FIRST_WITH_THE_KEY = {
    "configuration/": {"plan": "worker"},
    "command/": {"offering": "worker", "user": "bob", "phase": "install"},
}


def documented_responses(method: str, path: str) -> dict:
    """The responses of the operation whose path template matches ``path``."""
    for template, item in DOCUMENT["paths"].items():
        if re.fullmatch(re.sub(r"\\{\w+\\}", r"\\d+", re.escape(template)), path):
            return item[method.lower()]["responses"]
    raise AssertionError(f"no operation for {method} {path}")


@pytest.mark.parametrize(
    "method, path, body, key, status", REFUSALS, ids=[f"{m} {p} {b} {s}" for m, p, b, _, s in REFUSALS]
)
def test_refusals_are_documented(seeded, method, path, body, key, status):
    app, headers = seeded
    client = app.test_client()
    request_headers = dict(headers["admin"])
    if key is not None:
        request_headers["Idempotency-Key"] = key
        response = client.post(SERVICE + path, json=FIRST_WITH_THE_KEY[path], headers=request_headers)
        assert response.status_code in (200, 201), response.data[:300]
    response = client.open(SERVICE + path, method=method, json=body, headers=request_headers)
    assert response.status_code == status, response.data[:300]
    assert set(response.get_json()) == {"error", "message"}
    operation = f"{method} {urlsplit(path).path}"
    assert str(status) in documented_responses(method, SERVICE + urlsplit(path).path), (
        f"{operation} answers {status} ({response.get_json()['message']}), which its operation does not document"
    )
