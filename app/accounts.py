"""Accounts: creating users, the profile's rules, password rules, confirmation and reset tokens, API keys.

Every interface (pages, REST, CLI) goes through these functions; they add to the session and never
commit, except where they say so.
"""

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app, url_for
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, func, select, update

from .extensions import db
from .models import ApiKey, User
from .models.types import utcnow, valid_id
from .models.users import USERID_RE
from .ops.commands import CommandRefused, issue_command
from .text import control_character_error

# ISO 3166-1 alpha-2 (as in tzdata's iso3166.tab)
ISO_3166_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
    BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
    FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
    IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(ISO_3166_CODES.split())

KEY_BYTES = 20  # 40 hex characters, as the original service issued (and never a dot: see the client contract)


class AccountError(ValueError):
    """Bad account input; ``field`` names the form field or JSON key it is about."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


class ProfileError(AccountError):
    """Bad profile input: ``field`` and ``message`` are the first problem, ``errors`` every field's (in order)."""

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(field, message)
        self.errors = errors


# the profile


@dataclass(frozen=True)
class ProfileField:
    max_length: int
    required: bool = False
    multi_line: bool = False


# what a user may change of their own record, with its rules (the columns of app.models.User fit them);
# the account form and the API's document take their limits from here
PROFILE_FIELDS = {
    "first_name": ProfileField(100, required=True),
    "last_name": ProfileField(100, required=True),
    "company": ProfileField(200),
    "billing_address": ProfileField(1000, multi_line=True),
    "country": ProfileField(2),
    "tax_id": ProfileField(50),
}
COUNTRY_MESSAGE = "must be a two-letter ISO 3166 country code, e.g. CH, DE or US"
# line breaks that are not control characters (Zl, Zp): one-line fields refuse them too
LINE_SEPARATOR_RE = re.compile("[\u2028\u2029]")
# lone surrogates: JSON can carry them ("\\ud800"), no database stores them
SURROGATE_RE = re.compile("[\ud800-\udfff]")


def profile_value(name: str, value, required: bool | None = None) -> str:
    """``value`` as the profile stores it (stripped, line breaks as LF, the country in capitals), or an
    AccountError naming ``name``; ``required`` overrides the field's own rule.

    Control characters are refused as every form refuses them (``app.text``), with the same message.
    """
    rule = PROFILE_FIELDS.get(name)
    if rule is None:
        raise AccountError(name, "is not a profile field (allowed: " + ", ".join(PROFILE_FIELDS) + ")")
    if not isinstance(value, str):
        raise AccountError(name, "must be text")
    problem = control_character_error(value, multi_line=rule.multi_line)
    if problem:
        raise AccountError(name, problem)
    if not rule.multi_line and (found := LINE_SEPARATOR_RE.search(value)):
        raise AccountError(
            name, f"must not contain line breaks (U+{ord(found.group()):04X} at character {found.start() + 1})"
        )
    if SURROGATE_RE.search(value):
        raise AccountError(name, "must be valid Unicode text (it holds a lone surrogate)")
    if rule.multi_line:
        value = value.replace("\r\n", "\n").replace("\r", "\n")  # a browser's textarea sends CRLF
    if name == "country" and value.strip() and value.strip().upper() not in COUNTRIES:
        raise AccountError(name, COUNTRY_MESSAGE)
    if len(value) > rule.max_length:  # counted as the form's maxlength counts: before trimming
        raise AccountError(name, f"must have at most {rule.max_length} characters")
    value = value.strip()
    if (rule.required if required is None else required) and not value:
        raise AccountError(name, "must not be empty")
    if name == "country":
        value = value.upper()
    return value


def update_profile(user: User, **fields) -> dict[str, str]:
    """Check every given profile field, then change them all (or, with a ProfileError, none). Not committed.

    Returns the values as stored. The one place of the profile's rules: the account page and the API
    (``PATCH /admin/api/v2/auth/user/``) call it, sign-ups check the names with ``profile_value``.
    """
    values, errors = {}, {}
    for name, value in fields.items():
        try:
            values[name] = profile_value(name, value)
        except AccountError as exc:
            errors[name] = exc.message
    if errors:
        raise ProfileError(errors)
    for name, value in values.items():
        setattr(user, name, value)
    return values


def normalize_email(email: str) -> str:
    """The email as stored, or an AccountError saying what is wrong with it."""
    try:
        return validate_email((email or "").strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AccountError("email", f"invalid email: {exc}") from None


def check_password(password: str, email: str = "") -> None:
    """Enforce the password rules: a minimum length, a maximum, and not the email."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if not isinstance(password, str) or len(password) < minimum:
        raise AccountError("password", f"the password must have at least {minimum} characters")
    if len(password) > 1000:
        raise AccountError("password", "the password is too long (at most 1000 characters)")
    if SURROGATE_RE.search(password):  # it is hashed as UTF-8, which has no lone surrogates
        raise AccountError("password", "the password must be valid Unicode text (it holds a lone surrogate)")
    if email and password.strip().lower() in (email.lower(), email.split("@", 1)[0].lower()):
        raise AccountError("password", "the password must not be your email")


def email_taken(email: str) -> bool:
    return db.session.scalar(select(User.id).where(func.lower(User.email) == email.lower())) is not None


def create_user(
    email: str,
    password: str | None,
    first_name: str = "",
    last_name: str = "",
    userid: str | None = None,
    confirmed: bool = False,
    admin: bool = False,
    names_required: bool = False,
) -> User:
    """Validate and add a new user (not committed); ``names_required`` for sign-ups (an operator's may omit them)."""
    email = normalize_email(email)
    if email_taken(email):
        raise AccountError("email", "an account with this email exists already")
    if userid is not None:
        if not USERID_RE.match(userid):
            raise AccountError("userid", f"invalid userid {userid!r} (2-63 lowercase letters, digits, _ . -)")
        if User.find(userid) is not None:
            raise AccountError("userid", f"userid {userid!r} is taken")
    names = {
        name: profile_value(name, value, required=names_required)
        for name, value in (("first_name", first_name), ("last_name", last_name))
    }
    if password is not None:
        check_password(password, email)
    user = User(
        email=email,
        userid=userid or User.make_userid(email),
        first_name=names["first_name"],
        last_name=names["last_name"],
        admin=admin,
        email_confirmed_at=utcnow() if confirmed else None,
    )
    if password is not None:
        user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def confirmation_required() -> bool:
    return current_app.config["SIGNUP_CONFIRMATION"]


def can_log_in(user: User) -> str | None:
    """Why ``user`` may not log in now, or None."""
    if not user.active:
        return "This account is deactivated. Contact the operator."
    if confirmation_required() and user.email_confirmed_at is None and not user.admin:
        return "Please confirm your email first: follow the link we sent you."
    return None


def provision(user: User) -> int | None:
    """Issue the ``signup`` command for a new user (it installs their omegaml); its id, or None without one.

    The caller commits, then enqueues.
    """
    try:
        command = issue_command(plan="signup", user=user, phase="install", privileged=True)
    except CommandRefused as exc:
        if exc.code != "conflict":  # a conflict: signed up already
            # the account stands; an operator provisions it once the signup plan is fixed
            current_app.logger.warning("%s was not provisioned: %s", user.userid, exc.message)
        return None
    return command.id


def provision_and_commit(user: User) -> int | None:
    """Issue the user's ``signup`` command, commit (with the caller's changes), then enqueue it. Commits.

    Returns the command's id, or None when none was issued.
    """
    from .jobs.provisioning import enqueue_command

    command_id = provision(user)
    db.session.commit()
    if command_id is not None:
        enqueue_command(command_id)
    return command_id


def external_url(endpoint: str, **values) -> str:
    """An absolute link for mails: under PUBLIC_URL when it is set, else the request's own host."""
    public = current_app.config["PUBLIC_URL"].rstrip("/")
    if public:
        return public + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def send_confirmation(user: User) -> None:
    """Mail the sign-up confirmation link; raises MailError when it cannot be sent."""
    from .mail import send_mail

    send_mail(
        user.email,
        "Confirm your email for omega|ml",
        "mail/confirm.txt",
        user=user,
        link=external_url("auth.confirm", token=make_confirm_token(user)),
        max_age_hours=current_app.config["CONFIRM_TOKEN_MAX_AGE"] // 3600,
    )


def send_reset_link(email: str) -> None:
    """Mail a reset link when ``email`` belongs to an active account; otherwise, and on failure, only log.

    The caller answers the same either way: it must not tell whether an email is registered.
    """
    from .mail import MailError, send_mail

    user = User.find(email)
    if user is None or not user.active:
        return
    try:
        send_mail(
            user.email,
            "Reset your omega|ml password",
            "mail/reset.txt",
            user=user,
            link=external_url("auth.reset", token=make_reset_token(user)),
            max_age_minutes=current_app.config["RESET_TOKEN_MAX_AGE"] // 60,
        )
    except MailError as exc:
        current_app.logger.error("password reset of %s: mail not sent: %s", user.userid, exc)


# tokens


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"omegaops-{purpose}")


def _password_fingerprint(user: User) -> str:
    # a reset token dies with the password it was made for: once used, the hash has changed
    return hashlib.sha256((user.password_hash or "-").encode()).hexdigest()[:16]


def make_confirm_token(user: User) -> str:
    return _serializer("confirm").dumps({"uid": user.id, "email": user.email})


def make_reset_token(user: User) -> str:
    return _serializer("reset").dumps({"uid": user.id, "pw": _password_fingerprint(user)})


def _load(purpose: str, token: str, max_age: int) -> dict:
    try:
        data = _serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise AccountError("token", "this link has expired: ask for a new one") from None
    except BadSignature:
        raise AccountError("token", "this link is not valid") from None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        raise AccountError("token", "this link is not valid")
    return data


def confirm_email(token: str) -> tuple[User, bool]:
    """Confirm the email a token was made for; (user, True) the first time, (user, False) after."""
    data = _load("confirm", token, current_app.config["CONFIRM_TOKEN_MAX_AGE"])
    user = db.session.get(User, data["uid"])
    if user is None or user.email != data.get("email"):
        raise AccountError("token", "this link is not valid")
    if user.email_confirmed_at is not None:
        return user, False
    user.email_confirmed_at = utcnow()
    return user, True


def check_reset_token(token: str) -> User:
    """The user a live reset token is for; an AccountError saying why when it is not live. Changes nothing."""
    data = _load("reset", token, current_app.config["RESET_TOKEN_MAX_AGE"])
    user = db.session.get(User, data["uid"])
    if user is None or not hmac.compare_digest(str(data.get("pw", "")), _password_fingerprint(user)):
        raise AccountError("token", "this link has been used already, or is not valid")
    return user


def reset_password(token: str, password: str) -> User:
    """Set a new password with a reset token; the token is dead afterwards."""
    user = check_reset_token(token)
    check_password(password, user.email)
    user.set_password(password)
    if user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()  # the link came by email: the address works
    return user


# API keys


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(user: User, name: str) -> tuple[ApiKey, str]:
    """A new key for ``user``: returns the row and the key itself, which is never stored and shown once."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise AccountError("name", "give the key a name of 1 to 100 characters")
    key = secrets.token_hex(KEY_BYTES)
    api_key = ApiKey(user=user, name=name, key_hash=hash_key(key), prefix=key[:8])
    db.session.add(api_key)
    db.session.flush()
    return api_key, key


@functools.cache
def _key_statement():
    """Built once per process: every API call runs it."""
    return (
        select(ApiKey.id, ApiKey.key_hash, ApiKey.last_used_at, User)
        .join(User, ApiKey.user_id == User.id)
        .where(
            ApiKey.key_hash == bindparam("key_hash"), ApiKey.revoked_at.is_(None), User.userid == bindparam("userid")
        )
    )


def authenticate_key(userid: str, key: str) -> User | None:
    """The active user that ``userid:key`` belongs to, or None. Marks the key used at most once a minute."""
    if not userid or not key or len(key) > 200:
        return None
    row = db.session.execute(_key_statement(), {"key_hash": hash_key(key), "userid": userid}).first()
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    user = row.User
    if not user.active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(seconds=60):
        # no write per request: a burst of calls marks the key once a minute
        db.session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
        db.session.commit()
    return user


def revoke_api_key(user: User, key_id: int) -> ApiKey:
    if not valid_id(key_id):
        raise AccountError("key", "no such key")
    api_key = db.session.get(ApiKey, key_id)
    if api_key is None or api_key.user_id != user.id:
        raise AccountError("key", "no such key")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
    return api_key
