"""The data model; importing this package registers every table on ``db.metadata``."""

from .deployments import FailureReason, Health, ServiceCommand, ServiceDeployment, ServiceTask
from .idempotency import IdempotencyKey
from .services import Phase, ServiceConfiguration, ServicePlan, ServiceStep, StepKind
from .status import IllegalTransition, Status
from .users import ApiKey, Group, User

__all__ = [
    "ApiKey",
    "FailureReason",
    "Group",
    "Health",
    "IdempotencyKey",
    "IllegalTransition",
    "Phase",
    "ServiceCommand",
    "ServiceConfiguration",
    "ServiceDeployment",
    "ServicePlan",
    "ServiceStep",
    "ServiceTask",
    "Status",
    "StepKind",
    "User",
]
