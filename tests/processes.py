"""Real omegaops processes for integration tests: `flask worker` and `flask scheduler`, on the test's database."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).parent / "flask")


def load_shipped_services(app) -> None:
    """Load the services of `make run` (services/*.yaml) with the scripts they ship, as `flask createservice` does.

    Needs an app context; sets the app's SCRIPTS_DIR to the shipped scripts (processes started later inherit it).
    """
    from app.extensions import db
    from app.ops.ownership import load_specs
    from app.ops.specs import load_spec_files, spec_fallbacks

    app.config["SCRIPTS_DIR"] = ROOT / "services" / "scripts"
    plans = load_spec_files([ROOT / "services"], app.config["SCRIPTS_DIR"], spec_fallbacks(app.config))
    load_specs(plans, "keep")
    db.session.commit()


def process_env(app, **extra) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OMEGAOPS_", "FLASK_"))}
    env.update(
        FLASK_APP="wsgi",
        OMEGAOPS_ENV="test",
        OMEGAOPS_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        OMEGAOPS_REDIS_URL=app.config["REDIS_URL"],
        OMEGAOPS_SCRIPTS_DIR=str(app.config["SCRIPTS_DIR"]),
        OMEGAOPS_INSTANCE_DIR=str(app.config["INSTANCE_DIR"]),
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Process:
    """A `flask ...` process in its own process group, its output in a log file."""

    def __init__(self, app, *args, log: Path, **env):
        self.log = log
        self.out = open(log, "w")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            [FLASK, *args],
            cwd=ROOT,
            env=process_env(app, **env),
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self.out.close()

    def kill(self, sig=signal.SIGKILL) -> None:
        """Kill the whole group (the worker and its work horse), as when a machine dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        self.process.wait(30)
        self.out.close()

    def kill_tree(self) -> None:
        """SIGKILL the worker and its children (RQ's work horse runs in a session of its own)."""
        children = [pid for pid, ppid, *_ in _processes() if ppid == self.process.pid]
        for pid in [self.process.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(30)
        self.out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill(signal.SIGTERM)
            if self.process.poll() is None:
                self.kill()
        self.out.close()


def _processes():
    """(pid, parent pid, process group, state) of every living process; zombies are left out.

    PID 1 on these machines may not reap orphans, so a killed orphan can linger as a zombie.
    """
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, IndexError):
                continue
            if fields[0] != "Z":
                yield int(entry.name), int(fields[1]), int(fields[2]), fields[0]


def is_running(pid: int) -> bool:
    return any(found == pid for found, *_ in _processes())


def group_alive(pgid: int) -> bool:
    return any(group == pgid for _, _, group, _ in _processes())


def wait_until(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s")
