"""Run a user's omega|ml runtime workers as local processes, scaled with the ``size`` param.

Runs as the script step of the ``worker`` plan (``services/worker.yaml``), for every phase:

- install, update: reconcile to ``size`` workers (param; an update without it keeps the recorded size;
  default 1; a whole number 0..16, anything else exits 2): clean stale pid files, stop the workers
  beyond ``size`` or started with another command, start the missing ones.
- uninstall: stop every worker.
- check: every recorded worker is alive and their count is ``size``; exit 1 with the reason otherwise.

The command comes from the configuration's env ``WORKER_COMMAND`` (a command line, split with shlex and
never given to a shell), e.g. ``om runtime celery worker``. Without it the script says so, records the
desired size and starts nothing. The workers get the configuration's env plus ``OMEGA_USERID``,
``OMEGA_QUALIFIER`` (param ``qualifier``, default ``default``), ``OMEGAOPS_DEPLOYMENT_ID`` and
``OMEGAOPS_WORKER_INDEX``; their HOME and working directory is ``$OMEGAOPS_STATE_DIR/home``.

Each worker is started detached, in a session of its own, so it outlives this script and the step's
process group; its pid file ``worker-<n>.pid`` (pid, start time, host, command) and its log
``worker-<n>.log`` live in ``$OMEGAOPS_STATE_DIR``. A pid counts as our worker only while the process
with that start time lives and its environment carries this ``OMEGAOPS_DEPLOYMENT_ID``, so a reused pid,
or a pid file written to name another deployment's worker, is never signalled. Stopping sends SIGTERM to the worker's
process group, then SIGKILL after ``WORKER_STOP_GRACE`` seconds (default 10, at most 60). A started
worker that exits within ``WORKER_START_SECONDS`` (default 1) fails the step, with the end of its log.
A log over 10 MiB is moved to ``worker-<n>.log.1`` when its worker starts.

The workers run on the machine that ran the install: the pid files record the host, and a command run
on another host fails with a message saying so. Standard library only: no app code.

Output: ``{"worker": {"size": N, "running": M, "command": "<WORKER_COMMAND or null>", "qualifier": Q}}``.
"""

import contextlib
import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess  # noqa: S404 -- starts the configured command from an argv list, never a shell
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

PHASES = ("install", "update", "uninstall", "check")
MAX_SIZE = 16
DEFAULT_SIZE = 1
LOCK_WAIT = 60  # seconds to wait for another command on the same workers
MAX_LOG = 10 * 1024 * 1024  # bytes of a worker's log before it is moved aside
SETTLE = 1.0  # seconds a started worker must stay alive to count as started
SIZE_RE = re.compile(r"^[0-9]{1,3}$")


class Usage(Exception):
    """Bad input: exit 2."""


class Failure(Exception):
    """The phase failed: exit 1."""


def say(line: str) -> None:
    print(line, flush=True)


# -- processes ------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid`` from /proc, or None when there is no such process or no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], fields[19]


def start_time(pid: int) -> str | None:
    stat = proc_stat(pid)
    return stat[1] if stat else None


def alive(record: dict) -> bool:
    """Whether the worker ``record`` describes still runs (not a zombie, not another process with its pid)."""
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was reused
    stat = proc_stat(pid)
    if stat is None:
        # gone since kill(0), or a system without /proc, where kill(0) is all there is to go by
        return not Path("/proc/self").exists()
    state, started = stat
    if state in ("Z", "X"):
        return False
    return record.get("start") in (None, started) and of_deployment(pid, record["deployment"])


def of_deployment(pid: int, deployment: str) -> bool:
    """Whether ``pid`` was started for ``deployment``: its environment (fixed at exec) says so.

    A pid file is only as trustworthy as the directory it is in, and the workers' HOME is inside it: a
    pid file naming another deployment's worker (or any other process of ours) is not obeyed.
    """
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"OMEGAOPS_DEPLOYMENT_ID={deployment}".encode() in environ


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our own child (started by this run)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def signal_group(pid: int, signum: int) -> None:
    """Signal the worker's process group (it leads one: started with a new session), or the pid alone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def stop(records: list[dict], grace: float) -> None:
    """SIGTERM every worker's group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    if not records:
        return
    for record in records:
        signal_group(record["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    running = list(records)
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        for record in running:
            reap(record["pid"])
        running = [record for record in running if alive(record)]
    for record in running:
        say(f"worker {record['index']} (pid {record['pid']}) still runs after {grace:g}s: SIGKILL")
    for record in records:
        # what remains of the group (the worker's own children) goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running and time.monotonic() < deadline:
        time.sleep(0.1)
        for record in running:
            reap(record["pid"])
        running = [record for record in running if alive(record)]
    if running:
        pids = ", ".join(str(record["pid"]) for record in running)
        raise Failure(f"worker process(es) {pids} did not stop even after SIGKILL")


# -- state ----------------------------------------------------------------------------------------


class Workers:
    """The pid files in the deployment's state directory."""

    def __init__(self, state_dir: Path, deployment: str):
        self.dir = state_dir
        self.deployment = deployment  # $OMEGAOPS_DEPLOYMENT_ID: every worker of ours carries it

    def pidfile(self, index: int) -> Path:
        return self.dir / f"worker-{index}.pid"

    def logfile(self, index: int) -> Path:
        return self.dir / f"worker-{index}.log"

    @contextlib.contextmanager
    def locked(self):
        """Hold the state directory's lock: one command at a time manages these workers."""
        with open(self.dir / "worker.lock", "a") as lock:
            deadline = time.monotonic() + LOCK_WAIT
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise Failure(f"another command has held the workers' lock for {LOCK_WAIT}s") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        """Every readable pid file's record; unreadable ones are removed."""
        found = []
        for path in sorted(self.dir.glob("worker-*.pid")):
            try:
                record = json.loads(path.read_text())
                record["pid"], record["index"] = int(record["pid"]), int(record["index"])
                if record["pid"] <= 1:
                    raise ValueError(record["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                say(f"{path.name}: unreadable pid file removed")
                path.unlink(missing_ok=True)
                continue
            record["path"], record["deployment"] = path, self.deployment
            found.append(record)
        return sorted(found, key=lambda record: record["index"])

    def forget(self, record: dict) -> None:
        Path(record["path"]).unlink(missing_ok=True)

    def start(
        self, index: int, argv: list[str], env: dict, home: Path, qualifier: str
    ) -> tuple[dict, subprocess.Popen]:
        logfile = self.logfile(index)
        with contextlib.suppress(OSError):
            if logfile.stat().st_size > MAX_LOG:
                logfile.replace(logfile.with_name(logfile.name + ".1"))
        with open(logfile, "ab") as log:
            log.write(f"--- {now()} starting worker {index}: {shlex.join(argv)}\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(  # noqa: S603 -- the operator's configured command, as an argv list
                    argv,
                    cwd=home,
                    env={**env, "OMEGAOPS_WORKER_INDEX": str(index)},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise Failure(f"WORKER_COMMAND cannot be started: {argv[0]}: {exc.strerror or exc}") from None
        record = {
            "index": index,
            "pid": process.pid,
            "start": start_time(process.pid),
            "host": socket.gethostname(),
            "argv": argv,
            "qualifier": qualifier,
            "started_at": now(),
        }
        path = self.pidfile(index)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)
        record["path"], record["deployment"] = path, self.deployment
        return record, process

    def log_tail(self, index: int, lines: int = 5) -> str:
        try:
            text = self.logfile(index).read_text(errors="replace")
        except OSError:
            return ""
        tail = [line for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def live_records(workers: Workers, phase: str) -> tuple[list[dict], list[dict]]:
    """(alive, dead) worker records; records of another host are an error."""
    records = workers.records()
    host = socket.gethostname()
    foreign = [record for record in records if record.get("host") not in (None, host)]
    if foreign:
        raise Failure(
            f"the workers of this deployment run on host {foreign[0]['host']!r} but this {phase} ran on {host!r}: "
            "local workers can only be managed by the machine that started them"
        )
    live, dead = [], []
    for record in records:
        (live if alive(record) else dead).append(record)
    return live, dead


# -- inputs ---------------------------------------------------------------------------------------


def parse_size(raw) -> int:
    text = str(raw).strip()
    if not SIZE_RE.match(text) or not 0 <= int(text) <= MAX_SIZE:
        raise Usage(f"size must be a whole number from 0 to {MAX_SIZE}, got {str(raw)!r}")
    return int(text)


def param(params: dict, environ, key: str):
    if key in params:
        return params[key]
    return environ.get(f"OMEGAOPS_PARAM_{key.upper().replace('.', '_').replace('-', '_')}")


def recorded(settings: dict) -> dict:
    worker = settings.get("worker")
    return worker if isinstance(worker, dict) else {}


def desired_size(params: dict, environ, settings: dict) -> int:
    """The ``size`` param; without it the size install or the last update recorded; else 1."""
    raw = param(params, environ, "size")
    if raw is not None:
        return parse_size(raw)
    previous = recorded(settings).get("size")
    if isinstance(previous, int) and not isinstance(previous, bool) and 0 <= previous <= MAX_SIZE:
        return previous
    return DEFAULT_SIZE


def seconds(environ, name: str, default: float, maximum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= maximum:
        raise Usage(f"{name} must be a number of seconds from 0 to {maximum:g}, got {raw!r}")
    return value


def worker_command(environ) -> tuple[str | None, list[str] | None]:
    raw = environ.get("WORKER_COMMAND", "").strip()
    if not raw:
        return None, None
    try:
        argv = shlex.split(raw)
    except ValueError as exc:
        raise Usage(f"WORKER_COMMAND is not a valid command line: {exc}") from None
    return raw, argv


def child_env(environ, home: Path, qualifier: str) -> dict:
    """The configuration's env for the workers, without this step's own OMEGAOPS_* variables."""
    env = {key: value for key, value in environ.items() if not key.startswith("OMEGAOPS_")}
    env.update(
        HOME=str(home),
        OMEGA_USERID=environ.get("OMEGAOPS_USER", ""),
        OMEGA_QUALIFIER=qualifier,
        OMEGAOPS_DEPLOYMENT_ID=environ.get("OMEGAOPS_DEPLOYMENT_ID", ""),
    )
    return env


# -- phases ---------------------------------------------------------------------------------------


def reconcile(
    phase: str, workers: Workers, size: int, argv, env, home: Path, qualifier: str, grace: float, settle: float
) -> int:
    """Make exactly ``size`` workers of ``argv`` run; return how many run."""
    live, dead = live_records(workers, phase)
    for record in dead:
        say(f"worker {record['index']} (pid {record['pid']}) was not running: stale pid file removed")
        workers.forget(record)
    if argv is None:
        extra = live
        for record in extra:
            say(f"worker {record['index']} (pid {record['pid']}): stopping, WORKER_COMMAND is no longer configured")
    else:
        extra = [record for record in live if record["index"] > size]
        for record in extra:
            say(f"worker {record['index']} (pid {record['pid']}): stopping, size is {size}")
        changed = [
            record
            for record in live
            if record["index"] <= size and (record.get("argv") != argv or record.get("qualifier") != qualifier)
        ]
        for record in changed:
            say(f"worker {record['index']} (pid {record['pid']}): restarting, its command or qualifier changed")
        extra += changed
    stop(extra, grace)
    for record in extra:
        workers.forget(record)
    stopped = {record["index"] for record in extra}
    keep = {record["index"] for record in live if record["index"] not in stopped}
    if argv is None:
        return 0

    started = []
    for index in range(1, size + 1):
        if index not in keep:
            record, process = workers.start(index, argv, env, home, qualifier)
            started.append((record, process))
            say(f"worker {index}: started, pid {process.pid} (log: {workers.logfile(index)})")
    if started:
        # a command that fails at once (bad arguments, missing config) is a failed step, not a running worker
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and all(process.poll() is None for _, process in started):
            time.sleep(0.05)
        failed = [(record, process) for record, process in started if process.poll() is not None]
        if failed:
            stop([record for record, process in started if process.poll() is None], grace)
            for record, _ in started:
                workers.forget(record)
            record, process = failed[0]
            tail = workers.log_tail(record["index"])
            raise Failure(
                f"worker {record['index']} exited at once with code {process.returncode}"
                + (f"; its log ends: {tail}" if tail else "")
            )
        for _, process in started:
            # it runs on, detached, after this script exits: Popen must not wait for it nor warn about it
            process.returncode = 0
    return len(keep) + len(started)


def run(phase: str, environ) -> dict:
    state = environ.get("OMEGAOPS_STATE_DIR", "")
    if not state:
        raise Usage("OMEGAOPS_STATE_DIR is not set: the workers' pid files need a persistent directory")
    try:
        params = json.loads(environ.get("OMEGAOPS_PARAMS") or "{}")
        settings = json.loads(environ.get("OMEGAOPS_SETTINGS") or "{}")
    except ValueError:
        raise Usage("OMEGAOPS_PARAMS and OMEGAOPS_SETTINGS must be JSON objects") from None
    if not isinstance(params, dict) or not isinstance(settings, dict):
        raise Usage("OMEGAOPS_PARAMS and OMEGAOPS_SETTINGS must be JSON objects")
    deployment = environ.get("OMEGAOPS_DEPLOYMENT_ID", "")
    if not deployment.isdigit():
        raise Usage("OMEGAOPS_DEPLOYMENT_ID is not set: the workers of this deployment cannot be told from others")
    command, argv = worker_command(environ)
    # both within the step's timeout (120s in worker.yaml), with room for the starts
    grace = seconds(environ, "WORKER_STOP_GRACE", 10.0, 60)
    settle = seconds(environ, "WORKER_START_SECONDS", SETTLE, 30)
    qualifier = str(param(params, environ, "qualifier") or recorded(settings).get("qualifier") or "default")
    workers = Workers(Path(state), deployment)
    workers.dir.mkdir(parents=True, exist_ok=True)

    if phase == "uninstall":
        with workers.locked():
            live, dead = live_records(workers, phase)
            for record in live:
                say(f"worker {record['index']} (pid {record['pid']}): stopping")
            stop(live, grace)
            for record in live + dead:
                workers.forget(record)
        say(f"{len(live)} worker(s) stopped" if live else "no worker was running")
        return {"worker": {"size": 0, "running": 0, "command": command, "qualifier": qualifier}}

    size = desired_size(params, environ, settings)
    if phase == "check":
        with workers.locked():
            live, dead = live_records(workers, phase)
        problems = [f"worker {record['index']} (pid {record['pid']}) is not running" for record in dead]
        if argv is None and size:
            problems.append(f"WORKER_COMMAND is not configured, so none of the {size} worker(s) runs")
        if len(live) != size:
            problems.append(f"{len(live)} of {size} worker(s) running")
        if problems:
            raise Failure("; ".join(problems))
        pids = ", ".join(str(record["pid"]) for record in live)
        say(f"{len(live)} of {size} worker(s) running" + (f" (pids {pids})" if pids else ""))
        return {}

    if argv is None:
        say(f"WORKER_COMMAND is not configured: no worker process is started; the desired size {size} is recorded")
    home = workers.dir / "home"
    home.mkdir(exist_ok=True)
    with workers.locked():
        running = reconcile(
            phase, workers, size, argv, child_env(environ, home, qualifier), home, qualifier, grace, settle
        )
    if argv is not None:
        say(f"{running} of {size} worker(s) running: {command}")
    return {"worker": {"size": size, "running": running, "command": command, "qualifier": qualifier}}


def main(environ=os.environ) -> int:
    phase = environ.get("OMEGAOPS_PHASE", "")
    try:
        if phase not in PHASES:
            raise Usage(f"OMEGAOPS_PHASE {phase!r} is not one of {', '.join(PHASES)}")
        output = run(phase, environ)
    except Usage as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Failure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if output and environ.get("OMEGAOPS_OUTPUT"):
        with open(environ["OMEGAOPS_OUTPUT"], "w", encoding="utf-8") as out:
            json.dump(output, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
