"""`python -m mlform.serving.router`: a real router process in front of two real upstreams."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mlform.serving.auth import mint
from mlform.serving.keyring import KeyRing, TokenKey, dump
from mlform.serving.router import main
from tests.ports import free_port

STARTUP_TIMEOUT = 30.0


class Upstream:
    """A raw ASGI app standing in for a deployment: it echoes what it was sent, as JSON.

    `/secret` answers 401 with a challenge; `/slow` answers after 1.5 s. Every answer
    carries `x-upstream: NAME`; `clients` records the client port of each request.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.clients: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.clients.append(scope["client"][1])
        headers = [(b"x-upstream", self.name.encode()), (b"content-type", b"application/json")]
        status = 200
        if scope["path"] == "/secret":
            status = 401
            headers.append((b"www-authenticate", b'Bearer realm="iris"'))
        elif scope["path"] == "/slow":
            await asyncio.sleep(1.5)
        target = scope["raw_path"] + (
            b"?" + scope["query_string"] if scope["query_string"] else b""
        )
        echo = {
            "deployment": self.name,
            "method": scope["method"],
            "target": target.decode(),
            "body": body.decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }
        content = json.dumps(echo).encode()
        headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


@dataclass
class Running:
    app: Upstream
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Running]]:
    """blue and green, each on a uvicorn server in a thread, with a 1 s keep-alive."""
    servers = []
    running = {}
    try:
        for name in ("blue", "green"):
            port = free_port()
            config = uvicorn.Config(
                Upstream(name),
                host="127.0.0.1",
                port=port,
                http="h11",
                loop="asyncio",
                lifespan="off",
                log_config=None,
                timeout_keep_alive=1,
                proxy_headers=False,  # keep the router's own port in scope["client"]
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            servers.append((server, thread))
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not server.started:
                assert thread.is_alive() and time.monotonic() < deadline, "no upstream"
                time.sleep(0.01)
            running[name] = Running(config.app, port)  # type: ignore[arg-type]
        yield running
    finally:
        for server, _ in servers:
            server.should_exit = True
        for _, thread in servers:
            thread.join(timeout=10)


def write_routes(
    path: Path,
    weights: dict[str, int],
    urls: dict[str, str],
    keys: tuple[str, ...] = (),
    mode: str = "key",
    token_key: Path | None = None,
) -> None:
    """As mlform does: the whole file written aside, then swapped in atomically; with
    `keys`, the digests of the endpoint's keys, which the router then asks for (in token
    mode, with the file of the key tokens are signed with)."""
    document: dict[str, Any] = {
        "endpoint": "iris",
        "deployments": {name: {"url": urls[name], "weight": w} for name, w in weights.items()},
    }
    if keys:
        hashes = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
        document["auth"] = {"mode": mode, "key_hashes": hashes}
        if token_key is not None:
            document["auth"]["token_key_file"] = str(token_key)
    replace(path, json.dumps(document))


def replace(path: Path, text: str) -> None:
    aside = path.with_suffix(".tmp")
    aside.write_text(text, encoding="utf-8")
    os.replace(aside, path)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def deployment(self) -> str | None:
        return self.headers.get("x-mlform-deployment")


class Router:
    """A running router process and one keep-alive connection to it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, routes: Path, log: Path):
        self.process, self.port, self.routes, self.log = process, port, routes, log
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(
        self,
        method: str = "GET",
        path: str = "/score",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        self.conn.request(method, path, body=body, headers=headers or {})
        response = self.conn.getresponse()
        content = response.read()
        found = {key.lower(): value for key, value in response.getheaders()}
        return Reply(response.status, content, found)

    def spread(self, n: int) -> Counter[str | None]:
        return Counter(self.call().deployment for _ in range(n))

    def wait_for(self, wanted: str, timeout: float = 10.0) -> None:
        """Until a request lands on `wanted`: the router has taken up a new table."""
        deadline = time.monotonic() + timeout
        while self.call().deployment != wanted:
            assert time.monotonic() < deadline, f"no request reached {wanted}"
            time.sleep(0.02)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[Any]:
    """start(weights, urls, *args): a router process, stopped when the test ends."""
    started: list[Router] = []

    def start(
        weights: dict[str, int],
        urls: dict[str, str],
        *args: str,
        keys: tuple[str, ...] = (),
        mode: str = "key",
        token_key: Path | None = None,
    ) -> Router:
        routes = tmp_path / f"routes-{len(started)}.json"
        write_routes(routes, weights, urls, keys, mode, token_key)
        port = free_port()
        log = tmp_path / f"router-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mlform.serving.router", "--routes", str(routes)),
                    *("--host", "127.0.0.1", "--port", str(port), *args),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        router = Router(process, port, routes, log)
        started.append(router)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the router exited with {process.returncode}:\n{router.log_text()}")
            try:
                if router.call("GET", "/health").status == 200:
                    return router
            except OSError:
                router.conn.close()
            if time.monotonic() > deadline:
                pytest.fail(f"the router did not start:\n{router.log_text()}")
            time.sleep(0.05)

    yield start
    for router in started:
        router.conn.close()
        if router.process.poll() is None:
            router.process.terminate()
            try:
                router.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                router.process.kill()
                router.process.wait()


@pytest.fixture
def urls(upstreams: dict[str, Running]) -> dict[str, str]:
    return {name: running.url for name, running in upstreams.items()}


def test_weights_80_20_split_1000_requests_exactly(start_router: Any, urls: dict[str, str]) -> None:
    router = start_router({"blue": 80, "green": 20}, urls)

    replies = [router.call() for _ in range(1000)]

    assert Counter(r.deployment for r in replies) == {"blue": 800, "green": 200}
    # The deployment named in the header is the one that answered.
    assert all(r.json()["deployment"] == r.deployment for r in replies)
    # Smooth: any 100 consecutive requests hold the same 80/20, not bursts of 80.
    window = Counter(r.deployment for r in replies[37:137])
    assert window == {"blue": 80, "green": 20}


def test_the_header_picks_a_deployment_whatever_its_weight(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 100, "green": 0}, urls)

    assert router.spread(100) == {"blue": 100}
    reply = router.call(headers={"azureml-model-deployment": "green"})

    assert (reply.status, reply.deployment, reply.json()["deployment"]) == (200, "green", "green")


def test_an_unknown_deployment_name_is_404_listing_the_known_ones(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 80, "green": 20}, urls)

    reply = router.call(headers={"azureml-model-deployment": "purple"})

    assert reply.status == 404
    assert reply.body == (
        b'{"error":"endpoint iris has no deployment named \'purple\'; '
        b'its deployments are: blue, green","status":404}'
    )
    assert reply.headers["content-type"] == "application/json"


def test_no_deployment_taking_traffic_is_503(start_router: Any, urls: dict[str, str]) -> None:
    router = start_router({"blue": 0, "green": 0}, urls)

    reply = router.call("POST", "/score", b"{}")

    assert reply.status == 503
    assert reply.json() == {
        "error": "endpoint iris has no deployment taking traffic",
        "status": 503,
    }
    # …while each deployment stays reachable by name.
    assert router.call(headers={"azureml-model-deployment": "blue"}).status == 200


def test_rewriting_the_routes_file_shifts_traffic_without_a_restart(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 100, "green": 0}, urls)
    assert router.spread(10) == {"blue": 10}

    write_routes(router.routes, {"blue": 0, "green": 100}, urls)
    router.wait_for("green")

    assert router.spread(20) == {"green": 20}
    assert "routes for endpoint iris reloaded: blue=0, green=100" in router.log_text()


def test_a_malformed_routes_file_keeps_the_previous_table(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 100, "green": 0}, urls)

    replace(router.routes, '{"endpoint": "iris", "deployments": {"green": {"weight": -1}}}')
    deadline = time.monotonic() + 10
    while "keeping the previous routes" not in router.log_text():
        assert time.monotonic() < deadline, router.log_text()
        router.call()
        time.sleep(0.02)

    assert router.spread(10) == {"blue": 10}
    log = router.log_text()
    assert "deployments.green.weight: must be a non-negative integer, got -1" in log
    assert "deployments.green.url: must look like http://127.0.0.1:5101" in log
    # A good file afterwards is taken up again.
    write_routes(router.routes, {"blue": 0, "green": 1}, urls)
    router.wait_for("green")


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_rereads_a_file_whose_change_the_router_cannot_see(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 100, "green": 0}, urls)
    before = router.routes.stat()
    # Same inode, size and modification time: invisible to the periodic check.
    document = json.loads(router.routes.read_text())
    document["deployments"]["blue"]["weight"] = 0
    document["deployments"]["green"]["weight"] = 100
    router.routes.write_text(json.dumps(document))
    os.utime(router.routes, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert router.routes.stat().st_size == before.st_size
    time.sleep(0.5)
    assert router.spread(5) == {"blue": 5}

    router.process.send_signal(signal.SIGHUP)
    router.wait_for("green")

    assert router.spread(5) == {"green": 5}


def test_a_deployment_that_is_down_is_502(start_router: Any, urls: dict[str, str]) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    router = start_router({"blue": 1, "green": 0}, {**urls, "blue": down})

    reply = router.call("POST", "/score", b'{"data": [1]}')

    assert reply.status == 502
    assert reply.json() == {
        "error": f"deployment blue of endpoint iris refused the connection at {down}",
        "status": 502,
    }
    assert reply.deployment == "blue"
    assert router.call(headers={"azureml-model-deployment": "green"}).status == 200


def test_a_deployment_slower_than_the_timeout_is_504(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 1}, urls, "--timeout", "0.3")

    reply = router.call("POST", "/slow", b"{}")

    assert reply.status == 504
    assert reply.json() == {
        "error": "deployment blue of endpoint iris did not answer within 0.3s",
        "status": 504,
    }
    assert reply.deployment == "blue"
    assert router.call().status == 200  # the pool is not left holding the broken connection


def test_status_and_headers_come_back_as_the_deployment_gave_them(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 1}, urls)

    reply = router.call("POST", "/secret", b"{}", {"authorization": "Bearer wrong"})

    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="iris"'
    assert reply.headers["x-upstream"] == "blue"
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.json()["headers"]["authorization"] == "Bearer wrong"


def test_method_target_headers_and_body_go_through_as_sent(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 1}, urls)
    body = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]] * 200}).encode()

    reply = router.call(
        "POST",
        "/score/v1?verbose=1&name=a%20b",
        body,
        {
            "content-type": "application/json",
            "x-request-id": "r-1",
            "connection": "x-hop",
            "x-hop": "dropped",
        },
    )

    echo = reply.json()
    assert (reply.status, echo["method"], echo["target"]) == (
        200,
        "POST",
        "/score/v1?verbose=1&name=a%20b",
    )
    assert echo["body"] == body.decode()
    sent = echo["headers"]
    assert sent["content-type"] == "application/json"
    assert sent["x-request-id"] == "r-1"
    assert sent["content-length"] == str(len(body))
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert "x-hop" not in sent and "connection" not in sent
    got = router.call("GET", "/openapi.json")
    assert got.json()["method"] == "GET"
    head = router.call("HEAD", "/openapi.json")
    assert (head.status, head.body) == (200, b"")
    # The length of the body the deployment would have sent: its echo says "HEAD".
    assert head.headers["content-length"] == str(len(got.body.replace(b"GET", b"HEAD")))


def test_connections_to_a_deployment_are_kept_alive_and_renewed(
    start_router: Any, upstreams: dict[str, Running], urls: dict[str, str]
) -> None:
    router = start_router({"green": 1}, urls)
    clients = upstreams["green"].app.clients
    clients.clear()

    assert router.spread(50) == {"green": 50}
    assert len(set(clients)) == 1
    # The upstream closes idle connections after 1 s; the next request still succeeds.
    time.sleep(1.5)
    assert router.spread(5) == {"green": 5}
    assert len(set(clients)) == 2


def test_health_is_the_routers_own(start_router: Any, urls: dict[str, str]) -> None:
    router = start_router({"blue": 0, "green": 0}, urls)

    reply = router.call("GET", "/health")

    assert (reply.status, reply.body) == (200, b'{"status":"alive"}')
    assert reply.deployment is None


def test_a_missing_or_invalid_routes_file_stops_the_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    bad = tmp_path / "bad.json"
    bad.write_text('{"endpoint": "", "deployments": {"blue": {"url": "ftp://x", "weight": 1}}}')

    assert main(["--routes", str(missing)]) == 2
    assert main(["--routes", str(bad)]) == 2

    err = capsys.readouterr().err
    assert f"cannot read the routes file {missing}: No such file or directory" in err
    assert f"{bad}: endpoint: must be the endpoint's name, a non-empty string" in err
    assert f"{bad}: deployments.blue.url: must look like http://127.0.0.1:5101" in err


MISSING = (
    b'{"error":"this deployment requires a key: send the header \\"Authorization: Bearer '
    b'<key>\\" with one of the deployment\'s keys","status":401}'
)
REJECTED = (
    b'{"error":"the key sent is not one of this deployment\'s keys; it may have been '
    b'rotated: get the deployment\'s current keys","status":401}'
)


def rss(pid: int) -> int:
    """The resident memory of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_body_without_valid_credentials_is_refused_unread(
    start_router: Any, upstreams: dict[str, Running], urls: dict[str, str]
) -> None:
    router = start_router({"blue": 1}, urls, keys=("s3cret", "old"))
    before = rss(router.process.pid)
    # 200 MiB declared and sent without a key: answered from the headers alone, and what
    # comes after is skipped, never held.
    size, chunk = 200 * 1024 * 1024, b"x" * (1024 * 1024)
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
        sock.sendall(b"POST /score HTTP/1.1\r\nHost: iris\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(chunk)):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        answer = read_answer(sock)
    grown = rss(router.process.pid) - before
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nwww-authenticate: Bearer" in head
    assert body == MISSING
    assert grown < 16 * 1024 * 1024, f"the router grew by {grown} bytes"

    wrong = router.call("POST", "/score", b"{}", {"Authorization": "Bearer guess"})
    upstreams["blue"].app.clients.clear()
    keyed = router.call("POST", "/score", b"{}", {"Authorization": "Bearer old"})
    opened = router.call("GET", "/openapi.json")
    assert (wrong.status, wrong.body, wrong.deployment) == (401, REJECTED, None)
    assert (keyed.status, keyed.json()["headers"]["authorization"]) == (200, "Bearer old")
    assert (opened.status, opened.deployment) == (200, "blue")  # the deployment decides


def test_tokens_are_checked_as_the_deployments_check_them(
    start_router: Any, urls: dict[str, str], tmp_path: Path
) -> None:
    key = os.urandom(32)
    key_file = tmp_path / "ring.json"
    key_file.write_text(dump(KeyRing(TokenKey("k1", key))), encoding="utf-8")
    router = start_router({"blue": 1}, urls, keys=("s3cret",), mode="token", token_key=key_file)
    valid, _ = mint(key, "iris", 60, kid="k1")
    elsewhere, _ = mint(key, "wine", 60, kid="k1")
    forged, _ = mint(hashlib.sha256(b"s3cret").digest(), "iris", 60, kid="k1")  # by a digest

    def post(token: str) -> Reply:
        return router.call("POST", "/score", b"{}", {"Authorization": f"Bearer {token}"})

    assert post(valid).status == 200
    assert (post(elsewhere).status, post(elsewhere).json()["error"]) == (
        403,
        "the token is for endpoint wine, not iris",
    )
    assert (post(forged).status, post(forged).json()["error"]) == (
        401,
        "the token sent was not signed with this endpoint's token key; it may be older than "
        "the key: get a new one with `mlform endpoints token ENDPOINT`",
    )
    assert post(forged).deployment is None


def test_a_body_over_the_limit_is_413_declared_or_chunked(
    start_router: Any, urls: dict[str, str]
) -> None:
    router = start_router({"blue": 1}, urls, "--max-body", "1000")
    too_large = (
        b'{"error":"the request body is larger than this endpoint\'s limit of 1000 bytes; '
        b'send fewer rows per request","status":413}'
    )

    declared = router.call("POST", "/score", b"x" * 1001)
    router.conn.close()
    chunked = router.call("POST", "/score", iter([b"x" * 600, b"x" * 401]))  # type: ignore[arg-type]
    router.conn.close()
    within = router.call("POST", "/score", iter([b"x" * 600, b"x" * 400]))  # type: ignore[arg-type]

    assert (declared.status, declared.body) == (413, too_large)
    assert (chunked.status, chunked.body) == (413, too_large)
    assert (within.status, len(within.json()["body"])) == (200, 1000)


@pytest.mark.parametrize(
    "sent",
    [
        b"POST /score HTTP/1.1\r\nHost: iris\r\nX-Slow: 1\r\n",
        b"POST /score HTTP/1.1\r\nHost: iris\r\nContent-Length: 100\r\n\r\n{",
        b"",
    ],
    ids=["a head never finished", "a body never finished", "nothing at all"],
)
def test_a_client_that_does_not_send_its_request_in_time_is_disconnected(
    start_router: Any, urls: dict[str, str], sent: bytes
) -> None:
    router = start_router({"blue": 1}, urls, "--read-timeout", "0.5")
    expected = (
        b'{"error":"the request did not arrive within 0.5 s; send it whole, without '
        b'pauses","status":408}'
    )
    # Many at once, as a slowloris attack holds them: each is answered and closed.
    sockets = [socket.create_connection(("127.0.0.1", router.port), timeout=10) for _ in range(20)]
    try:
        for sock in sockets:
            sock.sendall(sent)
        answers = [read_answer(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert body == expected
    assert router.call("GET", "/openapi.json").status == 200  # the router goes on


def test_a_head_over_64_kib_is_431_and_closed(start_router: Any, urls: dict[str, str]) -> None:
    router = start_router({"blue": 1}, urls)
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: iris\r\n")
        try:
            for _ in range(100):  # never finished: no blank line
                sock.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
        except OSError:  # closed by the router while still sending: what is expected
            pass
        answer = read_answer(sock)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert json.loads(body) == {
        "error": "the request's head (its request line and headers) is larger than 65536 bytes",
        "status": 431,
    }


def test_connections_beyond_the_limit_are_503(start_router: Any, urls: dict[str, str]) -> None:
    router = start_router({"blue": 1}, urls, "--max-connections", "4")
    router.conn.close()
    held = [socket.create_connection(("127.0.0.1", router.port), timeout=10) for _ in range(4)]
    try:
        refused = router.call("GET", "/openapi.json")
    finally:
        for sock in held:
            sock.close()
    router.conn.close()
    # Served again once the router has seen the held connections close.
    deadline = time.monotonic() + 10
    while (served := router.call("GET", "/openapi.json")).status == 503:
        assert time.monotonic() < deadline, "still refused after the connections closed"
        router.conn.close()
        time.sleep(0.02)

    assert (refused.status, refused.body) == (503, b"Service Unavailable")
    assert served.status == 200


def test_a_token_key_that_cannot_be_read_is_503_not_an_open_door(
    start_router: Any, urls: dict[str, str], tmp_path: Path
) -> None:
    gone = tmp_path / "missing.key"
    router = start_router({"blue": 1}, urls, keys=("s3cret",), mode="token", token_key=gone)
    token, _ = mint(os.urandom(32), "iris", 60)

    reply = router.call("POST", "/score", b"{}", {"Authorization": f"Bearer {token}"})

    assert (reply.status, reply.json()["error"]) == (
        503,
        "this endpoint cannot check tokens now; its token key cannot be read",
    )
    assert reply.deployment is None
    assert f"cannot read the token key file {gone}" in router.log_text()

    # Once the keys are there, it checks tokens again without a restart.
    gone.write_text(dump(KeyRing(TokenKey("k1", b"k" * 32))), encoding="utf-8")
    token, _ = mint(b"k" * 32, "iris", 60, kid="k1")
    reply = router.call("POST", "/score", b"{}", {"Authorization": f"Bearer {token}"})
    assert (reply.status, reply.deployment) == (200, "blue")


def test_a_replaced_key_ring_applies_from_the_next_request(
    start_router: Any, urls: dict[str, str], tmp_path: Path
) -> None:
    first, second = TokenKey("k1", os.urandom(32)), TokenKey("k2", os.urandom(32))
    ring = tmp_path / "ring.json"
    ring.write_text(dump(KeyRing(first)), encoding="utf-8")
    router = start_router({"blue": 1}, urls, keys=("s3cret",), mode="token", token_key=ring)
    by_first, _ = mint(first.secret, "iris", 60, kid="k1")
    by_second, _ = mint(second.secret, "iris", 60, kid="k2")

    def post(token: str) -> int:
        return router.call("POST", "/score", b"{}", {"Authorization": f"Bearer {token}"}).status

    assert (post(by_first), post(by_second)) == (200, 401)
    kept = TokenKey(first.kid, first.secret, keep_until=time.time() + 3600)
    replace(ring, dump(KeyRing(second, (kept,))))
    assert (post(by_first), post(by_second)) == (200, 200)
    past = TokenKey(first.kid, first.secret, keep_until=time.time() - 1)
    replace(ring, dump(KeyRing(second, (past,))))
    assert (post(by_first), post(by_second)) == (401, 200)
