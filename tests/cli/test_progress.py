"""What apply shows while it builds: a line per phase, the tool's output in a log file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran

Cli = Callable[..., Ran]


def test_pip_output_goes_to_a_log_and_its_tail_to_the_error(
    cli: Cli,
    make_workspace: Callable[[Mapping[str, str]], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFORM_CACHE_DIR", str(tmp_path / "cache"))
    missing = tmp_path / "ws" / "no-such-project"
    root = make_workspace(
        {
            "workspace.yml": "name: noisy\n",
            "environments/bad.yml": f"name: bad\npip: ['{missing}']\n",
        }
    )
    ran = cli("apply", "--yes", cwd=root)
    assert ran.code == 1
    log = root / ".mlform" / "logs" / "environment-bad.log"
    lines = ran.out.splitlines()
    start = lines.index(
        "    environment/bad: building virtual environment (1 package, cpython-3.11); "
        "pip's output: .mlform/logs/environment-bad.log"
    )
    failed = lines.index("  + environment/bad failed: pip could not install the packages (exit 1):")
    assert start < failed
    end = lines.index("  (the whole output: .mlform/logs/environment-bad.log)")
    quoted = lines[failed + 1 : end]
    pip_said = log.read_text().splitlines()
    assert pip_said[0].startswith("$ ")  # the command, then pip's own words
    assert quoted == [f"  | {line}" for line in pip_said[-len(quoted) :]]
    assert any("no-such-project" in line for line in quoted)
