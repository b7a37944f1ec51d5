"""`GET /api/v1/config/` against the requests the omegaml client sends (CLIENT-CONTRACT.md section 1)."""

import pytest

from app.accounts import create_api_key
from app.extensions import db
from app.models import Group, ServiceDeployment, Status
from app.ops import engine

from .engine_helpers import issue, reload
from .factories import make_plan, make_user

URL = "/api/v1/config/"


def client_headers(user, key, qualifier="default"):
    """Exactly what omegaml's OmegaRestApiAuth sends."""
    return {"Authorization": f"ApiKey {user.userid}:{key}", "Qualifier": qualifier}


def provisioned(userid, qualifiers=("default",)):
    """A user with an API key and a completed omegaml deployment, made by the real engine."""
    user = make_user(userid=userid, email=f"{userid}@example.com")
    _, key = create_api_key(user, "laptop")
    db.session.commit()
    command = issue("omegaml", user)
    assert engine.execute(command.id) is Status.COMPLETED
    for qualifier in qualifiers[1:]:
        update = issue("omegaml", user, phase="update", params=f"qualifier={qualifier}")
        assert engine.execute(update.id) is Status.COMPLETED
    return user, key


@pytest.fixture
def plan(app):
    plan = make_plan()
    plan.defaults = {
        "OMEGA_MONGO_SSL_KWARGS": {"tls": False, "tlsAllowInvalidCertificates": False},
        "OMEGA_CELERY_CONFIG": {"CELERY_DEFAULT_QUEUE": "default", "BROKER_HEARTBEAT": 0},
        "lowercase_is_ignored": True,
    }
    db.session.commit()
    return plan


@pytest.mark.parametrize("path", [URL, URL + "?", "/api/v1/config"])
def test_the_client_request_gets_the_list_envelope_with_its_config(client, plan, path):
    user, key = provisioned("jane")
    response = client.get(path, headers=client_headers(user, key))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["meta"] == {"limit": 1, "offset": 0, "total_count": 1, "next": None, "previous": None}
    [obj] = body["objects"]
    assert obj["resource_uri"] == "/api/v1/config/default/"
    data = obj["data"]
    assert data["OMEGA_MONGO_URL"].startswith("mongodb://jane:") and data["OMEGA_MONGO_URL"].endswith("/jane")
    assert data["OMEGA_CELERY_CONFIG"]["BROKER_URL"].startswith("amqp://jane:")
    # admin defaults merged under the deployment's settings, nested dicts deep-merged
    assert data["OMEGA_CELERY_CONFIG"]["BROKER_HEARTBEAT"] == 0
    assert data["OMEGA_CELERY_CONFIG"]["CELERY_DEFAULT_QUEUE"] == "default"
    assert data["OMEGA_MONGO_SSL_KWARGS"]["tls"] is False and data["OMEGA_USESSL"] is False
    assert data["OMEGA_USERID"] == "jane" and data["OMEGA_QUALIFIER"] == "default"
    assert all(k.isupper() for k in data), "only UPPERCASE keys: the client applies no others"
    assert "OMEGA_BROKER" not in data


def test_the_qualifier_header_wins_over_the_query(client, plan):
    user, key = provisioned("jane", qualifiers=("default", "dev"))
    response = client.get(URL + "?qualifier=default", headers=client_headers(user, key, "dev"))
    data = response.get_json()["objects"][0]["data"]
    assert data["OMEGA_QUALIFIER"] == "dev" and data["OMEGA_MONGO_URL"].endswith("/jane~dev")
    assert response.get_json()["objects"][0]["resource_uri"] == "/api/v1/config/dev/"
    headers = {"Authorization": f"ApiKey jane:{key}"}
    response = client.get(URL + "?qualifier=dev", headers=headers)
    assert response.get_json()["objects"][0]["data"]["OMEGA_QUALIFIER"] == "dev"
    assert client.get(URL, headers=headers).get_json()["objects"][0]["data"]["OMEGA_QUALIFIER"] == "default"


def test_qualifiers_share_one_broker_password(client, plan):
    from urllib.parse import urlsplit

    user, key = provisioned("jane", qualifiers=("default", "dev"))
    urls = [
        client.get(URL, headers=client_headers(user, key, q)).get_json()["objects"][0]["data"]["OMEGA_CELERY_CONFIG"]
        for q in ("default", "dev")
    ]
    assert len({urlsplit(u["BROKER_URL"]).password for u in urls}) == 1


def test_unknown_qualifier_is_404(client, plan):
    user, key = provisioned("jane")
    response = client.get(URL, headers=client_headers(user, key, "nope"))
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"


def test_view_1_answers_internal_hosts(client, plan):
    user, key = provisioned("jane")
    deployment = db.session.scalar(db.select(ServiceDeployment))
    settings = dict(deployment.settings)
    settings["default"] = {
        **settings["default"],
        "internal": {"OMEGA_MONGO_URL": "mongodb://jane:pw@mongo.svc:27017/jane", "JUPYTER_URL": "http://jupyter.svc"},
    }
    deployment.settings = settings
    db.session.commit()
    outside = client.get(URL + "?", headers=client_headers(user, key)).get_json()["objects"][0]["data"]
    inside = client.get(URL + "?view=1", headers=client_headers(user, key)).get_json()["objects"][0]["data"]
    assert "mongo.svc" not in outside["OMEGA_MONGO_URL"] and "JUPYTER_URL" not in outside
    assert inside["OMEGA_MONGO_URL"] == "mongodb://jane:pw@mongo.svc:27017/jane"
    assert inside["JUPYTER_URL"] == "http://jupyter.svc"


def test_user_query_is_for_admins_only(client, plan):
    jane, jane_key = provisioned("jane")
    bob, bob_key = provisioned("bob")
    response = client.get(f"{URL}?user=jane", headers=client_headers(bob, bob_key))
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"
    bob.admin = True
    db.session.commit()
    data = client.get(f"{URL}?user=jane&view=1", headers=client_headers(bob, bob_key)).get_json()
    assert data["objects"][0]["data"]["OMEGA_USERID"] == "jane"
    assert client.get(f"{URL}?user=ghost", headers=client_headers(bob, bob_key)).status_code == 404
    own = client.get(f"{URL}?user=jane", headers=client_headers(jane, jane_key))
    assert own.status_code == 200, "asking for yourself is fine"


def test_group_qualifier_resolves_to_the_shared_account_for_members(client, plan):
    team, _ = provisioned("team")
    jane, key = provisioned("jane")
    outsider, outsider_key = provisioned("bob")
    group = Group(name="acme", account=team, members=[jane])
    db.session.add(group)
    db.session.commit()
    data = client.get(URL, headers=client_headers(jane, key, "acme:default")).get_json()["objects"][0]
    assert data["data"]["OMEGA_USERID"] == "team" and data["resource_uri"] == "/api/v1/config/acme:default/"
    assert client.get(URL, headers=client_headers(outsider, outsider_key, "acme:default")).status_code == 404
    assert client.get(URL, headers=client_headers(jane, key, "nogroup:default")).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "ApiKey jane:0000000000000000000000000000000000000000",
        "ApiKey jane",
        "ApiKey :",
        "ApiKey ghost:abc",
        "Bearer a.b.c",
        "Basic amFuZTpwdw==",
        "ApiKey jane:" + "x" * 5000,
    ],
)
def test_bad_credentials_are_401_json_never_5xx(client, plan, authorization):
    provisioned("jane")
    headers = {"Qualifier": "default"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.get(URL, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert "ApiKey" in response.headers["WWW-Authenticate"]


def test_a_revoked_key_fails_at_once(client, plan):
    from app.accounts import revoke_api_key
    from app.models import ApiKey

    user, key = provisioned("jane")
    assert client.get(URL, headers=client_headers(user, key)).status_code == 200
    revoke_api_key(user, db.session.scalar(db.select(ApiKey.id)))
    db.session.commit()
    assert client.get(URL, headers=client_headers(user, key)).status_code == 401


def test_a_deactivated_user_is_401(client, plan):
    user, key = provisioned("jane")
    user.active = False
    db.session.commit()
    assert client.get(URL, headers=client_headers(user, key)).status_code == 401


def test_no_completed_omegaml_deployment_is_404(client, plan):
    user = make_user(userid="fresh")
    _, key = create_api_key(user, "k")
    db.session.commit()
    response = client.get(URL, headers=client_headers(user, key))
    assert response.status_code == 404 and "no omegaml service" in response.get_json()["message"]
    issue("omegaml", user)  # INITIATED: not yet provisioned
    assert client.get(URL, headers=client_headers(user, key)).status_code == 404


def test_a_deployment_being_updated_still_serves_its_config(client, plan):
    user, key = provisioned("jane")
    update = issue("omegaml", user, phase="update")
    assert engine.claim(update.id, "w")
    deployment = reload(update.deployment)
    deployment.status = Status.PENDING
    db.session.commit()
    assert client.get(URL, headers=client_headers(user, key)).status_code == 200


def test_last_used_is_written_at_most_once_a_minute(client, plan):
    from app.models import ApiKey

    user, key = provisioned("jane")
    statements = []
    from sqlalchemy import event

    def count(conn, cursor, statement, *args):
        if statement.startswith("UPDATE api_keys"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert client.get(URL, headers=client_headers(user, key)).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert db.session.scalar(db.select(ApiKey.last_used_at)) is not None


def test_repeated_bad_keys_are_rate_limited_with_retry_after(client, plan, app):
    app.config["APIKEY_FAILURE_LIMIT"] = "3 per minute"
    user, key = provisioned("jane")
    for _ in range(3):
        assert client.get(URL, headers=client_headers(user, "0" * 40)).status_code == 401
    response = client.get(URL, headers=client_headers(user, "0" * 40))
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"] == "too_many_requests"


def test_the_logged_in_page_session_may_read_its_own_config(client, plan, login):
    user, _ = provisioned("jane")
    login(user)
    response = client.get(URL)
    assert response.status_code == 200
    assert response.get_json()["objects"][0]["data"]["OMEGA_USERID"] == "jane"


def test_the_config_answer_on_every_database(any_app):
    """On PostgreSQL the endpoint reads in autocommit mode: the answer, and a revoke, must not differ."""
    from app.accounts import revoke_api_key
    from app.models import ApiKey

    make_plan()
    user, key = provisioned("jane")
    db.session.commit()
    client = any_app.test_client()
    for _ in range(3):
        response = client.get(URL + "?", headers=client_headers(user, key))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["objects"][0]["data"]["OMEGA_USERID"] == "jane"
    assert db.session.scalar(db.select(ApiKey.last_used_at)) is not None
    revoke_api_key(user, db.session.scalar(db.select(ApiKey.id)))
    db.session.commit()
    assert client.get(URL, headers=client_headers(user, key)).status_code == 401
