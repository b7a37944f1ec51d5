"""Column types that normalise values in one place: UTC datetimes and integer status enums."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite hands back naive datetimes and PostgreSQL aware ones; this is the one place that
    makes them the same. Naive values written by our code are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class IntEnumType(TypeDecorator):
    """An ``IntEnum`` stored as its integer value (the numbers the API and the original service show)."""

    impl = Integer
    cache_ok = True

    def __init__(self, enum_class, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enum_class = enum_class

    def process_bind_param(self, value, dialect):
        return None if value is None else int(self.enum_class(value))

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum_class(value)


class utc_day(FunctionElement):
    """The UTC calendar day of a ``UTCDateTime`` column as 'YYYY-MM-DD' text, for grouping by day in SQL."""

    type = String()
    inherit_cache = True
    name = "utc_day"


@compiles(utc_day)
def _utc_day_default(element, compiler, **kw):
    # SQLite stores UTC timestamps as ISO text
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element, compiler, **kw):
    # timestamptz: read in UTC, whatever the session's time zone
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


# Ids are INTEGER columns (32-bit on PostgreSQL): a larger one names no row, and asking the database for it
# fails there instead of finding nothing. Every interface checks an id it was given with ``valid_id`` first.
MAX_ID = 2**31 - 1


def valid_id(value: int) -> bool:
    """Whether ``value`` can be the id of a row: 1 to ``MAX_ID``."""
    return 0 < value <= MAX_ID
