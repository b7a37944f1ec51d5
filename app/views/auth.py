"""Signing up, confirming the email, logging in and out, resetting a forgotten password."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from .. import accounts
from ..accounts import AccountError
from ..extensions import db, limiter
from ..mail import MailError
from ..models import User
from ..text import control_character_error
from .forms import Form

bp = Blueprint("auth", __name__)


class LoginForm(Form):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    remember = BooleanField("Keep me logged in")


class SignupForm(Form):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])
    first_name = StringField("First name", validators=[DataRequired(), Length(max=100)])
    last_name = StringField("Last name", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1000)])
    password2 = PasswordField(
        "Repeat the password", validators=[DataRequired(), EqualTo("password", message="the passwords do not match")]
    )
    terms = BooleanField(
        "I accept the terms of service", validators=[DataRequired(message="please accept the terms of service")]
    )


class ResetRequestForm(Form):
    email = EmailField("Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)])


class ResetForm(Form):
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1000)])
    password2 = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="the passwords do not match")],
    )


def is_safe_next(target: str | None) -> bool:
    """Only local paths are followed after login (no scheme, no host, no protocol-relative //)."""
    if not target or control_character_error(target):  # a line break would end the Location header
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//")


def add_form_error(form: Form, error: AccountError) -> None:
    """Show an AccountError at its field, or as a message when the form has no such field."""
    field = getattr(form, error.field, None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message[:1].upper() + error.message[1:] + ".", "danger")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    """Show the login form; log the user in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = User.find(form.email.data)
        if user is None or not user.check_password(form.password.data):
            flash("Wrong email or password.", "danger")
        elif (refusal := accounts.can_log_in(user)) is not None:
            flash(refusal, "danger")
        else:
            login_user(user, remember=form.remember.data)
            db.session.commit()
            target = request.args.get("next")
            home = url_for("admin.index") if user.admin else url_for("main.index")
            return redirect(target if is_safe_next(target) else home)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log the user out."""
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"], methods=["POST"])
def signup():
    """Show the sign-up form; create the account and send the confirmation mail (or provision at once)."""
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = SignupForm()
    if not form.validate_on_submit():
        return render_template("auth/signup.html", form=form)
    confirm = accounts.confirmation_required()
    try:
        user = accounts.create_user(
            form.email.data,
            form.password.data,
            first_name=form.first_name.data,
            last_name=form.last_name.data,
            confirmed=not confirm,
        )
    except AccountError as exc:
        db.session.rollback()
        add_form_error(form, exc)
        return render_template("auth/signup.html", form=form)
    except IntegrityError:
        # a sign-up with the same email (or derived userid) committed between our check and our insert
        db.session.rollback()
        flash("The account could not be created just now: please try again.", "danger")
        return render_template("auth/signup.html", form=form)
    if not confirm:
        accounts.provision_and_commit(user)
        flash("Your account is ready: log in.", "success")
        return redirect(url_for("auth.login"))
    db.session.commit()
    try:
        accounts.send_confirmation(user)
    except MailError as exc:
        current_app.logger.error("sign-up of %s: confirmation mail not sent: %s", user.userid, exc)
        flash(
            "Your account was created, but the confirmation email could not be sent. "
            "Please try again later with “Forgot password?”: its link confirms your email too.",
            "warning",
        )
    else:
        flash(f"We sent a confirmation link to {user.email}: follow it to activate your account.", "success")
    return redirect(url_for("auth.login"))


@bp.route("/confirm/<token>")
def confirm(token: str):
    """Confirm the email a sign-up link was sent to; the first time, provision the account."""
    try:
        user, first = accounts.confirm_email(token)
    except AccountError as exc:
        db.session.rollback()
        return render_template("auth/link_refused.html", reason=exc.message), 400
    if first:
        accounts.provision_and_commit(user)
        flash("Your email is confirmed and your account is ready: log in.", "success")
    else:
        flash("Your email is already confirmed.", "info")
    return redirect(url_for("main.index") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["RESET_RATE_LIMIT"], methods=["POST"])
def reset_request():
    """Send a password reset link; the answer is the same whether or not the email is registered."""
    form = ResetRequestForm()
    if not form.validate_on_submit():
        return render_template("auth/reset_request.html", form=form)
    accounts.send_reset_link(form.email.data)
    flash(
        "If an account is registered with this email, we have sent it a link to set a new password.",
        "info",
    )
    return redirect(url_for("auth.login"))


def reset_link_refusal(token: str) -> str | None:
    """Why a reset link cannot be used, or None when it can; changes nothing."""
    try:
        accounts.check_reset_token(token)
    except AccountError as exc:
        return exc.message
    return None


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    """Set a new password with a reset link; the link works once."""
    if request.method == "GET" and (reason := reset_link_refusal(token)) is not None:
        return render_template("auth/link_refused.html", reason=reason, reset=True), 400
    form = ResetForm()
    if form.validate_on_submit():
        try:
            user = accounts.reset_password(token, form.password.data)
        except AccountError as exc:
            db.session.rollback()
            if exc.field == "token":
                return render_template("auth/link_refused.html", reason=exc.message, reset=True), 400
            add_form_error(form, exc)
        else:
            # the link came by email, so reset_password confirms it: that can make the account usable
            just_confirmed = inspect(user).attrs.email_confirmed_at.history.has_changes()
            if just_confirmed:
                accounts.provision_and_commit(user)
            else:
                db.session.commit()
            flash("Your password has been changed: log in with the new one.", "success")
            return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form)
