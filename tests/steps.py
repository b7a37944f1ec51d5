"""Python steps for test plans (``task: tests.steps.<name>``), run by the engine in-process or in a real worker.

Both take the path of a flag file from the command's params (``flag=/path``), so a test decides when they
go on, or whether they fail.
"""

import time
from pathlib import Path

WAIT = 30  # seconds a step waits for its flag at most


def wait_for_flag(ctx) -> dict:
    """Wait until the flag file exists (the test says "go"), then complete."""
    flag = Path(ctx.params["flag"])
    ctx.say(f"waiting for {flag.name}")
    deadline = time.monotonic() + WAIT
    while not flag.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag.name} did not appear in {WAIT} s")
        time.sleep(0.1)
    ctx.say("go: done")
    return {}


def fail_unless_flag(ctx) -> dict:
    """Fail (the disk is full) until the flag file exists: a fault an admin fixes, then retries."""
    ctx.say("checking the disk")
    if not Path(ctx.params["flag"]).exists():
        raise RuntimeError("no space left on the disk")
    ctx.say("disk ok")
    return {}


def broken_job():
    """A periodic job that fails, for the run records."""
    raise RuntimeError("the job broke")
