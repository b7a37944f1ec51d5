"""Users in the console: search and filters; activate, deactivate, grant admin, resend the confirmation;
their deployments, commands and API keys (revoke only: keys are never shown, only their prefix)."""

from flask import flash, redirect, url_for
from flask_admin import expose
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ... import accounts
from ...extensions import db
from ...mail import MailError
from ...models import ApiKey, ServiceCommand, ServiceDeployment, User
from .base import ConfirmForm, SecureModelView, when_formatter

SHOWN = 50
SWITCHES = {
    ("active", "on"): ("active", True, "{} is active again: they can log in."),
    ("active", "off"): ("active", False, "{} is deactivated: they cannot log in, their API keys are refused."),
    ("admin", "on"): ("admin", True, "{} is an admin now."),
    ("admin", "off"): ("admin", False, "{} is no longer an admin."),
}


class UserView(SecureModelView):
    can_delete = False  # users have history (commands, invoices): deactivate instead
    details_template = "admin/user_details.html"
    column_list = ("userid", "email", "first_name", "last_name", "active", "admin", "email_confirmed_at", "created_at")
    column_labels = {"email_confirmed_at": "Confirmed"}
    column_searchable_list = ("email", "userid", "last_name", "company")
    column_filters = ("active", "admin", "email_confirmed_at", "created_at", "country")
    column_default_sort = ("id", True)
    column_exclude_list = ("password_hash",)
    column_details_exclude_list = ("password_hash", "api_keys", "groups")
    column_formatters = {"email_confirmed_at": when_formatter, "created_at": when_formatter}
    # active and admin change through the details page's actions: confirmed, and never on one's own record
    form_excluded_columns = ("password_hash", "api_keys", "created_at", "groups", "active", "admin")

    def validate_form(self, form) -> bool:
        """The profile's rules are ``accounts.profile_value``'s, as on /account and in the API: a message beside
        each field it refuses, the value stored as it stores it (the country in capitals, say)."""
        valid = super().validate_form(form)
        for name in accounts.PROFILE_FIELDS:
            field = getattr(form, name, None)
            if field is None or field.errors:
                continue
            try:
                # an admin may leave the names empty (a service account has none): the rest is the same rule
                field.data = accounts.profile_value(name, field.data or "", required=False)
            except accounts.AccountError as exc:
                field.errors = [*field.errors, exc.message]
                valid = False
        return valid

    def render(self, template, **kwargs):
        if template == self.details_template:
            user = kwargs["model"]
            kwargs.update(
                deployments=db.session.scalars(
                    select(ServiceDeployment)
                    .where(ServiceDeployment.user_id == user.id)
                    .options(joinedload(ServiceDeployment.plan))
                    .order_by(ServiceDeployment.id.desc())
                    .limit(SHOWN)
                ).all(),
                commands=db.session.scalars(
                    select(ServiceCommand)
                    .where(ServiceCommand.user_id == user.id)
                    .options(joinedload(ServiceCommand.plan))
                    .order_by(ServiceCommand.id.desc())
                    .limit(SHOWN)
                ).all(),
                keys=db.session.scalars(
                    select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id.desc())
                ).all(),
                action_form=ConfirmForm(formdata=None),
            )
        return super().render(template, **kwargs)

    def back(self, user: User):
        return redirect(url_for(".details_view", id=user.id))

    @expose("/<int:user_id>/<field>/<switch>", methods=["POST"])
    def set_flag(self, user_id: int, field: str, switch: str):
        """Activate / deactivate, grant / take back admin."""
        user = self.load(User, user_id)
        if (field, switch) not in SWITCHES or not self.confirmed():
            flash("Unknown action.", "error")
            return self.back(user)
        name, value, message = SWITCHES[field, switch]
        if user.id == self.current_user_id() and not value:
            flash("You cannot deactivate yourself or take back your own admin rights.", "error")
            return self.back(user)
        setattr(user, name, value)
        db.session.commit()
        flash(message.format(user.email), "success")
        return self.back(user)

    @expose("/<int:user_id>/resend-confirmation", methods=["POST"])
    def resend_confirmation(self, user_id: int):
        user = self.load(User, user_id)
        if not self.confirmed():
            flash("Unknown action.", "error")
        elif user.email_confirmed_at is not None:
            flash(f"{user.email} is confirmed already.", "info")
        else:
            try:
                accounts.send_confirmation(user)
                flash(f"A new confirmation link was mailed to {user.email}.", "success")
            except MailError as exc:
                flash(str(exc), "error")
        return self.back(user)

    @expose("/<int:user_id>/keys/<int:key_id>/revoke", methods=["POST"])
    def revoke_key(self, user_id: int, key_id: int):
        user = self.load(User, user_id)
        if not self.confirmed():
            flash("Unknown action.", "error")
            return self.back(user)
        try:
            api_key = accounts.revoke_api_key(user, key_id)
        except accounts.AccountError:
            flash(f"{user.email} has no API key {key_id}.", "error")
            return self.back(user)
        db.session.commit()
        flash(f"The API key “{api_key.name}” ({api_key.prefix}…) of {user.email} is revoked.", "success")
        return self.back(user)

    @staticmethod
    def current_user_id():
        from flask_login import current_user

        return current_user.id
