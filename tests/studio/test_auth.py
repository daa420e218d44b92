"""Who may look: a studio off loopback has a token, checked on every request."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran
from tests.ports import free_port
from tests.studio.conftest import Studio

TOKEN = "studio-token-5e1f0c2a9b"
STUDIO = (sys.executable, "-m", "mlform.cli.main", "studio")


def test_listening_beyond_loopback_without_a_token_is_refused(
    cli: Callable[..., Ran], studio_root: Path
) -> None:
    refused = cli("studio", "--host", "0.0.0.0", "--port", str(free_port()), cwd=studio_root)
    assert refused.code != 0
    assert "give it a token (`--token`" in refused.err and "Traceback" not in refused.err
    short = cli("studio", "--host", "0.0.0.0", "--token", "abc", cwd=studio_root)
    assert short.code != 0 and "at least 16 characters" in short.err


def _status(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def test_every_request_needs_the_token(studio: Studio) -> None:
    port = free_port()
    process = _studio(studio, port, TOKEN)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while _status_or_none(url + "/") is None:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        for path in ("/", "/runs", "/runs/train", "/runs/train/log", "/static/studio.css"):
            assert _status(url + path)[0] == 401, path
        assert _status(url + "/runs", {"Authorization": "Bearer wrong-token-123456"})[0] == 401
        assert _status(url + "/runs", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        code, headers = _status(f"{url}/runs?token={TOKEN}")
        assert code == 200
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        kept = cookie.split(";", 1)[0]
        assert _status(url + "/runs/train", {"Cookie": kept})[0] == 200
        # a cookie an earlier studio's token left does not hide the token in the address
        stale = {"Cookie": "mlform_studio=an-earlier-token-0000"}
        assert _status(url + "/runs", stale)[0] == 401
        assert _status(f"{url}/runs?token={TOKEN}", stale)[0] == 200
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert TOKEN not in out  # a token the user gave is never printed back


def test_a_generated_token_is_printed_once_and_works(studio: Studio) -> None:
    port = free_port()
    process = _studio(studio, port, "generate")
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "shown only this once" in lines[1], lines
        token = lines[3].strip()
        assert len(token) >= 16
        url = f"http://127.0.0.1:{port}/runs"
        assert _status(url)[0] == 401
        assert _status(url, {"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        process.terminate()
        process.communicate(timeout=20)


def _studio(studio: Studio, port: int, token: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*STUDIO, "--host", "0.0.0.0", "--port", str(port), "--token", token],
        cwd=studio.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)[0]
    except (urllib.error.URLError, ConnectionError):
        return None
