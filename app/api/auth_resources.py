"""``/admin/api/v2/auth/...``: sign-up, password reset and the user resource.

- ``signup/`` POST: anonymous and rate limited; 201 with the new user, ``Location`` its resource.
  A taken email is a 409 ``conflict`` (the sign-up page says the same, so the API reveals no more).
- ``reset/`` POST ``{email}``: 202 with the same body whether the email is registered or not;
  POST ``{token, password}``: 200 with the user, or a 400 that says why.
- ``user/`` GET: the caller's own record, or every user (paginated, ``?email=``) for admins;
  ``user/<id>/`` GET, PATCH: self or admin, else 404 (no hint that the id exists).
  ``user/`` PATCH changes the caller's own record.

Bodies are parsed strictly (``app.api.schemas``, read as the service API reads them): anything but a JSON
object, unknown or read-only fields, missing fields and wrong types are a 400 that names the field, never a
500. The rules of the values are ``app.accounts``': the profile's are ``update_profile``, the account page's.
"""

from urllib.parse import urlencode

from flask import current_app, jsonify, url_for
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from .. import accounts
from ..extensions import db, limiter
from ..mail import MailError
from ..models import User
from ..models.types import valid_id
from . import schemas
from .access import guarded, require_user
from .errors import ApiError
from .parsing import bad_request
from .rest import Blueprint

bp = Blueprint(
    "api_auth",
    __name__,
    url_prefix=schemas.AUTH_PREFIX,
    description="Accounts: sign-up, password reset and the user resource (the profile).",
)
UserList = schemas.list_schema(schemas.UserSchema, "UserList")
LOCATION = {"Location": {"description": "the new user's resource_uri", "schema": {"type": "string"}}}
PUBLIC = {"security": []}  # anyone: no API key
RATE_LIMITED = "too many sign-ups or resets from this address: see Retry-After"


def account_error(exc: accounts.AccountError) -> ApiError:
    return bad_request(f"{exc.field}: {exc.message}")


def created(user: User):
    return user, 201, {"Location": schemas.user_uri(user)}


# sign-up


@bp.route("/signup/", methods=["POST"], strict_slashes=False)
@guarded(public=True)
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
@bp.arguments(schemas.SignupArgs)
@bp.response(201, schemas.UserSchema, headers=LOCATION)
@bp.alt_response(409, schema=schemas.ErrorSchema, description="an account with this email exists already")
@bp.alt_response(429, schema=schemas.ErrorSchema, description=RATE_LIMITED)
@bp.doc(**PUBLIC)
def signup(body):
    """Create an account; confirm its email first, or provision it at once when confirmation is off."""
    confirm = accounts.confirmation_required()
    try:
        email = accounts.normalize_email(body["email"])
        if accounts.email_taken(email):
            raise ApiError(409, "conflict", "an account with this email exists already")
        user = accounts.create_user(
            email,
            body["password"],
            body["first_name"],
            body["last_name"],
            confirmed=not confirm,
            names_required=True,
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
@guarded(public=True)
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT"])
@bp.arguments(schemas.ResetArgs)
@bp.response(202, schemas.ResetRequestedSchema, description="{email}: the same answer, registered or not")
@bp.alt_response(200, schema=schemas.UserSchema, description="{token, password}: the password is set")
@bp.alt_response(429, schema=schemas.ErrorSchema, description=RATE_LIMITED)
@bp.doc(**PUBLIC)
def reset(body):
    """``{email}``: mail a reset link (202, whether registered or not); ``{token, password}``: set the password."""
    if "token" in body:
        return reset_with_token(body["token"], body["password"])
    try:
        email = accounts.normalize_email(body["email"])
    except accounts.AccountError as exc:
        raise account_error(exc) from None
    accounts.send_reset_link(email)
    return {"message": RESET_REQUESTED, "resource_uri": url_for("api_auth.reset")}


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
    # not the 202's schema: the response decorator dumps with that one
    return jsonify(schemas.UserSchema().dump(user))


# the user resource


@bp.route("/user/", methods=["GET"], strict_slashes=False)
@guarded(query=True)
@bp.arguments(schemas.UserListArgs, location="query", as_kwargs=True)
@bp.response(200, UserList)
def user_list(limit, offset, email=None, **_format):
    """List users: the caller's own record, or every user for admins (``limit``, ``offset``, ``email``)."""
    caller = require_user()
    query = select(User)
    if not caller.admin:
        query = query.where(User.id == caller.id)
    if email is not None:
        query = query.where(func.lower(User.email) == email.strip().lower())
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    users = db.session.scalars(query.order_by(User.id).limit(limit).offset(offset)).all()
    return {
        "meta": {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": _page_uri(limit, offset + limit, email) if offset + limit < total else None,
            "previous": _page_uri(limit, max(0, offset - limit), email) if offset > 0 else None,
        },
        "objects": users,
    }


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
@guarded()
@bp.response(200, schemas.UserSchema)
def user_detail(user_id: int):
    """Show one user: the caller, or anyone for admins."""
    return visible_user(require_user(), user_id)


@bp.route("/user/", methods=["PATCH"], strict_slashes=False, endpoint="user_patch_self")
@guarded()
@bp.arguments(schemas.UserPatchArgs)
@bp.response(200, schemas.UserSchema)
def user_patch_self(body):
    """Change the caller's own profile fields (``accounts.update_profile``: all or nothing)."""
    return patched(require_user(), body)


@bp.route("/user/<int:user_id>/", methods=["PATCH"], strict_slashes=False)
@guarded()
@bp.arguments(schemas.UserPatchArgs)
@bp.response(200, schemas.UserSchema)
def user_patch(body, user_id: int):
    """Change a user's profile fields: the caller's, or anyone's for admins (all or nothing)."""
    return patched(visible_user(require_user(), user_id), body)


def patched(user: User, body: dict) -> User:
    try:
        accounts.update_profile(user, **body)
    except accounts.AccountError as exc:
        raise account_error(exc) from None
    db.session.commit()
    return user
