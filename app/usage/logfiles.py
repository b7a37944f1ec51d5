"""``flask ingestusage PATH|-``: service log files of JSON lines (the events format) into usage events.

A checkpoint per file (its device, inode and a hash of its first line; the bytes and lines read) makes a
re-run read only what was appended. When the file was rotated (a new file at the path), the rest of the old
one is read first -- found by its inode beside the path (``app.log.1``, ``app.log-20261128``, ...) -- then the
new one from its start: no line counted twice, none skipped. Only complete lines are read: a line still
being written is left for the next run. Each batch and the checkpoint commit together.

Two threads: this one reads and validates a batch while a ``Writer`` inserts the one before it (the wait for
the database, and the database's own work, overlap the parsing). The cyclic garbage collector is paused
while the lines are read: they make many small containers and no cycles, and each collection would walk
every event of the batches in memory.
"""

import gc
import hashlib
import queue
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from flask import current_app
from sqlalchemy import update

from ..extensions import db
from ..models import Source, UsageCheckpoint
from ..models.types import utcnow
from .events import EventError, Resolver, insert_many, open_period_start, to_row

BATCH = 20_000
MAX_LINE = 1_000_000  # bytes; a longer line is malformed
SHOWN_ERRORS = 50
COLLECT_EVERY = 25  # batches between two garbage collections while the collector is paused


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


def line_id(text: bytes, start) -> str:
    """The id of a line's event that has none: ``log:<start_dt as written>:<hash of the line>``.

    The line is the event, so the same line is the same event wherever and however often it is read. The
    start time in front orders the ids of a log as its lines are ordered (by time): new ids go on the last
    pages of the primary key's index instead of all over it, which is what makes a large table's inserts
    cheap. 128 bits of sha256 keep apart lines that differ.
    """
    prefix = start[:32] if isinstance(start, str) else ""
    return f"log:{prefix}:{hashlib.sha256(text).hexdigest()[:32]}"


class Ingest:
    def __init__(self, report: Report, batch: int = BATCH):
        self.report, self.batch = report, batch
        self.resolver = Resolver()
        self.now = utcnow()
        self.cutoff = open_period_start(self.now)
        self.batches = 0

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
            event["id"] = line_id(text, event.get("start_dt"))
        events.append((number, event))

    def flush(self, name: str, events: list, writer: "Writer", offset: int, line: int) -> None:
        self.resolver.prefetch([event for _, event in events])
        rows = []
        for number, event in events:
            try:
                rows.append(to_row(event, Source.LOG.value, self.resolver, self.now, self.cutoff))
            except EventError as exc:
                self.report.add_error(name, number, str(exc))
        unique = list({row["id"]: row for row in rows}.values())
        self.report.duplicates += len(rows) - len(unique)  # the same line twice in one batch
        self.report.late += sum(1 for row in unique if row["data"].get("late"))
        db.session.rollback()  # the resolver's reads: no snapshot kept open while the writer writes
        writer.put((unique, offset, line))
        events.clear()
        self.batches += 1
        if self.batches % COLLECT_EVERY == 0:
            gc.collect()  # the collector is paused while reading: what cycles the libraries made, now and then

    def read(self, handle, name: str, checkpoint: UsageCheckpoint | None, start_line: int = 0) -> None:
        events: list = []
        offset, line = handle.tell(), start_line
        db.session.commit()  # the checkpoint row as it starts: from here on the writer moves it
        with collector_paused(), Writer(self.report, checkpoint.name if checkpoint else None) as writer:
            for number, raw, offset in self.lines(handle, name, start_line):
                line = number
                self.parse(name, number, raw, events)
                if len(events) >= self.batch:
                    self.flush(name, events, writer, offset, line)
            self.flush(name, events, writer, offset, line)
        if checkpoint is not None:
            db.session.refresh(checkpoint)  # as the writer left it


@contextmanager
def collector_paused():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Writer:
    """The database side of an ingest, in a thread of its own with a session of its own: each batch's rows
    inserted (``insert_many``) and the checkpoint moved past them, in one transaction, in order. At most one
    batch waits for it, so memory stays bounded; its failure is raised in the reading thread."""

    def __init__(self, report: Report, checkpoint: str | None):
        self.report, self.checkpoint = report, checkpoint
        self.batches: queue.Queue = queue.Queue(maxsize=1)
        self.failure: BaseException | None = None
        self.direct = True  # COPY straight into the table, until a batch meets ids that are there already
        self.inserted = self.duplicates = 0  # added to the report when the thread is done
        # an in-memory SQLite database is one connection shared by every thread: write in this one
        self.inline = db.engine.url.get_backend_name() == "sqlite" and db.engine.url.database in (None, "", ":memory:")
        self.thread = threading.Thread(
            target=self.run, args=(current_app._get_current_object(),), name="usage-writer", daemon=True
        )

    def __enter__(self) -> "Writer":
        if self.inline:
            return self
        self.thread.start()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if not self.inline:
            self.stop(failed=kind is not None)
        self.report.inserted += self.inserted
        self.report.duplicates += self.duplicates
        if kind is None and self.failure is not None:
            raise self.failure

    def stop(self, failed: bool) -> None:
        if not failed:
            self.put(None)
        else:  # the reader failed: the writer stops after the batch it has
            while self.thread.is_alive():
                try:
                    self.batches.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
        self.thread.join()

    def put(self, batch) -> None:
        if self.inline:
            self.write(*batch)
            return
        while True:
            if self.failure is not None:
                raise self.failure
            try:
                self.batches.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self, app) -> None:
        with app.app_context():
            try:
                while (batch := self.batches.get()) is not None:
                    self.write(*batch)
            except BaseException as exc:  # noqa: BLE001 -- handed to the reading thread, which raises it
                self.failure = exc
                db.session.rollback()
            finally:
                db.session.remove()

    def write(self, rows: list[dict], offset: int, line: int) -> None:
        inserted = insert_many(rows, direct=self.direct)
        self.direct = self.direct and inserted == len(rows)
        if self.checkpoint is not None:
            db.session.execute(
                update(UsageCheckpoint)
                .where(UsageCheckpoint.name == self.checkpoint)
                .values(offset=offset, lines=line)
                .execution_options(synchronize_session=False)
            )
        db.session.commit()
        self.inserted += inserted
        self.duplicates += len(rows) - inserted


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
