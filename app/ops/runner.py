"""Running one script: its own process group, a clean environment, a streamed and capped log, timeout, cancel.

Nothing here touches the database: the engine passes ``on_tick``, called about once a second while the
script runs, which saves the log, beats the heartbeat and answers whether to go on.
"""

import codecs
import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..models import FailureReason

MASK = "********"
# setting and param names whose values are secrets
SECRET_NAME_RE = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass
class ScriptResult:
    exit_code: int | None
    reason: str | None = None  # a FailureReason value; None when the script succeeded
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None and self.exit_code == 0


class LogBuffer:
    """A task's log: the first and last ``head``/``tail`` characters are kept, and what was cut is said."""

    def __init__(self, head: int = 64 * 1024, tail: int = 64 * 1024):
        self.head_limit, self.tail_limit = head, tail
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.cut = 0
        self.changed = False

    def write(self, text: str) -> None:
        if not text:
            return
        self.changed = True
        room = self.head_limit - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += len(text[:room])
            text = text[room:]
        if not text:
            return
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size > self.tail_limit:
            excess = self.tail_size - self.tail_limit
            first = self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                self.tail_size -= len(first)
                self.cut += len(first)
            else:
                self.tail[0] = first[excess:]
                self.tail_size -= excess
                self.cut += excess

    def render(self, mask: Callable[[str], str] = lambda text: text) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        if self.cut:
            return mask(head) + f"\n[... {self.cut} characters cut ...]\n" + mask(tail)
        return mask(head + tail)


def collect_secrets(*sources) -> set[str]:
    """The secret values in settings and params: values of secret-named keys, and passwords inside URLs."""
    found: set[str] = set()

    def walk(value, secret_name=False):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, secret_name or bool(SECRET_NAME_RE.search(str(key))))
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item, secret_name)
        elif isinstance(value, str):
            if secret_name:
                found.add(value)
            if "://" in value and "@" in value:
                try:
                    password = urlsplit(value).password
                except ValueError:
                    password = None
                if password:
                    found.add(password)

    for source in sources:
        walk(source)
    return {secret for secret in found if len(secret) >= 4}


def make_masker(secrets: Iterable[str]) -> Callable[[str], str]:
    """A function that replaces every secret (longest first) in a text with a mask."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    if not ordered:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(secret) for secret in ordered))
    return lambda text: pattern.sub(MASK, text)


def masked(value, secrets: set[str]):
    """``value`` (any JSON) with every secret in its strings replaced by the mask."""
    mask = make_masker(secrets)

    def walk(item):
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [walk(inner) for inner in item]
        return mask(item) if isinstance(item, str) else item

    return walk(value)


def masked_params(value):
    """Settings or params with their own secrets masked (values of secret-named keys, URL passwords)."""
    return masked(value, collect_secrets(value))


def param_variable(key: str) -> str:
    """The variable a param is passed in: ``size`` -> ``OMEGAOPS_PARAM_SIZE``.

    The prefix keeps user-chosen names away from variables that change how programs run
    (PATH, LD_PRELOAD, PYTHONPATH, ...).
    """
    return "OMEGAOPS_PARAM_" + re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


def script_env(base: dict[str, str], home: str, params: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: a safe PATH, HOME, the configuration's env, the OMEGAOPS_* ids, one variable per param."""
    env = {"PATH": SAFE_PATH, "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    env.update({key: str(value) for key, value in base.items()})
    env.update(extra)
    env["OMEGAOPS_PARAMS"] = json.dumps(params, sort_keys=True)
    for key, value in params.items():
        env[param_variable(key)] = value
    return env


def kill_group(pgid: int, grace: float) -> None:
    """Terminate a process group, then kill what is left after ``grace`` seconds."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_script(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    timeout: float,
    log: LogBuffer,
    on_start: Callable[[int], None] = lambda pgid: None,
    on_tick: Callable[[], bool] = lambda: True,
    tick_interval: float = 1.0,
    grace: float = 5.0,
) -> ScriptResult:
    """Run ``argv`` (never through a shell) and stream its output into ``log``.

    ``on_tick`` returning False cancels the run. A timeout or a cancel terminates the whole process
    group, then kills it; so does the end of the script, for whatever it left running in its group.
    """
    try:
        process = subprocess.Popen(  # noqa: S603 -- argv is a list: no shell ever sees user input
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout reaches its children too
            close_fds=True,
        )
    except OSError as exc:
        return ScriptResult(None, FailureReason.SYSTEM_ERROR.value, f"cannot start {argv[0]}: {exc.strerror}")
    pgid = process.pid
    on_start(pgid)
    fd = process.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic() + tick_interval
    reason = detail = None
    eof = False
    try:
        while True:
            if not eof:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        log.write(decoder.decode(chunk))
                    else:
                        eof = True
            else:
                time.sleep(0.05)
            if process.poll() is not None:
                # drain what is already there; a background child may keep the pipe open forever
                while select.select([fd], [], [], 0)[0]:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    log.write(decoder.decode(chunk))
                break
            now = time.monotonic()
            if now >= deadline:
                reason, detail = FailureReason.TIMEOUT.value, f"timed out after {timeout:g}s"
                break
            if now >= next_tick:
                next_tick = now + tick_interval
                if not on_tick():
                    reason, detail = FailureReason.CANCELLED.value, "cancelled"
                    break
    finally:
        log.write(decoder.decode(b"", final=True))
        kill_group(pgid, grace if reason else 0.5)
        process.wait()
        process.stdout.close()
    if reason:
        log.write(f"\n[omegaops] {detail}: process group terminated\n")
        return ScriptResult(process.returncode, reason, detail)
    if process.returncode != 0:
        return ScriptResult(
            process.returncode, FailureReason.SCRIPT_ERROR.value, f"exited with code {process.returncode}"
        )
    return ScriptResult(0)
