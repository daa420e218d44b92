"""The endpoint's router process: started, recorded, and a start that fails told as it
was seen."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from mlform.endpoints import probes, router
from mlform.errors import ApplyError


def test_a_router_starts_is_recorded_and_stops(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = router.ensure(tmp_path, "iris", port)
    try:
        assert started.alive()
        record = json.loads((router.folder(tmp_path, "iris") / "router.json").read_text())
        assert record == {
            "pid": started.pid,
            "started": started.process.started,
            "instance": record["instance"],
            "port": port,
        }
        assert router.current(tmp_path, "iris") == started
        assert router.ensure(tmp_path, "iris", port) == started  # running: kept
        assert probes.status(port, "/health", 5.0) == 200
    finally:
        router.stop(tmp_path, "iris")
    assert not started.alive()
    assert router.current(tmp_path, "iris") is None


def test_a_router_that_exits_is_told_with_its_exit_code_and_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ApplyError) as caught:
            router.ensure(tmp_path, "iris", port)
    message = str(caught.value)
    log = router.folder(tmp_path, "iris") / "router.log"
    assert re.match(
        rf"endpoint/iris: its router \(pid \d+\) exited with code 3 before it listened on "
        rf"port {port}; the last lines of {re.escape(str(log))}:\n  \| ",
        message,
    ), message
    assert "address already in use" in message
