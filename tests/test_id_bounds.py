"""Every route that takes an id answers an id beyond what the database holds as a 4xx, never a 500.

Ids are INTEGER columns: on PostgreSQL 2**31 overflows the column's type and the query fails. The routes are
found from the URL map (a new route with an ``<int:...>`` argument is covered here the day it is added),
and the query-string ids of the console's details and edit pages (``?id=``) from the admin object.
"""

from flask import url_for
from flask_admin.model import BaseModelView

from app.extensions import db
from app.models.types import MAX_ID, valid_id

from .api_helpers import with_key
from .factories import PASSWORD

BEYOND = (MAX_ID + 1, 2**63 - 1, 2**63, 10**30)


def test_the_bound_is_the_databases():
    assert MAX_ID == 2**31 - 1
    assert valid_id(1) and valid_id(MAX_ID)
    assert not any(valid_id(n) for n in (0, -1, MAX_ID + 1, 2**63))


def id_routes(app):
    for rule in app.url_map.iter_rules():
        ints = [name for name, converter in rule._converters.items() if type(converter).__name__ == "IntegerConverter"]
        if ints and rule.methods & {"GET", "POST"}:
            yield rule, ints


def test_every_id_route_answers_an_id_beyond_the_column_with_a_4xx(any_app):
    app = any_app
    admin, headers = with_key(email="root@example.com", userid="root", admin=True)
    client = app.test_client()
    assert client.post("/login", data={"email": admin.email, "password": PASSWORD}).status_code == 302
    tried = 0
    for rule, ints in id_routes(app):
        for value in BEYOND:
            with app.test_request_context():
                values = {name: value for name in ints}
                values.update({name: "x" for name in rule.arguments if name not in values})
                url = url_for(rule.endpoint, **values)
            for method in sorted(rule.methods & {"GET", "POST"}):
                response = client.open(url, method=method, headers=headers if url.startswith("/api") else None)
                tried += 1
                assert response.status_code < 500, f"{method} {url}: {response.status_code}"
    (admin_object,) = app.extensions["admin"]
    for view in admin_object._views:
        if not isinstance(view, BaseModelView):
            continue
        for page in ("details", "edit"):
            for value in BEYOND:
                response = client.get(f"{view.url}/{page}/?id={value}")
                tried += 1
                assert response.status_code < 500, f"{view.url}/{page}/?id={value}: {response.status_code}"
    assert tried > 100, tried


def test_a_text_keyed_row_still_opens_in_the_console(app, client, login):
    from app.models import UsageEvent

    from .factories import make_user

    login(make_user(email="root@example.com", userid="root", admin=True))
    user = make_user(email="ada@example.com")
    event_id = "evt-ü-1"
    from app.usage.events import record

    outcome = record(
        [
            {
                "id": event_id,
                "start_dt": "2026-11-02T10:00:00+00:00",
                "end_dt": "2026-11-02T10:00:01+00:00",
                "user": user.userid,
                "kind": "api",
                "action": "request",
            }
        ],
        "batch",
    )
    assert outcome.count("accepted") == 1, outcome.results
    assert db.session.get(UsageEvent, event_id) is not None
    response = client.get("/admin/usageevent/details/", query_string={"id": event_id})
    assert response.status_code == 200 and "ada@example.com" in response.get_data(as_text=True)
