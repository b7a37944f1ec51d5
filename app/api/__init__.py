"""The REST API: ``/api/v1/config/`` for the omegaml client and ``/admin/api/v2/...``.

API requests authenticate with ``Authorization: ApiKey <userid>:<key>`` (or the session, for reads),
so the blueprints are exempt from the pages' CSRF tokens; writes need the ApiKey header.
"""

from flask import Flask


def register(app: Flask) -> None:
    from ..extensions import csrf
    from . import auth_resources, config

    for blueprint in (config.bp, auth_resources.bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
