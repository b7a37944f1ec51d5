"""omegaops: the operations backend of the omega|ml managed service."""

from flask import Flask

from config import Config, config_from_env


def create_app(config_class: type[Config] | None = None, **overrides) -> Flask:
    """Build the app: config, extensions, blueprints, API, admin console, jobs and CLI commands."""
    app = Flask(__name__, instance_relative_config=False)
    config_class = config_class or config_from_env()
    settings = config_class.from_env()
    settings.update(overrides)
    if "REDIS_URL" in overrides and "RATELIMIT_STORAGE_URI" not in overrides:
        settings["RATELIMIT_STORAGE_URI"] = overrides["REDIS_URL"]
    config_class.check(settings)
    app.config.update(settings)

    register_extensions(app)
    register_errorhandlers(app)
    register_blueprints(app)
    register_api(app)
    register_admin(app)
    register_jobs(app)
    register_usage(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from . import models  # noqa: F401 -- registers every table before Migrate looks at the metadata
    from .extensions import csrf, db, limiter, login_manager, migrate, sqlite_pragmas

    if not event.contains(Engine, "connect", sqlite_pragmas):
        event.listen(Engine, "connect", sqlite_pragmas)
    db.init_app(app)
    migrate.init_app(app, db, render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(user_id: str):
        if not user_id.isdigit():
            return None
        return db.session.get(models.User, int(user_id))


def register_errorhandlers(app: Flask) -> None:
    from .security import register_headers
    from .views.errors import register

    register(app)
    register_headers(app)


def register_blueprints(app: Flask) -> None:
    from .billing import webhooks
    from .views import account, auth, billing, main, services, usage

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(services.bp)
    app.register_blueprint(usage.bp)
    app.register_blueprint(billing.bp)
    app.register_blueprint(webhooks.bp)


def register_api(app: Flask) -> None:
    from .api import register

    register(app)


def register_admin(app: Flask) -> None:
    from .views.admin import init_admin

    init_admin(app)


def register_jobs(app: Flask) -> None:
    from .jobs.queues import init_queues

    init_queues(app)


def register_usage(app: Flask) -> None:
    from .billing.format import init_format
    from .usage.requests import init_request_log

    init_request_log(app)
    init_format(app)


def register_commands(app: Flask) -> None:
    from . import cli
    from .billing import cli as billing_cli
    from .jobs import schedule, worker
    from .usage import cli as usage_cli

    cli.register(app)
    usage_cli.register(app)
    billing_cli.register(app)
    worker.register(app)
    schedule.register(app)
