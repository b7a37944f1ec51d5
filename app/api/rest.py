"""The API's document: flask-smorest builds ``/admin/api/v2/openapi.json`` from the schemas the views validate
with, so the document and the behaviour cannot drift apart. Every API route is in it: the service API
(``/admin/api/v2/service/...``), the accounts (``auth/...``), usage events and the client's ``/api/v1/config/``.

Two things differ from flask-smorest's defaults, to keep one error format for the whole service
(``{"error": "<code>", "message": "..."}``, see ``app.views.errors``):

- the app's own error handlers stay in charge (``Api`` does not register its own);
- argument errors are a 400 naming the field (not a 422 with a nested dict), and request bodies
  are read by ``json_body`` (bad UTF-8, bad JSON, NaN, deep nesting: a 400 that says which).
"""

import marshmallow as ma
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser

from .errors import ApiError
from .parsing import json_body
from .schemas import SPEC_COMPONENTS, ErrorSchema, PlanCreateArgs, RetryArgs

TITLE = "omegaops service API"
SECURITY_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "`ApiKey <userid>:<apikey>`, the scheme of the omegaml client. Browsers logged in "
    "to the pages may also read (GET) with their session.",
}


class Api(SmorestApi):
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """Keep the app's handlers (``app.views.errors``): one JSON error format for every API."""


def first_error(messages, path: str = "") -> tuple[str, str]:
    """The first (field, message) of marshmallow's nested error dict, with a dotted path."""
    if isinstance(messages, dict):
        key = next(iter(messages))
        name = key if key != "_schema" else ""
        return first_error(messages[key], f"{path}.{name}" if path and name else (path or str(name)))
    if isinstance(messages, list) and messages:
        return first_error(messages[0], path)
    return path, str(messages)


class StrictParser(FlaskParser):
    """Unknown query parameters are refused like unknown body fields; every error is a 400."""

    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }
    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req, schema):
        if getattr(schema, "body_optional", False) and not req.get_data(cache=True).strip():
            return {}  # e.g. a retry: no body, the same params
        return json_body()

    def load_querystring(self, req, schema):
        """A strict schema's parameters once each: ``?limit=1&limit=2`` is a 400, not the first one silently."""
        if schema.unknown == ma.RAISE:
            for name in req.args:
                field = schema.fields.get(name)
                if field is not None and not isinstance(field, ma.fields.List) and len(req.args.getlist(name)) > 1:
                    raise ApiError(400, "bad_request", f"give {name!r} at most once")
        return super().load_querystring(req, schema)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        location = next(iter(error.messages), "")
        field, message = first_error(error.messages.get(location, error.messages))
        if message == "Unknown field.":
            kind = "query parameter" if location in ("query", "querystring") else "field"
            raise ApiError(400, "bad_request", f"unknown {kind} {field!r}")
        raise ApiError(400, "bad_request", f"{field}: {message}" if field else message)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictParser()


SPEC_KWARGS = {
    "info": {
        "description": "Plans, configurations, deployments, commands and tasks of omegaops, as the "
        "omegaml client (`om cloud add|update|remove`) and operators use them. Lists answer "
        '`{"meta": {...}, "objects": [...]}`; statuses are strings: "0" INITIATED, "1" PENDING, '
        '"5" COMPLETED, "8" REMOVED, "9" FAILED.'
    },
    "servers": [{"url": "/"}],
    "security": [{"ApiKey": []}],
}


def init_api(app) -> Api:
    """An ``Api`` for this app (one per app: tests build many), serving ``/admin/api/v2/openapi.json``."""
    app.config.setdefault("API_TITLE", TITLE)
    app.config.setdefault("API_VERSION", "v2")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/admin/api/v2")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = Api(app, spec_kwargs=SPEC_KWARGS)
    api.spec.components.security_scheme("ApiKey", SECURITY_SCHEME)
    for name, component in SPEC_COMPONENTS.items():
        api.spec.components.schema(name, component)
    api.spec.components.schema("PlanCreateArgs", schema=PlanCreateArgs)
    # unknown keys reach the spec loader (INCLUDE), which refuses them with a spec file's message
    api.spec.components.schemas["PlanCreateArgs"]["additionalProperties"] = False
    api.spec.components.schema("RetryArgs", schema=RetryArgs)
    for name, (_code, description) in ERRORS.items():
        error = {"description": description, "content": {"application/json": {"schema": ErrorSchema}}}
        api.spec.components.response(name, error)
    return api


# the errors every operation may answer, documented on each (``document_errors``)
ERRORS = {
    "BAD_REQUEST": (400, "bad input: the message names the parameter or field"),
    "UNAUTHORIZED": (401, "no or a bad API key (Authorization: ApiKey <userid>:<apikey>)"),
    "FORBIDDEN": (403, "not allowed: admins only, or someone else's service"),
    "NOT_FOUND": (404, "no such object, or not the caller's"),
    "PAYLOAD_TOO_LARGE": (413, "the request body is over the size limit (MAX_CONTENT_LENGTH)"),
    "TOO_MANY_REQUESTS": (429, "too many bad API keys from this address: see Retry-After"),
}
# what the omegaml client sends to its configuration may hold more: ignored, not refused (CLIENT-CONTRACT.md)
LENIENT_QUERY = {"/api/v1/config/"}


FORMAT_PARAMETER = {
    "in": "query",
    "name": "format",
    "required": False,
    "description": "tastypie clients send json; any other query parameter is a 400",
    "schema": {"type": "string", "enum": ["json"]},
}
# what the API answers: every field is always there (null where it says nullable)
RESPONSE_SCHEMAS = (
    "Plan",
    "Configuration",
    "Deployment",
    "CommandSummary",
    "Command",
    "TaskSummary",
    "Task",
    "User",
    "ResetRequested",
    "ConfigObject",
)


def document_errors(api: Api) -> None:
    """Add what every operation may answer to the document (after the blueprints are registered):
    the errors, a 400 (unknown query parameters are refused everywhere but ``LENIENT_QUERY``) and the
    ``format`` parameter. Public operations (``security: []``) answer no 401."""
    for name in RESPONSE_SCHEMAS:
        schema = api.spec.components.schemas[name]
        schema["required"] = sorted(schema["properties"])
    for path, item in api.spec._paths.items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            parameters = operation.setdefault("parameters", [])
            if path not in LENIENT_QUERY and not any(
                p.get("in") == "query" and p["name"] == "format" for p in parameters
            ):
                parameters.append(FORMAT_PARAMETER)
            responses = operation.setdefault("responses", {})
            for name, (code, _) in ERRORS.items():
                if code == 404 and "{" not in path and method != "post":
                    continue
                if code == 413 and method not in ("post", "patch", "put"):
                    continue
                if code == 401 and operation.get("security") == []:
                    continue
                responses.setdefault(str(code), {"$ref": f"#/components/responses/{name}"})
