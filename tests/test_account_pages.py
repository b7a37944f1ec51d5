"""Account pages: sign-up and confirmation, password reset, profile, password change, API keys, CSRF, rate limits."""

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app import accounts
from app.extensions import db
from app.jobs.provisioning import is_waiting
from app.models import ApiKey, ServiceCommand, User
from app.ops.specs import apply_specs, load_spec_files, spec_fallbacks

from .conftest import make_app
from .factories import PASSWORD, make_user
from .test_mail import SIGNUP, link_in, smtp_fixture  # noqa: F401 -- registers the smtp fixture here

KEY_RE = re.compile(rb"\b[0-9a-f]{40}\b")


def load_shipped_services(app):
    """The shipped specs (services/), with the internal ``signup`` plan."""
    services = Path(__file__).parent.parent / "services"
    apply_specs(load_spec_files([services], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config)))
    db.session.commit()


def signup_commands() -> list[ServiceCommand]:
    return list(db.session.scalars(select(ServiceCommand).order_by(ServiceCommand.id)))


def user_count() -> int:
    return db.session.scalar(select(func.count(User.id)))


def local(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def log_in(client, email, password):
    return client.post("/login", data={"email": email, "password": password})


# sign-up and confirmation


def test_signup_with_confirmation_mails_a_link_that_activates_and_provisions_the_account(app, client, smtp):
    load_shipped_services(app)
    response = client.post("/signup", data=SIGNUP, follow_redirects=True)
    assert response.status_code == 200
    assert b"We sent a confirmation link to ada@example.com" in response.data
    user = User.find("ada@example.com")
    assert user is not None and user.email_confirmed_at is None
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    assert signup_commands() == [], "not provisioned before the email is confirmed"
    response = log_in(client, "ada@example.com", SIGNUP["password"])
    assert response.status_code == 200 and b"Please confirm your email first" in response.data

    (message,) = smtp.messages
    assert message["To"] == "ada@example.com"
    link = link_in(message, "/confirm/")
    assert link.startswith("http://localhost/confirm/")
    response = client.get(local(link), follow_redirects=True)
    assert b"Your email is confirmed" in response.data
    db.session.expire_all()
    assert User.find("ada@example.com").email_confirmed_at is not None
    (command,) = signup_commands()
    assert command.plan.name == "signup" and command.user_id == user.id
    assert is_waiting(command.id), "committed, then enqueued"

    response = log_in(client, "ada@example.com", SIGNUP["password"])
    assert response.status_code == 302 and response.headers["Location"] == "/"
    client.post("/logout")
    response = client.get(local(link), follow_redirects=True)
    assert b"already confirmed" in response.data
    assert len(signup_commands()) == 1, "a second click issues nothing"


def test_signup_without_confirmation_provisions_at_once_and_can_log_in(app, client):
    load_shipped_services(app)
    app.config["SIGNUP_CONFIRMATION"] = False
    response = client.post("/signup", data=SIGNUP, follow_redirects=True)
    assert b"Your account is ready" in response.data
    assert not (app.config["INSTANCE_DIR"] / "mail").exists(), "no confirmation mail"
    (command,) = signup_commands()
    assert command.plan.name == "signup" and is_waiting(command.id)
    response = log_in(client, "ada@example.com", SIGNUP["password"])
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_bad_confirmation_link_shows_why(client):
    response = client.get("/confirm/not-a-token")
    assert response.status_code == 400 and b"This link is not valid" in response.data


def test_an_expired_confirmation_link_shows_why(app, client):
    user = make_user(confirmed=False)
    token = accounts.make_confirm_token(user)
    app.config["CONFIRM_TOKEN_MAX_AGE"] = -1
    response = client.get(f"/confirm/{token}")
    assert response.status_code == 400 and b"This link has expired" in response.data
    db.session.expire_all()
    assert db.session.get(User, user.id).email_confirmed_at is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"email": "taken@example.com"}, b"an account with this email exists already"),
        ({"email": "not-an-email"}, b"Invalid email address"),
        ({"password2": "something else entirely"}, b"the passwords do not match"),
        ({"password": "short", "password2": "short"}, b"the password must have at least 10 characters"),
        ({"password": "ada@example.com", "password2": "ada@example.com"}, b"the password must not be your email"),
        ({"terms": None}, b"please accept the terms of service"),
        ({"first_name": ""}, b"This field is required"),
    ],
)
def test_bad_signups_show_a_message_and_create_nothing(app, client, changes, message):
    make_user(email="taken@example.com")
    data = {key: value for key, value in {**SIGNUP, **changes}.items() if value is not None}
    response = client.post("/signup", data=data)
    assert response.status_code == 200
    assert message in response.data
    assert b"invalid-feedback" in response.data
    assert user_count() == 1
    assert not (app.config["INSTANCE_DIR"] / "mail").exists()


def test_a_signup_racing_another_with_the_same_email_is_a_message_not_a_500(client, monkeypatch):
    make_user(email="ada@example.com")
    # the other sign-up commits between the duplicate check and the insert
    monkeypatch.setattr(accounts, "email_taken", lambda email: False)
    response = client.post("/signup", data=SIGNUP)
    assert response.status_code == 200 and b"could not be created just now" in response.data
    assert user_count() == 1


# password reset


def test_reset_request_says_the_same_for_registered_and_unknown_emails(client, smtp):
    make_user(email="ada@example.com")
    registered = client.post("/reset", data={"email": "ada@example.com"}, follow_redirects=True)
    unknown = client.post("/reset", data={"email": "ghost@example.com"}, follow_redirects=True)
    assert registered.status_code == unknown.status_code == 200
    assert b"If an account is registered with this email" in registered.data
    assert registered.data == unknown.data
    assert [message["To"] for message in smtp.messages] == ["ada@example.com"]


def test_a_reset_link_sets_the_password_once(client, smtp):
    user = make_user(email="ada@example.com")
    client.post("/reset", data={"email": "ada@example.com"})
    link = local(link_in(smtp.messages[0], "/reset/"))
    assert client.get(link).status_code == 200
    new = {"password": "a brand new secret", "password2": "a brand new secret"}
    response = client.post(link, data=new)
    assert response.status_code == 302
    assert log_in(client, user.email, PASSWORD).status_code == 200, "the old password no longer works"
    assert log_in(client, user.email, new["password"]).status_code == 302
    client.post("/logout")

    response = client.get(link)
    assert response.status_code == 400 and b"used already" in response.data
    response = client.post(link, data={"password": "yet another secret", "password2": "yet another secret"})
    assert response.status_code == 400 and b"used already" in response.data
    assert log_in(client, user.email, new["password"]).status_code == 302


def test_an_expired_reset_link_is_refused(app, client):
    user = make_user()
    token = accounts.make_reset_token(user)
    app.config["RESET_TOKEN_MAX_AGE"] = -1
    response = client.get(f"/reset/{token}")
    assert response.status_code == 400 and b"This link has expired" in response.data
    new = {"password": "a brand new secret", "password2": "a brand new secret"}
    response = client.post(f"/reset/{token}", data=new)
    assert response.status_code == 400 and b"This link has expired" in response.data
    assert log_in(client, user.email, PASSWORD).status_code == 302


def test_a_tampered_reset_link_is_refused(client):
    token = accounts.make_reset_token(make_user())
    response = client.get(f"/reset/{token[:-2]}xx")
    assert response.status_code == 400 and b"This link is not valid" in response.data


def test_a_reset_keeps_the_password_rules_and_the_link(client):
    user = make_user()
    token = accounts.make_reset_token(user)
    response = client.post(f"/reset/{token}", data={"password": "short", "password2": "short"})
    assert response.status_code == 200 and b"at least 10 characters" in response.data
    response = client.post(f"/reset/{token}", data={"password": "a brand new one", "password2": "another one!"})
    assert response.status_code == 200 and b"the passwords do not match" in response.data
    assert client.get(f"/reset/{token}").status_code == 200, "the link still works"


def test_a_reset_confirms_and_provisions_an_unconfirmed_account(app, client):
    load_shipped_services(app)
    user = make_user(confirmed=False)
    token = accounts.make_reset_token(user)
    client.post(f"/reset/{token}", data={"password": "a brand new secret", "password2": "a brand new secret"})
    db.session.expire_all()
    assert db.session.get(User, user.id).email_confirmed_at is not None
    (command,) = signup_commands()
    assert command.plan.name == "signup" and is_waiting(command.id)
    assert log_in(client, user.email, "a brand new secret").status_code == 302


# the account page


ACCOUNT_POSTS = ["/account/profile", "/account/password", "/account/keys", "/account/keys/1/revoke"]


@pytest.mark.parametrize("path", ["/account", *ACCOUNT_POSTS])
def test_account_pages_send_anonymous_visitors_to_login(client, path):
    response = client.get(path) if path == "/account" else client.post(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ACCOUNT_POSTS)
def test_account_mutations_are_post_only(client, login, path):
    login(make_user())
    assert client.get(path).status_code == 405


def test_the_account_page_shows_the_userid_and_the_login_line(client, login):
    user = make_user(userid="ada")
    login(user)
    page = client.get("/account").data
    assert b'<code id="userid">ada</code>' in page
    assert b"om cloud login --apiurl http://localhost ada &lt;apikey&gt;" in page


def test_the_login_line_uses_public_url_when_set(app, client, login):
    app.config["PUBLIC_URL"] = "https://ops.example.com/"
    user = make_user(userid="ada")
    login(user)
    assert b"om cloud login --apiurl https://ops.example.com ada" in client.get("/account").data


def test_profile_update_persists(client, login):
    user = make_user()
    login(user)
    data = {
        "first_name": "Ada",
        "last_name": "King",
        "company": "Analytical Engines Ltd",
        "billing_address": "12 St James's Square\nLondon",
        "country": "gb",
        "tax_id": "GB123456789",
    }
    response = client.post("/account/profile", data=data, follow_redirects=True)
    assert b"Your profile has been saved" in response.data
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert (user.last_name, user.company, user.country, user.tax_id) == (
        "King",
        "Analytical Engines Ltd",
        "GB",
        "GB123456789",
    )
    assert user.billing_address == "12 St James's Square\nLondon"


@pytest.mark.parametrize("country", ["XX", "Germany", "D", "1A"])
def test_an_invalid_country_is_refused(client, login, country):
    user = make_user()
    login(user)
    data = {"first_name": "Ada", "last_name": "King", "country": country}
    response = client.post("/account/profile", data=data)
    assert response.status_code == 200 and b"must be a two-letter ISO 3166 country code" in response.data
    db.session.expire_all()
    assert db.session.get(User, user.id).last_name != "King"


def test_change_password_requires_the_current_one(client, login):
    user = make_user()
    login(user)
    new = {"new_password": "a brand new secret", "new_password2": "a brand new secret"}
    response = client.post("/account/password", data={"current_password": "wrong one", **new})
    assert response.status_code == 200 and b"this is not your current password" in response.data
    response = client.post(
        "/account/password", data={"current_password": PASSWORD, "new_password": "short", "new_password2": "short"}
    )
    assert b"at least 10 characters" in response.data
    response = client.post(
        "/account/password", data={"current_password": PASSWORD, **new, "new_password2": "does not match"}
    )
    assert b"the passwords do not match" in response.data
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(PASSWORD)

    response = client.post("/account/password", data={"current_password": PASSWORD, **new}, follow_redirects=True)
    assert b"Your password has been changed" in response.data
    db.session.expire_all()
    assert db.session.get(User, user.id).check_password(new["new_password"])


def test_a_new_key_is_shown_once_and_authenticates(client, login):
    user = make_user(userid="ada")
    login(user)
    response = client.post("/account/keys", data={"name": "laptop"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    keys = set(KEY_RE.findall(response.data))
    assert len(keys) == 1
    key = keys.pop().decode()
    assert f"om cloud login --apiurl http://localhost ada {key}".encode() in response.data
    assert accounts.authenticate_key("ada", key).id == user.id

    page = client.get("/account").data
    assert key.encode() not in page and not KEY_RE.search(page)
    assert b"laptop" in page and f"{key[:8]}…".encode() in page and b"never" not in page


def test_a_key_needs_a_name(client, login):
    login(make_user())
    response = client.post("/account/keys", data={"name": "  "})
    assert response.status_code == 200 and b"This field is required" in response.data
    assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_revoking_a_key_makes_it_unusable(client, login):
    user = make_user(userid="ada")
    api_key, key = accounts.create_api_key(user, "laptop")
    db.session.commit()
    login(user)
    response = client.post(f"/account/keys/{api_key.id}/revoke", follow_redirects=True)
    assert b"is revoked" in response.data and b"revoked " in response.data
    assert accounts.authenticate_key("ada", key) is None


def test_users_cannot_revoke_each_others_keys(client, login):
    owner = make_user(userid="owner")
    api_key, key = accounts.create_api_key(owner, "owner's laptop")
    db.session.commit()
    login(make_user())
    assert b"owner&#39;s laptop" not in client.get("/account").data
    assert client.post(f"/account/keys/{api_key.id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiKey, api_key.id).revoked_at is None
    assert accounts.authenticate_key("owner", key).id == owner.id


# navigation, CSRF, rate limits


def test_the_login_page_links_to_signup_and_reset(client):
    page = client.get("/login").data
    assert b'href="/signup"' in page and b'href="/reset"' in page and b"Forgot password?" in page


def test_the_navbar_shows_the_account_link_when_logged_in(client, login):
    assert b'href="/account"' not in client.get("/").data
    login(make_user())
    assert b'href="/account"' in client.get("/services").data


def test_posts_without_a_csrf_token_are_refused(sqlite_url, redis_url, tmp_path):
    app = make_app(sqlite_url, redis_url, tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        db.create_all()
        client = app.test_client()
        response = client.post("/signup", data=SIGNUP)
        assert response.status_code == 400 and b"CSRF" in response.data
        assert user_count() == 0
        page = client.get("/signup").data.decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        response = client.post("/signup", data={**SIGNUP, "csrf_token": token})
        assert response.status_code == 302 and user_count() == 1
        db.session.remove()
        db.engine.dispose()


def test_the_eleventh_login_post_in_a_minute_is_refused(app, client):
    assert app.config["LOGIN_RATE_LIMIT"] == "10 per minute"
    data = {"email": "ghost@example.com", "password": "whatever"}
    for _ in range(10):
        assert client.post("/login", data=data).status_code == 200
    response = client.post("/login", data=data)
    assert response.status_code == 429 and b"Too Many Requests" in response.data
    assert client.get("/login").status_code == 200, "only POSTs are limited"


@pytest.mark.parametrize(
    "path, setting, data",
    [
        ("/signup", "SIGNUP_RATE_LIMIT", {**SIGNUP, "terms": ""}),
        ("/reset", "RESET_RATE_LIMIT", {"email": "ghost@example.com"}),
    ],
)
def test_signup_and_reset_posts_are_rate_limited(app, client, path, setting, data):
    app.config[setting] = "2 per minute"
    assert client.post(path, data=data).status_code in (200, 302)
    assert client.post(path, data=data).status_code in (200, 302)
    assert client.post(path, data=data).status_code == 429
    assert client.get(path).status_code == 200
