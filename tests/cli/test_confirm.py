"""On a terminal, apply shows the plan and asks; only 'yes' goes ahead."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran

Make = Callable[[Mapping[str, str]], Path]
FILES = {
    "workspace.yml": "name: tty\n",
    "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "data/x.csv": "a\n1\n",
}


def apply_on_a_terminal(root: Path, answer: str) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlform.cli.main", "apply"],
        cwd=root,
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(child)
    screen = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
        if not answered and b"Only 'yes' is accepted: " in screen:
            os.write(main, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(main)
    return proc.wait(timeout=30), screen.decode().replace("\r\n", "\n")


@pytest.mark.parametrize(("answer", "code"), [("yes", 0), ("y", 1), ("no", 1)])
def test_apply_asks_on_a_terminal(
    make_workspace: Make, cli: Callable[..., Ran], answer: str, code: int
) -> None:
    root = make_workspace(FILES)
    returned, screen = apply_on_a_terminal(root, answer)
    assert returned == code, screen
    assert "  + data/x  " in screen  # the plan is shown before the question
    assert "Apply these changes? Only 'yes' is accepted: " in screen
    if code == 0:
        assert "Apply complete: 2 added, 0 changed, 0 destroyed, 0 ran." in screen
        assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
    else:
        assert "Apply cancelled." in screen
        assert cli("plan", "--detailed-exitcode", cwd=root).code == 2
