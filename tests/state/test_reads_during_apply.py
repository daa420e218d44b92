"""Reading the state while an apply trains: `runs list`, `plan` and a pipeline endpoint
answer at once, from what the apply has committed so far, on the local backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import Ran, mlform_process
from tests.kinds.pipeline.test_published import Endpoint, serving_pipelines

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]

# Up to 30 s of training: it says when it starts, and ends early once the test is done.
SLOW = """\
import time
from pathlib import Path

Path({started!r}).write_text("training")
until = time.time() + 30
while time.time() < until and not Path({release!r}).exists():
    time.sleep(0.05)
print("trained")
"""
ANSWER_WITHIN = 2.0  # seconds, for each read


@pytest.fixture
def endpoint(cli: Cli, make_workspace: Make, tmp_path: Path) -> Iterator[Endpoint]:
    with serving_pipelines(cli, make_workspace, tmp_path) as served:
        yield served


def test_reads_answer_from_committed_state_while_an_apply_trains(
    endpoint: Endpoint, cli: Cli, tmp_path: Path
) -> None:
    root = endpoint.root
    started, release = tmp_path / "started", tmp_path / "release"
    (root / "slow").mkdir()
    (root / "slow" / "train.py").write_text(SLOW.format(started=str(started), release=str(release)))
    (root / "runconfigs").mkdir()
    (root / "runconfigs" / "slow.yml").write_text("code: ../slow\ncommand: python train.py\n")
    apply = mlform_process("apply", "--yes", cwd=root)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert apply.poll() is None, apply.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        took: dict[str, float] = {}

        def timed(name: str, read: Callable[[], object]) -> object:
            begun = time.monotonic()
            answer = read()
            took[name] = time.monotonic() - begun
            return answer

        runs = timed("runs list", lambda: cli("runs", "list", "--json", cwd=root))
        plan = timed("plan", lambda: cli("plan", cwd=root))
        key = endpoint.key
        listed = timed("GET /pipelines", lambda: endpoint.call("GET", "/pipelines", key=key))
        assert apply.poll() is None, "the apply ended before the reads: they prove nothing"
    finally:
        release.write_text("done")
        out, err = apply.communicate(timeout=120)
    assert apply.returncode == 0, out + err
    assert isinstance(runs, Ran) and runs.code == 0, runs
    assert '"status": "running"' in runs.out  # the apply's committed "running" record
    assert isinstance(plan, Ran) and (plan.code, plan.err) == (0, "")
    assert "runconfig/slow" in plan.out  # not completed yet, as far as the state says
    assert getattr(listed, "status", None) == 200
    assert all(seconds < ANSWER_WITHIN for seconds in took.values()), took
    after = cli("runs", "list", "--json", cwd=root)
    assert '"status": "completed"' in after.out
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0
