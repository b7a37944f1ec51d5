"""The state model shared by deployments, commands and tasks, and the one place its transitions are checked."""

from enum import IntEnum
from typing import ClassVar

from sqlalchemy import inspect
from sqlalchemy.orm import Mapped, mapped_column, validates

from .types import IntEnumType


class Status(IntEnum):
    """The original service's states; the values are what the API shows (as strings)."""

    INITIATED = 0  # created
    PENDING = 1  # scheduled or running; for a deployment also "being updated or removed"
    COMPLETED = 5
    REMOVED = 8  # kept for history
    FAILED = 9

    @property
    def is_final(self) -> bool:
        return self in (Status.COMPLETED, Status.REMOVED, Status.FAILED)


S = Status

# a command or a task runs once: a retry is a new command, a new attempt a new task
RUN_TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.INITIATED}),
    S.INITIATED: frozenset({S.PENDING, S.FAILED}),  # claimed, or cancelled / refused before it ran
    S.PENDING: frozenset({S.COMPLETED, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.REMOVED: frozenset(),
}

# a deployment lives through many commands: install, updates, checks, uninstall
DEPLOYMENT_TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.INITIATED}),
    S.INITIATED: frozenset({S.PENDING, S.FAILED, S.REMOVED}),
    S.PENDING: frozenset({S.COMPLETED, S.FAILED, S.REMOVED}),
    S.COMPLETED: frozenset({S.PENDING}),  # an update or uninstall starts
    S.FAILED: frozenset({S.PENDING, S.REMOVED}),  # a retry, an update, or an uninstall of what is left
    S.REMOVED: frozenset(),
}

LIVE_DEPLOYMENT_STATES = (S.INITIATED, S.PENDING, S.COMPLETED, S.FAILED)
IN_FLIGHT_STATES = (S.INITIATED, S.PENDING)


class IllegalTransition(ValueError):
    """A status change the state model does not allow."""

    def __init__(self, obj, old, new):
        self.obj, self.old, self.new = obj, old, new
        old_name = old.name if old is not None else "(new)"
        new_name = new.name if isinstance(new, Status) else repr(new)
        kind = obj.__name__ if isinstance(obj, type) else type(obj).__name__
        ident = "" if isinstance(obj, type) else f" {getattr(obj, 'id', None)}"
        super().__init__(f"{kind}{ident}: {old_name} -> {new_name} is not allowed")


class StatusMixin:
    """A ``status`` column whose every assignment is checked against the class's ``TRANSITIONS``."""

    TRANSITIONS: ClassVar[dict[Status | None, frozenset[Status]]] = RUN_TRANSITIONS

    status: Mapped[Status] = mapped_column(IntEnumType(Status), default=Status.INITIATED, index=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("status", Status.INITIATED)
        super().__init__(**kwargs)

    @validates("status")
    def _check_transition(self, key, new):
        try:
            new = Status(new)
        except ValueError:
            raise IllegalTransition(self, self.status, new) from None
        if "status" in self.__dict__:
            old = self.__dict__["status"]
        elif inspect(self).has_identity:
            old = getattr(self, key)  # expired after a commit: load the stored value to check against it
        else:
            old = None  # a new object
        if old is not None:
            old = Status(old)
        if old == new:
            return new
        if new not in self.TRANSITIONS[old]:
            raise IllegalTransition(self, old, new)
        return new

    def can_become(self, new: Status) -> bool:
        """Tell whether the status may change to ``new`` now."""
        return new == self.status or new in self.TRANSITIONS[self.status]


def conditional_transition(model, object_id: int, old: Status, new: Status, *conditions, obj=None, **values) -> bool:
    """Move one row from ``old`` to ``new`` only if it still is ``old``; tell whether this call did it.

    The way to change a status that several processes may race for (claiming a command, reaping,
    cancelling): the database decides the winner. The transition is checked like any other.
    """
    from sqlalchemy import update

    from ..extensions import db

    if new not in model.TRANSITIONS[old]:
        raise IllegalTransition(model, old, new)
    result = db.session.execute(
        update(model)
        .where(model.id == object_id, model.status == old, *conditions)
        .values(status=new, **values)
        .execution_options(synchronize_session=False)
    )
    won = result.rowcount == 1
    if won and obj is not None:
        # keep the loaded object in step with the row, without writing it again
        from sqlalchemy.orm.attributes import set_committed_value

        for key, value in {"status": new, **values}.items():
            set_committed_value(obj, key, value)
    return won
