"""The shared state model: exact values, allowed transitions, and illegal ones never written."""

import pytest
from sqlalchemy import select, text

from app.extensions import db
from app.models import IllegalTransition, ServiceCommand, ServiceDeployment, ServiceTask, Status
from app.models.status import DEPLOYMENT_TRANSITIONS, RUN_TRANSITIONS
from app.ops.commands import issue_command

from .factories import make_plan, make_user


def test_status_values_are_exactly_the_original_ones():
    assert {s.name: int(s) for s in Status} == {
        "INITIATED": 0,
        "PENDING": 1,
        "COMPLETED": 5,
        "REMOVED": 8,
        "FAILED": 9,
    }


def new_command():
    user = make_user()
    plan = make_plan()
    command = issue_command(plan=plan, user=user, phase="install", privileged=True)
    db.session.commit()
    return command


def test_new_objects_start_initiated(any_app):
    command = new_command()
    assert command.status is Status.INITIATED
    assert command.deployment.status is Status.INITIATED


def test_status_is_stored_as_its_integer_value(any_app):
    command = new_command()
    raw = db.session.execute(text("SELECT status FROM service_commands WHERE id = :id"), {"id": command.id}).scalar()
    assert raw == 0
    command.status = Status.PENDING
    db.session.commit()
    raw = db.session.execute(text("SELECT status FROM service_commands WHERE id = :id"), {"id": command.id}).scalar()
    assert raw == 1


def test_command_runs_initiated_pending_completed(any_app):
    command = new_command()
    command.status = Status.PENDING
    command.status = Status.COMPLETED
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(ServiceCommand, command.id).status is Status.COMPLETED


@pytest.mark.parametrize(
    "path",
    [
        (Status.COMPLETED,),
        (Status.REMOVED,),
        (Status.PENDING, Status.REMOVED),
        (Status.PENDING, Status.COMPLETED, Status.PENDING),
        (Status.FAILED, Status.PENDING),
    ],
    ids=lambda p: "->".join(s.name for s in p),
)
def test_illegal_command_transition_raises_and_is_never_written(any_app, path):
    command = new_command()
    *legal, illegal = path
    for status in legal:
        command.status = status
    db.session.commit()
    before = command.status
    with pytest.raises(IllegalTransition):
        command.status = illegal
    assert command.status is before
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(ServiceCommand, command.id).status is before


def test_unknown_status_value_is_refused(any_app):
    command = new_command()
    with pytest.raises(IllegalTransition):
        command.status = 3


def test_deployment_lifecycle_install_update_uninstall(any_app):
    deployment = new_command().deployment
    for status in (Status.PENDING, Status.COMPLETED, Status.PENDING, Status.COMPLETED, Status.PENDING, Status.REMOVED):
        deployment.status = status
    db.session.commit()
    with pytest.raises(IllegalTransition):
        deployment.status = Status.PENDING  # removed is final: a later install makes a new deployment


def test_failed_deployment_can_be_retried_or_removed():
    assert Status.PENDING in DEPLOYMENT_TRANSITIONS[Status.FAILED]
    assert Status.REMOVED in DEPLOYMENT_TRANSITIONS[Status.FAILED]
    assert DEPLOYMENT_TRANSITIONS[Status.REMOVED] == frozenset()


def test_finished_runs_are_final():
    for status in (Status.COMPLETED, Status.FAILED, Status.REMOVED):
        assert RUN_TRANSITIONS[status] == frozenset()


def test_object_cannot_be_created_in_a_later_state(any_app):
    with pytest.raises(IllegalTransition):
        ServiceTask(status=Status.COMPLETED)


def test_can_become_answers_without_changing(any_app):
    command = new_command()
    assert command.can_become(Status.PENDING)
    assert not command.can_become(Status.COMPLETED)
    assert command.status is Status.INITIATED


def test_status_filters_use_the_enum(any_app):
    new_command()
    found = db.session.scalars(select(ServiceDeployment).where(ServiceDeployment.status == Status.INITIATED)).all()
    assert len(found) == 1
