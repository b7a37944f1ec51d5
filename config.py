"""Configuration: defaults per environment, overridden by ``OMEGAOPS_*`` environment variables.

The variables are read when the app is created (``Config.from_env``), not at import, so a test or a
management command that sets one before ``create_app()`` sees it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
PREFIX = "OMEGAOPS_"


def _to_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{PREFIX}{name} must be a boolean (1/0, true/false), got {value!r}")


def _to_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{PREFIX}{name} must be an integer, got {value!r}") from None


def _to_path(name: str, value: str) -> Path:
    return Path(value).expanduser().resolve()


def _to_str(name: str, value: str) -> str:
    return value


def _to_float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{PREFIX}{name} must be a number, got {value!r}") from None


def _to_list(name: str, value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _to_lines(name: str, value: str) -> list[str]:
    """Lines of text (an address, payment instructions): separated by ``|`` or by newlines, blank ones dropped."""
    return [line.strip() for line in value.replace("|", "\n").splitlines() if line.strip()]


# setting -> converter; the variable is OMEGAOPS_<setting>, except where ENV_NAMES says otherwise
SETTINGS = {
    "SECRET_KEY": _to_str,
    "SQLALCHEMY_DATABASE_URI": _to_str,
    "REDIS_URL": _to_str,
    "INSTANCE_DIR": _to_path,
    "SERVICES_DIR": _to_path,
    "SCRIPTS_DIR": _to_path,
    "CLUSTER_ID": _to_str,
    "PASSWORD_HASH_METHOD": _to_str,
    "MAX_CONTENT_LENGTH": _to_int,
    "DEFAULT_STEP_TIMEOUT": _to_int,
    "SESSION_COOKIE_SECURE": _to_bool,
    "SCRIPT_SOURCES": _to_list,
    "RETRY_BACKOFF_SECONDS": _to_float,
    "LOST_AFTER_SECONDS": _to_float,
    "TASK_TICK_SECONDS": _to_float,
    "KILL_GRACE_SECONDS": _to_float,
    "TASK_LOG_HEAD": _to_int,
    "TASK_LOG_TAIL": _to_int,
    "COMMAND_JOB_TIMEOUT": _to_int,
    "PUBLIC_URL": _to_str,
    "SIGNUP_CONFIRMATION": _to_bool,
    "PASSWORD_MIN_LENGTH": _to_int,
    "CONFIRM_TOKEN_MAX_AGE": _to_int,
    "RESET_TOKEN_MAX_AGE": _to_int,
    "MAIL_SERVER": _to_str,
    "MAIL_PORT": _to_int,
    "MAIL_USE_TLS": _to_bool,
    "MAIL_USE_SSL": _to_bool,
    "MAIL_USERNAME": _to_str,
    "MAIL_PASSWORD": _to_str,
    "MAIL_FROM": _to_str,
    "RATELIMIT_STORAGE_URI": _to_str,
    "RATELIMIT_ENABLED": _to_bool,
    "LOGIN_RATE_LIMIT": _to_str,
    "SIGNUP_RATE_LIMIT": _to_str,
    "RESET_RATE_LIMIT": _to_str,
    "APIKEY_FAILURE_LIMIT": _to_str,
    "TASK_LOG_RETENTION_DAYS": _to_int,
    "IDEMPOTENCY_KEY_DAYS": _to_int,
    "PERIODIC_RUN_DAYS": _to_int,
    "BILLING_CURRENCY": _to_str,
    "BILLING_TAX_RATE": _to_str,
    "BILLING_OPERATOR_COUNTRY": _to_str,
    "BILLING_DUE_DAYS": _to_int,
    "BILLING_COMPANY_NAME": _to_str,
    "BILLING_COMPANY_ADDRESS": _to_lines,
    "BILLING_COMPANY_EMAIL": _to_str,
    "BILLING_COMPANY_TAX_ID": _to_str,
    "BILLING_PAYMENT_INSTRUCTIONS": _to_lines,
    "STRIPE_WEBHOOK_SECRET": _to_str,
    "REMINDER_DAYS": _to_list,
}
ENV_NAMES = {"SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}


class Config:
    """Defaults shared by every environment; each can be set with its ``OMEGAOPS_`` variable."""

    ENV_NAME = "default"
    SECRET_KEY: str | None = None
    INSTANCE_DIR = BASE_DIR / "instance"
    # None: a SQLite file in INSTANCE_DIR (see from_env)
    SQLALCHEMY_DATABASE_URI: str | None = None
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # the embedded Redis that `make run` starts has a port of its own, so it never clashes with a system Redis
    REDIS_URL = "redis://127.0.0.1:6390/0"
    # the cluster this omegaops runs; `${CLUSTER_ID}` in service specs falls back to it
    CLUSTER_ID = "local"
    SERVICES_DIR = BASE_DIR / "services"
    SCRIPTS_DIR = BASE_DIR / "services" / "scripts"
    PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105 -- a hash method name, not a password
    MAX_CONTENT_LENGTH = 1024 * 1024
    DEFAULT_STEP_TIMEOUT = 600
    # URL prefixes that git and url steps may fetch scripts from; empty: none
    SCRIPT_SOURCES: list[str] = []
    RETRY_BACKOFF_SECONDS = 2.0  # doubled at each retry of a step, at most 60
    LOST_AFTER_SECONDS = 60.0  # a command whose runner has not beaten for this long is failed (worker lost)
    TASK_TICK_SECONDS = 1.0  # how often a running task's log and heartbeat are saved
    KILL_GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL of a script's process group
    TASK_LOG_HEAD = 64 * 1024  # characters of a task's log kept from its start ...
    TASK_LOG_TAIL = 64 * 1024  # ... and from its end
    COMMAND_JOB_TIMEOUT = 24 * 3600  # RQ's limit for one command; steps have their own timeouts
    # maintenance (daily): older task logs are cut to a summary; older keys and run records are deleted
    TASK_LOG_RETENTION_DAYS = 90
    IDEMPOTENCY_KEY_DAYS = 7  # an Idempotency-Key replays its first answer for this long
    PERIODIC_RUN_DAYS = 30
    # billing: one currency, stored on every invoice; tax by the customer's country (reverse charge for
    # businesses with a tax id abroad); BILLING_TAX_RATES is a mapping, set it in a config class
    BILLING_CURRENCY = "CHF"
    BILLING_TAX_RATE = "0.081"
    BILLING_TAX_RATES: dict[str, str] = {}
    BILLING_OPERATOR_COUNTRY = "CH"
    BILLING_DUE_DAYS = 30
    # the invoices' header (and the reminders' signature): placeholders until set; app.billing.identity warns
    # about each placeholder left, and production refuses to finalize an invoice with one. from_env joins
    # the four into BILLING_COMPANY ({name, address, email, tax_id}), which the invoice and mail templates read
    BILLING_COMPANY_NAME = "omega|ml managed service"
    BILLING_COMPANY_ADDRESS = ["Example Street 1", "8000 Zurich", "Switzerland"]  # lines: "a|b|c" in the variable
    BILLING_COMPANY_EMAIL = "billing@example.com"
    BILLING_COMPANY_TAX_ID = ""  # the operator's VAT number; required while any tax rate is above 0
    STRIPE_WEBHOOK_SECRET = ""  # whsec_...: POST /billing/webhooks/stripe answers 404 without it
    # overdue invoices are reminded this many days after their due date (each once)
    REMINDER_DAYS = ["3", "14", "30"]
    # lines under the invoice's total and in reminders (a placeholder until set): "a|b" in the variable
    BILLING_PAYMENT_INSTRUCTIONS = ["Bank transfer to IBAN CH00 0000 0000 0000 0000 0 (example)"]
    # accounts
    PUBLIC_URL = ""  # how users reach this service, for links in emails; empty: the request's own URL
    SIGNUP_CONFIRMATION = True  # new accounts confirm their email before they can log in and are provisioned
    PASSWORD_MIN_LENGTH = 10
    CONFIRM_TOKEN_MAX_AGE = 3 * 24 * 3600
    RESET_TOKEN_MAX_AGE = 3600
    # mail: without MAIL_SERVER, mails are written as .eml files under INSTANCE_DIR/mail/
    MAIL_SERVER = ""
    MAIL_PORT = 25
    MAIL_USE_TLS = False
    MAIL_USE_SSL = False
    MAIL_USERNAME = ""
    MAIL_PASSWORD = ""
    MAIL_FROM = "omega|ml <noreply@example.com>"
    # rate limits (Flask-Limiter, on REDIS_URL unless RATELIMIT_STORAGE_URI says otherwise)
    RATELIMIT_STORAGE_URI = ""
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True
    # Redis down: count in memory for a while rather than fail the request
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    RATELIMIT_STRATEGY = "moving-window"
    LOGIN_RATE_LIMIT = "10 per minute"
    SIGNUP_RATE_LIMIT = "5 per minute"
    RESET_RATE_LIMIT = "5 per minute"
    APIKEY_FAILURE_LIMIT = "20 per minute"  # bad API-key attempts from one address
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_TIME_LIMIT = None

    @classmethod
    def from_env(cls, environ=None) -> dict:
        """Return this class's settings with the ``OMEGAOPS_*`` variables applied."""
        environ = os.environ if environ is None else environ
        values = {key: getattr(cls, key) for key in dir(cls) if key.isupper()}
        for key, convert in SETTINGS.items():
            name = ENV_NAMES.get(key, key)
            raw = environ.get(PREFIX + name)
            if raw not in (None, ""):
                values[key] = convert(name, raw)
        if values["SQLALCHEMY_DATABASE_URI"] is None:
            values["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{values['INSTANCE_DIR'] / 'omegaops.db'}"
        if not values["RATELIMIT_STORAGE_URI"]:
            values["RATELIMIT_STORAGE_URI"] = values["REDIS_URL"]
        values["BILLING_COMPANY"] = {
            "name": values["BILLING_COMPANY_NAME"],
            "address": list(values["BILLING_COMPANY_ADDRESS"]),
            "email": values["BILLING_COMPANY_EMAIL"],
            "tax_id": values["BILLING_COMPANY_TAX_ID"],
        }
        if values["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            # a file on this machine: nothing to ping (each ping is a round trip on every checkout)
            values["SQLALCHEMY_ENGINE_OPTIONS"] = {}
        return values

    @classmethod
    def check(cls, values: dict) -> None:
        """Raise when a setting this environment cannot run without is missing."""
        if not values.get("SECRET_KEY"):
            raise RuntimeError(f"{PREFIX}SECRET_KEY must be set")


class DevelopmentConfig(Config):
    """Local development and `make run`: a fixed secret is acceptable only here."""

    ENV_NAME = "development"
    SECRET_KEY = "dev-only-not-secret"  # noqa: S105 -- development only; production requires its own


class TestConfig(Config):
    """Tests: fast password hashing; fixtures pass the database and Redis URLs as overrides."""

    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret"  # noqa: S105 -- tests only
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # noqa: S105 -- fast hashing for tests
    RETRY_BACKOFF_SECONDS = 0.05
    TASK_TICK_SECONDS = 0.2
    KILL_GRACE_SECONDS = 1.0
    WTF_CSRF_ENABLED = False


class ProductionConfig(Config):
    """Production: gunicorn behind a proxy; refuses to start without ``OMEGAOPS_SECRET_KEY``."""

    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True


CONFIGS = {"development": DevelopmentConfig, "test": TestConfig, "production": ProductionConfig}


def config_from_env(environ=None) -> type[Config]:
    """Pick the config class named by ``OMEGAOPS_ENV`` (development, test, production)."""
    environ = os.environ if environ is None else environ
    name = environ.get(PREFIX + "ENV") or "development"
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"{PREFIX}ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from None
