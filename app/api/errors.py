"""JSON errors for the API: ``{"error": "<code>", "message": "..."}`` with the right status."""

from werkzeug.exceptions import HTTPException


class ApiError(HTTPException):
    """An API error with a machine-readable ``error`` code; rendered as JSON by the app's error handler."""

    def __init__(self, status: int, error: str, message: str, headers: dict | None = None, **extra):
        super().__init__(description=message)
        self.code, self.error, self.extra_headers = status, error, headers or {}
        self.extra = extra  # more fields of the JSON body, e.g. ``blocking`` on a 409

    def get_headers(self, environ=None, scope=None):
        return [("Content-Type", "application/json"), *self.extra_headers.items()]
