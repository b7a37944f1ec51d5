"""`make run`'s script, as a new user runs it: migrate, load services, first admin, all processes up, Ctrl-C."""

import http.cookiejar
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout}s")


class RunScript:
    def __init__(self, tmp_path):
        self.port, self.redis_port = free_port(), free_port()
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("OMEGAOPS_", "FLASK_"))}
        self.env.update(
            OMEGAOPS_INSTANCE_DIR=str(tmp_path / "instance"),
            OMEGAOPS_PORT=str(self.port),
            OMEGAOPS_REDIS_PORT=str(self.redis_port),
        )
        self.log = tmp_path / f"run-{time.monotonic_ns()}.log"

    def start(self):
        self.out = open(self.log, "w")  # noqa: SIM115 -- closed in stop()
        self.process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=self.env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self):
        return self.log.read_text()

    def stop(self):
        """Ctrl-C: SIGINT to the whole process group, as a terminal sends it."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        finally:
            self.out.close()
        return code

    def flask(self, *args):
        env = {**self.env, "FLASK_APP": "wsgi", "OMEGAOPS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        return subprocess.run(
            [str(ROOT / ".venv" / "bin" / "flask"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def login(port, email, password):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"http://127.0.0.1:{port}/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password}).encode()
    opener.open(f"http://127.0.0.1:{port}/login", data=data)
    return opener


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "honcho").exists(), reason="needs the project's .venv (make test)")
def test_make_run_serves_the_app_and_stops_on_ctrl_c(tmp_path):
    run = RunScript(tmp_path).start()
    try:
        status, page = wait_for(f"http://127.0.0.1:{run.port}/login")
        assert status == 200 and "Log in" in page
        deadline = time.monotonic() + 30
        while "worker.1" not in run.output() or "scheduler: " not in run.output():
            assert time.monotonic() < deadline, run.output()
            time.sleep(0.3)
        output = run.output()
        match = re.search(r"admin (\S+) \(userid \S+\) created\npassword: (\S+)", output)
        assert match, output
        email, password = match.groups()
        console = login(run.port, email, password).open(f"http://127.0.0.1:{run.port}/admin/").read().decode()
        assert "omegaops console" in console
        listing = run.flask("listservices")
        assert listing.returncode == 0, listing.stderr
        assert "omegaml" in listing.stdout and "signup" in listing.stdout
    finally:
        code = run.stop()
    assert code in (0, 130, -signal.SIGINT), run.output()
    assert "scheduler.1 stopped" in run.output() and "worker.1 stopped" in run.output()

    # a second run reuses the database, the services and the admin
    again = RunScript(tmp_path)
    again.port, again.redis_port = run.port, run.redis_port
    again.env.update(OMEGAOPS_PORT=str(run.port), OMEGAOPS_REDIS_PORT=str(run.redis_port))
    again.start()
    try:
        wait_for(f"http://127.0.0.1:{again.port}/login")
        output = again.output()
        assert "an admin exists already" in output
        assert "omegaml: unchanged (configuration v1)" in output
    finally:
        again.stop()
