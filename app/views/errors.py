"""Error handlers, in one place: roll the session back, answer JSON to API clients and a page to people."""

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..extensions import db


def wants_json() -> bool:
    """API paths and clients that ask for JSON get JSON errors."""
    if request.path.startswith(("/api/", "/admin/api/")):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http_error(exc: HTTPException):
        db.session.rollback()
        if wants_json():
            response = jsonify(
                error=getattr(exc, "error", None) or error_code(exc),
                message=exc.description,
                **getattr(exc, "extra", {}),
            )
            response.status_code = exc.code or 500
        else:
            response = app.make_response((render_template("errors/error.html", error=exc), exc.code))
        # keep what the exception says beyond its body: Retry-After, WWW-Authenticate, Allow, Location
        for name, value in exc.get_headers():
            if name.lower() not in ("content-type", "content-length"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        # the traceback goes to the log, never to the user
        db.session.rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        error = InternalServerError()
        if wants_json():
            return jsonify(error="internal_error", message="an internal error occurred; it has been logged"), 500
        return render_template("errors/error.html", error=error), 500
