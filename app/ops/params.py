"""The ``k=v,k=v`` params string the omegaml client and the CLI send with every command."""

import re

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


class ParamsError(ValueError):
    """A params string that does not parse; the message says where and why."""


def parse_params(raw: str | None) -> dict[str, str]:
    """Parse ``"provider=aws,size=2"`` into ``{"provider": "aws", "size": "2"}``, strictly.

    Empty values are allowed (``provider=``); a value may contain ``=``. Empty items (``a=1,,b=2``),
    items without ``=``, invalid or repeated keys are errors naming the item.
    """
    if raw is None:
        return {}
    if not isinstance(raw, str):
        raise ParamsError("params must be a string of k=v pairs separated by commas")
    raw = raw.strip()
    if not raw:
        return {}
    params: dict[str, str] = {}
    for position, item in enumerate(raw.split(","), start=1):
        if not item.strip():
            raise ParamsError(f"params: item {position} is empty (two commas in a row, or a trailing comma)")
        if "=" not in item:
            raise ParamsError(f"params: item {position} {item.strip()!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if not KEY_RE.match(key):
            raise ParamsError(
                f"params: item {position} has an invalid key {key!r} "
                "(a letter or _ first, then letters, digits, _ . or -)"
            )
        if key in params:
            raise ParamsError(f"params: key {key!r} is given twice")
        params[key] = value.strip()
    return params


def format_params(params: dict[str, str]) -> str:
    """Render params back into the ``k=v,...`` form (for display and for specs)."""
    return ",".join(f"{key}={value}" for key, value in params.items())
