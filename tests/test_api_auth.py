"""``/admin/api/v2/auth/...``: sign-up, password reset and the user resource (CLIENT-CONTRACT.md section 3)."""

import email
import email.policy
import json
import re
from datetime import datetime

import pytest
from rq.job import Job
from sqlalchemy import select

from app import accounts
from app.extensions import db
from app.jobs.provisioning import job_id
from app.jobs.queues import get_redis
from app.models import ServiceCommand, Status, User

from .api_helpers import assert_error, with_key
from .factories import PASSWORD, make_plan, make_user

BASE = "/admin/api/v2/auth"
SIGNUP = f"{BASE}/signup/"
RESET = f"{BASE}/reset/"
USERS = f"{BASE}/user/"
NEW_PASSWORD = "a new password 123"
USER_KEYS = {
    "id",
    "userid",
    "email",
    "first_name",
    "last_name",
    "company",
    "billing_address",
    "country",
    "tax_id",
    "active",
    "email_confirmed",
    "date_joined",
    "resource_uri",
}


def signup_body(**changes):
    body = {"email": "jane@example.com", "first_name": "Jane", "last_name": "Doe", "password": PASSWORD}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def mails(app):
    """The mails written so far (no MAIL_SERVER in tests: files under INSTANCE_DIR/mail)."""
    folder = app.config["INSTANCE_DIR"] / "mail"
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append((message["To"], message["Subject"], message.get_content()))
    return found


def link_path(body: str, prefix: str) -> str:
    match = re.search(rf"http://localhost({prefix}/\S+)", body)
    assert match, body
    return match.group(1)


def signup_commands(user_id):
    return db.session.scalars(select(ServiceCommand).where(ServiceCommand.user_id == user_id)).all()


@pytest.fixture
def signup_plan(app):
    return make_plan(name="signup", title="Sign-up", offered=False)


# sign-up


def test_signup_creates_an_unconfirmed_user_and_mails_the_confirmation_link(app, client, signup_plan):
    response = client.post(SIGNUP, json=signup_body())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    user = User.find("jane@example.com")
    assert body["resource_uri"] == f"{BASE}/user/{user.id}/"
    assert response.headers["Location"] == body["resource_uri"]
    assert set(body) == USER_KEYS
    assert body["email"] == "jane@example.com" and body["userid"] == "jane"
    assert body["first_name"] == "Jane" and body["last_name"] == "Doe"
    assert body["email_confirmed"] is False and body["active"] is True
    assert user.check_password(PASSWORD)
    [(to, subject, text)] = mails(app)
    assert to == "jane@example.com" and "Confirm" in subject
    assert "/confirm/" in text
    assert signup_commands(user.id) == [], "provisioned only once the email is confirmed"


def test_the_mailed_link_confirms_the_email_and_provisions_the_account(app, client, signup_plan):
    client.post(SIGNUP, json=signup_body())
    [(_, _, text)] = mails(app)
    response = client.get(link_path(text, "/confirm"))
    assert response.status_code == 302
    user = User.find("jane@example.com")
    db.session.refresh(user)
    assert user.email_confirmed_at is not None
    [command] = signup_commands(user.id)
    assert command.plan.name == "signup" and command.status == Status.INITIATED


def test_signup_without_confirmation_provisions_at_once(app, client, signup_plan):
    app.config["SIGNUP_CONFIRMATION"] = False
    response = client.post(SIGNUP, json=signup_body())
    assert response.status_code == 201
    user = User.find("jane@example.com")
    [command] = signup_commands(user.id)
    assert command.plan.name == "signup" and command.phase == "install"
    # committed first, then enqueued: the job is on the provisioning queue
    job = Job.fetch(job_id(command.id), connection=get_redis())
    assert job.origin == "provisioning" and job.args == (command.id,)
    assert mails(app) == []


def test_signup_without_a_signup_plan_still_creates_the_account(app, client):
    app.config["SIGNUP_CONFIRMATION"] = False
    assert client.post(SIGNUP, json=signup_body()).status_code == 201
    assert User.find("jane@example.com") is not None


def test_signup_without_trailing_slash_is_accepted(client):
    response = client.post(SIGNUP.rstrip("/"), json=signup_body())
    assert response.status_code == 201


def test_signup_ignores_surrounding_blanks_and_case_of_the_email(client):
    response = client.post(SIGNUP, json=signup_body(email="  Jane@Example.com "))
    assert response.status_code == 201
    assert response.get_json()["email"] == "Jane@example.com"


@pytest.mark.parametrize("taken", ["jane@example.com", "JANE@example.com"])
def test_signup_with_a_registered_email_is_a_conflict(client, taken):
    make_user(email="jane@example.com")
    response = client.post(SIGNUP, json=signup_body(email=taken))
    assert_error(response, 409, "conflict", "exists already")
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 1


def test_a_signup_racing_another_for_the_same_email_is_a_conflict(client, monkeypatch):
    make_user(email="jane@example.com")
    real, calls = accounts.email_taken, []

    def checked_before_the_other_committed(email):
        calls.append(email)
        return False if len(calls) <= 2 else real(email)

    monkeypatch.setattr(accounts, "email_taken", checked_before_the_other_committed)
    response = client.post(SIGNUP, json=signup_body())
    assert_error(response, 409, "conflict", "exists already")
    assert len(calls) == 3, "the unique index caught it, and the answer was checked again"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"email": None}, ["email: Missing data"]),
        ({"password": None}, ["password: Missing data"]),
        ({"first_name": None}, ["first_name: Missing data"]),
        ({"last_name": None}, ["last_name: Missing data"]),
        ({"userid": "jane"}, ["unknown field 'userid'"]),
        ({"company": "ACME"}, ["unknown field 'company'"]),
        ({"admin": True}, ["unknown field 'admin'"]),
        ({"email": 42}, ["email:", "string"]),
        ({"password": ["x"]}, ["password:", "string"]),
        ({"first_name": None, "last_name": None}, ["first_name: Missing data"]),
        ({"first_name": "  "}, ["first_name:", "empty"]),
        ({"first_name": "Ada\x1b"}, ["first_name:", "control characters"]),
        ({"last_name": "x" * 101}, ["last_name:", "at most 100"]),
        ({"email": "not-an-email"}, ["email", "invalid email"]),
        ({"password": "short"}, ["password", "at least 10"]),
        ({"email": "longpassword@example.com", "password": "longpassword"}, ["password", "not be your email"]),
    ],
)
def test_bad_signup_fields_are_400_naming_the_field(client, changes, words):
    response = client.post(SIGNUP, json=signup_body(**changes))
    assert_error(response, 400, "bad_request", *words)
    assert db.session.scalar(select(db.func.count()).select_from(User)) == 0


MALFORMED = [
    pytest.param(b"", None, "JSON object", id="empty"),
    pytest.param(b"   ", "application/json", "JSON object", id="blank"),
    pytest.param(b'{"email": ', "application/json", "not valid JSON", id="truncated"),
    pytest.param(b"\xff\xfe{}", "application/json", "UTF-8", id="bad-utf8"),
    pytest.param(b'{"email": "\xe9@example.com"}', "application/json", "UTF-8", id="latin1"),
    pytest.param(b"[]", "application/json", "JSON object", id="list"),
    pytest.param(b'"jane"', "application/json", "JSON object", id="string"),
    pytest.param(b"null", "application/json", "JSON object", id="null"),
    pytest.param(b'{"email": NaN}', "application/json", "not valid JSON", id="nan"),
    pytest.param(b"email=jane%40example.com", "application/x-www-form-urlencoded", "not valid JSON", id="form"),
    pytest.param(b"[" * 100_000, "application/json", "nested", id="deep"),
]


@pytest.mark.parametrize("data, content_type, words", MALFORMED)
def test_malformed_signup_bodies_are_400_json(client, data, content_type, words):
    response = client.post(SIGNUP, data=data, content_type=content_type)
    assert_error(response, 400, "bad_request", words)


def test_an_oversized_body_is_413_json(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    body = json.dumps(signup_body(first_name="x" * 2000))
    response = client.post(SIGNUP, data=body, content_type="application/json")
    assert response.status_code == 413 and response.mimetype == "application/json"
    assert response.get_json()["error"]


@pytest.mark.parametrize("path", [SIGNUP, RESET])
def test_unknown_query_parameters_are_refused_on_the_public_routes_too(client, path):
    body = signup_body() if path == SIGNUP else {"email": "jane@example.com"}
    assert_error(client.post(path + "?next=/x", json=body), 400, "bad_request", "unknown query parameter 'next'")
    assert client.post(path + "?format=json", json=body).status_code in (201, 202)


def test_signup_is_rate_limited(app, client):
    app.config["SIGNUP_RATE_LIMIT"] = "2 per minute"
    for n in range(2):
        assert client.post(SIGNUP, json=signup_body(email=f"u{n}@example.com")).status_code == 201
    response = client.post(SIGNUP, json=signup_body(email="u3@example.com"))
    assert response.status_code == 429 and response.mimetype == "application/json"
    assert response.get_json()["error"] == "too_many_requests"
    assert int(response.headers["Retry-After"]) > 0
    assert User.find("u3@example.com") is None


def test_a_mail_failure_leaves_the_account_and_is_logged(app, client, caplog):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)  # nothing listens on port 1
    response = client.post(SIGNUP, json=signup_body())
    assert response.status_code == 201
    assert User.find("jane@example.com") is not None
    assert "confirmation mail not sent" in caplog.text


# password reset


def test_reset_request_answers_the_same_whether_registered_or_not(app, client):
    make_user(email="jane@example.com")
    registered = client.post(RESET, json={"email": "jane@example.com"})
    unknown = client.post(RESET, json={"email": "ghost@example.com"})
    assert registered.status_code == unknown.status_code == 202
    assert registered.get_json() == unknown.get_json()
    assert registered.get_json()["resource_uri"] == RESET
    [(to, subject, text)] = mails(app)
    assert to == "jane@example.com" and "password" in subject.lower()
    assert "/reset/" in text


def test_reset_request_for_a_deactivated_account_sends_nothing(app, client):
    make_user(email="jane@example.com", active=False)
    assert client.post(RESET, json={"email": "jane@example.com"}).status_code == 202
    assert mails(app) == []


def test_the_mailed_reset_token_sets_the_password_once(app, client):
    user = make_user(email="jane@example.com")
    client.post(RESET, json={"email": "JANE@example.com"})
    [(_, _, text)] = mails(app)
    token = link_path(text, "/reset").rsplit("/", 1)[1]
    response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["resource_uri"] == f"{BASE}/user/{user.id}/"
    db.session.refresh(user)
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)
    again = client.post(RESET, json={"token": token, "password": "yet another password"})
    assert_error(again, 400, "bad_request", "token", "used already")


def test_a_reset_confirms_the_email_and_provisions_the_account(app, client, signup_plan):
    user = make_user(email="jane@example.com", confirmed=False)
    token = accounts.make_reset_token(user)
    response = client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 200
    assert response.get_json()["email_confirmed"] is True
    [command] = signup_commands(user.id)
    assert Job.fetch(job_id(command.id), connection=get_redis()).args == (command.id,)


def test_a_reset_of_a_confirmed_account_provisions_nothing(app, client, signup_plan):
    user = make_user(email="jane@example.com")
    response = client.post(RESET, json={"token": accounts.make_reset_token(user), "password": NEW_PASSWORD})
    assert response.status_code == 200
    assert signup_commands(user.id) == []


@pytest.mark.parametrize(
    "body, words",
    [
        ({"token": "nonsense", "password": NEW_PASSWORD}, ["token", "not valid"]),
        ({"token": "nonsense"}, ["password: Missing data"]),
        ({"password": NEW_PASSWORD}, ["token: Missing data"]),
        ({"token": 1, "password": NEW_PASSWORD}, ["token:", "string"]),
        ({"email": "jane@example.com", "password": NEW_PASSWORD}, ["email:", "either email, or token and password"]),
        ({"email": "jane@example.com", "token": "x", "password": NEW_PASSWORD}, ["email:", "either email"]),
        ({}, ["email: Missing data"]),
        ({"email": None}, ["email:", "null"]),
        ({"email": "nope"}, ["email", "invalid"]),
        ({"email": "jane@example.com", "name": "x"}, ["unknown field 'name'"]),
    ],
)
def test_bad_reset_bodies_are_400_naming_the_field(client, body, words):
    assert_error(client.post(RESET, json=body), 400, "bad_request", *words)


def test_a_reset_with_a_too_short_password_says_so(client):
    user = make_user()
    response = client.post(RESET, json={"token": accounts.make_reset_token(user), "password": "short"})
    assert_error(response, 400, "bad_request", "password", "at least")
    db.session.refresh(user)
    assert user.check_password(PASSWORD)


def test_a_reset_of_a_deactivated_account_is_refused(client):
    user = make_user(active=False)
    response = client.post(RESET, json={"token": accounts.make_reset_token(user), "password": NEW_PASSWORD})
    assert_error(response, 400, "bad_request", "deactivated")
    db.session.refresh(user)
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize("data, content_type, words", MALFORMED)
def test_malformed_reset_bodies_are_400_json(client, data, content_type, words):
    assert_error(client.post(RESET, data=data, content_type=content_type), 400, "bad_request", words)


def test_reset_is_rate_limited(app, client):
    app.config["RESET_RATE_LIMIT"] = "1 per minute"
    assert client.post(RESET, json={"email": "a@example.com"}).status_code == 202
    response = client.post(RESET, json={"email": "b@example.com"})
    assert response.status_code == 429 and "Retry-After" in response.headers
    assert response.get_json()["error"] == "too_many_requests"


# the user resource: reading


def test_a_user_lists_only_their_own_record(client):
    user, headers = with_key(company="ACME", country="CH")
    with_key()
    response = client.get(USERS, headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["meta"] == {"limit": 20, "offset": 0, "total_count": 1, "next": None, "previous": None}
    [obj] = body["objects"]
    assert set(obj) == USER_KEYS, "never the password hash or keys"
    assert obj["id"] == user.id and obj["userid"] == user.userid and obj["email"] == user.email
    assert obj["company"] == "ACME" and obj["country"] == "CH"
    assert obj["email_confirmed"] is True and obj["active"] is True
    assert obj["resource_uri"] == f"{BASE}/user/{user.id}/"
    assert datetime.fromisoformat(obj["date_joined"]).tzinfo is not None


def test_a_user_cannot_list_others_by_email(client):
    _, headers = with_key()
    other = make_user()
    response = client.get(USERS, query_string={"email": other.email}, headers=headers)
    assert response.get_json()["meta"]["total_count"] == 0 and response.get_json()["objects"] == []


def test_admins_list_every_user_paginated(client):
    admin, headers = with_key(admin=True)
    for _ in range(24):
        make_user()
    body = client.get(USERS, headers=headers).get_json()
    assert body["meta"]["total_count"] == 25 and len(body["objects"]) == 20
    assert body["meta"]["next"] == f"{USERS}?limit=20&offset=20" and body["meta"]["previous"] is None
    assert body["objects"][0]["id"] == admin.id
    body = client.get(body["meta"]["next"], headers=headers).get_json()
    assert len(body["objects"]) == 5 and body["meta"]["next"] is None
    assert body["meta"]["previous"] == f"{USERS}?limit=20&offset=0"
    body = client.get(USERS + "?limit=5&offset=5", headers=headers).get_json()
    ids = [obj["id"] for obj in body["objects"]]
    assert ids == sorted(ids) and len(ids) == 5
    assert body["meta"]["next"] == f"{USERS}?limit=5&offset=10"
    assert body["meta"]["previous"] == f"{USERS}?limit=5&offset=0"


def test_admins_filter_by_email_ignoring_case(client):
    _, headers = with_key(admin=True)
    jane = make_user(email="jane@example.com")
    make_user(email="john@example.com")
    body = client.get(USERS + "?email=JANE@Example.com&format=json", headers=headers).get_json()
    assert [obj["id"] for obj in body["objects"]] == [jane.id]
    assert body["meta"]["total_count"] == 1
    assert client.get(USERS + "?email=nobody@example.com", headers=headers).get_json()["objects"] == []


def test_pages_keep_the_email_filter(client):
    _, headers = with_key(admin=True)
    make_user(email="jane@example.com")
    body = client.get(USERS + "?email=jane@example.com&limit=1&offset=1", headers=headers).get_json()
    assert body["objects"] == [] and body["meta"]["previous"] == f"{USERS}?limit=1&offset=0&email=jane%40example.com"


@pytest.mark.parametrize(
    "query, words",
    [
        ("?user__email=x@example.com", ["unknown query parameter 'user__email'"]),
        ("?order_by=id", ["unknown query parameter 'order_by'"]),
        ("?limit=0", ["limit:"]),
        ("?limit=101", ["limit:", "100"]),
        ("?limit=abc", ["limit:", "integer"]),
        ("?limit=-1", ["limit:"]),
        ("?limit=", ["limit:"]),
        ("?offset=-1", ["offset:"]),
        ("?offset=1.5", ["offset:"]),
        ("?offset=99999999999999999999999999", ["offset:"]),
        ("?offset=" + "9" * 5000, ["offset:"]),
        ("?limit=\u00b2", ["limit:"]),
        ("?limit=\u0664", ["limit:"]),
        ("?limit=1&limit=2", ["'limit'", "once"]),
        ("?email=a@example.com&email=b@example.com", ["'email'", "once"]),
        ("?format=xml", ["format:"]),
    ],
)
def test_bad_query_parameters_are_400_naming_them(client, query, words):
    _, headers = with_key(admin=True)
    assert_error(client.get(USERS + query, headers=headers), 400, "bad_request", *words)


def test_anonymous_and_bad_keys_get_401_json(client):
    user, _ = with_key()
    response = client.get(USERS)
    assert_error(response, 401, "unauthorized", "ApiKey")
    assert response.headers["WWW-Authenticate"].startswith("ApiKey")
    assert_error(client.get(USERS, headers={"Authorization": f"ApiKey {user.userid}:{'0' * 40}"}), 401, "unauthorized")
    assert_error(client.get(f"{USERS}{user.id}/"), 401, "unauthorized")
    assert_error(client.patch(USERS, json={"company": "x"}), 401, "unauthorized")


def test_a_logged_in_session_may_read_but_not_write(client, login):
    user = make_user()
    login(user)
    response = client.get(f"{USERS}{user.id}/")
    assert response.status_code == 200 and response.get_json()["id"] == user.id
    assert client.get(USERS).get_json()["meta"]["total_count"] == 1
    # writes need the ApiKey header: the session cookie alone would allow cross-site requests
    assert_error(client.patch(USERS, json={"company": "x"}), 401, "unauthorized")


def test_the_detail_is_for_self_and_admins_only(client):
    user, headers = with_key()
    other, other_headers = with_key()
    _, admin_headers = with_key(admin=True)
    mine = client.get(f"{USERS}{user.id}/", headers=headers)
    assert mine.status_code == 200 and mine.get_json()["resource_uri"] == f"{USERS}{user.id}/"
    assert set(mine.get_json()) == USER_KEYS
    # another user's record looks exactly like one that does not exist
    hidden = assert_error(client.get(f"{USERS}{other.id}/", headers=headers), 404, "not_found")
    missing = assert_error(client.get(f"{USERS}99999/", headers=headers), 404, "not_found")
    assert hidden["message"].replace(str(other.id), "N") == missing["message"].replace("99999", "N")
    assert client.get(f"{USERS}{other.id}/", headers=admin_headers).get_json()["email"] == other.email
    assert_error(client.get(f"{USERS}99999/", headers=admin_headers), 404, "not_found")
    assert client.get(f"{USERS}{user.id}", headers=headers).status_code == 200
    assert_error(client.get(f"{USERS}abc/", headers=headers), 404, "not_found")
    assert_error(client.get(f"{USERS}{2**31}/", headers=admin_headers), 404, "not_found")
    assert_error(client.get(f"{USERS}{'9' * 30}/", headers=admin_headers), 404, "not_found")
    assert_error(client.patch(f"{USERS}{'9' * 30}/", json={}, headers=admin_headers), 404, "not_found")
    assert_error(client.get(f"{USERS}{user.id}/?x=1", headers=headers), 400, "bad_request", "'x'")


def test_unsupported_methods_are_405_json(client):
    user, headers = with_key()
    for method, path in [("DELETE", f"{USERS}{user.id}/"), ("POST", USERS), ("PUT", USERS), ("GET", SIGNUP)]:
        response = client.open(path, method=method, headers=headers)
        assert_error(response, 405, "method_not_allowed")
        assert response.headers["Allow"]


# the user resource: changing the profile


PROFILE = {
    "first_name": " Grace ",
    "last_name": "Hopper",
    "company": "Navy",
    "billing_address": "1 Main St\n12345 Arlington",
    "country": "us",
    "tax_id": "US-123",
}


@pytest.mark.parametrize("own_path", [True, False], ids=["user/", "user/<id>/"])
def test_a_user_patches_their_own_profile(client, own_path):
    user, headers = with_key()
    path = USERS if own_path else f"{USERS}{user.id}/"
    response = client.patch(path, json=PROFILE, headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["first_name"] == "Grace" and body["country"] == "US"
    assert body["billing_address"] == "1 Main St\n12345 Arlington"
    assert body["resource_uri"] == f"{USERS}{user.id}/"
    db.session.refresh(user)
    assert (user.first_name, user.company, user.country, user.tax_id) == ("Grace", "Navy", "US", "US-123")


def test_a_partial_patch_changes_only_what_it_names(client):
    user, headers = with_key(company="ACME", country="CH")
    response = client.patch(USERS, json={"tax_id": "CHE-1"}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["company"] == "ACME" and response.get_json()["tax_id"] == "CHE-1"
    assert client.patch(USERS, json={"country": ""}, headers=headers).get_json()["country"] == ""
    assert client.patch(USERS, json={}, headers=headers).status_code == 200


def test_users_may_not_patch_others_but_admins_may(client):
    user, headers = with_key()
    other = make_user(company="Theirs")
    _, admin_headers = with_key(admin=True)
    assert_error(client.patch(f"{USERS}{other.id}/", json={"company": "Mine"}, headers=headers), 404, "not_found")
    db.session.refresh(other)
    assert other.company == "Theirs"
    response = client.patch(f"{USERS}{other.id}/", json={"company": "Fixed"}, headers=admin_headers)
    assert response.status_code == 200 and response.get_json()["company"] == "Fixed"
    assert_error(client.patch(f"{USERS}99999/", json={"company": "x"}, headers=admin_headers), 404, "not_found")


@pytest.mark.parametrize(
    "body, words",
    [
        ({"email": "new@example.com"}, ["email:", "read-only"]),
        ({"userid": "root"}, ["userid:", "read-only"]),
        ({"admin": True}, ["admin:", "read-only"]),
        ({"active": False}, ["active:", "read-only"]),
        ({"email_confirmed": True}, ["email_confirmed:", "read-only"]),
        ({"id": 1}, ["id:", "read-only"]),
        ({"password": "whatever whatever"}, ["password:", "read-only"]),
        ({"password_hash": "x"}, ["unknown field 'password_hash'"]),
        ({"nickname": "x"}, ["unknown field 'nickname'"]),
        ({"company": None}, ["company:", "null"]),
        ({"company": 7}, ["company:", "string"]),
        ({"first_name": ""}, ["first_name:", "empty"]),
        ({"last_name": " "}, ["last_name:", "empty"]),
        ({"first_name": "x" * 101}, ["first_name:", "100"]),
        ({"company": "x" * 201}, ["company:", "200"]),
        ({"billing_address": "x" * 1001}, ["billing_address:", "1000"]),
        ({"tax_id": "x" * 51}, ["tax_id:", "50"]),
        ({"country": "Switzerland"}, ["country:", "two-letter"]),
        ({"country": "XX"}, ["country:", "two-letter"]),
        ({"country": "c1"}, ["country:"]),
        ({"company": "two\nlines"}, ["company:", "line breaks"]),
        ({"billing_address": "bell\x07"}, ["billing_address:", "control"]),
        ({"company": "A\u2028B"}, ["company:", "line breaks"]),
        ({"tax_id": "DE\t1"}, ["tax_id:", "control"]),
    ],
)
def test_bad_patches_are_400_naming_the_field(client, body, words):
    user, headers = with_key(company="Before")
    assert_error(client.patch(USERS, json=body, headers=headers), 400, "bad_request", *words)
    db.session.refresh(user)
    assert user.company == "Before" and not user.admin


def test_a_patch_with_a_bad_field_changes_nothing(client):
    user, headers = with_key(company="Before")
    response = client.patch(USERS, json={"company": "After", "country": "XX"}, headers=headers)
    assert_error(response, 400, "bad_request", "country:")
    db.session.refresh(user)
    assert user.company == "Before"


@pytest.mark.parametrize("data, content_type, words", MALFORMED)
def test_malformed_patch_bodies_are_400_json(client, data, content_type, words):
    _, headers = with_key()
    response = client.patch(USERS, data=data, content_type=content_type, headers=headers)
    assert_error(response, 400, "bad_request", words)


def test_the_user_resource_on_every_database(any_app):
    client = any_app.test_client()
    _, headers = with_key(admin=True)
    jane = make_user(email="Jane@example.com")
    body = client.get(USERS + "?email=jane@EXAMPLE.com", headers=headers).get_json()
    assert [obj["id"] for obj in body["objects"]] == [jane.id]
    assert datetime.fromisoformat(body["objects"][0]["date_joined"]).utcoffset().total_seconds() == 0
    response = client.patch(f"{USERS}{jane.id}/", json={"country": "ch", "company": "ACME"}, headers=headers)
    assert response.status_code == 200 and response.get_json()["country"] == "CH"
    response = client.post(SIGNUP, json=signup_body(email="JANE@example.com"))
    assert_error(response, 409, "conflict")
    for user_id in (2**31 - 1, 2**31, 10**30):  # beyond PostgreSQL's integer: still a 404
        assert_error(client.get(f"{USERS}{user_id}/", headers=headers), 404, "not_found")
