"""Mail: delivered over real SMTP (a local aiosmtpd), written to instance/mail/ without a server, failures reported."""

import email
import logging
from email import policy

import pytest

from app.mail import MailError, send_mail
from app.models import User

from .servers import SmtpServer, body_of, free_port, link_in

SIGNUP = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "password": "analytical engine",
    "password2": "analytical engine",
    "terms": "y",
}
RESET_CONTEXT = {"user": User(email="ada@example.com", first_name="Ada"), "link": "http://x/y", "max_age_minutes": 9}


@pytest.fixture(name="smtp")
def smtp_fixture(app):
    """A real SMTP server on a free local port, set as the app's MAIL_SERVER; yields its inbox."""
    server = SmtpServer()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port)
    yield server.inbox
    server.stop()


def test_send_mail_delivers_through_smtp(app, smtp):
    with app.test_request_context():
        where = send_mail("ada@example.com", "Hello", "mail/reset.txt", **RESET_CONTEXT)
    assert where == f"127.0.0.1:{app.config['MAIL_PORT']}"
    (message,) = smtp.messages
    assert message["To"] == "ada@example.com" and message["Subject"] == "Hello"
    assert message["From"] == app.config["MAIL_FROM"]
    assert body_of(message).startswith("Hello Ada,")
    assert "http://x/y" in body_of(message) and "9 minutes" in body_of(message)


def test_without_a_mail_server_the_mail_is_written_to_the_instance_dir(app, client):
    assert not app.config["MAIL_SERVER"]
    client.post("/signup", data=SIGNUP)
    (path,) = (app.config["INSTANCE_DIR"] / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "ada@example.com"
    link = link_in(message, "/confirm/")
    assert link.startswith("http://localhost/confirm/")
    client.get(link.removeprefix("http://localhost"))
    assert User.find("ada@example.com").email_confirmed_at is not None


def test_an_unreachable_mail_server_is_a_mail_error(app):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())
    with app.test_request_context(), pytest.raises(MailError, match="cannot send mail through 127.0.0.1"):
        send_mail("ada@example.com", "Hello", "mail/reset.txt", **RESET_CONTEXT)


def test_signup_succeeds_and_says_so_when_the_mail_cannot_be_sent(app, client, caplog):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())
    with caplog.at_level(logging.ERROR):
        response = client.post("/signup", data=SIGNUP, follow_redirects=True)
    assert response.status_code == 200
    assert b"the confirmation email could not be sent" in response.data
    assert User.find("ada@example.com") is not None
    assert any("confirmation mail not sent" in record.getMessage() for record in caplog.records)


def test_links_in_mails_use_public_url_when_set(app, client, smtp):
    app.config["PUBLIC_URL"] = "https://ops.example.com/"
    client.post("/signup", data=SIGNUP)
    assert link_in(smtp.messages[0], "/confirm/").startswith("https://ops.example.com/confirm/")
    client.post("/reset", data={"email": "ada@example.com"})
    assert link_in(smtp.messages[1], "/reset/").startswith("https://ops.example.com/reset/")
