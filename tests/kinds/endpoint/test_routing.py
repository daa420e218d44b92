"""The endpoint's router process: started, recorded, and a start that fails told as it
was seen."""

from __future__ import annotations

import http.client
import json
import re
import stat
from pathlib import Path

import pytest

from mlform.errors import ApplyError
from mlform.kinds.endpoint import probes, routing
from mlform.kinds.endpoint.keys import hashed
from tests.ports import free_port


def test_a_router_starts_is_recorded_and_stops(tmp_path: Path) -> None:
    port = free_port()
    started = routing.ensure(tmp_path, "iris", port)
    try:
        assert started.alive()
        record = json.loads((routing.folder(tmp_path, "iris") / "router.json").read_text())
        assert record == {
            "pid": started.pid,
            "started": started.process.started,
            "instance": record["instance"],
            "port": port,
            "code": routing.code(),
        }
        assert routing.current(tmp_path, "iris") == started
        assert routing.ensure(tmp_path, "iris", port) == started  # running: kept
        assert probes.status(port, "/health", 5.0) == 200
    finally:
        routing.stop(tmp_path, "iris")
    assert not started.alive()
    assert routing.current(tmp_path, "iris") is None


def test_a_router_another_mlform_started_is_restarted(tmp_path: Path) -> None:
    # After an upgrade the router still runs the old code: the next apply that touches
    # its endpoint starts this mlform's router in its place, on the same port.
    port = free_port()
    old = routing.ensure(tmp_path, "iris", port)
    try:
        path = routing.folder(tmp_path, "iris") / "router.json"
        for older in ({"code": "0" * 64}, {}):  # another digest; a record from before digests
            record = {k: v for k, v in json.loads(path.read_text()).items() if k != "code"}
            path.write_text(json.dumps({**record, **older}))
            new = routing.ensure(tmp_path, "iris", port)
            assert new.pid != old.pid and new.code == routing.code()
            assert not old.alive() and new.alive()
            assert probes.status(port, "/health", 5.0) == 200
            old = new
    finally:
        routing.stop(tmp_path, "iris")


def test_a_router_that_exits_is_told_with_its_exit_code_and_log(tmp_path: Path) -> None:
    port = free_port()
    home = routing.folder(tmp_path, "iris")
    home.mkdir(parents=True)
    (home / "routes.json").write_text("{not json")  # what the router cannot start from
    with pytest.raises(ApplyError) as caught:
        routing.ensure(tmp_path, "iris", port)
    message = str(caught.value)
    log = home / "router.log"
    assert re.match(
        rf"endpoint/iris: its router \(pid \d+\) exited with code \d+ before it listened on "
        rf"port {port}; the last lines of {re.escape(str(log))}:\n  \| ",
        message,
    ), message
    assert "routes.json" in message


def test_the_router_checks_the_endpoints_keys_before_forwarding(tmp_path: Path) -> None:
    port, nobody = (
        free_port(),
        free_port(),
    )  # nothing listens on `nobody`: a forwarded request is a 502
    key = "k" * 43
    routes = routing.write_routes(
        tmp_path, "iris", {"blue": (f"http://127.0.0.1:{nobody}", 1)}, ("key", [hashed(key)])
    )
    assert stat.S_IMODE(routes.stat().st_mode) == 0o600
    assert json.loads(routes.read_text())["auth"] == {"mode": "key", "key_hashes": [hashed(key)]}
    routing.ensure(tmp_path, "iris", port)
    try:
        refused = post(port, {})
        forwarded = post(port, {"Authorization": f"Bearer {key}"})
    finally:
        routing.stop(tmp_path, "iris")
    assert refused == (401, "Bearer")
    assert forwarded == (502, None)


def post(port: int, headers: dict[str, str]) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/score", b"{}", {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("www-authenticate")
    finally:
        connection.close()


def test_a_port_another_program_holds_is_refused_not_taken_for_the_router(
    tmp_path: Path,
) -> None:
    # Another web server on the endpoint's port, answering GET /health with 200 as any
    # might: the apply says whose port it is, and starts no router that could not listen.
    import http.server
    import threading

    class Healthy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ApplyError) as refused:
            routing.ensure(tmp_path, "iris", port)
        assert str(refused.value) == (
            f"endpoint/iris: port {port} on 127.0.0.1 is in use by another process, so its "
            "router cannot listen there; stop that process, or give the endpoint another "
            "port: (or none, for any free one), then apply again"
        )
        assert routing.current(tmp_path, "iris") is None
        assert probes.status(port, "/health", 5.0) == 200  # the other server, untouched
    finally:
        server.shutdown()
        server.server_close()
    # the router's own /health names it, which is how its start is told from another's
    routing.ensure(tmp_path, "iris", port)
    try:
        record = json.loads((routing.folder(tmp_path, "iris") / "router.json").read_text())
        named = probes.answering(port, "/health", "x-mlform-instance", 5.0)
        assert named == record["instance"]
    finally:
        routing.stop(tmp_path, "iris")
