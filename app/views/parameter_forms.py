"""The install, update and scale forms of the pages, built from the plan's declared parameters.

One field per parameter the plan declares (app/ops/parameters.py): its name, its description, the
browser's hints from its bounds or pattern (``min``/``max``/``maxlength``), a password field for a
secret. The fields carry no rule of their own: the values go to ``issue_command``, which checks them
against the same declaration as the API, the console and the CLI, and its refusal is shown beside the
field of the parameter it names. A plan that declares nothing (a spec in the original format) gets
the one ``k=v,...`` field instead.
"""

from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import Length

from ..models import ServicePlan
from ..ops.commands import CommandRefused
from ..ops.parameters import Parameter
from ..ops.params import format_params
from ..ops.runner import masked_params
from .forms import Form


def strip(value):
    return value.strip() if isinstance(value, str) else value


class ParamsForm(Form):
    """The ``k=v,...`` field: plans that declare no parameters, and the console."""

    params = StringField(
        "Parameters",
        filters=[strip],
        validators=[Length(max=2000)],
        description="Comma-separated key=value pairs (optional)",
    )

    declared = False

    def given(self, current: dict | None = None) -> str:
        return self.params.data or ""

    def show(self, refused: CommandRefused) -> None:
        self.params.errors = [refused.message]


class ParameterForm(Form):
    """A form with one field per declared parameter (``names`` maps each field to its parameter)."""

    declared = True
    names: dict[str, str] = {}

    def given(self, current: dict | None = None) -> dict[str, str]:
        """The params typed: the fields left empty are left out (an install takes their defaults, an update
        keeps their current values), and so are the values equal to the current ones."""
        current = current or {}
        out = {}
        for field_name, name in self.names.items():
            value = strip(self[field_name].data)
            if value in (None, "") or str(current.get(name, "")) == value:
                continue
            out[name] = value
        return out

    def show(self, refused: CommandRefused) -> None:
        """The refusal beside the field of the parameter it names, else beside the first field."""
        by_name = {name: field_name for field_name, name in self.names.items()}
        field_name = by_name.get(refused.parameter) or next(iter(self.names), None)
        if field_name is not None:
            self[field_name].errors = [refused.message]

    def fields_of(self):
        return [self[field_name] for field_name in self.names]


def declared_parameters(plan: ServicePlan) -> list[Parameter] | None:
    """What the plan declares, in order (None: it declares nothing, and gets the ``k=v`` field)."""
    if plan.parameters is None:
        return None
    return [Parameter.from_dict(item) for item in plan.parameters]


def hints(parameter: Parameter) -> dict:
    """The browser's hints from the declaration (what the server checks, said beforehand)."""
    kw = {}
    if parameter.type == "integer":
        kw.update(type="number", step=1, inputmode="numeric")
        if parameter.minimum is not None:
            kw["min"] = parameter.minimum
        if parameter.maximum is not None:
            kw["max"] = parameter.maximum
    elif parameter.type == "string" and not parameter.choices:
        kw["maxlength"] = parameter.longest
    if parameter.default is not None and not parameter.secret:
        kw["placeholder"] = f"default: {parameter.default}" if parameter.default != "" else "default: empty"
    return kw


def _field(parameter: Parameter, install: bool):
    description = parameter.description or ""
    rule = parameter.rule[0].upper() + parameter.rule[1:]
    description = f"{description} {rule}." if description else f"{rule}."
    if parameter.required and install:
        description += " Required."
    label = parameter.name
    if parameter.type == "boolean" or parameter.choices:
        values = ["true", "false"] if parameter.type == "boolean" else list(parameter.choices)
        keep = "(default)" if install else "(unchanged)"
        choices = [SelectChoice("", keep), *(SelectChoice(value, value) for value in values)]
        return SelectField(label, choices=choices, validate_choice=False, description=description)
    field_class = PasswordField if parameter.secret else StringField
    return field_class(label, render_kw=hints(parameter), description=description)


def parameter_form(
    plan: ServicePlan,
    *,
    prefix: str = "",
    install: bool = True,
    only: tuple[str, ...] | None = None,
    current: dict | None = None,
    formdata=None,
    submitted: bool = True,
):
    """The form for ``plan``'s params: declared fields (or the ``k=v`` field), filled from the request when
    ``submitted``, else from ``current`` (an update shows the deployment's values, secrets left empty)."""
    declared = declared_parameters(plan)
    if declared is None and only is not None:
        declared = [Parameter(name=name) for name in only]  # a plan of the original format: free text
    kwargs = {"prefix": prefix}
    if not submitted:
        kwargs["formdata"] = None
    elif formdata is not None:
        kwargs["formdata"] = formdata
    if declared is None:
        data = {"params": ""}
        if current and not submitted:
            data = {"params": format_params(masked_params(current))}
        return ParamsForm(data=data, **kwargs)
    attributes, names, data = {}, {}, {}
    for index, parameter in enumerate(p for p in declared if only is None or p.name in only):
        field_name = f"p{index}"
        attributes[field_name] = _field(parameter, install)
        names[field_name] = parameter.name
        if current and parameter.name in current and not parameter.secret:
            data[field_name] = str(current[parameter.name])
    form_class = type("PlanParameterForm", (ParameterForm,), {**attributes, "names": names})
    return form_class(data=data, **kwargs)
