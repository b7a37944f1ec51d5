"""The profile's rules, in one place (``app.accounts.update_profile``): the account page and the API refuse the
same values with the same message, and save good values identically.

The page shows the message beside the field; the API answers a 400 whose message is ``<field>: <message>``.
"""

import html
import re

import pytest

from app import accounts
from app.accounts import AccountError
from app.extensions import db
from app.models import User

from .api_helpers import assert_error, with_key
from .factories import make_user

PROFILE_PAGE = "/account/profile"
USER_API = "/admin/api/v2/auth/user/"
# what the page posts besides the field under test (every field of the form, as a browser sends them)
VALID = {
    "first_name": "Ada",
    "last_name": "King",
    "company": "",
    "billing_address": "",
    "country": "",
    "tax_id": "",
}

# (field, value, words of the message); NUL is not here: the API refuses it for every field before
# anything reads the body (app.api.parsing), see test_nul_is_refused_by_the_page_and_the_api
BAD = [
    ("company", "ACME\x07\nInc", "control characters"),
    ("company", "two\nlines", "line breaks"),
    ("company", "carriage\rreturn", "line breaks"),
    ("company", "x" * 201, "at most 200 characters"),
    ("first_name", "", "must not be empty"),
    ("first_name", "   ", "must not be empty"),
    ("first_name", "x" * 101, "at most 100 characters"),
    ("first_name", "Ada\x1b[31m", "control characters"),
    ("last_name", "", "must not be empty"),
    ("last_name", "Tab\tbed", "control characters"),
    ("last_name", "C1\x85control", "control characters"),
    ("last_name", "line\u2028separator", "line breaks"),
    ("first_name", " " * 100 + "Ada", "at most 100 characters"),  # counted as the form's maxlength counts
    ("billing_address", "bell\x07", "control characters"),
    ("billing_address", "form\x0cfeed", "control characters"),
    ("billing_address", "x" * 1001, "at most 1000 characters"),
    ("country", "XX", "two-letter ISO 3166 country code"),
    ("country", "Switzerland", "two-letter ISO 3166 country code"),
    ("country", "c1", "two-letter ISO 3166 country code"),
    ("country", "C\x07", "control characters"),
    ("tax_id", "x" * 51, "at most 50 characters"),
    ("tax_id", "DE 123\n456", "line breaks"),
    ("tax_id", "DE\x7f123", "control characters"),
]


def field_errors(page: str, field: str) -> list[str]:
    """The messages the page shows beside ``field`` (its Bootstrap invalid-feedback, right after the input)."""
    tag = re.search(rf'<(input|textarea)\b[^>]*\bid="{field}"[^>]*>', page)
    assert tag, f"no {field} field on the page"
    end = page.index("</textarea>", tag.end()) + len("</textarea>") if tag[1] == "textarea" else tag.end()
    feedback = re.match(r'(?:\s*<div class="invalid-feedback">[^<]*</div>)*', page[end:])[0]
    return [html.unescape(text) for text in re.findall(r'<div class="invalid-feedback">([^<]*)</div>', feedback)]


def profile_of(user: User) -> tuple:
    db.session.expire_all()
    user = db.session.get(User, user.id)
    return tuple(getattr(user, name) for name in accounts.PROFILE_FIELDS)


@pytest.mark.parametrize("field, value, words", BAD, ids=[f"{f}-{v[:12]!r}" for f, v, _ in BAD])
def test_the_page_and_the_api_refuse_a_bad_value_with_the_same_message(client, login, field, value, words):
    page_user = make_user(company="Before")
    api_user, headers = with_key(company="Before")
    before = profile_of(page_user), profile_of(api_user)

    login(page_user)
    response = client.post(PROFILE_PAGE, data={**VALID, field: value})
    assert response.status_code == 200
    [shown] = field_errors(response.get_data(as_text=True), field)
    assert words in shown
    client.post("/logout")

    body = assert_error(client.patch(USER_API, json={field: value}, headers=headers), 400, "bad_request")
    assert body["message"] == f"{field}: {shown}"
    assert (profile_of(page_user), profile_of(api_user)) == before, "nothing is saved"


def test_update_profile_names_the_field_and_changes_nothing(app):
    user = make_user(company="Before", country="CH")
    with pytest.raises(AccountError) as refused:
        accounts.update_profile(user, company="After", country="XX")
    assert refused.value.field == "country" and "two-letter" in refused.value.message
    assert (user.company, user.country) == ("Before", "CH")
    with pytest.raises(AccountError) as refused:
        accounts.update_profile(user, nickname="Ace")
    assert refused.value.field == "nickname"


def test_every_bad_field_is_shown_beside_it_at_once(client, login):
    user = make_user(company="Before")
    login(user)
    data = {**VALID, "first_name": "", "company": "x" * 201, "country": "XX"}
    page = client.post(PROFILE_PAGE, data=data).get_data(as_text=True)
    assert field_errors(page, "first_name") == ["must not be empty"]
    assert field_errors(page, "company") == ["must have at most 200 characters"]  # beside the field's own
    assert field_errors(page, "country") == ["must be a two-letter ISO 3166 country code, e.g. CH, DE or US"]
    assert field_errors(page, "last_name") == []
    assert profile_of(user)[2] == "Before"


def test_nul_is_refused_by_the_page_and_the_api(client, login):
    page_user = make_user(company="Before")
    api_user, headers = with_key(company="Before")
    login(page_user)
    response = client.post(PROFILE_PAGE, data={**VALID, "company": "AC\x00ME"})
    assert response.status_code == 200
    assert field_errors(response.get_data(as_text=True), "company"), "a message beside the field"
    client.post("/logout")
    assert_error(client.patch(USER_API, json={"company": "AC\x00ME"}, headers=headers), 400, "bad_request", "NUL")
    assert profile_of(page_user)[2] == profile_of(api_user)[2] == "Before"


GOOD = {
    "first_name": " Grace ",
    "last_name": "Hopper",
    "company": "  Navy ",
    "billing_address": "1 Main St\r\n12345\tArlington\r\n",
    "country": "us",
    "tax_id": "US-123",
}
STORED = ("Grace", "Hopper", "Navy", "1 Main St\n12345\tArlington", "US", "US-123")


def test_good_values_are_saved_identically_by_the_page_and_the_api(any_app):
    client = any_app.test_client()
    page_user = make_user()
    api_user, headers = with_key()
    response = client.post("/login", data={"email": page_user.email, "password": "correct horse battery"})
    assert response.status_code == 302
    response = client.post(PROFILE_PAGE, data=GOOD, follow_redirects=True)
    assert b"Your profile has been saved" in response.data
    client.post("/logout")
    response = client.patch(USER_API, json=GOOD, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert profile_of(page_user) == profile_of(api_user) == STORED
    assert tuple(response.get_json()[name] for name in accounts.PROFILE_FIELDS) == STORED


def test_an_empty_country_tax_id_and_company_are_allowed(client):
    user, headers = with_key(company="ACME", country="CH", tax_id="CHE-1")
    response = client.patch(USER_API, json={"company": "", "country": "", "tax_id": ""}, headers=headers)
    assert response.status_code == 200
    assert profile_of(user)[2:] == ("", "", "", "")


def test_the_form_takes_its_length_limits_from_the_rules(client, login):
    login(make_user())
    page = client.get("/account").get_data(as_text=True)
    for name, rule in accounts.PROFILE_FIELDS.items():
        tag = re.search(rf'<(?:input|textarea)\b[^>]*\bid="{name}"[^>]*>', page)[0]
        assert f'maxlength="{rule.max_length}"' in tag, tag


def test_the_limits_fit_the_columns(app):
    for name, rule in accounts.PROFILE_FIELDS.items():
        length = User.__table__.c[name].type.length
        assert length is None or rule.max_length <= length, name


def test_a_signup_refuses_control_characters_in_the_names(client):
    body = {"email": "ada@example.com", "first_name": "Ada\x07", "last_name": "King", "password": "x" * 12}
    assert_error(
        client.post("/admin/api/v2/auth/signup/", json=body), 400, "bad_request", "first_name:", "control characters"
    )
    assert User.find("ada@example.com") is None


def test_a_lone_surrogate_is_refused_not_a_500(any_app):
    client = any_app.test_client()
    user, headers = with_key(company="Before")
    body = b'{"company": "AC\\ud800ME"}'  # valid JSON, but no database stores it
    response = client.patch(USER_API, data=body, content_type="application/json", headers=headers)
    assert_error(response, 400, "bad_request", "surrogate")  # refused with the body, as a NUL is
    assert profile_of(user)[2] == "Before"


def test_a_lone_surrogate_in_a_signup_password_is_a_400(any_app):
    body = b'{"email": "ada@example.com", "first_name": "Ada", "last_name": "King", "password": "long enough\\udc00"}'
    response = any_app.test_client().post("/admin/api/v2/auth/signup/", data=body, content_type="application/json")
    assert_error(response, 400, "bad_request", "surrogate")
    assert User.find("ada@example.com") is None


def test_the_forms_and_the_profile_refuse_control_characters_alike():
    # the pages' forms refuse control characters before update_profile sees them: the same rule and message
    from app import text
    from app.views import forms

    for value in ("a\x00b", "a\tb", "a\nb", "a\r\nb", "a\x85b", "a\x0bb", "a\x7fb", "plain"):
        for multi_line in (False, True):
            assert forms.control_character_error(value, multi_line) == text.control_character_error(value, multi_line)


# an admin may leave the names empty (service accounts have none): every other rule is the page's
CONSOLE_BAD = [case for case in BAD if case[2] != "must not be empty"]


@pytest.mark.parametrize("field, value, words", CONSOLE_BAD, ids=[f"{f}-{v[:12]!r}" for f, v, _ in CONSOLE_BAD])
def test_the_console_refuses_what_the_page_refuses_beside_the_field(client, login, field, value, words):
    admin = make_user(email="root@example.com", userid="root", admin=True)
    user = make_user(email="ada@example.com", userid="ada", first_name="Ada", last_name="King")
    login(admin)
    before = profile_of(user)
    data = {"email": user.email, "userid": user.userid, **VALID, field: value}
    response = client.post(f"/admin/user/edit/?id={user.id}", data=data)
    page = response.get_data(as_text=True)
    # refused beside the field: in the rules' words, or Flask-Admin's own for a length its column has
    shown = html.unescape(page)
    assert response.status_code == 200 and (words in shown or "cannot be longer than" in shown), field
    db.session.expire_all()
    assert profile_of(db.session.get(User, user.id)) == before


def test_the_console_stores_the_country_as_the_page_does(client, login):
    admin = make_user(email="root@example.com", userid="root", admin=True)
    user = make_user(email="ada@example.com", userid="ada", first_name="Ada", last_name="King")
    login(admin)
    data = {"email": user.email, "userid": user.userid, **VALID, "country": "de"}
    assert client.post(f"/admin/user/edit/?id={user.id}", data=data).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).country == "DE"
    data["country"] = "XX"  # no such country: refused beside the field, the stored one kept
    assert client.post(f"/admin/user/edit/?id={user.id}", data=data).status_code == 200
    db.session.expire_all()
    assert db.session.get(User, user.id).country == "DE"


@pytest.mark.parametrize("path", ["/admin/api/v2/service/plan/"])
def test_a_lone_surrogate_in_any_json_body_is_a_400(any_app, path):
    admin, headers = with_key(email="root@example.com", userid="root", admin=True)
    response = any_app.test_client().post(
        path, data='{"plan": "p", "title": "a\\ud800"}', content_type="application/json", headers=headers
    )
    assert_error(response, 400, "bad_request", "surrogate")
