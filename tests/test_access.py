"""Access to every route of the app, as anonymous / user / other user / admin.

Each (rule, method) of ``app.url_map`` must match exactly one entry of ``ACCESS``, which says the
status each role gets; a new route fails ``test_every_route_is_in_the_access_map`` until it is added.
"Other" is a second ordinary user: the objects in a URL (``<user_id>``, ``<key_id>``, a token) belong
to "user", so "other" shows what a user gets for someone else's. Pages are requested with a logged-in
session; API paths with the ``Authorization: ApiKey`` header. Bodies are empty (``{}`` for the API):
this is about who gets in, not about what is done (each resource's own tests do that).
"""

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from app import accounts, create_app
from app.extensions import db
from app.ops import engine
from config import TestConfig

from .engine_helpers import issue
from .factories import PASSWORD, make_plan, make_user

ROLES = ("anonymous", "user", "other", "admin")
IGNORED_METHODS = {"HEAD", "OPTIONS"}
# Flask's and Flask-Admin's static files are public and tested elsewhere
SKIPPED_ENDPOINTS = {"static", "admin.static"}

# (status, the path the Location header must have, as a regular expression)
LOGIN = (302, "/login")  # the login page (with ?next=)
HOME = (302, "/")  # logged in: no need to be here (sign-up, login)
ACCOUNT = (302, "/account")
ADMIN_LIST = (302, "/admin/[a-z]+/")  # the console's list of the same model
ADMIN_DETAILS = (302, "/admin/[a-z]+/details/")  # back to the object's console page, with a message
COMMAND = (302, r"/commands/\d+")  # a command's progress page


@dataclass
class Access:
    """Who gets what on the routes whose rule matches ``pattern`` (whole rule) with one of ``methods``."""

    pattern: str
    methods: set[str]
    status: dict  # role -> status, or (status, Location path regex)
    query: dict = field(default_factory=dict)  # role -> query string

    def matches(self, rule: str, method: str) -> bool:
        return method in self.methods and re.fullmatch(self.pattern, rule) is not None


def every_role(status):
    return dict.fromkeys(ROLES, status)


def logged_in(anonymous, others):
    return {"anonymous": anonymous, "user": others, "other": others, "admin": others}


def page_owned(status):
    """A page about user's object: someone else's is a 404; admins see everyone's (the console links there)."""
    return {"anonymous": LOGIN, "user": status, "other": 404, "admin": status}


def admin_only(admin):
    """The console: anonymous visitors go to the login page; users get a 403 page that says why."""
    return {"anonymous": LOGIN, "user": 403, "other": 403, "admin": admin}


def api_admin_only(admin):
    return {"anonymous": 401, "user": 403, "other": 403, "admin": admin}


def owned(status):
    """An API object of user's: someone else's is a 404, as if it did not exist; admins see everyone's."""
    return {"anonymous": 401, "user": status, "other": 404, "admin": status}


SERVICE = "/admin/api/v2/service"
ADMIN_MODELS = (
    r"/admin/(user|serviceplan|serviceconfiguration|servicedeployment|servicecommand|servicetask"
    r"|metric|usageevent|usagedaily|periodicrun|invoice|payment)"
)
EDITABLE_MODELS = r"/admin/(user|serviceplan|metric)"
READ_ONLY_MODELS = (
    r"/admin/(serviceconfiguration|servicedeployment|servicecommand|servicetask|usageevent|usagedaily|periodicrun"
    r"|invoice|payment)"
)

ACCESS = [
    # pages
    Access("/", {"GET"}, logged_in(200, (302, "/services"))),  # visitors see the catalog
    # self-service: user owns the deployment and the (completed) command of build_world(service=True)
    Access("/services", {"GET"}, logged_in(LOGIN, 200)),
    Access("/usage", {"GET"}, logged_in(LOGIN, 200)),
    Access("/invoices", {"GET"}, logged_in(LOGIN, 200)),
    Access("/billing/webhooks/stripe", {"POST"}, every_role(404)),  # no webhook secret in the tests' config
    Access("/invoices/<int:invoice_id>.pdf", {"GET"}, logged_in(LOGIN, 404)),  # no invoice in this world
    # empty params: user has the omegaml deployment already (one per user), the others get theirs installed
    Access(
        "/services/<plan_name>/install",
        {"POST"},
        {"anonymous": LOGIN, "user": 409, "other": COMMAND, "admin": COMMAND},
    ),
    Access("/services/deployment/<int:deployment_id>", {"GET"}, page_owned(200)),
    Access("/services/deployment/<int:deployment_id>/update", {"POST"}, page_owned(COMMAND)),  # empty params
    Access("/services/deployment/<int:deployment_id>/scale", {"POST"}, page_owned(400)),  # no size
    Access("/services/deployment/<int:deployment_id>/uninstall", {"GET"}, page_owned(200)),
    Access("/services/deployment/<int:deployment_id>/uninstall", {"POST"}, page_owned((302, r"/commands/\d+"))),
    Access("/commands/<int:command_id>", {"GET"}, page_owned(200)),
    Access("/commands/<int:command_id>/progress", {"GET"}, owned(200)),  # JSON: 401 to visitors
    # completed: retry is refused with a message, cancel says it is finished; both go back to the command
    Access("/commands/<int:command_id>/(retry|cancel)", {"POST"}, page_owned((302, r"/commands/\d+"))),
    Access("/healthz", {"GET"}, every_role(200)),
    Access("/login", {"GET"}, logged_in(200, HOME)),
    Access("/login", {"POST"}, logged_in(200, HOME)),  # an empty form is shown again
    Access("/logout", {"POST"}, logged_in(LOGIN, LOGIN)),
    Access("/signup", {"GET", "POST"}, logged_in(200, HOME)),
    Access("/confirm/<token>", {"GET"}, logged_in(LOGIN, HOME)),  # the token is user's: it confirms for anyone
    Access("/reset", {"GET", "POST"}, every_role(200)),
    Access("/reset/<token>", {"GET", "POST"}, every_role(200)),
    Access("/favicon.ico", {"GET"}, every_role(200)),
    Access("/account", {"GET"}, logged_in(LOGIN, 200)),
    Access("/account/(profile|password|keys)", {"POST"}, logged_in(LOGIN, 200)),  # the form, with its errors
    # someone else's key looks like no key, to admins too: the account page is one's own
    Access(
        "/account/keys/<int:key_id>/revoke",
        {"POST"},
        {"anonymous": LOGIN, "user": ACCOUNT, "other": 404, "admin": 404},
    ),
    # the admin console: admins only; anonymous visitors go to the login page, users home
    Access("/admin/", {"GET"}, admin_only(200)),
    Access(f"{ADMIN_MODELS}/", {"GET"}, admin_only(200)),
    Access(f"{EDITABLE_MODELS}/new/", {"GET", "POST"}, admin_only(200)),
    Access(f"{READ_ONLY_MODELS}/new/", {"GET", "POST"}, admin_only(ADMIN_LIST)),
    # without ?id= these send admins back to the list
    Access(f"{ADMIN_MODELS}/(edit|details)/", {"GET"}, admin_only(ADMIN_LIST)),
    Access(f"{ADMIN_MODELS}/edit/", {"POST"}, admin_only(ADMIN_LIST)),
    Access(f"{ADMIN_MODELS}/(delete|action)/", {"POST"}, admin_only(ADMIN_LIST)),
    Access(f"{ADMIN_MODELS}/export/<export_type>/", {"GET"}, admin_only(ADMIN_LIST)),
    # the console's own pages and actions (an empty form changes nothing, with a message)
    Access("/admin/operations/", {"GET"}, admin_only(200)),
    Access("/admin/operations/failed/<job_id>/<verb>", {"POST"}, admin_only((302, "/admin/operations/"))),
    Access(
        "/admin/servicecommand/<int:command_id>/(cancel|retry)", {"POST"}, admin_only(ADMIN_DETAILS)
    ),  # completed: refused with a message
    Access("/admin/servicedeployment/<int:deployment_id>/command", {"POST"}, admin_only(ADMIN_DETAILS)),
    Access("/admin/serviceplan/<int:plan_id>/(export|spec|versions)", {"GET"}, admin_only(200)),
    Access("/admin/serviceplan/<int:plan_id>/retire", {"POST"}, admin_only(ADMIN_DETAILS)),  # no form: refused
    Access("/admin/serviceplan/<int:plan_id>/spec", {"POST"}, admin_only(200)),  # an empty spec: the error
    Access("/admin/serviceplan/import", {"GET", "POST"}, admin_only(200)),
    Access("/admin/servicetask/<int:task_id>/log", {"GET"}, admin_only(200)),
    # no invoice in this world: the console's 404
    Access("/admin/invoice/<int:invoice_id>/(finalize|close/<status>|payment)", {"POST"}, admin_only(404)),
    Access(
        "/admin/user/<int:user_id>/(<field>/<switch>|keys/<int:key_id>/revoke|resend-confirmation)",
        {"POST"},
        admin_only(ADMIN_DETAILS),
    ),
    # no view has ajax lookups or inline editing: Flask-Admin answers 404, to admins only
    Access(f"{ADMIN_MODELS}/ajax/lookup/", {"GET"}, admin_only(404)),
    Access(f"{ADMIN_MODELS}/ajax/update/", {"POST"}, admin_only(404)),
    # the omegaml client's configuration: nobody here has an omegaml deployment; other asks for user's
    Access(
        "/api/v1/config/",
        {"GET"},
        {"anonymous": 401, "user": 404, "other": 403, "admin": 404},
        query={"other": "user={user}", "admin": "user={user}"},
    ),
    # usage events come from admins and service accounts: {} has no events, a 400 once allowed in
    Access("/admin/api/v2/usage/event/", {"POST"}, api_admin_only(400)),
    # sign-up and reset are open to anyone: an empty body is a 400, never a 401
    Access("/admin/api/v2/auth/(signup|reset)/", {"POST"}, every_role(400)),
    Access("/admin/api/v2/auth/user/", {"GET", "PATCH"}, logged_in(401, 200)),  # one's own record
    Access(
        "/admin/api/v2/auth/user/<int:user_id>/",
        {"GET", "PATCH"},
        {"anonymous": 401, "user": 200, "other": 404, "admin": 200},
    ),
    # the service API's document and its docs page: public, like any API documentation
    Access("/admin/api/v2/openapi.json", {"GET"}, every_role(200)),
    Access("/admin/api/v2/docs", {"GET"}, every_role(200)),
    Access("/admin/api/v2/docs/assets/<path:name>", {"GET"}, every_role(200)),
    # the service API: user has an offered plan's deployment, its completed command and task (build_world)
    Access(f"{SERVICE}/plan/", {"GET"}, logged_in(401, 200)),  # the catalog for users, every plan for admins
    Access(f"{SERVICE}/plan/<int:plan_id>/", {"GET"}, logged_in(401, 200)),  # an offered plan
    Access(f"{SERVICE}/plan/<int:plan_id>/", {"PATCH"}, api_admin_only(200)),  # {} changes nothing
    Access(f"{SERVICE}/plan/<int:plan_id>/", {"DELETE"}, api_admin_only(409)),  # user's deployment is live
    # admins only: a user is refused before the body is read ({} has no plan: a 400 for admins)
    Access(f"{SERVICE}/(plan|configuration)/", {"POST"}, api_admin_only(400)),
    Access(f"{SERVICE}/configuration/", {"GET"}, api_admin_only(200)),
    Access(f"{SERVICE}/configuration/<int:configuration_id>/", {"GET", "DELETE"}, api_admin_only(200)),
    Access(f"{SERVICE}/(deployment|command|task)/", {"GET"}, logged_in(401, 200)),  # one's own; admins all
    Access(f"{SERVICE}/command/", {"POST"}, logged_in(401, 400)),  # {} names no offering
    Access(f"{SERVICE}/(deployment|task)/<int:(deployment|task)_id>/", {"GET"}, owned(200)),
    # ApiKey callers get 201 + Location on a command's detail: the omegaml 0.18 client needs it
    Access(f"{SERVICE}/command/<int:command_id>/", {"GET"}, owned((201, rf"{SERVICE}/command/\d+/"))),
    Access(f"{SERVICE}/command/<int:command_id>/(cancel|retry)/", {"POST"}, owned(409)),  # completed already
]


@dataclass
class World:
    users: dict  # role -> User (no entry for anonymous)
    keys: dict  # role -> API key
    key_id: int  # one of user's API keys
    confirm_token: str  # user's
    reset_token: str  # user's
    ids: dict = field(default_factory=dict)  # the service objects, user's: <plan_id>, <command_id>, ...


def build_service(user) -> dict:
    """An offered plan and user's deployment of it, installed by a completed command with a task."""
    plan = make_plan()
    command = issue(plan.name, user)
    engine.execute(command.id, worker="access test")
    db.session.refresh(command)
    return {
        "plan_id": plan.id,
        "plan_name": plan.name,
        "configuration_id": command.configuration_id,
        "deployment_id": command.deployment_id,
        "command_id": command.id,
        "task_id": command.tasks[0].id,
    }


def build_world(service: bool = False) -> World:
    users = {
        "user": make_user(email="user@example.com", userid="user"),
        "other": make_user(email="other@example.com", userid="other"),
        "admin": make_user(email="admin@example.com", userid="admin", admin=True),
    }
    keys = {}
    for role, user in users.items():
        api_key, keys[role] = accounts.create_api_key(user, "access test")
    db.session.commit()
    user = users["user"]
    key_id = user.api_keys[0].id
    ids = build_service(user) if service else {}
    return World(users, keys, key_id, accounts.make_confirm_token(user), accounts.make_reset_token(user), ids)


def route_keys():
    """Every (rule, method) of the app, as the access map must cover them."""
    app = create_app(TestConfig)
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIPPED_ENDPOINTS:
            continue
        for method in sorted(rule.methods - IGNORED_METHODS):
            found.append((rule.rule, method))
    return sorted(set(found))


ROUTES = route_keys()


def access_for(rule: str, method: str) -> list[Access]:
    return [entry for entry in ACCESS if entry.matches(rule, method)]


def test_every_route_is_in_the_access_map():
    missing = [f"{method} {rule}" for rule, method in ROUTES if not access_for(rule, method)]
    assert not missing, "add these routes to ACCESS in tests/test_access.py:\n" + "\n".join(missing)
    ambiguous = [f"{method} {rule}" for rule, method in ROUTES if len(access_for(rule, method)) > 1]
    assert not ambiguous, "routes matched by more than one ACCESS entry:\n" + "\n".join(ambiguous)


def test_every_access_entry_matches_a_route():
    stale = [entry.pattern for entry in ACCESS if not any(entry.matches(rule, method) for rule, method in ROUTES)]
    assert not stale, f"ACCESS entries for routes that no longer exist: {stale}"


def build_path(rule: str, world: World, role: str, access: Access) -> str:
    values = {
        "user_id": world.users["user"].id,
        "key_id": world.key_id,
        "export_type": "csv",
        "job_id": "nosuchjob",  # an RQ job that does not exist
        "verb": "delete",
        "field": "active",
        "switch": "on",
        "invoice_id": 1,
        "status": "void",
        "name": "swagger-ui.css",  # an asset of the API's docs page
        **world.ids,
    }
    # <name> or <converter:name>: the value we have for it, else {name} for the tokens below
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), "{" + m.group(1) + "}")), rule)
    # tokens depend on the route: a confirmation link, a reset link
    path = path.replace("{token}", world.confirm_token if rule.startswith("/confirm/") else world.reset_token)
    query = access.query.get(role)
    if query:
        path += "?" + query.format(user=world.users["user"].userid)
    return path


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("rule, method", ROUTES, ids=[f"{m} {r}" for r, m in ROUTES])
def test_access(app, client, role, rule, method):
    [access] = access_for(rule, method) or pytest.fail(f"{method} {rule} is not in ACCESS")
    world = build_world(service=rule.startswith((SERVICE, "/services/", "/commands/", "/admin/service")))
    headers = {}
    if role != "anonymous":
        user = world.users[role]
        response = client.post("/login", data={"email": user.email, "password": PASSWORD})
        assert response.status_code == 302, f"{role} could not log in"
        headers["Authorization"] = f"ApiKey {user.userid}:{world.keys[role]}"
    path = build_path(rule, world, role, access)
    is_api = rule.startswith(("/api/", "/admin/api/"))
    kwargs = {"headers": headers if is_api else {}}
    if is_api and method in ("POST", "PATCH", "PUT"):
        kwargs["json"] = {}
    response = client.open(path, method=method, **kwargs)
    response.get_data()  # read and close now: a file (send_file) left open is a ResourceWarning
    response.close()
    expected = access.status[role]
    status, location = expected if isinstance(expected, tuple) else (expected, None)
    assert response.status_code == status, f"{method} {path} as {role}: {response.status_code}, expected {status}"
    if location is not None:
        target = urlsplit(response.headers["Location"]).path
        assert re.fullmatch(location, target), (
            f"{method} {path} as {role}: Location {response.headers['Location']}, expected {location}"
        )
    if is_api and status >= 400:
        assert response.mimetype == "application/json" and set(response.get_json()) == {"error", "message"}
