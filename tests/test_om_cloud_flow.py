"""``om cloud add|update|remove``, request by request as omegaml 0.18.0 sends them, over HTTP, on a real worker.

The client (omegaml/client/cli/cloud.py) POSTs the command, then GETs the answer's ``Location``
and polls the command's ``resource_uri`` -- reading every answer's ``Location`` again, which only a
201 sets -- until ``int(status) > 1``; it reports success for ``"5"`` only. ``OmegaClient`` below
does exactly that with ``requests`` (polling every 0.2 s instead of 1 s, to keep the test short).
The server is the real app on a loopback port; the worker is a real ``flask worker`` process
running the shipped ``worker`` service (services/worker.yaml).
"""

import pytest
import requests

from app.accounts import create_api_key
from app.extensions import db
from app.models import ServiceDeployment, Status

from .factories import make_user
from .processes import Process, load_shipped_services, wait_until
from .servers import serve_http


class ApiKeyAuth(requests.auth.AuthBase):
    """What omegaml's OmegaRestApiAuth sends."""

    def __init__(self, userid: str, apikey: str, qualifier: str = "default"):
        self.userid, self.apikey, self.qualifier = userid, apikey, qualifier

    def __call__(self, request):
        request.headers["Authorization"] = f"ApiKey {self.userid}:{self.apikey}"
        request.headers["Qualifier"] = self.qualifier
        return request


class OmegaClient:
    """``om cloud add|update|remove <offering> --specs ...``: the client's requests, in its order."""

    def __init__(self, restapi_url: str, userid: str, apikey: str, poll: float = 0.2, timeout: float = 120):
        self.restapi_url, self.userid = restapi_url, userid
        self.auth = ApiKeyAuth(userid, apikey)
        self.poll, self.timeout = poll, timeout
        self.answers: list[requests.Response] = []

    def issue(self, phase: str, offering: str, specs: str) -> tuple[str, dict]:
        params = specs if "provider=" in specs else f"provider=None,{specs}"
        data = {"offering": offering, "user": self.userid, "phase": phase, "params": params}
        command = self.request("post", service="command", data=data)
        return self.wait(command)

    def request(self, method: str, service: str | None = None, data=None, uri: str | None = None) -> dict:
        uri = uri or f"/admin/api/v2/service/{service}"
        resp = getattr(requests, method)(f"{self.restapi_url}{uri}", json=data, auth=self.auth, timeout=30)
        self.answers.append(resp)
        resp.raise_for_status()
        # the client reads Location only from a 201; any other answer leaves `url` unset and it crashes
        assert resp.status_code == requests.codes.created, f"{method} {uri}: {resp.status_code} (the client crashes)"
        url = resp.headers["Location"]
        if not url.startswith(self.restapi_url):
            url = f"{self.restapi_url}{url}"
        resp = requests.get(url, auth=self.auth, timeout=30)
        self.answers.append(resp)
        resp.raise_for_status()
        return resp.json()

    def wait(self, command: dict) -> tuple[str, dict]:
        def finished():
            data = self.request("get", uri=command.get("resource_uri"))
            return data if int(data.get("status")) > 1 else None

        data = wait_until(finished, self.timeout, interval=self.poll, message=f"{command.get('resource_uri')} done")
        return data["status"], data


@pytest.fixture
def server(app):
    """The app served over HTTP on a loopback port, as gunicorn would."""
    with serve_http(app) as url:
        yield url


@pytest.fixture
def shipped_services(app, tmp_path):
    """The services of `make run`, with the scripts they ship (the worker service records sizes)."""
    load_shipped_services(app)


@pytest.fixture
def worker(app, shipped_services, tmp_path):
    process = Process(app, "worker", log=tmp_path / "worker.log", OMEGAOPS_STATE_DIR=tmp_path / "state")
    yield process
    process.stop()


@pytest.fixture
def om(app, server):
    """The client of user jane, logged in with her API key."""
    user = make_user(userid="jane")
    _, key = create_api_key(user, "laptop")
    db.session.commit()
    return OmegaClient(server, "jane", key)


def test_om_cloud_add_update_remove_worker_ends_with_status_5(om, worker):

    status, command = om.issue("install", "worker", "size=2,node-type=None")
    assert status == "5", worker.output()
    assert command["phase"] == "install" and command["params"]["size"] == "2"
    assert [task["status"] for task in command["tasks"]] == ["5"]

    status, command = om.issue("update", "worker", "size=1")
    assert status == "5", worker.output()
    assert command["phase"] == "update"

    status, command = om.issue("uninstall", "worker", "provider=")
    assert status == "5", worker.output()

    # every answer the client read was a 201 with a Location (the omegaml 0.18 quirk), never a 5xx
    assert {resp.status_code for resp in om.answers} == {201}
    assert all(resp.headers["Location"].startswith("/admin/api/v2/service/command/") for resp in om.answers)
    db.session.expire_all()
    deployment = db.session.get(ServiceDeployment, command["deployment_id"])
    assert deployment.status is Status.REMOVED


def test_om_cloud_add_twice_is_refused_with_the_blocking_command(om, worker):
    status, first = om.issue("install", "worker", "size=1")
    assert status == "5"
    # the worker plan is one per user: a second `om cloud add worker` is a 409, which the client raises
    with pytest.raises(requests.HTTPError) as raised:
        om.issue("install", "worker", "size=1")
    answer = raised.value.response
    assert answer.status_code == 409
    assert answer.json()["error"] == "conflict" and "update or uninstall it instead" in answer.json()["message"]
