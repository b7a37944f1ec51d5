"""Service offerings: plans, their versioned configurations and the ordered steps each phase runs."""

from datetime import datetime
from enum import StrEnum
from typing import Optional

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Phase(StrEnum):
    INSTALL = "install"
    UPDATE = "update"  # scaling is an update of `size`
    UNINSTALL = "uninstall"
    CHECK = "check"


class StepKind(StrEnum):
    TASK = "task"  # a python callable, `task: dotted.path`, as in the original specs
    SCRIPT = "script"  # a pre-installed script under SCRIPTS_DIR
    GIT = "git"  # a script fetched from a git repository at each execution
    URL = "url"  # a script fetched from a URL, checked against its sha256


class ServicePlan(db.Model):
    __tablename__ = "service_plans"
    # its id is in URLs, API clients and history: SQLite must not give a deleted plan's id to the next one
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # offered plans are in the users' catalog; internal ones (e.g. `signup`) are run by the service itself
    offered: Mapped[bool] = mapped_column(default=False)
    one_per_user: Mapped[bool] = mapped_column(default=True)
    # admin-set OMEGA_* values merged under each deployment's settings in client configs
    defaults: Mapped[dict] = mapped_column(JSONType, default=dict)
    # what its commands accept (app/ops/parameters.py); None: the spec declares nothing (its steps' defaults)
    parameters: Mapped[list | None] = mapped_column(JSONType)
    base_fee: Mapped[int] = mapped_column(default=0, server_default="0")  # minor units a month, prorated by day
    active: Mapped[bool] = mapped_column(default=True, index=True)
    # the plan's state as `flask createservice` last left it (app/ops/ownership.py): when it differs, an
    # operator has edited the plan since, and a spec load does not overwrite that silently
    spec_digest: Mapped[str | None] = mapped_column(String(64))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # a never-used plan's details go with it, in the database (its metrics too: usage.Metric)
    configurations: Mapped[list["ServiceConfiguration"]] = relationship(
        back_populates="plan",
        order_by="ServiceConfiguration.version",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self):
        return f"<ServicePlan {self.name}>"

    def __str__(self):
        return self.name

    @classmethod
    def by_name(cls, name: str) -> Optional["ServicePlan"]:
        return db.session.scalar(select(cls).where(cls.name == name))

    @property
    def current_configuration(self) -> Optional["ServiceConfiguration"]:
        """The newest active configuration: the one new commands use."""
        return db.session.scalar(
            select(ServiceConfiguration)
            .where(ServiceConfiguration.plan_id == self.id, ServiceConfiguration.active.is_(True))
            .order_by(ServiceConfiguration.version.desc())
            .limit(1)
        )


class ServiceConfiguration(db.Model):
    """One version of what deploying a plan takes; older versions stay for the deployments they installed."""

    __tablename__ = "service_configurations"
    __table_args__ = (UniqueConstraint("plan_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("service_plans.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    env: Mapped[dict] = mapped_column(JSONType, default=dict)
    # sha256 of the normalised env and steps: an unchanged spec makes no new version
    digest: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    plan: Mapped[ServicePlan] = relationship(back_populates="configurations")
    steps: Mapped[list["ServiceStep"]] = relationship(
        back_populates="configuration",
        order_by="ServiceStep.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self):
        return f"<ServiceConfiguration {self.plan_id} v{self.version}>"

    def __str__(self):
        return f"v{self.version} (#{self.id})"

    def steps_for(self, phase: str) -> list["ServiceStep"]:
        """The steps that run in ``phase``, in order."""
        return [step for step in self.steps if phase in step.phases]


class ServiceStep(db.Model):
    """One step of a configuration: what runs, in which phases, with which limits."""

    __tablename__ = "service_steps"
    __table_args__ = (UniqueConstraint("configuration_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    configuration_id: Mapped[int] = mapped_column(ForeignKey("service_configurations.id", ondelete="CASCADE"))
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    # task: the dotted path; script: the path under SCRIPTS_DIR; git: the path in the repository; url: the URL
    target: Mapped[str] = mapped_column(String(1000))
    language: Mapped[str | None] = mapped_column(String(10))  # shell | python, for scripts
    repository: Mapped[str | None] = mapped_column(String(1000))
    ref: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(String(64))
    phases: Mapped[list] = mapped_column(JSONType, default=lambda: [Phase.INSTALL.value])
    params: Mapped[str] = mapped_column(Text, default="")
    timeout: Mapped[int | None]  # seconds; None: the configured default
    retries: Mapped[int] = mapped_column(default=0)

    configuration: Mapped[ServiceConfiguration] = relationship(back_populates="steps")

    def __repr__(self):
        return f"<ServiceStep {self.position} {self.kind}:{self.target}>"
