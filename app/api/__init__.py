"""The REST API: ``/api/v1/config/`` for the omegaml client and ``/admin/api/v2/...``.

API requests authenticate with ``Authorization: ApiKey <userid>:<key>`` (or the session, for reads),
so the blueprints are exempt from the pages' CSRF tokens; writes need the ApiKey header. Every API
route is described at ``/admin/api/v2/openapi.json`` (its blueprints are flask-smorest's, registered
on the ``Api``), and shown at ``/admin/api/v2/docs``.
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

    csrf.exempt(docs.bp)
    app.register_blueprint(docs.bp)
    api = init_api(app)
    for blueprint in (config.bp, auth_resources.bp, usage.bp, plans.bp, deployments.bp):
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
    document_errors(api)
