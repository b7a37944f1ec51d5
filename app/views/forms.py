"""The forms' one rule for text: no NUL or other control characters, in the pages and the console alike.

Every form of the pages and the console derives from ``Form`` (the console through its ``form_base_class``):
a value with a control character gets a message beside its field, before anything is stored. PostgreSQL refuses
a NUL (a 500 before), a NUL ends a C string (a deployment parameter failed its command with "embedded null
byte"), and the others garble logs, mails and invoices. Multi-line fields (textareas) keep tabs and line breaks.
"""

import re

from flask_wtf import FlaskForm
from wtforms import Field, FieldList, FormField
from wtforms.validators import StopValidation
from wtforms.widgets import TextArea

# Unicode's control characters (category Cc): C0, DEL and C1
SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # tab, line feed and carriage return are text


def control_character_error(value: str, multi_line: bool = False) -> str | None:
    """Why ``value`` cannot be taken (its first control character), or None when it can."""
    found = (MULTI_LINE if multi_line else SINGLE_LINE).search(value)
    if found is None:
        return None
    where = f"U+{ord(found.group()):04X} at character {found.start() + 1}"
    if multi_line:
        return f"must not contain control characters other than tabs and line breaks ({where})"
    return f"must not contain control characters such as NUL, tabs or line breaks ({where})"


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
