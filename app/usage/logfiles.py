"""``flask ingestusage PATH|-``: service log files of JSON lines (the events format) into usage events.

A checkpoint per file (its device, inode and a hash of its first line; the bytes and lines read) makes a
re-run read only what was appended. When the file was rotated (a new file at the path), the rest of the old
one is read first -- found by its inode beside the path (``app.log.1``, ``app.log-20261128``, ...) -- then the
new one from its start: no line counted twice, none skipped. Only complete lines are read: a line still
being written is left for the next run. Each batch and the checkpoint commit together.
"""

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..extensions import db
from ..models import Source, UsageCheckpoint
from ..models.types import utcnow
from .events import EventError, Resolver, insert_many, open_period_start, to_row

BATCH = 20_000
MAX_LINE = 1_000_000  # bytes; a longer line is malformed
SHOWN_ERRORS = 50


@dataclass
class Report:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0
    malformed: int = 0
    late: int = 0
    errors: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line number, reason), the first ones
    files: list[str] = field(default_factory=list)

    def add_error(self, name: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append((name, line, reason))


def identity(path: Path) -> str:
    """device:inode:hash of the first line; a new file at the same path (rotation, copytruncate) differs."""
    stat = path.stat()
    with open(path, "rb") as handle:
        first = handle.readline(4096)
    return f"{stat.st_dev}:{stat.st_ino}:{hashlib.sha256(first).hexdigest()[:16]}"


def rotated_predecessor(path: Path, ident: str) -> Path | None:
    """The file the checkpoint was about, renamed beside ``path`` by a log rotation, if it is there."""
    device, inode = ident.split(":")[:2]
    for sibling in path.parent.glob(path.name + "*"):
        try:
            stat = sibling.stat()
        except OSError:
            continue
        if sibling != path and f"{stat.st_dev}:{stat.st_ino}" == f"{device}:{inode}" and identity(sibling) == ident:
            return sibling
    return None


class Ingest:
    def __init__(self, report: Report, batch: int = BATCH):
        self.report, self.batch = report, batch
        self.resolver = Resolver()
        self.now = utcnow()
        self.cutoff = open_period_start(self.now)

    def lines(self, handle, name: str, start_line: int):
        """Complete lines with their numbers and the offset after each; a partial last line ends the file."""
        number = start_line
        offset = handle.tell()
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # still being written
            number += 1
            offset += len(raw)
            yield number, raw, offset

    def parse(self, name: str, number: int, raw: bytes, events: list) -> None:
        self.report.read += 1
        text = raw.strip()
        if not text:
            return
        if len(raw) > MAX_LINE:
            self.report.add_error(name, number, f"longer than {MAX_LINE} bytes")
            return
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.report.add_error(name, number, f"not JSON ({exc.msg})")
            return
        if isinstance(event, dict) and "id" not in event:
            # the line is the event: its hash is its id, wherever it is read from
            event["id"] = "log:" + hashlib.sha256(text).hexdigest()
        events.append((number, event))

    def flush(self, name: str, events: list, checkpoint: UsageCheckpoint | None, offset: int, line: int) -> None:
        self.resolver.prefetch([event for _, event in events])
        rows = []
        for number, event in events:
            try:
                rows.append(to_row(event, Source.LOG.value, self.resolver, self.now, self.cutoff))
            except EventError as exc:
                self.report.add_error(name, number, str(exc))
        unique = list({row["id"]: row for row in rows}.values())
        inserted = insert_many(unique)
        self.report.inserted += inserted
        self.report.duplicates += len(rows) - inserted
        self.report.late += sum(1 for row in unique if row["data"].get("late"))
        if checkpoint is not None:
            checkpoint.offset, checkpoint.lines = offset, line
        db.session.commit()
        events.clear()

    def read(self, handle, name: str, checkpoint: UsageCheckpoint | None, start_line: int = 0) -> None:
        events: list = []
        offset, line = handle.tell(), start_line
        for number, raw, offset in self.lines(handle, name, start_line):
            line = number
            self.parse(name, number, raw, events)
            if len(events) >= self.batch:
                self.flush(name, events, checkpoint, offset, line)
        self.flush(name, events, checkpoint, offset, line)


def checkpoint_for(path: Path) -> UsageCheckpoint:
    name = str(path.resolve())
    checkpoint = db.session.get(UsageCheckpoint, name)
    if checkpoint is None:
        checkpoint = UsageCheckpoint(name=name, identity="", offset=0, lines=0)
        db.session.add(checkpoint)
    return checkpoint


def ingest_path(path: str, batch: int = BATCH) -> Report:
    """Ingest a file (with its checkpoint) or ``-`` (standard input, no checkpoint: ids still dedupe)."""
    report = Report()
    ingest = Ingest(report, batch)
    if path == "-":
        report.files.append("-")
        ingest.read(sys.stdin.buffer, "-", None)
        return report
    file = Path(path)
    checkpoint = checkpoint_for(file)
    current = identity(file)
    if checkpoint.identity and checkpoint.identity != current:
        old = rotated_predecessor(file, checkpoint.identity)
        if old is not None:
            with open(old, "rb") as handle:
                handle.seek(checkpoint.offset)
                report.files.append(str(old))
                ingest.read(handle, str(old), checkpoint, checkpoint.lines)
        checkpoint.offset, checkpoint.lines = 0, 0
    elif checkpoint.identity and file.stat().st_size < checkpoint.offset:
        checkpoint.offset, checkpoint.lines = 0, 0  # truncated in place: it is a new file
    checkpoint.identity = current
    with open(file, "rb") as handle:
        handle.seek(checkpoint.offset)
        report.files.append(str(file))
        ingest.read(handle, str(file), checkpoint, checkpoint.lines)
    db.session.commit()
    return report
