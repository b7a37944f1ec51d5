"""Built-in steps: python callables that service specs name with ``task: app.ops.tasks.<name>``.

A step receives a ``StepContext`` and returns a dict of outputs, which the engine merges into the
deployment's settings (as it does with the JSON a script writes to ``$OMEGAOPS_OUTPUT``).
"""

import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from flask import current_app

from ..models import ServiceCommand, ServiceDeployment, User
from .commands import CommandRefused, issue_command


@dataclass
class StepContext:
    command: ServiceCommand
    deployment: ServiceDeployment
    user: User
    phase: str
    params: dict[str, str]  # the command's params over the step's own
    env: dict[str, str] = field(default_factory=dict)  # the configuration's env
    log: list[str] = field(default_factory=list)  # lines for the task's log
    issued: list[int] = field(default_factory=list)  # commands the step issued: enqueued once its task commits

    def say(self, line: str) -> None:
        self.log.append(line)


def user_signup(ctx: StepContext) -> dict:
    """Sign-up: issue the ``omegaml`` install for the new user (the service itself is the issuer)."""
    try:
        command = issue_command(plan="omegaml", user=ctx.user, phase="install", params="", privileged=True)
    except CommandRefused as exc:
        if exc.code == "conflict":
            ctx.say(f"omegaml is already deployed for {ctx.user.userid}: {exc.message}")
            return {}
        raise
    ctx.issued.append(command.id)
    ctx.say(f"issued command {command.id}: install omegaml for {ctx.user.userid}")
    return {"omegaml_command_id": command.id}


def existing_password(settings: dict) -> str | None:
    """The password of a qualifier provisioned before, if any."""
    for value in settings.values():
        if isinstance(value, dict) and value.get("OMEGA_MONGO_URL"):
            password = urlsplit(value["OMEGA_MONGO_URL"]).password
            if password:
                return password
    return None


# joins a userid and a qualifier: a character no userid (models/users.py USERID_RE) and no qualifier (the
# plan's declared pattern) holds, so ``bob`` + ``x`` (``bob~x``) never names user ``bob-x``'s own database
QUALIFIER_SEPARATOR = "~"


def storage_name(userid: str, qualifier: str) -> str:
    """The database and broker vhost of a user's qualifier: the userid for ``default``, else ``<userid>~<qualifier>``.

    One-to-one: two (userid, qualifier) pairs never give the same name. A qualifier holding the
    separator is refused (it could otherwise end one user's name in another's).
    """
    if QUALIFIER_SEPARATOR in qualifier or QUALIFIER_SEPARATOR in userid:
        raise ValueError(f"qualifier {qualifier!r}: must not hold {QUALIFIER_SEPARATOR!r}")
    return userid if qualifier == "default" else f"{userid}{QUALIFIER_SEPARATOR}{qualifier}"


def deploy_user_service(ctx: StepContext) -> dict:
    """Give the user their omegaml storage database and broker vhost for a qualifier (``default`` unless given).

    Credentials are made once per qualifier and kept across updates, so clients keep working.
    Where the databases live comes from the configuration's env (``MONGO_HOST``, ``BROKER_HOST``,
    ...) or the app config; a script step of the same plan creates them on the servers.
    """
    qualifier = ctx.params.get("qualifier") or "default"
    settings = ctx.deployment.settings or {}
    existing = settings.get(qualifier)
    if isinstance(existing, dict) and existing.get("OMEGA_MONGO_URL"):
        ctx.say(f"qualifier {qualifier!r} is provisioned already; credentials kept")
        return {}
    config = current_app.config

    def setting(name: str, default: str) -> str:
        return ctx.env.get(name) or config.get(f"USER_{name}") or default

    userid = ctx.user.userid
    dbname = storage_name(userid, qualifier)
    # one broker user per userid (RabbitMQ users are global): every qualifier shares its password
    password = existing_password(settings) or quote(secrets.token_urlsafe(24), safe="")
    mongo = f"{setting('MONGO_HOST', 'localhost')}:{setting('MONGO_PORT', '27017')}"
    broker = f"{setting('BROKER_HOST', 'localhost')}:{setting('BROKER_PORT', '5672')}"
    use_ssl = setting("USE_SSL", "false").lower() in ("1", "true", "yes")
    ctx.say(f"provisioned database {dbname!r} and broker vhost {dbname!r} for qualifier {qualifier!r}")

    def urls(mongo_host: str, broker_host: str) -> dict:
        return {
            "OMEGA_MONGO_URL": f"mongodb://{quote(userid)}:{password}@{mongo_host}/{quote(dbname)}",
            "OMEGA_CELERY_CONFIG": {"BROKER_URL": f"amqp://{quote(userid)}:{password}@{broker_host}/{quote(dbname)}"},
        }

    values = urls(mongo, broker)
    values["OMEGA_CELERY_CONFIG"]["CELERY_DEFAULT_QUEUE"] = "default"
    values.update(
        {
            "OMEGA_MONGO_SSL_KWARGS": {"tls": use_ssl},
            "OMEGA_USESSL": use_ssl,
            "OMEGA_USERID": userid,
            "OMEGA_QUALIFIER": qualifier,
        }
    )
    # callers inside the cluster (`/api/v1/config/?view=1`) reach the servers by their internal names
    internal_mongo, internal_broker = setting("MONGO_INTERNAL_HOST", ""), setting("BROKER_INTERNAL_HOST", "")
    if internal_mongo or internal_broker:
        values["internal"] = urls(internal_mongo or mongo, internal_broker or broker)
    return {qualifier: values}
