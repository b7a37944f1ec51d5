"""Models: UTC timestamps on both backends, uniqueness, user lookups."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import ServiceCommand, ServiceDeployment, User
from app.ops.commands import issue_command

from .factories import make_plan, make_user


def test_timestamps_come_back_aware_and_in_utc(any_app):
    user = make_user()
    user.email_confirmed_at = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    db.session.commit()
    db.session.expire_all()
    user = db.session.get(User, user.id)
    assert user.created_at.tzinfo is not None and user.created_at.utcoffset() == timedelta(0)
    assert user.email_confirmed_at == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_naive_timestamps_are_refused(any_app):
    user = make_user()
    user.email_confirmed_at = datetime(2026, 3, 1, 12, 0)
    with pytest.raises(Exception, match="naive datetime"):
        db.session.commit()
    db.session.rollback()


def test_defaults_are_evaluated_per_row(any_app):
    first = make_user()
    second = make_user()
    assert second.created_at >= first.created_at
    assert first.created_at is not second.created_at


def test_email_and_userid_are_unique(any_app):
    make_user(email="a@example.com", userid="alpha")
    with pytest.raises(IntegrityError):
        make_user(email="a@example.com", userid="beta")
    db.session.rollback()
    with pytest.raises(IntegrityError):
        make_user(email="b@example.com", userid="alpha")
    db.session.rollback()


def test_find_user_by_userid_or_email_case_insensitively(any_app):
    user = make_user(email="Jane.Doe@example.com", userid="janedoe")
    assert User.find("janedoe") == user
    assert User.find("jane.doe@EXAMPLE.com") == user
    assert User.find("nobody") is None
    assert User.find("") is None


def test_make_userid_is_valid_and_free(app):
    make_user(email="x@example.com", userid="janedoe")
    assert User.make_userid("jane.doe@example.com") == "janedoe2"
    assert User.make_userid("J@example.com") == "juser"
    assert ":" not in User.make_userid("a:b@example.com")


def test_password_is_hashed_and_checked(app):
    user = make_user(password="s3cret-enough")
    assert "s3cret" not in user.password_hash
    assert user.check_password("s3cret-enough")
    assert not user.check_password("wrong")
    assert not User(email="n@example.com", userid="n1").check_password("")


def test_settings_and_params_round_trip_as_json(any_app):
    user = make_user()
    plan = make_plan()
    command = issue_command(plan=plan, user=user, phase="install", params="size=2,provider=", privileged=True)
    command.deployment.settings = {"default": {"OMEGA_MONGO_URL": "mongodb://u:p@h:1/db", "nested": {"a": [1, 2]}}}
    db.session.commit()
    db.session.expire_all()
    command = db.session.get(ServiceCommand, command.id)
    assert command.params == {"size": "2", "provider": ""}
    assert command.params_raw == "size=2,provider="
    assert db.session.get(ServiceDeployment, command.deployment_id).settings["default"]["nested"] == {"a": [1, 2]}


def test_reprs_are_short(app):
    user = make_user(userid="shorty")
    assert repr(user) == "<User shorty>"
    assert repr(make_plan(name="worker")) == "<ServicePlan worker>"
