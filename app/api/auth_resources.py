"""``/admin/api/v2/auth/...``: sign-up, password reset and the user resource.

- ``signup/`` POST: anonymous and rate limited; 201 with the new user, ``Location`` its resource.
  A taken email is a 409 ``conflict`` (the sign-up page says the same, so the API reveals no more).
- ``reset/`` POST ``{email}``: 202 with the same body whether the email is registered or not;
  POST ``{token, password}``: 200 with the user, or a 400 that says why.
- ``user/`` GET: the caller's own record, or every user (paginated, ``?email=``) for admins;
  ``user/<id>/`` GET, PATCH: self or admin, else 404 (no hint that the id exists).
  ``user/`` PATCH changes the caller's own record.

Bodies are parsed strictly: anything but a JSON object, unknown or read-only fields, missing
fields and wrong types are a 400 that names the field, never a 500.
"""

import re
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from .. import accounts
from ..accounts import COUNTRIES
from ..extensions import db, limiter
from ..mail import MailError
from ..models import User
from ..models.types import valid_id
from .auth import require_user
from .errors import ApiError
from .parsing import bad_request, check_fields, int_arg, json_body, single_arg

bp = Blueprint("api_auth", __name__, url_prefix="/admin/api/v2/auth")

DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 20, 100, 999_999_999
# profile fields a user may change, with their maximum length (as the account page allows)
PROFILE_FIELDS = {
    "first_name": 100,
    "last_name": 100,
    "company": 200,
    "billing_address": 1000,
    "country": 2,
    "tax_id": 50,
}
# what the user object shows but PATCH may not change
READ_ONLY_FIELDS = {
    "id",
    "userid",
    "email",
    "active",
    "admin",
    "email_confirmed",
    "date_joined",
    "resource_uri",
    "password",
}
MULTI_LINE_FIELDS = {"billing_address"}
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LINE_BREAKS = re.compile(r"[\r\n]")
REQUIRED_PROFILE_FIELDS = {"first_name", "last_name"}


def account_error(exc: accounts.AccountError) -> ApiError:
    return bad_request(f"{exc.field}: {exc.message}")


# representation


def user_uri(user: User) -> str:
    return url_for("api_auth.user_detail", user_id=user.id)


def serialize_user(user: User) -> dict:
    """The user as the API shows it: never the password hash, never keys."""
    return {
        "id": user.id,
        "userid": user.userid,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "company": user.company,
        "billing_address": user.billing_address,
        "country": user.country,
        "tax_id": user.tax_id,
        "active": user.active,
        "email_confirmed": user.email_confirmed_at is not None,
        "date_joined": user.created_at.isoformat() if user.created_at else None,
        "resource_uri": user_uri(user),
    }


def created(user: User):
    response = jsonify(serialize_user(user))
    response.status_code = 201
    response.headers["Location"] = user_uri(user)
    return response


# sign-up


SIGNUP_FIELDS = {"email", "first_name", "last_name", "password"}


@bp.route("/signup/", methods=["POST"], strict_slashes=False)
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
def signup():
    """Create an account; confirm its email first, or provision it at once when confirmation is off."""
    body = json_body()
    check_fields(body, SIGNUP_FIELDS, SIGNUP_FIELDS)
    for field in ("first_name", "last_name"):
        if not body[field].strip():
            raise bad_request(f"field {field!r} must not be empty")
    confirm = accounts.confirmation_required()
    try:
        email = accounts.normalize_email(body["email"])
        if accounts.email_taken(email):
            raise ApiError(409, "conflict", "an account with this email exists already")
        user = accounts.create_user(
            email, body["password"], body["first_name"], body["last_name"], confirmed=not confirm
        )
        if confirm:
            db.session.commit()  # provisioned once the email is confirmed
        else:
            accounts.provision_and_commit(user)
    except accounts.AccountError as exc:
        raise account_error(exc) from None
    except IntegrityError:
        # a sign-up at the same moment took the email (or the userid made from it) after our check
        db.session.rollback()
        if accounts.email_taken(email):
            raise ApiError(409, "conflict", "an account with this email exists already") from None
        raise ApiError(409, "conflict", "another sign-up got in the way: please try again") from None
    if confirm:
        try:
            accounts.send_confirmation(user)
        except MailError as exc:
            # the account exists: a password reset confirms the email too, so the user is not stuck
            current_app.logger.error("signup of %s: confirmation mail not sent: %s", user.userid, exc)
    return created(user)


# password reset


RESET_REQUESTED = "if an account with this email exists, we sent it a link to reset the password"


@bp.route("/reset/", methods=["POST"], strict_slashes=False)
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT"])
def reset():
    """``{email}``: mail a reset link (202, whether registered or not); ``{token, password}``: set the password."""
    body = json_body()
    if "token" in body or "password" in body:
        check_fields(body, {"token", "password"}, {"token", "password"})
        return reset_with_token(body["token"], body["password"])
    check_fields(body, {"email"}, {"email"})
    try:
        email = accounts.normalize_email(body["email"])
    except accounts.AccountError as exc:
        raise account_error(exc) from None
    accounts.send_reset_link(email)
    response = jsonify(message=RESET_REQUESTED, resource_uri=url_for("api_auth.reset"))
    response.status_code = 202
    return response


def reset_with_token(token: str, password: str):
    """Set the new password; a user confirmed by this link (it came by email) is provisioned now."""
    try:
        user = accounts.reset_password(token, password)
    except accounts.AccountError as exc:
        raise account_error(exc) from None
    if not user.active:
        raise bad_request("token: this account is deactivated; contact the operator")
    # reset_password confirms an unconfirmed email: then this is where the account's service starts
    if inspect(user).attrs.email_confirmed_at.history.has_changes() and accounts.confirmation_required():
        accounts.provision_and_commit(user)
    else:
        db.session.commit()
    return jsonify(serialize_user(user))


# the user resource


LIST_ARGS = {"limit", "offset", "email", "format"}


@bp.route("/user/", methods=["GET"], strict_slashes=False)
def user_list():
    """List users: the caller's own record, or every user for admins (``limit``, ``offset``, ``email``)."""
    caller = require_user()
    unknown = sorted(set(request.args) - LIST_ARGS)
    if unknown:
        raise bad_request(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))} (allowed: email, limit, offset)"
        )
    if (fmt := single_arg("format")) not in (None, "json"):  # tastypie clients send ?format=json
        raise bad_request(f"'format' must be json, got {fmt!r}")
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_arg("offset", 0, 0, MAX_OFFSET)
    email = single_arg("email")
    query = select(User)
    if not caller.admin:
        query = query.where(User.id == caller.id)
    if email is not None:
        query = query.where(func.lower(User.email) == email.strip().lower())
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    users = db.session.scalars(query.order_by(User.id).limit(limit).offset(offset)).all()
    return jsonify(
        meta={
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": _page_uri(limit, offset + limit, email) if offset + limit < total else None,
            "previous": _page_uri(limit, max(0, offset - limit), email) if offset > 0 else None,
        },
        objects=[serialize_user(user) for user in users],
    )


def _page_uri(limit: int, offset: int, email: str | None) -> str:
    args = {"limit": limit, "offset": offset}
    if email is not None:
        args["email"] = email
    return f"{url_for('api_auth.user_list')}?{urlencode(args)}"


def visible_user(caller: User, user_id: int) -> User:
    """The user ``user_id`` if the caller may see it (self or admin); 404 otherwise, as if it did not exist."""
    user = db.session.get(User, user_id) if valid_id(user_id) else None
    if user is None or (user.id != caller.id and not caller.admin):
        raise ApiError(404, "not_found", f"no user {user_id}")
    return user


@bp.route("/user/<int:user_id>/", methods=["GET"], strict_slashes=False)
def user_detail(user_id: int):
    """Show one user: the caller, or anyone for admins."""
    if request.args:
        raise bad_request(f"unknown query parameter(s) {', '.join(map(repr, sorted(request.args)))}")
    return jsonify(serialize_user(visible_user(require_user(), user_id)))


@bp.route("/user/", methods=["PATCH"], strict_slashes=False, endpoint="user_patch_self")
@bp.route("/user/<int:user_id>/", methods=["PATCH"], strict_slashes=False)
def user_patch(user_id: int | None = None):
    """Change profile fields of the caller (or, for admins, of anyone)."""
    caller = require_user()
    user = caller if user_id is None else visible_user(caller, user_id)
    body = json_body()
    check_fields(body, set(PROFILE_FIELDS), read_only=READ_ONLY_FIELDS)
    changes = {field: clean_profile_value(field, value) for field, value in body.items()}
    for field, value in changes.items():
        setattr(user, field, value)
    db.session.commit()
    return jsonify(serialize_user(user))


def clean_profile_value(field: str, value: str) -> str:
    """A profile value as stored, or a 400 naming the field."""
    value = value.strip()
    if CONTROL_CHARS.search(value) or (field not in MULTI_LINE_FIELDS and LINE_BREAKS.search(value)):
        raise bad_request(f"field {field!r} must not contain control characters or line breaks")
    if field == "country":
        if value and value.upper() not in COUNTRIES:
            raise bad_request(
                f"field 'country' must be a two-letter ISO 3166 country code (e.g. CH, DE, US), got {value!r}"
            )
        return value.upper()
    if field in REQUIRED_PROFILE_FIELDS and not value:
        raise bad_request(f"field {field!r} must not be empty")
    if len(value) > PROFILE_FIELDS[field]:
        raise bad_request(f"field {field!r} must have at most {PROFILE_FIELDS[field]} characters")
    return value
