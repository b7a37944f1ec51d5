"""The data model; importing this package registers every table on ``db.metadata``."""

from .billing import Invoice, InvoiceCounter, InvoiceLine, InvoiceStatus, Payment, PaymentMethod
from .deployments import FailureReason, Health, ServiceCommand, ServiceDeployment, ServiceTask
from .idempotency import IdempotencyKey
from .periodic import PeriodicRun
from .services import Phase, ServiceConfiguration, ServicePlan, ServiceStep, StepKind
from .status import IllegalTransition, Status
from .usage import Aggregation, Metric, Source, UsageCheckpoint, UsageDaily, UsageEvent
from .users import ApiKey, Group, User

__all__ = [
    "Aggregation",
    "ApiKey",
    "FailureReason",
    "Group",
    "Health",
    "IdempotencyKey",
    "IllegalTransition",
    "Invoice",
    "InvoiceCounter",
    "InvoiceLine",
    "InvoiceStatus",
    "Metric",
    "Payment",
    "PaymentMethod",
    "PeriodicRun",
    "Phase",
    "ServiceCommand",
    "ServiceConfiguration",
    "ServiceDeployment",
    "ServicePlan",
    "ServiceStep",
    "ServiceTask",
    "Source",
    "Status",
    "StepKind",
    "UsageCheckpoint",
    "UsageDaily",
    "UsageEvent",
    "User",
]
