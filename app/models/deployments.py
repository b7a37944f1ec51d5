"""The workflow: deployments of plans for users, the commands issued on them and the tasks that run them.

All of it is history: every foreign key here is ON DELETE RESTRICT (a retry's, NO ACTION), so the database
refuses to delete a user, a plan or a configuration that was ever deployed (plans are retired instead:
app/ops/plans.py), and the ORM leaves it to the database (``passive_deletes="all"``) rather than nulling the
history's keys first.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .services import JSONType, ServiceConfiguration, ServicePlan
from .status import DEPLOYMENT_TRANSITIONS, RUN_TRANSITIONS, StatusMixin
from .types import UTCDateTime, utcnow
from .users import User


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class FailureReason(StrEnum):
    SCRIPT_ERROR = "script error"
    TIMEOUT = "timeout"
    WORKER_LOST = "worker lost"
    CANCELLED = "cancelled"
    SYSTEM_ERROR = "system error"


class ServiceDeployment(StatusMixin, db.Model):
    __tablename__ = "service_deployments"
    # lists page in (created_at, id) order: an index-only walk to the offset (the API, the console)
    __table_args__ = (
        Index("ix_service_deployments_user_plan_status", "user_id", "plan_id", "status"),
        Index("ix_service_deployments_created_at_id", "created_at", "id"),
        # the console's filters, newest first, and the dashboard's counts
        Index("ix_service_deployments_status_id", "status", "id"),
        Index("ix_service_deployments_status_health", "status", "health"),
        # its id is in URLs, API clients and task logs: SQLite must not give a deleted one's id to the next
        {"sqlite_autoincrement": True},
    )
    TRANSITIONS = DEPLOYMENT_TRANSITIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="RESTRICT"), index=True)
    configuration_id: Mapped[int] = mapped_column(ForeignKey("service_configurations.id", ondelete="RESTRICT"))
    # written by the tasks' outputs; for `omegaml`, per-qualifier storage and broker credentials
    settings: Mapped[dict] = mapped_column(JSONType, default=dict)
    text: Mapped[str] = mapped_column(Text, default="")  # shown to the user
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    health: Mapped[str] = mapped_column(String(10), default=Health.UNKNOWN.value, index=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    plan: Mapped[ServicePlan] = relationship()
    configuration: Mapped[ServiceConfiguration] = relationship()
    commands: Mapped[list["ServiceCommand"]] = relationship(
        back_populates="deployment",
        order_by="ServiceCommand.id",
        foreign_keys="ServiceCommand.deployment_id",
        passive_deletes="all",
    )

    def __repr__(self):
        return f"<ServiceDeployment {self.id} {self.status.name}>"

    def __str__(self):
        return f"deployment {self.id}"


class ServiceCommand(StatusMixin, db.Model):
    """A request to install, update, check or uninstall a deployment, executed task by task."""

    __tablename__ = "service_commands"
    __table_args__ = (
        Index("ix_service_commands_deployment_status", "deployment_id", "status"),
        Index("ix_service_commands_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_service_commands_created_at_id", "created_at", "id"),
        Index("ix_service_commands_status_id", "status", "id"),
        Index("ix_service_commands_failure_reason_id", "failure_reason", "id"),
        Index("ix_service_commands_finished_at_status", "finished_at", "status"),  # the dashboard's days
        # its id is in URLs, API clients (`om cloud`) and retries: SQLite must not give a deleted one's id again
        {"sqlite_autoincrement": True},
    )
    TRANSITIONS = RUN_TRANSITIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    # None: the service itself; so a deleted issuer is refused, not nulled (that would say the service issued it)
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)  # whose deployment
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="RESTRICT"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("service_deployments.id", ondelete="RESTRICT"), index=True)
    configuration_id: Mapped[int] = mapped_column(ForeignKey("service_configurations.id", ondelete="RESTRICT"))
    phase: Mapped[str] = mapped_column(String(10))
    params: Mapped[dict] = mapped_column(JSONType, default=dict)
    params_raw: Mapped[str] = mapped_column(Text, default="")  # as the client sent it
    failure_reason: Mapped[str | None] = mapped_column(String(20))
    failure_detail: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the runner beats while it works; the reaper fails commands whose beat stopped (worker lost)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(200))  # host:pid of the worker that claimed it
    # NO ACTION, not RESTRICT: checked at the end of the statement, so a command goes only with its retries (SQLite
    # checks RESTRICT row by row, and refuses even deleting a command and its retry together, as DROP TABLE does)
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("service_commands.id", ondelete="NO ACTION"))

    issuer: Mapped[User | None] = relationship(foreign_keys=[issuer_id])
    retry_of: Mapped["ServiceCommand | None"] = relationship(remote_side=[id], foreign_keys=[retry_of_id])
    user: Mapped[User] = relationship(foreign_keys=[user_id])
    plan: Mapped[ServicePlan] = relationship()
    deployment: Mapped[ServiceDeployment] = relationship(back_populates="commands", foreign_keys=[deployment_id])
    configuration: Mapped[ServiceConfiguration] = relationship()
    tasks: Mapped[list["ServiceTask"]] = relationship(
        back_populates="command", order_by="(ServiceTask.position, ServiceTask.attempt)", passive_deletes="all"
    )

    def __repr__(self):
        return f"<ServiceCommand {self.id} {self.phase} {self.status.name}>"

    def __str__(self):
        return f"command {self.id} ({self.phase})"


class ServiceTask(StatusMixin, db.Model):
    """One step as executed for a command: what ran, its exit code, log and outputs."""

    __tablename__ = "service_tasks"
    __table_args__ = (
        Index("ix_service_tasks_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_service_tasks_created_at_id", "created_at", "id"),
        Index("ix_service_tasks_status_id", "status", "id"),
        Index("ix_service_tasks_failure_reason_id", "failure_reason", "id"),
    )
    TRANSITIONS = RUN_TRANSITIONS

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[int] = mapped_column(ForeignKey("service_commands.id", ondelete="RESTRICT"), index=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("service_deployments.id", ondelete="RESTRICT"), index=True)
    position: Mapped[int]
    attempt: Mapped[int] = mapped_column(default=1)
    name: Mapped[str] = mapped_column(String(200))
    step: Mapped[dict] = mapped_column(JSONType, default=dict)  # the step as executed
    resolved: Mapped[str | None] = mapped_column(String(64))  # the git commit or the checked sha256
    exit_code: Mapped[int | None]
    log: Mapped[str] = mapped_column(Text, default="")
    outputs: Mapped[dict] = mapped_column(JSONType, default=dict)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_reason: Mapped[str | None] = mapped_column(String(20))
    host: Mapped[str | None] = mapped_column(String(200))  # where the script ran, and its process group
    pgid: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    command: Mapped[ServiceCommand] = relationship(back_populates="tasks")
    deployment: Mapped[ServiceDeployment] = relationship()

    def __repr__(self):
        return f"<ServiceTask {self.id} #{self.position} {self.status.name}>"
