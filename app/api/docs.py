"""``/admin/api/v2/docs``: the OpenAPI document shown with Swagger UI, from the swagger-ui-bundle package.

The assets come from the installed package (no CDN, nothing copied into the repository); the page
starts Swagger UI from our own script, so the Content-Security-Policy needs no inline script.
"""

from flask import Blueprint, abort, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("api_docs", __name__, url_prefix="/admin/api/v2")
ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}


@bp.route("/docs", methods=["GET"], strict_slashes=False)
def docs():
    """The API's documentation page (public, like the document it shows)."""
    return render_template("api/docs.html")


@bp.route("/docs/assets/<path:name>", methods=["GET"])
def asset(name: str):
    if name not in ASSETS:
        abort(404)
    return send_from_directory(str(swagger_ui_path), name, max_age=24 * 3600)
