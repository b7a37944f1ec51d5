"""The REST API: ``/api/v1/config/`` for the omegaml client and ``/admin/api/v2/...``.

API requests authenticate with ``Authorization: ApiKey <userid>:<key>`` (or the session, for reads),
so the blueprints are exempt from the pages' CSRF tokens; writes need the ApiKey header. The
service resources (``/admin/api/v2/service/...``) are described at ``/admin/api/v2/openapi.json``,
and shown at ``/admin/api/v2/docs``.
"""

from flask import Flask, request


def register(app: Flask) -> None:
    from ..extensions import csrf
    from . import auth_resources, config, deployments, docs, plans, usage
    from .parsing import reject_nul_in_request
    from .rest import document_errors, init_api

    @app.before_request
    def api_input_checks():
        if request.path.startswith(("/api/", "/admin/api/")):
            reject_nul_in_request()

    for blueprint in (config.bp, auth_resources.bp, docs.bp, usage.bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
    api = init_api(app)
    for blueprint in (plans.bp, deployments.bp):
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    document_errors(api)
