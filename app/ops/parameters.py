"""Plan parameters: what a plan's commands accept, declared once in its spec and enforced by ``issue_command``.

A spec declares them under ``parameters:``::

    parameters:
      - name: size
        type: integer            # integer | string | boolean
        minimum: 0               # integer bounds
        maximum: 16
        default: 1               # applied when an install does not give it
        description: How many runtime workers run.
      - name: qualifier
        type: string
        pattern: "[a-z][a-z0-9]{0,31}"   # the whole value must match
        max_length: 32
        default: default
      - name: api_token
        type: string
        secret: true             # masked wherever params are shown, and in task logs: its name must say so
                                 # (pass, secret, token, key, credential, auth), and a name that does is secret
        required: true           # an install must give it (and a default makes no sense then)

Every interface (API, pages, console, CLI, tasks) issues commands through ``issue_command``, which
calls ``validate_params``: so a value is refused, with the parameter's name and the rule, before a
command exists. Unknown names are refused. An install gets the defaults of what it does not give; an
update changes only what it gives (the deployment keeps the rest).

A plan that declares nothing (a spec in the original format) takes the params its steps default
(``params: size=1``) as free text. Every plan also takes what the omegaml client sends with every
``om cloud`` command (``provider``, ``node-type``, ``size``: ``CLIENT_PARAMETERS``) unless it declares
them otherwise.
"""

import re
from dataclasses import asdict, dataclass

from ..text import control_character_error
from .params import KEY_RE
from .runner import SECRET_NAME_RE

TYPES = ("integer", "string", "boolean")
PARAMETER_KEYS = (
    "name",
    "type",
    "description",
    "default",
    "required",
    "secret",
    "minimum",
    "maximum",
    "pattern",
    "max_length",
    "choices",
)
MAX_VALUE_LENGTH = 1000  # a string parameter's longest value unless it says less
MAX_INTEGER = 2**31 - 1
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# what the unmodified omegaml client sends with every `om cloud add|update|remove` (omegaml/client/cli/cloud.py):
# "size=<--count>,node-type=<--node-type>,provider=<--provider>" without --specs, and "provider=" added to any
# --specs. Every plan takes them, as short plain text, unless it declares them itself (the worker's size).
CLIENT_TEXT = r"[A-Za-z0-9_.-]*"
CLIENT_PARAMETERS = (
    {"name": "provider", "description": "The cloud provider the omegaml client names (may be empty)."},
    {"name": "node-type", "description": "The node type the omegaml client names (its --node-type)."},
    {"name": "size", "description": "The omegaml client's --count (this service does not scale)."},
)
# a size is a count, whoever names it: the client's, or a step's default in a spec of the original format
SIZE = {"name": "size", "type": "integer", "minimum": 0}


class ParameterError(ValueError):
    """A value a parameter does not accept; ``name`` is the parameter (or None for the params as a whole)."""

    def __init__(self, name: str | None, message: str):
        super().__init__(message)
        self.name, self.message = name, message


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str = "string"
    description: str = ""
    default: str | None = None
    required: bool = False
    secret: bool = False
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    max_length: int | None = None
    choices: tuple[str, ...] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "Parameter":
        data = dict(data)
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            data["default"] = str(default).lower() if isinstance(default, bool) else str(default)
        if data.get("choices") is not None:
            data["choices"] = tuple(data["choices"])
        return cls(**{key: value for key, value in data.items() if key in PARAMETER_KEYS})

    def to_dict(self) -> dict:
        """The declaration as stored and shown (keys left out when unset)."""
        out = {}
        for key, value in asdict(self).items():
            if (value is None or value is False or value == "") and key not in ("name", "type"):
                continue
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.default == "":
            out["default"] = ""
        elif self.default is not None and self.type == "integer":
            out["default"] = int(self.default)
        elif self.default is not None and self.type == "boolean":
            out["default"] = self.default == "true"
        return out

    @property
    def rule(self) -> str:
        """The rule in words, for messages and forms."""
        if self.type == "integer":
            low = self.minimum if self.minimum is not None else -MAX_INTEGER
            high = self.maximum if self.maximum is not None else MAX_INTEGER
            return f"a whole number from {low} to {high}"
        if self.type == "boolean":
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        parts = [f"text of at most {self.longest} characters"]
        if self.pattern:
            parts.append(f"matching {self.pattern}")
        return " ".join(parts)

    @property
    def longest(self) -> int:
        return self.max_length or MAX_VALUE_LENGTH

    def check(self, value) -> str:
        """The value normalised to the text a step gets, or ``ParameterError`` naming the parameter."""
        if not isinstance(value, str):
            value = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        value = value.strip()

        def refuse(why: str):
            shown = value if len(value) <= 40 else value[:40] + "..."
            got = "" if self.secret else f", got {shown!r}"
            raise ParameterError(self.name, f"params: {self.name}: must be {why or self.rule}{got}")

        if control_character_error(value):  # never to a step: a NUL ends a C string, the others mangle logs
            refuse(f"{self.rule}, without control characters")
        if self.type == "integer":
            if not re.fullmatch(r"[-+]?[0-9]{1,10}", value):
                refuse("")
            number = int(value)
            low = -MAX_INTEGER if self.minimum is None else self.minimum
            high = MAX_INTEGER if self.maximum is None else self.maximum
            if not low <= number <= high:
                refuse("")
            return str(number)
        if self.type == "boolean":
            lowered = value.lower()
            if lowered in TRUE:
                return "true"
            if lowered in FALSE:
                return "false"
            refuse("")
        if self.choices is not None:
            if value not in self.choices:
                refuse("")
            return value
        if len(value) > self.longest or (self.pattern and not re.fullmatch(self.pattern, value)):
            refuse("")
        return value


def declared(parameters: list[dict] | None, step_defaults: dict[str, str] | None = None) -> dict[str, Parameter]:
    """The parameters a plan takes, by name: its declaration (else its steps' defaults), and the client's."""
    if parameters is None:
        out = {
            # the steps default them themselves (the engine merges a step's params under the command's)
            name: Parameter.from_dict(
                {
                    **(SIZE if name == SIZE["name"] else {"name": name}),
                    "description": f"(its steps default it to {value!r})",
                }
            )
            for name, value in (step_defaults or {}).items()
        }
    else:
        out = {item["name"]: Parameter.from_dict(item) for item in parameters}
    for client in CLIENT_PARAMETERS:
        rule = SIZE if client["name"] == SIZE["name"] else {"pattern": CLIENT_TEXT, "max_length": 63}
        out.setdefault(client["name"], Parameter.from_dict({**client, **rule}))
    return out


def validate_params(taken: dict[str, Parameter], params: dict[str, str], install: bool) -> dict[str, str]:
    """``params`` checked and normalised; an install also gets the defaults of what it leaves out.

    Raises ``ParameterError`` for the first unknown name, missing required parameter or refused value.
    """
    for name in params:
        if name not in taken:
            allowed = ", ".join(sorted(taken)) or "none"
            raise ParameterError(name, f"params: {name}: this service takes no such parameter (it takes: {allowed})")
    out = {name: taken[name].check(value) for name, value in params.items()}
    if install:
        for name, parameter in taken.items():
            if name in out:
                continue
            if parameter.required:
                raise ParameterError(name, f"params: {name}: is required ({parameter.rule})")
            if parameter.default is not None:
                out[name] = parameter.default
    return out


def secret_names(taken: dict[str, Parameter]) -> set[str]:
    return {name for name, parameter in taken.items() if parameter.secret}


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_declaration(raw, fail) -> list[dict]:
    """``parameters:`` of a spec as the list stored on the plan; ``fail(message)`` raises on the first problem."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        fail("parameters: must be a list of parameters (`- name: size`)")
    out, names = [], set()
    for number, item in enumerate(raw, start=1):

        def bad(message, number=number):
            fail(f"parameters[{number}]: {message}")

        if not isinstance(item, dict):
            bad("must be a mapping with name and type")
        unknown = sorted(str(key) for key in item if key not in PARAMETER_KEYS)
        if unknown:
            bad(f"unknown field {unknown[0]!r} (allowed: {', '.join(PARAMETER_KEYS)})")
        name = item.get("name")
        if not isinstance(name, str) or not KEY_RE.match(name):
            bad(f"name: {name!r} is not a parameter name (a letter or _ first, then letters, digits, _ . or -)")
        if name in names:
            bad(f"name: {name!r} is given twice")
        names.add(name)
        kind = item.get("type", "string")
        if kind not in TYPES:
            bad(f"type: {kind!r} is not one of {', '.join(TYPES)}")
        for key in ("required", "secret"):
            if key in item and not isinstance(item[key], bool):
                bad(f"{key}: must be true or false, got {item[key]!r}")
        description = item.get("description") or ""
        if not isinstance(description, str) or len(description) > 500:
            bad("description: a text of at most 500 characters")
        integer_keys, string_keys = ("minimum", "maximum"), ("pattern", "max_length", "choices")
        for key in integer_keys if kind != "integer" else ():
            if item.get(key) is not None:
                bad(f"{key}: applies to integer parameters only")
        for key in string_keys if kind != "string" else ():
            if item.get(key) is not None:
                bad(f"{key}: applies to string parameters only")
        for key in ("minimum", "maximum"):
            value = item.get(key)
            if value is not None and not _whole(value, -MAX_INTEGER, MAX_INTEGER):
                bad(f"{key}: a whole number from {-MAX_INTEGER} to {MAX_INTEGER}, got {value!r}")
        if item.get("minimum") is not None and item.get("maximum") is not None and item["minimum"] > item["maximum"]:
            bad("minimum: is greater than maximum")
        length = item.get("max_length")
        if length is not None and not _whole(length, 1, MAX_VALUE_LENGTH):
            bad(f"max_length: a whole number from 1 to {MAX_VALUE_LENGTH}, got {length!r}")
        pattern = item.get("pattern")
        if pattern is not None:
            if not isinstance(pattern, str) or len(pattern) > 500:
                bad("pattern: a regular expression of at most 500 characters")
            try:
                re.compile(pattern)
            except re.error as exc:
                bad(f"pattern: not a regular expression ({exc})")
        choices = item.get("choices")
        if choices is not None:
            if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
                bad("choices: a non-empty list of texts")
            if item.get("pattern") is not None:
                bad("choices: give choices or a pattern, not both")
        # what is secret is masked by its name wherever params are shown (app/ops/runner.py): the two agree
        if item.get("secret") and not SECRET_NAME_RE.search(name):
            bad(
                f"secret: {name!r} would be shown unmasked; name a secret parameter so that it says so "
                f"(holding pass, secret, token, key, credential or auth, e.g. {name}_token)"
            )
        secret = bool(SECRET_NAME_RE.search(name))
        parameter = Parameter.from_dict({**item, "type": kind, "description": description.strip(), "secret": secret})
        if parameter.required and item.get("default") is not None:
            bad("default: a required parameter has no default")
        if item.get("default") is not None:
            if isinstance(item["default"], (dict, list)):
                bad("default: must be a single value")
            try:
                parameter = Parameter.from_dict({**parameter.to_dict(), "default": parameter.check(item["default"])})
            except ParameterError as exc:
                bad(f"default: {exc.message.split(': ', 2)[-1]}")
        out.append(parameter.to_dict())
    return out
