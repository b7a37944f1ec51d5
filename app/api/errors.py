"""JSON errors for the API: ``{"error": "<code>", "message": "..."}`` with the right status."""

from werkzeug.exceptions import HTTPException


class ApiError(HTTPException):
    """An API error with a machine-readable ``error`` code; rendered as JSON by the app's error handler."""

    def __init__(self, status: int, error: str, message: str, headers: dict | None = None):
        super().__init__(description=message)
        self.code, self.error, self.extra_headers = status, error, headers or {}

    def get_headers(self, environ=None, scope=None):
        return [("Content-Type", "application/json"), *self.extra_headers.items()]
