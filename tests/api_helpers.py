"""What the API tests share: a caller with the omegaml client's headers, and the shape of an error."""

from app import accounts
from app.extensions import db

from .factories import make_user


def with_key(**fields):
    """A user and the ApiKey headers the omegaml client sends for them."""
    user = make_user(**fields)
    _, key = accounts.create_api_key(user, "test")
    db.session.commit()
    return user, {"Authorization": f"ApiKey {user.userid}:{key}", "Qualifier": "default"}


def assert_error(response, status, error, *words):
    """A JSON error ``{"error": ..., "message": ...}`` (a 409 may add ``blocking``, a 400 the ``parameter`` it
    refuses) with ``words`` in its message."""
    assert response.status_code == status, (response.status_code, response.data[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    extra = {"blocking"} if status == 409 else {"parameter"} if status == 400 else set()
    assert set(body) - extra == {"error", "message"}, body
    assert body["error"] == error, body
    for word in words:
        assert word in body["message"], body["message"]
    assert "Traceback" not in body["message"]
    return body
