"""The user's own account: profile, password, API keys."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, EqualTo, Length

from .. import accounts
from ..accounts import PROFILE_FIELDS, AccountError, ProfileError
from ..extensions import db
from ..models import ApiKey
from .auth import add_form_error
from .forms import Form

bp = Blueprint("account", __name__, url_prefix="/account")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _limit(name: str) -> dict:
    """The field's length limit, from the profile's rules, for the browser."""
    return {"maxlength": PROFILE_FIELDS[name].max_length}


class ProfileForm(Form):
    """Only the fields: ``accounts.update_profile`` holds the rules, and its messages show beside them."""

    first_name = StringField("First name", render_kw=_limit("first_name"))
    last_name = StringField("Last name", render_kw=_limit("last_name"))
    company = StringField("Company", render_kw=_limit("company"))
    billing_address = TextAreaField("Billing address", render_kw=_limit("billing_address"))
    country = StringField("Country", render_kw=_limit("country"), description="e.g. CH, DE, US")
    tax_id = StringField("Tax id (VAT number)", render_kw=_limit("tax_id"))


class PasswordForm(Form):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1000)])
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=1000)])
    new_password2 = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("new_password", message="the passwords do not match")],
    )


class ApiKeyForm(Form):
    name = StringField("Key name", filters=[_strip], validators=[DataRequired(), Length(max=100)])


class RevokeForm(Form):
    """Only the CSRF token: revoking takes no input."""


def api_url() -> str:
    """The URL the omegaml client logs in to: PUBLIC_URL, else this request's root."""
    return (current_app.config["PUBLIC_URL"] or request.url_root).rstrip("/")


def render_account(profile=None, password=None, key=None, new_key=None, status=200):
    """The account page; forms not being submitted start from the stored values, not the request."""
    user = current_user._get_current_object()
    keys = db.session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id.desc())).all()
    page = render_template(
        "account/index.html",
        profile_form=profile or ProfileForm(formdata=None, obj=user),
        password_form=password or PasswordForm(formdata=None),
        key_form=key or ApiKeyForm(formdata=None),
        revoke_form=RevokeForm(formdata=None),
        keys=keys,
        new_key=new_key,
        api_url=api_url(),
    )
    response = current_app.make_response((page, status))
    if new_key is not None:
        # the only response that ever holds the key: keep it out of every cache
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("")
@login_required
def index():
    """Show the profile, the password form, the API keys and the `om cloud login` line."""
    return render_account()


@bp.route("/profile", methods=["POST"])
@login_required
def profile():
    """Update the profile."""
    form = ProfileForm()
    if not form.validate_on_submit():
        return render_account(profile=form)
    try:
        accounts.update_profile(
            current_user._get_current_object(), **{name: form[name].data or "" for name in PROFILE_FIELDS}
        )
    except ProfileError as exc:
        for name, message in exc.errors.items():
            form[name].errors = [*form[name].errors, message]
        return render_account(profile=form)
    db.session.commit()
    flash("Your profile has been saved.", "success")
    return redirect(url_for("account.index"))


@bp.route("/password", methods=["POST"])
@login_required
def password():
    """Change the password: the current one first, then the new one twice."""
    form = PasswordForm()
    user = current_user._get_current_object()
    if not form.validate_on_submit():
        return render_account(password=form)
    if not user.check_password(form.current_password.data):
        form.current_password.errors = ["this is not your current password"]
        return render_account(password=form)
    try:
        accounts.check_password(form.new_password.data, user.email)
    except AccountError as exc:
        form.new_password.errors = [exc.message]
        return render_account(password=form)
    user.set_password(form.new_password.data)
    db.session.commit()
    flash("Your password has been changed.", "success")
    return redirect(url_for("account.index"))


@bp.route("/keys", methods=["POST"])
@login_required
def create_key():
    """Create an API key and show it, this once."""
    form = ApiKeyForm()
    if not form.validate_on_submit():
        return render_account(key=form)
    try:
        api_key, key = accounts.create_api_key(current_user._get_current_object(), form.name.data)
    except AccountError as exc:
        db.session.rollback()
        add_form_error(form, exc)
        return render_account(key=form)
    db.session.commit()
    flash(f"Your new API key “{api_key.name}” is shown below, this once: copy it now.", "success")
    # rendered, not redirected: the key is never stored, so no later page could show it
    return render_account(new_key=key)


@bp.route("/keys/<int:key_id>/revoke", methods=["POST"])
@login_required
def revoke_key(key_id: int):
    """Revoke one of the user's API keys."""
    form = RevokeForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        api_key = accounts.revoke_api_key(current_user._get_current_object(), key_id)
    except AccountError:
        # someone else's key looks exactly like a key that does not exist
        abort(404)
    db.session.commit()
    flash(f"The API key “{api_key.name}” ({api_key.prefix}…) is revoked.", "success")
    return redirect(url_for("account.index"))
