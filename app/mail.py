"""Sending email: by SMTP when ``MAIL_SERVER`` is set, else written as .eml files under ``instance/mail/``."""

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from flask import current_app, render_template


class MailError(RuntimeError):
    """The mail could not be sent; the message says why, in one line."""


def send_mail(to: str, subject: str, template: str, attachments=(), **context) -> str:
    """Render ``template`` (a text template) and send it; return where it went (server or file path).

    ``attachments``: (filename, bytes, MIME type) tuples, e.g. an invoice's PDF.
    """
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config["MAIL_FROM"].rsplit("@", 1)[-1].strip(">"))
    message.set_content(render_template(template, **context))
    for filename, data, mimetype in attachments:
        maintype, subtype = mimetype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    if not config["MAIL_SERVER"]:
        folder = Path(config["INSTANCE_DIR"]) / "mail"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = folder / f"{stamp}-{to.replace('@', '_at_').replace('/', '_')}.eml"
        path.write_bytes(bytes(message))
        current_app.logger.info("mail to %s written to %s", to, path)
        return str(path)
    try:
        if config["MAIL_USE_SSL"]:
            smtp = smtplib.SMTP_SSL(
                config["MAIL_SERVER"], config["MAIL_PORT"], timeout=30, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(config["MAIL_SERVER"], config["MAIL_PORT"], timeout=30)
        with smtp:
            if config["MAIL_USE_TLS"]:
                smtp.starttls(context=ssl.create_default_context())
            if config["MAIL_USERNAME"]:
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(f"cannot send mail through {config['MAIL_SERVER']}:{config['MAIL_PORT']}: {exc}") from None
    return f"{config['MAIL_SERVER']}:{config['MAIL_PORT']}"
