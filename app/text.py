"""The one rule for free text that people type: no NUL or other control characters.

Pure (no Flask): the pages' forms (``app.views.forms.Form``) and the domain functions the API calls
(``app.accounts.update_profile``) give the same message for the same value. PostgreSQL refuses a NUL, a NUL ends
a C string, and the others garble logs, mails and invoices. Multi-line text keeps tabs and line breaks.
"""

import re

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
