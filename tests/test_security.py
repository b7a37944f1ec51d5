"""Security properties that hold across the app: hashing, cookies, headers, no inline scripts, key format."""

import re
from pathlib import Path

import pytest

from app import create_app
from app.accounts import AccountError, authenticate_key, check_password, create_api_key, hash_key
from app.extensions import db
from app.models import ApiKey
from config import DevelopmentConfig, ProductionConfig

from .factories import make_user

TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"


def test_passwords_are_hashed_with_scrypt_outside_tests(tmp_path):
    app = create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'd.db'}")
    with app.app_context():
        from app.models import User

        user = User(email="a@example.com", userid="a1")
        user.set_password("a long enough password")
        assert user.password_hash.startswith("scrypt:")
        assert user.check_password("a long enough password")


@pytest.mark.parametrize(
    "password, email, message",
    [
        ("short", "a@example.com", "at least 10"),
        ("a@example.com", "a@example.com", "not be your email"),
        ("AnnaSmith1", "annasmith1@example.com", "not be your email"),
        ("x" * 1001, "a@example.com", "too long"),
    ],
)
def test_password_rules(app, password, email, message):
    with pytest.raises(AccountError, match=message):
        check_password(password, email)


def test_api_keys_are_40_hex_stored_only_as_hashes(app):
    user = make_user()
    row, key = create_api_key(user, "laptop")
    db.session.commit()
    assert re.fullmatch(r"[0-9a-f]{40}", key) and "." not in key
    stored = db.session.get(ApiKey, row.id)
    assert stored.key_hash == hash_key(key) and key not in (stored.key_hash, stored.prefix)
    assert stored.prefix == key[:8]
    assert authenticate_key(user.userid, key) == user
    assert authenticate_key(user.userid, key[:-1] + ("0" if key[-1] != "0" else "1")) is None
    assert authenticate_key("someone-else", key) is None


def test_security_headers_on_pages_and_api(client):
    for path in ("/login", "/api/v1/config/"):
        response = client.get(path)
        csp = response.headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]+)", csp).group(1)
        assert "'unsafe-inline'" not in script_src and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_templates_have_no_inline_scripts():
    for template in TEMPLATES.rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", template.read_text()):
            assert "src=" in tag, f"{template.relative_to(TEMPLATES)} has an inline script: {tag}"
        assert not re.search(r"\son[a-z]+=\"", template.read_text()), f"{template} has an inline event handler"


def test_session_cookie_is_httponly_and_lax(client, login):
    user = make_user()
    response = login(user)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_session_cookie_is_secure(monkeypatch, tmp_path):
    monkeypatch.setenv("OMEGAOPS_SECRET_KEY", "k" * 32)
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'p.db'}")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True and app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_no_inline_handler_or_script_is_allowed():
    from app.security import CSP

    script_src = next(part for part in CSP.split(";") if part.strip().startswith("script-src")).split()
    assert script_src == ["script-src", "'self'", "'nonce-{nonce}'"]
