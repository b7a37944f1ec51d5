"""Usage events in the original events format, validated and recorded once each.

An event is a mapping with ``start_dt`` (ISO 8601; naive means UTC), ``end_dt`` (optional), ``user``
(a userid), ``kind``, ``action``, and optionally ``id`` (the idempotency key; else a hash of the event),
``quantity`` (default 1), ``plan`` (a plan name), ``client_ip`` and ``data`` (a mapping: the request log
puts ``request_uri``, ``request_method`` and ``request_resource_name`` there).

Late events: an event older than the open period (the current UTC month, and the previous one until the
invoice run on the 1st at 02:00 UTC) is recorded in the open period -- at its first second, with
``data.original_time`` and ``data.late: true`` -- so a month that was invoiced never changes afterwards.
"""

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..api.parsing import has_nul
from ..extensions import db
from ..models import ServicePlan, UsageEvent, User
from ..models.types import utcnow

INVOICE_RUN_HOUR = 2  # UTC, on the 1st: until then the previous month is still open
MAX_ID = 200
MAX_TEXT = {"kind": 50, "action": 100, "client_ip": 64}
FUTURE = timedelta(minutes=5)  # clocks differ a little; events further ahead are refused


class EventError(ValueError):
    """An event that cannot be recorded; the message says why."""


def open_period_start(now: datetime) -> datetime:
    """The first second of the oldest period that is still open (see the module's docstring)."""
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if now < month.replace(hour=INVOICE_RUN_HOUR):
        previous = (month - timedelta(days=1)).replace(day=1)
        return previous
    return month


def parse_time(value, name: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise EventError(f"{name}: an ISO 8601 time is required")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise EventError(f"{name}: {value[:40]!r} is not an ISO 8601 time") from None
    if when.tzinfo is UTC:  # "+00:00" and "Z": as it is (each conversion costs more than the parse)
        return when
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def event_id(raw: dict, source: str) -> str:
    """The event's own id, or a stable hash of it: the same event sent twice is one event."""
    given = raw.get("id")
    if given is not None:
        if not isinstance(given, str) or not given or len(given) > MAX_ID or "\x00" in given:
            raise EventError(f"id: a text of 1 to {MAX_ID} characters (no NUL)")
        return given
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return f"{source}:{hashlib.sha256(canonical.encode()).hexdigest()}"


@dataclass
class Resolver:
    """userid and plan name -> id, asked of the database once per name."""

    users: dict = field(default_factory=dict)
    plans: dict = field(default_factory=dict)

    def prefetch(self, events: list[dict]) -> None:
        userids = {e.get("user") for e in events if isinstance(e, dict) and isinstance(e.get("user"), str)}
        missing = [u for u in userids - self.users.keys() if len(u) <= 63]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            self.users.update(dict.fromkeys(chunk))
            self.users.update(db.session.execute(select(User.userid, User.id).where(User.userid.in_(chunk))).all())
        names = {e.get("plan") for e in events if isinstance(e, dict) and isinstance(e.get("plan"), str)}
        for name in names - self.plans.keys():
            self.plans[name] = db.session.scalar(select(ServicePlan.id).where(ServicePlan.name == name))

    def user(self, userid) -> int:
        if not isinstance(userid, str) or not userid:
            raise EventError("user: a userid is required")
        if userid not in self.users:
            self.prefetch([{"user": userid}])
        if self.users.get(userid) is None:
            raise EventError(f"user: no user {userid[:63]!r}")
        return self.users[userid]

    def plan(self, name) -> int | None:
        if name is None:
            return None
        if not isinstance(name, str):
            raise EventError("plan: a plan name is expected")
        if name not in self.plans:
            self.prefetch([{"plan": name}])
        if self.plans.get(name) is None:
            raise EventError(f"plan: no plan {name[:63]!r}")
        return self.plans[name]


def to_row(raw, source: str, resolver: Resolver, now: datetime, cutoff: datetime) -> dict:
    """Validate one event and make its row; raises ``EventError`` with the reason."""
    if not isinstance(raw, dict):
        raise EventError("an event is a JSON object")
    start = parse_time(raw.get("start_dt"), "start_dt")
    end = parse_time(raw["end_dt"], "end_dt") if raw.get("end_dt") is not None else None
    if end is not None and end < start:
        raise EventError("end_dt: is before start_dt")
    if start > now + FUTURE:
        raise EventError("start_dt: is in the future")
    row = {
        "id": event_id(raw, source),
        "user_id": resolver.user(raw.get("user")),
        "plan_id": resolver.plan(raw.get("plan")),
    }
    for name, limit in MAX_TEXT.items():
        value = raw.get(name)
        if value is None and name == "client_ip":
            row[name] = None
            continue
        if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
            raise EventError(f"{name}: a text of 1 to {limit} characters (no NUL) is required")
        row[name] = value
    quantity = raw.get("quantity", 1)
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int | float)
        or not math.isfinite(quantity)
        or quantity < 0
    ):
        raise EventError("quantity: a number of 0 or more")
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise EventError("data: a JSON object")
    if start < cutoff:
        data = {**data, "original_time": start.isoformat(), "late": True}
        try:
            end = cutoff + (end - start) if end is not None else None
        except OverflowError:
            raise EventError("end_dt: too far after start_dt") from None
        start = cutoff
    try:
        data_json = orjson.dumps(data).decode()  # str: orjson's bytes kept alive fragment the heap (4 kB each)
    except orjson.JSONEncodeError as exc:  # integers beyond 64 bits, nesting beyond 254 levels, lone surrogates
        raise EventError(f"data: cannot be stored ({exc})") from None
    if "\\u0000" in data_json and has_nul(data):  # the bytes first: the walk only when they are there
        raise EventError("data: a text in it has a NUL character (\\u0000), which the database cannot store")
    row.update(
        time=start,
        end=end,
        duration=(end - start).total_seconds() if end is not None else None,
        quantity=float(quantity),
        source=source,
        data=data,
        data_json=data_json,  # the JSON the bulk path writes, made once
        ingested_at=now,
    )
    return row


def insert_rows(rows: list[dict]) -> set[str]:
    """Insert the rows, skipping ids that exist (the unique key decides, so racing writers count once).

    Returns the ids inserted. The caller commits.
    """
    if not rows:
        return set()
    dialect = db.session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UsageEvent).on_conflict_do_nothing(index_elements=["id"]).returning(UsageEvent.id)
    rows = [{name: row[name] for name in COLUMNS} for row in rows]
    return set(db.session.scalars(statement, rows, execution_options={"render_nulls": True}))


COLUMNS = (
    "id",
    "time",
    "end",
    "duration",
    "user_id",
    "plan_id",
    "kind",
    "action",
    "quantity",
    "source",
    "client_ip",
    "data",
    "ingested_at",
)


# built from the constant column names above, nothing else
_NAMES = ", ".join(f'"{name}"' for name in COLUMNS)
SQLITE_INSERT = (
    f"INSERT INTO usage_events ({_NAMES}) VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (id) DO NOTHING"  # noqa: S608
)
PG_COPY = f"COPY usage_events_load ({_NAMES}) FROM STDIN"
PG_COPY_DIRECT = f"COPY usage_events ({_NAMES}) FROM STDIN"
PG_INSERT = f"INSERT INTO usage_events ({_NAMES}) SELECT {_NAMES} FROM usage_events_load ON CONFLICT (id) DO NOTHING"  # noqa: S608


def _sqlite_time(value: datetime | None) -> str | None:
    # the text SQLAlchemy's SQLite DATETIME writes (UTC, no offset, microseconds): read back as UTCDateTime does
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def values(rows: list[dict]):
    """The rows as tuples in COLUMNS order for SQLite's executemany (times as SQLAlchemy writes them there)."""
    for row in rows:
        yield (
            row["id"], _sqlite_time(row["time"]), _sqlite_time(row["end"]), row["duration"], row["user_id"],
            row["plan_id"], row["kind"], row["action"], row["quantity"], row["source"], row["client_ip"],
            _data_json(row), _sqlite_time(row["ingested_at"]),
        )  # fmt: skip


def _data_json(row: dict) -> str:
    return row.get("data_json") or orjson.dumps(row["data"]).decode()


# COPY's text format: a tab between the columns, \\N for NULL, and these four escaped in a value
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_NULL = "\\N"


def _escaped(text: str) -> str:
    # four scans for a character are quicker than translating every one: most values have none of them
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_COPY_ESCAPES)
    return text


def copy_text(rows: list[dict]) -> bytes:
    """The rows in COPY's text format, COLUMNS order, one line each: written a chunk at a time, instead of
    the driver adapting 13 values a row. Times as ISO 8601 with their UTC offset (the columns are
    timestamptz); text escaped (JSON has no raw tab, newline or CR: only its backslashes are doubled); the
    ids, kind, action and client_ip came through ``to_row``, which refuses NUL."""
    null = _NULL
    lines = []
    ingested, ingested_text = None, ""
    for row in rows:
        end, duration, plan_id, client_ip = row["end"], row["duration"], row["plan_id"], row["client_ip"]
        if row["ingested_at"] is not ingested:  # one time for a whole batch, as a rule
            ingested = row["ingested_at"]
            ingested_text = ingested.isoformat()
        data = _data_json(row)
        if "\\" in data:
            data = data.replace("\\", "\\\\")
        lines.append(
            f"{_escaped(row['id'])}\t{row['time'].isoformat()}\t"
            f"{null if end is None else end.isoformat()}\t{null if duration is None else repr(duration)}\t"
            f"{row['user_id']}\t{null if plan_id is None else plan_id}\t{_escaped(row['kind'])}\t"
            f"{_escaped(row['action'])}\t{row['quantity']!r}\t{row['source']}\t"
            f"{null if client_ip is None else _escaped(client_ip)}\t"
            f"{data}\t{ingested_text}\n"
        )
    return "".join(lines).encode()


def insert_many(rows: list[dict], direct: bool = True) -> int:
    """``insert_rows`` for bulk loads, where per-event answers are not needed: how many were new.

    The database's own bulk paths, with the values converted here, not per row by the ORM; the same unique
    key decides. SQLite: ``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING``. PostgreSQL: with
    ``direct``, ``COPY`` straight into the table in a savepoint -- the fast path, for rows that are new --
    and when an id exists (the unique key refuses the COPY), the savepoint rolled back and ``COPY`` into a
    temporary table then one ``INSERT ... ON CONFLICT DO NOTHING``. The caller commits.
    """
    if not rows:
        return 0
    connection = db.session.connection()
    dialect = connection.dialect.name
    raw = connection.connection.driver_connection
    if dialect == "sqlite":
        cursor = raw.cursor()
        # a larger page cache keeps the hot part of the primary key's b-tree in memory
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.executemany(SQLITE_INSERT, values(rows))
        return cursor.rowcount
    if dialect == "postgresql":
        from psycopg.errors import UniqueViolation

        with raw.cursor() as cursor:
            if direct:
                cursor.execute("SAVEPOINT usage_copy")
                try:
                    _copy(cursor, PG_COPY_DIRECT, rows)
                except UniqueViolation:
                    cursor.execute("ROLLBACK TO SAVEPOINT usage_copy")  # nothing of the COPY stays
                else:
                    cursor.execute("RELEASE SAVEPOINT usage_copy")
                    return len(rows)
            cursor.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS usage_events_load (LIKE usage_events) ON COMMIT DELETE ROWS"
            )
            _copy(cursor, PG_COPY, rows)
            cursor.execute(PG_INSERT)
            inserted = cursor.rowcount
            cursor.execute("DELETE FROM usage_events_load")
            return inserted
    return len(insert_rows(rows))


COPY_CHUNK = 2000  # rows a write: the server works on one while the next is formatted


def _copy(cursor, statement: str, rows: list[dict]) -> None:
    with cursor.copy(statement) as copy:
        for start in range(0, len(rows), COPY_CHUNK):
            copy.write(copy_text(rows[start : start + COPY_CHUNK]))


@dataclass
class Outcome:
    """What became of a batch: per event accepted / duplicate / rejected (with the reason)."""

    results: list[dict] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result["status"] == status)


def record(events: list, source: str, now: datetime | None = None) -> Outcome:
    """Validate and insert a batch of events (no commit); one result per event, in order."""
    now = now or utcnow()
    cutoff = open_period_start(now)
    resolver = Resolver()
    resolver.prefetch(events)
    outcome, rows, seen = Outcome(), [], set()
    for index, raw in enumerate(events):
        try:
            row = to_row(raw, source, resolver, now, cutoff)
        except EventError as exc:
            outcome.results.append({"index": index, "status": "rejected", "reason": str(exc)})
            continue
        outcome.results.append({"index": index, "id": row["id"], "status": None, "late": "late" in row["data"]})
        if row["id"] not in seen:  # the same id twice in one batch: the second is a duplicate
            seen.add(row["id"])
            rows.append(row)
    inserted = insert_rows(rows)
    for result in outcome.results:
        if result["status"] is None:
            result["status"] = "accepted" if result["id"] in inserted else "duplicate"
            inserted.discard(result["id"])
    return outcome
