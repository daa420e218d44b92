"""The pipeline endpoint through real processes and real HTTP: `mlform pipelines serve`
runs a published pipeline with the inputs a POST gives, GET follows it to the end, and
what is refused is refused with JSON errors."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlform.kinds.endpoint import keys
from mlform.workspace import Workspace
from tests.conftest import Ran
from tests.ports import free_port

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

ECHO = """\
import sys
from pathlib import Path
print(f"saw {sys.argv[1]}")
Path(sys.argv[2]).write_text(sys.argv[1])
"""

COPY = """\
import sys
from pathlib import Path
text = Path(sys.argv[1]).read_text()
print(f"got {text}")
Path(sys.argv[2]).write_text(text)
"""

PIPELINE = """\
inputs:
  msg: hello
jobs:
  say:
    code: ../src
    command: python echo.py ${{inputs.msg}} ${{outputs.out}}
    inputs:
      msg: ${{parent.inputs.msg}}
    outputs: {out: {type: uri_file}}
  repeat:
    code: ../src
    command: python copy.py ${{inputs.x}} ${{outputs.out}}
    inputs:
      x: ${{parent.jobs.say.outputs.out}}
    outputs: {out: {type: uri_file}}
"""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class Endpoint:
    root: Path
    port: int
    key: str
    secondary: str

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        key: str | None = None,
        authorization: str | None = None,
    ) -> Answer:
        if key is not None:
            authorization = f"Bearer {key}"
        headers = {"Authorization": authorization} if authorization is not None else {}
        data = None
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            found = {k.lower(): v for k, v in response.getheaders()}
            return Answer(response.status, payload, found)
        finally:
            conn.close()

    def wait_for(self, path: str, timeout: float = 90.0) -> dict[str, Any]:
        """GET `path` until the run is no longer queued or running."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.call("GET", path, key=self.key)
            assert answer.status == 200, answer.body
            if answer.body["status"] not in ("queued", "running"):
                return answer.body
            assert time.monotonic() < deadline, f"still {answer.body['status']}: {answer.body}"
            time.sleep(0.25)


@contextmanager
def serving_pipelines(cli: Cli, make_workspace: Make, tmp_path: Path) -> Iterator[Endpoint]:
    """The two-step pipeline applied, and `mlform pipelines serve` on a free port."""
    root = make_workspace(
        {
            "workspace.yml": "name: pipes\n",
            "src/echo.py": ECHO,
            "src/copy.py": COPY,
            "pipelines/echo.yml": PIPELINE,
        }
    )
    applied = cli("apply", "--yes", cwd=root)
    assert applied.code == 0, applied.out + applied.err
    port = free_port()
    log = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "mlform.cli.main", "-C", str(root)]
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*argv, "pipelines", "serve", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(server, port, log)
        found = keys.load(root / ".mlform", "pipelines")
        yield Endpoint(root, port, found["primary"], found["secondary"])
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def endpoint(cli: Cli, make_workspace: Make, tmp_path: Path) -> Iterator[Endpoint]:
    with serving_pipelines(cli, make_workspace, tmp_path) as served:
        yield served


def _wait_healthy(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"the endpoint did not answer /health in 30 s:\n{log.read_text()}")


def step_log(root: Path, run_id: str) -> str:
    return (root / ".mlform" / "runs" / run_id / "logs" / "std_log.txt").read_text()


def test_a_posted_run_takes_its_inputs_and_completes(endpoint: Endpoint, tmp_path: Path) -> None:
    said = (tmp_path / "serve.log").read_text()
    assert f"http://127.0.0.1:{endpoint.port}/pipelines" in said
    assert "secrets/endpoints/pipelines.json" in said
    assert endpoint.key not in said and endpoint.secondary not in said

    listed = endpoint.call("GET", "/pipelines", key=endpoint.secondary)  # either key works
    assert (listed.status, listed.body) == (
        200,
        {
            "pipelines": [
                {
                    "name": "echo",
                    "inputs": {"msg": "hello"},
                    "steps": ["say", "repeat"],
                    "links": {"runs": "/pipelines/echo/runs"},
                }
            ]
        },
    )

    posted = endpoint.call(
        "POST", "/pipelines/echo/runs", {"inputs": {"msg": "override"}}, key=endpoint.key
    )
    assert posted.status == 202, posted.body
    run_id = posted.body["run_id"]
    assert run_id.startswith("echo_")
    assert posted.body == {
        "run_id": run_id,
        "status": "queued",
        "links": {"self": f"/pipelines/echo/runs/{run_id}"},
    }

    done = endpoint.wait_for(posted.body["links"]["self"])
    assert done["status"] == "completed", done
    assert (done["run_id"], done["pipeline"], done["inputs"]) == (
        run_id,
        "echo",
        {"msg": "override"},
    )
    assert {step: s["status"] for step, s in done["steps"].items()} == {
        "say": "completed",
        "repeat": "completed",
    }
    assert "saw override" in step_log(endpoint.root, done["steps"]["say"]["run_id"])
    assert "got override" in step_log(endpoint.root, done["steps"]["repeat"]["run_id"])
    invoke_log = (endpoint.root / ".mlform" / "runs" / f"{run_id}.invoke.log").read_text()
    # The run's report says completed before the invoke prints its summary: only what the
    # run logged before that report is sure to be in the log by now.
    repeat = done["steps"]["repeat"]["run_id"]
    assert f"step repeat: completed (run {repeat})" in invoke_log

    # Without a body the pipeline's own inputs are used; an int is passed as its text.
    plain = endpoint.call("POST", "/pipelines/echo/runs", key=endpoint.key)
    assert plain.status == 202, plain.body
    assert endpoint.wait_for(plain.body["links"]["self"])["inputs"] == {}
    number = endpoint.call("POST", "/pipelines/echo/runs", {"inputs": {"msg": 7}}, key=endpoint.key)
    finished = endpoint.wait_for(number.body["links"]["self"])
    assert finished["status"] == "completed", finished
    assert finished["inputs"] == {"msg": "7"}
    assert "saw 7" in step_log(endpoint.root, finished["steps"]["say"]["run_id"])


def test_refusals_are_json_errors(endpoint: Endpoint, cli: Cli) -> None:
    runs, body = "/pipelines/echo/runs", {"inputs": {"msg": "x"}}
    health = endpoint.call("GET", "/health")  # open
    assert (health.status, health.body) == (200, {"status": "alive"})

    missing = endpoint.call("POST", runs, body)
    assert missing.status == 401
    assert missing.body["status"] == 401
    assert "Authorization: Bearer <key>" in missing.body["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert endpoint.call("GET", "/pipelines", key=None).status == 401
    assert endpoint.call("GET", f"{runs}/echo_1", key=None).status == 401
    basic = endpoint.call("GET", "/pipelines", authorization=f"Basic {endpoint.key}")
    assert basic.status == 401
    wrong = endpoint.call("POST", runs, body, key="not-a-key")
    assert (wrong.status, wrong.body["status"]) == (401, 401)
    assert endpoint.key not in wrong.body["error"]

    key = endpoint.key
    unknown = endpoint.call("POST", "/pipelines/nope/runs", body, key=key)
    assert unknown.body == {"error": "no pipeline named 'nope' (pipelines: echo)", "status": 404}
    extra = endpoint.call("POST", runs, {"inputs": {"msg": "x", "lr": 1}}, key=key)
    assert extra.body == {"error": "pipeline echo has no input lr (inputs: msg)", "status": 400}
    broken = endpoint.call("POST", runs, b"{not json", key=key)
    assert broken.status == 400
    assert broken.body["error"].startswith("the body is not JSON")
    nested = endpoint.call("POST", runs, {"inputs": {"msg": [1, 2]}}, key=key)
    assert nested.body == {
        "error": "inputs msg: each value must be a string, number or boolean",
        "status": 400,
    }
    null = endpoint.call("POST", runs, {"inputs": {"msg": None}}, key=key)
    assert null.status == 400
    other = endpoint.call("POST", runs, {"parameters": {"msg": "x"}}, key=key)
    assert other.body == {
        "error": "the body has 'parameters'; it takes only 'inputs'",
        "status": 400,
    }
    assert endpoint.call("POST", runs, [1], key=key).status == 400

    no_run = endpoint.call("GET", f"{runs}/echo_20000101_000000_abcd", key=key)
    assert no_run.status == 404
    assert no_run.body["error"].startswith("pipeline echo has no run 'echo_20000101_000000_abcd'")
    sneaky = endpoint.call("GET", f"{runs}/..%2F..%2Fstate", key=key)
    assert sneaky.status == 404
    route = endpoint.call("GET", "/nowhere", key=key)
    assert route.status == 404 and route.body["error"].startswith("no route for GET /nowhere")
    method = endpoint.call("DELETE", runs, key=key)
    assert method.body == {"error": f"DELETE is not allowed on {runs}; use POST", "status": 405}
    # Nothing refused started a run.
    assert not list((endpoint.root / ".mlform" / "runs").glob("*.invoke.log"))

    taken = cli("pipelines", "serve", "--port", str(endpoint.port), cwd=endpoint.root)
    assert taken.code != 0
    assert f"cannot listen on 127.0.0.1:{endpoint.port}" in taken.err
    assert "pick another with --port" in taken.err


def test_a_run_whose_invoke_fails_reports_the_log_tail(endpoint: Endpoint) -> None:
    spec = endpoint.root / "pipelines" / "echo.yml"
    spec.write_text(spec.read_text().replace("msg: hello", "msg: edited"))  # not applied
    posted = endpoint.call(
        "POST", "/pipelines/echo/runs", {"inputs": {"msg": "x"}}, key=endpoint.key
    )
    assert posted.status == 202, posted.body
    failed = endpoint.wait_for(posted.body["links"]["self"])
    assert failed["run_id"] == posted.body["run_id"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the invoke ended with exit code 1 before the run finished")
    assert "has changes that are not applied" in failed["error"]
    assert "run `mlform apply` first" in failed["error"]


def test_a_run_asked_for_while_the_state_is_held_fails_with_why(endpoint: Endpoint) -> None:
    with Workspace(endpoint.root).store("test holding the lock", write=True):
        posted = endpoint.call("POST", "/pipelines/echo/runs", key=endpoint.key)
        assert posted.status == 202, posted.body
        failed = endpoint.wait_for(posted.body["links"]["self"])
    assert failed["status"] == "failed"
    assert "the state is locked by `mlform test holding the lock`" in failed["error"]
    assert endpoint.wait_for(posted.body["links"]["self"]) == failed  # and stays so
