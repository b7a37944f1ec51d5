"""Create, remove or check the servers' side of a user's omega|ml deployment: MongoDB users, RabbitMQ vhosts.

Runs as a script step of the ``omegaml`` plan, after ``app.ops.tasks.deploy_user_service`` has written
the per-qualifier credentials into the deployment's settings::

    {"<qualifier>": {"OMEGA_MONGO_URL": "mongodb://user:pw@host:port/dbname",
                     "OMEGA_CELERY_CONFIG": {"BROKER_URL": "amqp://user:pw@host:port/vhost", ...}, ...}}

Phases (``$OMEGAOPS_PHASE``):

- install, update: for every qualifier, create (or update) the MongoDB user with readWrite on its
  database, and the RabbitMQ vhost, user and permissions. Idempotent: running it again changes nothing.
- uninstall: remove the MongoDB users and the RabbitMQ vhosts and users. The MongoDB databases are
  kept: they hold the user's data, and dropping them is an operator's decision.
- check: the settings name a database and a broker for every qualifier; with admin access configured,
  the users and vhosts exist on the servers. Exit 1 with the reason otherwise.

Every name it creates, grants or removes is the user's own (``$OMEGAOPS_USER``): the MongoDB and RabbitMQ
user is the userid, and each database and vhost is the userid (qualifier ``default``) or
``<userid>~<qualifier>`` (as ``app.ops.tasks.storage_name`` makes them; ``~`` is in no userid). Settings
that name anything else -- another user's database, vhost or account, an auth database other than the
database itself or ``admin`` -- fail the step before any server is called.

Admin access comes from the configuration's env:

- ``RABBITMQ_ADMIN_URL``: the management API with admin credentials, e.g. ``http://admin:pw@rabbit:15672``.
- ``MONGO_ADMIN_URL``: a ``mongodb://`` URL with admin credentials; used through the ``mongosh`` binary
  (no MongoDB driver in the standard library). The URL and the users' passwords reach mongosh through
  its environment, never its command line, and the JavaScript it runs is a constant.

When either is not configured the script says so plainly and succeeds: the servers are then the
operator's to prepare. Standard library only: it runs under the worker's interpreter, without the app.
"""

import base64
import json
import os
import shutil
import subprocess  # noqa: S404 -- runs mongosh with an argv list, never a shell
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs, quote, unquote, urlsplit

PHASES = ("install", "update", "uninstall", "check")
HTTP_TIMEOUT = 30
MONGOSH_TIMEOUT = 90

# Runs inside mongosh; every value comes from its environment as JSON, so nothing is ever interpolated.
MONGOSH_SCRIPT = r"""
const spec = JSON.parse(process.env.OMEGAOPS_MONGO_SPEC);
const client = new Mongo(process.env.OMEGAOPS_MONGO_ADMIN_URL);
let missing = 0;
for (const u of spec.users) {
  const where = 'MongoDB user ' + u.user + ' for database ' + u.db;
  const authdb = client.getDB(u.authdb);
  const existing = authdb.getUser(u.user);
  const roles = [{role: 'readWrite', db: u.db}];
  if (spec.action === 'create') {
    if (existing) {
      authdb.updateUser(u.user, {pwd: u.password, roles: roles});
      print(where + ': updated');
    } else {
      authdb.createUser({user: u.user, pwd: u.password, roles: roles});
      print(where + ': created');
    }
  } else if (spec.action === 'remove') {
    if (existing) {
      authdb.dropUser(u.user);
      print(where + ': removed (the database is kept)');
    } else {
      print(where + ': absent already');
    }
  } else {
    if (existing) {
      print(where + ': exists');
    } else {
      print(where + ': is missing');
      missing += 1;
    }
  }
}
if (missing) { quit(3); }
"""


class Failure(Exception):
    """A reason to fail the step, shown as one line."""


def say(line: str) -> None:
    print(line, flush=True)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- settings -------------------------------------------------------------------------------------


def qualifiers(settings: dict) -> dict[str, dict]:
    """The settings' per-qualifier client configs: the mappings that hold ``OMEGA_*`` keys."""
    return {
        name: value
        for name, value in settings.items()
        if isinstance(value, dict) and any(isinstance(key, str) and key.startswith("OMEGA_") for key in value)
    }


def mongo_account(qualifier: str, config: dict) -> dict:
    """The MongoDB user, password, database (and auth database) of ``config``'s ``OMEGA_MONGO_URL``."""
    url = config.get("OMEGA_MONGO_URL")
    if not isinstance(url, str) or not url:
        raise Failure(f"qualifier {qualifier!r}: OMEGA_MONGO_URL is missing")
    parts = urlsplit(url)
    if parts.scheme not in ("mongodb", "mongodb+srv"):
        raise Failure(f"qualifier {qualifier!r}: OMEGA_MONGO_URL is not a mongodb:// URL")
    db = unquote(parts.path.lstrip("/"))
    if not db:
        raise Failure(f"qualifier {qualifier!r}: OMEGA_MONGO_URL names no database")
    if not parts.username:
        raise Failure(f"qualifier {qualifier!r}: OMEGA_MONGO_URL names no user")
    authdb = parse_qs(parts.query).get("authSource", [db])[0]
    return {"user": unquote(parts.username), "password": unquote(parts.password or ""), "db": db, "authdb": authdb}


def broker_account(qualifier: str, config: dict) -> dict:
    """The RabbitMQ user, password and vhost of ``config``'s ``OMEGA_CELERY_CONFIG.BROKER_URL``."""
    celery = config.get("OMEGA_CELERY_CONFIG")
    url = celery.get("BROKER_URL") if isinstance(celery, dict) else None
    if not isinstance(url, str) or not url:
        raise Failure(f"qualifier {qualifier!r}: OMEGA_CELERY_CONFIG.BROKER_URL is missing")
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps", "pyamqp"):
        raise Failure(f"qualifier {qualifier!r}: OMEGA_CELERY_CONFIG.BROKER_URL is not an amqp:// URL")
    return {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "vhost": unquote(parts.path[1:]) if parts.path.startswith("/") else "",
    }


# joins a userid and a qualifier in database and vhost names (app/ops/tasks.py QUALIFIER_SEPARATOR)
QUALIFIER_SEPARATOR = "~"


def owner(name: str) -> str:
    """The userid a database or vhost name belongs to: what comes before the separator, or the whole name."""
    return name.split(QUALIFIER_SEPARATOR, 1)[0]


def check_owned(userid: str, mongo: dict, broker: dict) -> None:
    """``Failure`` unless the qualifier's MongoDB and RabbitMQ names are all ``userid``'s own."""
    qualifier = mongo["qualifier"]
    names = [
        ("MongoDB user", mongo["user"], mongo["user"] == userid),
        ("MongoDB database", mongo["db"], owner(mongo["db"]) == userid),
        ("MongoDB auth database", mongo["authdb"], mongo["authdb"] in (mongo["db"], "admin")),
        ("RabbitMQ user", broker["user"], broker["user"] == userid),
        ("RabbitMQ vhost", broker["vhost"], owner(broker["vhost"]) == userid),
    ]
    for what, name, own in names:
        if not own:
            raise Failure(
                f"qualifier {qualifier!r}: the {what} {name!r} is not user {userid!r}'s own "
                f"(its names are {userid!r} and {userid}{QUALIFIER_SEPARATOR}<qualifier>): nothing was changed"
            )


def accounts(configs: dict[str, dict], userid: str) -> tuple[list[dict], list[dict]]:
    """Every qualifier's MongoDB and RabbitMQ accounts, all ``userid``'s own; ``Failure`` names the first bad one."""
    mongo, broker = [], []
    for name, config in configs.items():
        mongo.append({"qualifier": name, **mongo_account(name, config)})
        broker.append({"qualifier": name, **broker_account(name, config)})
        check_owned(userid, mongo[-1], broker[-1])
    return mongo, broker


# -- RabbitMQ management API ----------------------------------------------------------------------


class RabbitAdmin:
    """The few calls of the RabbitMQ HTTP management API this script needs."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failure("RABBITMQ_ADMIN_URL must be an http(s):// URL of the management API")
        if not parts.username:
            raise Failure("RABBITMQ_ADMIN_URL carries no admin user (http://user:password@host:15672)")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise Failure("RABBITMQ_ADMIN_URL has an invalid port") from None
        # the base URL without the credentials, so that no message or log line ever shows them
        self.base = f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}"
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        self.auth = "Basic " + base64.b64encode(credentials.encode()).decode()

    def call(self, method: str, *segments: str, body: dict | None = None, missing_ok: bool = False) -> int:
        """Call ``/api/<segments>`` (each URL-quoted); return the HTTP status, raise ``Failure`` on errors."""
        path = "/api/" + "/".join(quote(segment, safe="") for segment in segments)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 -- http(s) only, checked above
        request.add_header("Authorization", self.auth)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 -- as above
                return response.status
        except urllib.error.HTTPError as exc:
            with exc:
                if missing_ok and exc.code == 404:
                    return 404
                detail = error_detail(exc)
            raise Failure(
                f"RabbitMQ management API: {method} {path} answered HTTP {exc.code} {exc.reason}{detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Failure(f"RabbitMQ management API at {self.base} cannot be reached: {one_line(reason)}") from None


def error_detail(exc: urllib.error.HTTPError) -> str:
    """The ``reason`` of a RabbitMQ error answer, if it gave one."""
    try:
        answer = json.loads(exc.read(4096) or b"{}")
    except (ValueError, OSError):
        return ""
    reason = (answer.get("reason") or answer.get("error")) if isinstance(answer, dict) else None
    return f" ({one_line(reason, 200)})" if reason else ""


def rabbit_install(admin: RabbitAdmin, brokers: list[dict]) -> None:
    for account in brokers:
        vhost, user = account["vhost"], account["user"]
        admin.call("PUT", "vhosts", vhost, body={})
        admin.call("PUT", "users", user, body={"password": account["password"], "tags": ""})
        admin.call("PUT", "permissions", vhost, user, body={"configure": ".*", "write": ".*", "read": ".*"})
        say(f"RabbitMQ vhost {vhost!r} and user {user!r} (full permissions on it): ready")


def rabbit_uninstall(admin: RabbitAdmin, brokers: list[dict]) -> None:
    # deleting a vhost deletes its queues and the permissions on it
    for vhost in unique(account["vhost"] for account in brokers):
        gone = admin.call("DELETE", "vhosts", vhost, missing_ok=True) == 404
        say(f"RabbitMQ vhost {vhost!r}: {'absent already' if gone else 'removed'}")
    for user in unique(account["user"] for account in brokers):
        gone = admin.call("DELETE", "users", user, missing_ok=True) == 404
        say(f"RabbitMQ user {user!r}: {'absent already' if gone else 'removed'}")


def rabbit_check(admin: RabbitAdmin, brokers: list[dict]) -> list[str]:
    problems = []
    for account in brokers:
        vhost, user = account["vhost"], account["user"]
        for what, segments in (
            (f"RabbitMQ vhost {vhost!r}", ("vhosts", vhost)),
            (f"RabbitMQ user {user!r}", ("users", user)),
            (f"permissions of RabbitMQ user {user!r} on vhost {vhost!r}", ("permissions", vhost, user)),
        ):
            if admin.call("GET", *segments, missing_ok=True) == 404:
                problems.append(f"{what} does not exist")
    if not problems:
        say(f"RabbitMQ: {len(brokers)} vhost(s), their users and permissions exist")
    return problems


def check_brokers(brokers: list[dict], passwords_too: bool) -> None:
    """Every broker names a user and a vhost (never the shared default ``/``); with ``passwords_too``,
    qualifiers that share a user share its password, as RabbitMQ keeps one password per user."""
    passwords: dict[str, tuple[str, str]] = {}
    for account in brokers:
        if not account["user"]:
            raise Failure(f"qualifier {account['qualifier']!r}: OMEGA_CELERY_CONFIG.BROKER_URL names no user")
        if not account["vhost"] or account["vhost"] == "/":
            raise Failure(
                f"qualifier {account['qualifier']!r}: OMEGA_CELERY_CONFIG.BROKER_URL names no vhost of its own"
            )
        seen = passwords.setdefault(account["user"], (account["qualifier"], account["password"]))
        if passwords_too and seen[1] != account["password"]:
            raise Failure(
                f"qualifiers {seen[0]!r} and {account['qualifier']!r} give the RabbitMQ user {account['user']!r} "
                "different passwords, but RabbitMQ keeps one password per user: one of them could not connect"
            )


# -- MongoDB through mongosh ----------------------------------------------------------------------


def mongosh(action: str, users: list[dict], admin_url: str, binary: str) -> int:
    """Run the constant MONGOSH_SCRIPT for ``action`` (create | remove | check); return its exit code."""
    spec = {"action": action, "users": [{k: u[k] for k in ("user", "password", "db", "authdb")} for u in users]}
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", os.getcwd()),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "OMEGAOPS_MONGO_ADMIN_URL": admin_url,
        "OMEGAOPS_MONGO_SPEC": json.dumps(spec),
    }
    argv = [binary, "--nodb", "--quiet", "--norc", "--eval", MONGOSH_SCRIPT]
    try:
        done = subprocess.run(  # noqa: S603 -- argv list; values reach mongosh through its environment
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=MONGOSH_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"mongosh did not finish within {MONGOSH_TIMEOUT}s (is MONGO_ADMIN_URL reachable?)") from None
    except OSError as exc:
        raise Failure(f"mongosh cannot be run: {one_line(exc)}") from None
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            say(f"mongosh: {line.rstrip()}")
    return done.returncode


def mongo_unavailable(admin_url: str, binary: str | None) -> str | None:
    """Why MongoDB users cannot be managed here, or None when they can."""
    if not admin_url:
        return "MONGO_ADMIN_URL is not configured"
    if not binary:
        return "mongosh is not installed on this worker (not on PATH)"
    return None


# -- phases ---------------------------------------------------------------------------------------


def unique(values):
    return list(dict.fromkeys(values))


def provision(phase: str, settings: dict, environ) -> dict:
    """Do ``phase``; return what to record in the deployment's settings (may be empty)."""
    configs = qualifiers(settings)
    userid = environ.get("OMEGAOPS_USER", "")
    if not userid or QUALIFIER_SEPARATOR in userid:
        raise Failure(f"OMEGAOPS_USER {userid!r} is not a userid: the names to provision cannot be checked")
    rabbit_url = environ.get("RABBITMQ_ADMIN_URL", "").strip()
    mongo_url = environ.get("MONGO_ADMIN_URL", "").strip()
    binary = shutil.which("mongosh", path=environ.get("PATH")) if mongo_url else None
    mongo_missing = mongo_unavailable(mongo_url, binary)

    if phase == "check":
        return check(configs, userid, rabbit_url, mongo_url, binary, mongo_missing)

    if not configs:
        if phase == "uninstall":
            say("the settings hold no qualifier: nothing to remove")
            return {}
        raise Failure("the settings hold no qualifier with OMEGA_MONGO_URL (run deploy_user_service first)")
    mongos, brokers = accounts(configs, userid)
    rabbit = RabbitAdmin(rabbit_url) if rabbit_url else None
    if rabbit:
        check_brokers(brokers, passwords_too=phase != "uninstall")
    say(f"qualifiers: {', '.join(configs)}")
    done = "removed" if phase == "uninstall" else "created"

    if mongo_missing:
        for account in mongos:
            say(f"{mongo_missing}: the MongoDB user {account['user']} for database {account['db']} was not {done}")
        mongo_state = "not configured" if not mongo_url else "mongosh missing"
    else:
        code = mongosh("remove" if phase == "uninstall" else "create", mongos, mongo_url, binary)
        if code != 0:
            raise Failure(f"mongosh failed with exit code {code}; its output is above")
        mongo_state = done

    if rabbit is None:
        for account in brokers:
            say(
                f"RABBITMQ_ADMIN_URL is not configured: the RabbitMQ vhost {account['vhost']} and user "
                f"{account['user']} were not {done}"
            )
        rabbit_state = "not configured"
    else:
        (rabbit_uninstall if phase == "uninstall" else rabbit_install)(rabbit, brokers)
        rabbit_state = done
    return {"provisioning": {"mongodb": mongo_state, "rabbitmq": rabbit_state}}


def check(
    configs: dict, userid: str, rabbit_url: str, mongo_url: str, binary: str | None, mongo_missing: str | None
) -> dict:
    if not configs:
        raise Failure("the settings hold no qualifier with OMEGA_MONGO_URL and OMEGA_CELERY_CONFIG.BROKER_URL")
    problems = []
    mongos, brokers = [], []
    for name, config in configs.items():
        for parse, found in ((mongo_account, mongos), (broker_account, brokers)):
            try:
                found.append({"qualifier": name, **parse(name, config)})
            except Failure as exc:
                problems.append(str(exc))
    if problems:
        raise Failure("; ".join(problems))
    for mongo, broker in zip(mongos, brokers, strict=True):
        check_owned(userid, mongo, broker)
    say(f"settings: {len(configs)} qualifier(s) with a database and a broker ({', '.join(configs)})")

    if mongo_missing:
        say(f"{mongo_missing}: the MongoDB users were not checked on the server")
    elif mongosh("check", mongos, mongo_url, binary) != 0:
        problems.append("MongoDB: a user is missing or mongosh failed (see above)")
    if rabbit_url:
        admin = RabbitAdmin(rabbit_url)
        try:
            check_brokers(brokers, passwords_too=True)
        except Failure as exc:
            problems.append(str(exc))
        else:
            problems.extend(rabbit_check(admin, brokers))
    else:
        say("RABBITMQ_ADMIN_URL is not configured: the RabbitMQ vhosts and users were not checked on the server")
    if problems:
        raise Failure("; ".join(problems))
    return {}


def main(environ=os.environ) -> int:
    phase = environ.get("OMEGAOPS_PHASE", "")
    if phase not in PHASES:
        print(f"error: OMEGAOPS_PHASE {phase!r} is not one of {', '.join(PHASES)}", file=sys.stderr)
        return 2
    try:
        settings = json.loads(environ.get("OMEGAOPS_SETTINGS") or "{}")
    except ValueError:
        settings = None
    if not isinstance(settings, dict):
        print("error: OMEGAOPS_SETTINGS is not a JSON object", file=sys.stderr)
        return 2
    try:
        output = provision(phase, settings, environ)
    except Failure as exc:
        print(f"error: {one_line(exc, 1000)}", file=sys.stderr)
        return 1
    if output and environ.get("OMEGAOPS_OUTPUT"):
        with open(environ["OMEGAOPS_OUTPUT"], "w", encoding="utf-8") as out:
            json.dump(output, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
