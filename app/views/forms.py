"""The forms' base class: no NUL or other control characters in any field, in the pages and the console alike.

Every form of the pages and the console derives from ``Form`` (the console through its ``form_base_class``):
a value with a control character gets a message beside its field (``app.text``'s rule and words) before any
other validator sees it, and nothing is stored. PostgreSQL refuses a NUL (a 500 before), a NUL ends a C string
(a deployment parameter failed its command with "embedded null byte"), and the others garble logs, mails and
invoices. Multi-line fields (textareas) keep tabs and line breaks.
"""

from flask_wtf import FlaskForm
from wtforms import Field, FieldList, FormField
from wtforms.validators import StopValidation
from wtforms.widgets import TextArea

from ..text import control_character_error  # the rule itself, pure: the domain functions the API calls use it too

__all__ = ["Form", "control_character_error"]


def is_multi_line(field: Field) -> bool:
    """A textarea (TextAreaField, and Flask-Admin's JSON and text fields built on it)."""
    return isinstance(field.widget, TextArea)


def leaf_fields(fields):
    """The fields, those of sub-forms (FormField) and lists (FieldList, Flask-Admin's inline forms) included."""
    for field in fields:
        if isinstance(field, FormField):
            yield from leaf_fields(field.form)
        elif isinstance(field, FieldList):
            yield from leaf_fields(field.entries)
        else:
            yield field


def _refuse(message: str):
    def pre_validate(form):
        raise StopValidation(message)

    return pre_validate


class Form(FlaskForm):
    """Flask-WTF's form (its CSRF token) whose every submitted text value is free of control characters."""

    def validate(self, extra_validators=None) -> bool:
        for field in leaf_fields(self):
            field.__dict__.pop("pre_validate", None)  # validated before: judge the value anew
            message = None if field.type == "CSRFTokenField" else self.control_character_error(field)
            if message:
                # the field's own validators do not see the value: a Unique one would ask the database with it
                # (PostgreSQL refuses a NUL: a 500), and their messages would only repeat that it is wrong
                field.pre_validate = _refuse(message)
        return super().validate(extra_validators=extra_validators)

    @staticmethod
    def control_character_error(field: Field) -> str | None:
        for value in field.raw_data or ():
            if isinstance(value, str) and (message := control_character_error(value, is_multi_line(field))):
                return message
        return None
