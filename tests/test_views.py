"""Pages: login and logout, safe redirects, and the console for admins only."""

import pytest

from app.views.auth import is_safe_next

from .factories import make_plan, make_user


def test_login_page_is_served_with_local_bootstrap(client):
    response = client.get("/login")
    assert response.status_code == 200
    assert b"Log in" in response.data
    assert b"/admin/static/bootstrap/bootstrap4/css/bootstrap.min.css" in response.data
    assert b"cdn" not in response.data.lower()
    static = client.get("/admin/static/bootstrap/bootstrap4/css/bootstrap.min.css")
    assert static.status_code == 200
    static.close()


def test_login_with_the_right_password(client, login):
    user = make_user()
    response = login(user)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert user.email.encode() in client.get("/", follow_redirects=True).data


def test_login_with_a_wrong_password_shows_a_message(client, login):
    user = make_user()
    response = login(user, password="nope")
    assert response.status_code == 200
    assert b"Wrong email or password." in response.data


def test_login_of_an_unknown_email_says_the_same(client):
    response = client.post("/login", data={"email": "ghost@example.com", "password": "whatever"})
    assert b"Wrong email or password." in response.data


def test_inactive_users_cannot_log_in(client, login):
    user = make_user(active=False)
    assert b"deactivated" in login(user).data


def test_login_form_errors_are_shown(client):
    response = client.post("/login", data={"email": "not-an-email", "password": ""})
    assert response.status_code == 200
    assert b"invalid-feedback" in response.data


def test_login_follows_only_local_next(client):
    user = make_user()
    data = {"email": user.email, "password": "correct horse battery"}
    response = client.post("/login?next=https://evil.example.com/", data=data)
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post("/login?next=/admin/", data=data)
    assert response.headers["Location"] == "/admin/"


@pytest.mark.parametrize(
    "target, safe",
    [
        ("/admin/", True),
        ("/", True),
        ("//evil.com/", False),
        ("https://evil.com/", False),
        ("", False),
        (None, False),
        ("javascript:alert(1)", False),
    ],
)
def test_is_safe_next(target, safe):
    assert is_safe_next(target) is safe


def test_logout_is_post_only(client, login):
    login(make_user())
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert b"Log in" in client.get("/").data


def test_index_lists_offered_plans(client, app):
    make_plan(name="omegaml", title="omega|ml service")
    make_plan(name="internal", title="Hidden", offered=False)
    page = client.get("/").data
    assert b"omega|ml service" in page and b"Hidden" not in page


ADMIN_PAGES = [
    "/admin/",
    "/admin/user/",
    "/admin/serviceplan/",
    "/admin/servicedeployment/",
    "/admin/servicecommand/",
    "/admin/servicetask/",
    "/admin/serviceconfiguration/",
]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_console_sends_anonymous_visitors_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_console_refuses_users_who_are_not_admins_with_a_page_that_says_why(client, login, path):
    user = make_user()
    login(user)
    response = client.get(path)
    page = response.get_data(as_text=True)
    assert response.status_code == 403 and "The console is for administrators" in page and user.email in page


def test_admins_land_on_the_console_after_login_and_users_on_their_services(client, login):
    assert login(make_user(admin=True)).headers["Location"] == "/admin/"
    client.post("/logout")
    assert login(make_user()).headers["Location"] == "/"


def test_the_site_has_an_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml" and b"<svg" in response.get_data()
    response.close()


def test_console_pages_have_a_user_menu_with_logout_and_a_way_back_to_the_site(client, login):
    admin = make_user(admin=True)
    login(admin)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'id="console-logout"' in page and 'action="/logout"' in page
    assert 'id="console-to-site"' in page and admin.email in page


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_console_pages_render_for_admins(client, login, path):
    make_plan()
    login(make_user(admin=True))
    response = client.get(path)
    assert response.status_code == 200, response.data[:500]


def test_unknown_pages_are_404_pages_and_json_for_api_paths(client):
    response = client.get("/nowhere")
    assert response.status_code == 404 and b"Not Found" in response.data
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
