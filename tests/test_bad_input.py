"""Bad input gets a clear error, never a 500 nor a traceback: JSON nested too deeply, control characters in
form fields (pages and console), page/sort/filter values beyond any range in the console, YAML bombs.

The routes are found from the app (its url_map, the admin object), so a new one is covered the day it is added.
"""

import json
import logging
import re
import tracemalloc
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from flask_admin.contrib.sqla import ModelView
from sqlalchemy import func, select

from app.api.parsing import MAX_DEPTH
from app.extensions import db
from app.models import Metric, ServicePlan, User
from app.ops.yamlsafe import MAX_NODES, YamlError, load_yaml

from .api_helpers import assert_error, with_key
from .engine_helpers import issue
from .factories import PASSWORD, make_plan, make_user
from .test_console_forms import form_fields
from .test_invoices import signed

JSON_METHODS = {"POST", "PUT", "PATCH"}
JSON_PREFIXES = ("/admin/api/v2/", "/billing/webhooks/")
# 500 to 800 levels passed json.loads and overflowed the stack in has_nul (a 500 and a 2,000-line traceback)
DEPTHS = (MAX_DEPTH + 1, 500, 800, 5_000, 100_000)


def json_routes(app):
    """Every (rule, method) of the app that may take a JSON body: POST, PUT and PATCH of the API and webhooks."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(JSON_PREFIXES):
            for method in sorted(rule.methods & JSON_METHODS):
                yield rule, method


def fill(rule, ids: dict) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids.get(m.group(1), 1)), rule.rule)


def nested(depth: int, kind: str) -> bytes:
    """A JSON object ``depth`` levels deep (the top-level object is level 1), through lists or objects."""
    if kind == "list":
        return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    return b'{"a": ' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def tracebacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# 1. JSON nested deeper than the limit


def test_every_json_route_refuses_json_nested_deeper_than_the_limit_with_a_400(any_app, caplog, subtests):
    app = any_app
    app.config.update(
        STRIPE_WEBHOOK_SECRET="whsec_test", SIGNUP_RATE_LIMIT="1000/minute", RESET_RATE_LIMIT="1000/minute"
    )
    admin, headers = with_key(email="root@example.com", userid="root", admin=True)
    plan = make_plan()
    command = issue(plan.name, admin)
    ids = {"user_id": admin.id, "plan_id": plan.id, "command_id": command.id}
    client = app.test_client()
    routes = list(json_routes(app))
    assert len(routes) >= 10, routes  # sign-up, reset, users, usage, plans, configurations, commands, the webhook
    caplog.set_level(logging.INFO)
    tried = 0
    for rule, method in routes:
        path = fill(rule, ids)

        def send(body: bytes, path=path, method=method):
            if path.startswith("/billing/"):  # a signed event, nested in its object
                body = b'{"id": "evt_1", "type": "customer.created", "data": {"object": ' + body + b"}}"
                return client.post(path, data=body, headers=signed(body.decode(), "whsec_test"))
            return client.open(path, method=method, data=body, content_type="application/json", headers=headers)

        send(b"{}")
        shallow = send(b"{}").status_code  # the second time: a cancel has cancelled already
        for depth in DEPTHS:
            for kind in ("list", "object"):
                with subtests.test(f"{method} {path} {depth} {kind}"):
                    response = send(nested(depth, kind))
                    tried += 1
                    if response.status_code == shallow != 400:  # a route that reads no body (cancel, retry)
                        continue
                    assert_error(response, 400, "bad_request", "nested", str(MAX_DEPTH))
    assert not tracebacks(caplog)
    assert tried == len(routes) * len(DEPTHS) * 2
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_the_anonymous_password_reset_refuses_deep_json_without_a_traceback(app, client, caplog):
    # the route that reached the RecursionError without any credentials
    caplog.set_level(logging.INFO)
    for depth in (600, 800):
        response = client.post(
            "/admin/api/v2/auth/reset/", data=nested(depth, "list"), content_type="application/json"
        )
        assert_error(response, 400, "bad_request", "nested")
    assert not tracebacks(caplog)


def test_json_at_the_limit_is_read(app, client):
    # the depth limit refuses nothing a real body has: at the limit, the field's own rule answers
    admin, headers = with_key(email="root@example.com", userid="root", admin=True)
    response = client.patch(
        "/admin/api/v2/auth/user/",
        data=nested(MAX_DEPTH, "object").replace(b'"a"', b'"company"', 1),
        headers=headers,
        content_type="application/json",
    )
    assert_error(response, 400, "bad_request", "company", "string")
    response = client.post(
        "/admin/api/v2/usage/event/",
        data=json.dumps({"events": [{"id": "x", "data": {"a": "[" * 10_000}}]}),
        headers=headers,
        content_type="application/json",
    )
    assert response.status_code == 200, response.get_json()  # brackets in strings are text, not nesting


def test_has_nul_walks_any_depth_without_recursing():
    from app.api.parsing import has_nul

    deep = current = []
    for _ in range(100_000):
        current.append([])
        current = current[0]
    current.append("x\x00")
    assert has_nul(deep)
    current[0] = "x"
    assert not has_nul(deep) and has_nul({"k\x00": 1}) and not has_nul({"k": [1, 2.0, None, True]})


# 2. NUL and control characters in form fields: a message beside the field, pages and console alike

SINGLE_LINE_JUNK = ("a\x00b", "a\x01b", "a\x1bb", "a\x7fb", "a\x9bb", "a\tb", "a\nb", "a\rb")
MULTI_LINE_JUNK = ("a\x00b", "a\x01b", "a\x1bb", "a\x7fb", "a\x0bb", "a\x0cb")
CONTROL_MESSAGE = "control characters"


def test_the_base_form_refuses_control_characters_in_every_text_field(app):
    from werkzeug.datastructures import MultiDict
    from wtforms import IntegerField, PasswordField, StringField, TextAreaField

    from app.views.forms import Form

    class Sample(Form):
        name = StringField()
        secret = PasswordField()
        address = TextAreaField()
        count = IntegerField()

    def errors(**data):
        with app.test_request_context(method="POST"):
            form = Sample(formdata=MultiDict(data))
            form.validate()
            return {name: errs for name, errs in form.errors.items()}

    for junk in SINGLE_LINE_JUNK:
        for field in ("name", "secret"):
            found = errors(**{field: junk})
            assert CONTROL_MESSAGE in " ".join(found.get(field, [])), (field, junk, found)
    for junk in MULTI_LINE_JUNK:
        assert CONTROL_MESSAGE in " ".join(errors(address=junk).get("address", [])), junk
    assert errors(name="Zoë Ünïcode ✓", secret="p a s s", address="line 1\r\nline\t2\n", count="3") == {}
    assert CONTROL_MESSAGE in " ".join(errors(count="1\x00")["count"])  # any field, not only text


def error_beside(html: str, name: str, message: str) -> bool:
    """Whether ``message`` is shown in the form group of the field named ``name`` (before the next field)."""
    control = re.search(rf'<(input|textarea|select)\b[^>]*\sname="{re.escape(name)}"', html)
    if control is None:
        return False
    start = control.start()
    end = html.find('class="form-group', start)
    return message in html[start : end if end > 0 else len(html)]


@pytest.mark.parametrize(
    "path, fields, field",
    [
        ("/signup", {"email": "ada@example.com", "last_name": "Lovelace", "password": "x" * 12}, "first_name"),
        ("/signup", {"first_name": "Ada", "last_name": "Lovelace", "password": "x" * 12}, "email"),
        ("/signup", {"first_name": "Ada", "email": "ada@example.com", "last_name": "Lovelace"}, "password"),
        ("/login", {"password": PASSWORD}, "email"),
        ("/login", {"email": "ada@example.com"}, "password"),
        ("/reset", {}, "email"),
    ],
)
def test_page_forms_show_a_control_character_beside_the_field(app, client, path, fields, field):
    make_user(email="ada@example.com")
    for junk in ("ada\x00@example.com", "ada\x07@example.com", "ada\t@example.com"):
        data = {**fields, field: junk, "terms": "y"}
        if path == "/signup":
            data["password2"] = data.get("password", "")
        response = client.post(path, data=data)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, (path, field, response.status_code)
        assert error_beside(html, field, CONTROL_MESSAGE), html[:3000]
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_the_reset_form_shows_a_control_character_beside_the_field(app, client):
    from app import accounts

    user = make_user(email="ada@example.com")
    token = accounts.make_reset_token(user)
    response = client.post(f"/reset/{token}", data={"password": "new\x00password!", "password2": "new\x00password!"})
    assert response.status_code == 200 and error_beside(response.get_data(as_text=True), "password", CONTROL_MESSAGE)
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(PASSWORD)


def console_views(app, can):
    (admin,) = app.extensions["admin"]
    return [view for view in admin._views if isinstance(view, ModelView) and getattr(view, can)]


def text_fields(app, view, form_factory) -> dict[str, bool]:
    """The view's form's text fields (name -> multi-line), from the form class Flask-Admin builds."""
    from wtforms import StringField, TextAreaField

    with app.test_request_context():
        form = form_factory(view)
        return {
            field.name: isinstance(field, TextAreaField)
            for field in form
            if isinstance(field, StringField) and field.type not in ("CSRFTokenField", "HiddenField")
        }


def seed_console(client):
    """A row of each editable model, and an admin logged in on ``client``."""
    admin = make_user(email="root@example.com", userid="root", admin=True, company="Root Inc")
    plan = make_plan("worker", title="Workers", one_per_user=False)
    db.session.add(Metric(plan=plan, name="requests", kind="api", action="request", aggregation="count", unit="req"))
    db.session.commit()
    assert client.post("/login", data={"email": admin.email, "password": PASSWORD}).status_code == 302
    return admin


@pytest.fixture
def console(app, client):
    return seed_console(client)


@pytest.fixture
def any_console(any_app):
    """The console on SQLite, then on PostgreSQL (which refuses a NUL in a query): a logged-in admin's client."""
    client = any_app.test_client()
    seed_console(client)
    return client


def counts() -> dict:
    return {m.__name__: db.session.scalar(select(func.count()).select_from(m)) for m in (User, ServicePlan, Metric)}


def test_every_console_create_form_refuses_control_characters_beside_the_field(any_app, any_console, subtests):
    app, client = any_app, any_console
    tried = 0
    before = counts()
    for view in console_views(app, "can_create"):
        url = f"{view.url}/new/"
        page = client.get(url)
        assert page.status_code == 200, url
        defaults = form_fields(page.get_data(as_text=True)).fields
        for name, multi_line in text_fields(app, view, lambda v: v.create_form()).items():
            for junk in MULTI_LINE_JUNK if multi_line else SINGLE_LINE_JUNK:
                with subtests.test(f"{url} {name} {junk!r}"):
                    response = client.post(url, data={**defaults, name: f"valid{junk}"})
                    tried += 1
                    assert response.status_code == 200, response.status_code
                    assert error_beside(response.get_data(as_text=True), name, CONTROL_MESSAGE)
    assert tried >= 30, tried
    assert counts() == before


def test_every_console_edit_form_refuses_control_characters_and_changes_nothing(any_app, any_console, subtests):
    app, client = any_app, any_console
    tried = 0
    for view in console_views(app, "can_edit"):
        rows = db.session.scalars(select(view.model).order_by(view.model.id)).all()
        for row in rows:
            url = f"{view.url}/edit/?id={row.id}"
            fields = form_fields(client.get(url).get_data(as_text=True)).fields
            stored = {c.key: getattr(row, c.key) for c in view.model.__table__.columns}
            for name, multi_line in text_fields(app, view, lambda v, row=row: v.edit_form(row)).items():
                junk = "x\x00y" if multi_line else "x\ny"
                with subtests.test(f"{url} {name}"):
                    response = client.post(url, data={**fields, name: junk})
                    tried += 1
                    assert response.status_code == 200, response.status_code
                    assert error_beside(response.get_data(as_text=True), name, CONTROL_MESSAGE)
                    db.session.expire_all()
                    reloaded = db.session.get(view.model, row.id)
                    assert {c.key: getattr(reloaded, c.key) for c in view.model.__table__.columns} == stored
    assert tried >= 10, tried


def test_multi_line_console_fields_keep_their_line_breaks(app, client, console):
    plan = ServicePlan.by_name("worker")
    url = f"/admin/serviceplan/edit/?id={plan.id}"
    fields = form_fields(client.get(url).get_data(as_text=True)).fields
    response = client.post(url, data={**fields, "description": "line 1\r\n\tline 2"})
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    db.session.expire_all()
    assert db.session.get(ServicePlan, plan.id).description.splitlines() == ["line 1", "\tline 2"]


def test_the_profile_form_refuses_a_nul_beside_the_field(app, client, login):
    user = make_user(email="ada@example.com")
    login(user)
    response = client.post(
        "/account/profile", data={"first_name": "Ada\x00", "last_name": "Lovelace", "company": "", "country": ""}
    )
    assert error_beside(response.get_data(as_text=True), "first_name", CONTROL_MESSAGE)


def test_the_install_form_refuses_a_nul_param_beside_the_field(app, client, login):
    # a NUL param ended a deployment FAILED ("embedded null byte"): now the form refuses it, nothing is issued
    from app.models import ServiceCommand

    plan = make_plan("worker", title="Workers", one_per_user=False)
    login(make_user(email="ada@example.com"))
    prefix = f"install-{plan.id}-"
    page = client.get("/services").get_data(as_text=True)
    names = sorted(set(re.findall(rf'<(?:input|textarea)\b[^>]*\sname="({re.escape(prefix)}[^"]+)"', page)))
    assert names, page[:3000]
    for name in names:
        response = client.post(f"/services/{plan.name}/install", data={name: "1\x00"})
        assert response.status_code == 400, (name, response.status_code)
        assert error_beside(response.get_data(as_text=True), name, CONTROL_MESSAGE), name
    assert db.session.scalar(select(func.count()).select_from(ServiceCommand)) == 0


# 3. console query values beyond any range: a list page with a message, or a 4xx; never a 500

HUGE = ("99999999999999999999", str(2**31), str(2**63), str(-(2**63) - 1), "-1", "1e309", "nan", "x", "\x00", "")


def test_console_list_pages_answer_any_page_sort_and_filter_value(any_app, subtests):
    app = any_app
    admin = make_user(email="root@example.com", userid="root", admin=True)
    make_plan("worker", title="Workers", one_per_user=False)
    client = app.test_client()
    assert client.post("/login", data={"email": admin.email, "password": PASSWORD}).status_code == 302
    tried, failures = 0, []
    for view in console_views(app, "can_view_details"):
        queries = [{key: value} for key in ("page", "page_size", "sort", "desc", "search") for value in HUGE]
        queries += [{f"flt0_{index}": value} for index in range(len(view._filters or [])) for value in HUGE]
        queries += [{f"flt0_{index}": f"1,{HUGE[0]}"} for index in range(len(view._filters or []))]
        queries.append({"page": HUGE[0], "sort": HUGE[0], "desc": "1", "search": "x", "flt0_0": HUGE[0]})
        for query in queries:
            url = f"{view.url}/?{urlencode(query)}"
            response = client.get(url)
            tried += 1
            if response.status_code >= 500:
                failures.append(f"{url}: {response.status_code}")
    assert not failures, f"{len(failures)} of {tried}:\n" + "\n".join(failures)
    assert tried > 500, tried


def test_a_page_beyond_the_last_shows_the_list_with_a_message(app, client, console):
    response = client.get("/admin/user/?page=99999999999999999999")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "root@example.com" in html and "no page" in html.lower()


# 4. YAML: nesting and alias bombs are refused with a message before the big object is built


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A plan whose ``defaults`` expand to width**(levels - 1) strings, in under 500 bytes of text."""
    lines = ["- plan: bomb", "  defaults:", '    l0: &l0 ["lol lol lol"]']
    for n in range(1, levels):
        lines.append(f"    l{n}: &l{n} [{','.join([f'*l{n - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def nested_yaml(depth: int) -> str:
    return "- plan: deep\n  defaults:\n    a: " + "[" * depth + "]" * depth + "\n"


def test_load_yaml_reads_what_safe_load_reads():
    text = "- plan: svc\n  defaults: {a: [1, 2.5, true, null, 'x'], b: &b {c: 1}, d: *b, <<: {e: 2}}\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml("") is None
    assert load_yaml(nested_yaml(60))[0]["defaults"]["a"] is not None  # 63 levels: within the bound
    for path in sorted(Path(__file__).parent.parent.glob("services/*.yaml")):
        spec = path.read_text(encoding="utf-8")
        assert load_yaml(spec) == yaml.safe_load(spec), path
    for bad in ("a: [", "a: b: c", "- \x00", "&a [*b]"):
        with pytest.raises(YamlError) as raised:
            load_yaml(bad)
        assert "\n" not in str(raised.value) and isinstance(raised.value, yaml.YAMLError), str(raised.value)


@pytest.mark.parametrize("text", [nested_yaml(5_000), nested_yaml(100), alias_bomb(), alias_bomb(levels=7)])
def test_load_yaml_refuses_deep_nesting_and_alias_bombs_with_a_one_line_message(text):
    with pytest.raises(YamlError) as raised:
        load_yaml(text)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert "\n" not in message and len(message) < 200 and ("nested" in message or "expands" in message), message


def test_an_alias_bomb_is_refused_before_it_is_built():
    text = alias_bomb()
    assert len(text) < 500
    tracemalloc.start()
    try:
        with pytest.raises(YamlError):
            load_yaml(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, peak
    assert MAX_NODES <= 1_000_000


@pytest.mark.parametrize("text, words", [(nested_yaml(5_000), "nested"), (alias_bomb(), "expands")])
def test_the_console_import_and_spec_editor_refuse_yaml_bombs_with_a_message(app, client, console, text, words):
    before = counts()
    response = client.post("/admin/serviceplan/import", data={"spec": text})
    assert response.status_code == 200 and words in response.get_data(as_text=True)
    plan = ServicePlan.by_name("worker")
    edited = text.replace("plan: bomb", "plan: worker").replace("plan: deep", "plan: worker").replace("- plan", "plan")
    edited = "\n".join(line[2:] if line.startswith("  ") else line for line in edited.splitlines())
    response = client.post(f"/admin/serviceplan/{plan.id}/spec", data={"spec": edited})
    assert response.status_code == 200 and words in response.get_data(as_text=True)
    assert counts() == before
