"""A state file lost while what it recorded lives on: apply refuses to start from zero,
and with --reinit stops what runs before it starts a new state."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.kinds.endpoint.local import Process
from tests.conftest import Ran
from tests.kinds.endpoint.test_kind import _pid, _state, tiny  # noqa: F401  (fixture)

Cli = Callable[..., Ran]
Make = Callable[[Mapping[str, str]], Path]


def test_a_lost_state_with_endpoints_running_needs_reinit(
    cli: Cli,
    tiny: Path,  # noqa: F811
) -> None:
    root = tiny
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / ".mlform" / "state.duckdb"
    router = json.loads((root / ".mlform" / "endpoints" / "tiny" / "router.json").read_text())
    instance = _pid(cli, root, "tiny")
    state.unlink()  # as `rm .mlform/state.duckdb` while the endpoint serves

    found = (
        f"the router of endpoint tiny runs (pid {router['pid']}, port {router['port']})",
        f"deployment tiny/blue runs (local pid {instance}, port ",
        "datastore workspaceblobstore (.mlform/datastore) holds 1 registered file",
    )
    plan = cli("plan", cwd=root)
    assert plan.code == 0
    assert plan.err.startswith(
        f"warning: there is no state at {state}, but an earlier one existed ({found[0]}; {found[1]}"
    ), plan.err
    assert plan.err.endswith(
        f"; {found[2]}): `mlform apply` will refuse to start from zero without --reinit\n"
    )

    refused = cli("apply", "--yes", cwd=root)
    assert (refused.code, refused.out) == (1, "")
    lines = refused.err.splitlines()
    assert lines[0] == f"error: there is no state at {state}, but an earlier one existed:"
    assert lines[1] == f"  - {found[0]}"
    assert lines[2].startswith(f"  - {found[1]}")
    assert lines[3:] == [
        f"  - {found[2]}",
        "Starting from zero would register every version again from 1 and leave what runs "
        "unknown to the new state. Restore the state file if you can (a backup, git, another "
        "machine); or run `mlform apply --reinit` to stop what runs and start a new state "
        "(registered files are kept and reused)",
    ]
    assert not state.exists()

    fresh = cli("apply", "--yes", "--reinit", cwd=root)
    assert fresh.code == 0, fresh.out + fresh.err
    assert f"    state: stopped deployment tiny/blue (pid {instance})\n" in fresh.out
    assert f"    state: stopped the router of endpoint tiny (pid {router['pid']})\n" in fresh.out
    assert "+ model/triple created: registered triple:1" in fresh.out
    assert "Apply complete: 4 added, 0 changed, 0 destroyed, 0 ran." in fresh.out
    assert _state(instance) in ("Z", "gone")
    assert not Process(router["pid"], router["started"]).running()
    assert _pid(cli, root, "tiny") != instance
    invoked = cli("endpoints", "invoke", "tiny", "--data", str(root / "request.json"), cwd=root)
    assert (invoked.code, invoked.out) == (0, "[3,6]\n")
    assert cli("plan", "--detailed-exitcode", cwd=root).code == 0

    again = cli("apply", "--yes", "--reinit", cwd=root)
    assert (again.code, again.err) == (
        1,
        f"error: --reinit starts a new state where there is none, and {state} exists: apply "
        "without --reinit\n",
    )


def test_a_lost_state_with_registered_files_needs_reinit(cli: Cli, make_workspace: Make) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: small\n",
            "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
            "data/x.csv": "a,b\n1,2\n",
        }
    )
    assert cli("apply", "--yes", cwd=root).code == 0
    state = root / ".mlform" / "state.duckdb"
    state.unlink()
    refused = cli("apply", "--yes", cwd=root)
    assert refused.code == 1
    assert refused.err.startswith(
        f"error: there is no state at {state}, but an earlier one existed:\n"
        "  - datastore workspaceblobstore (.mlform/datastore) holds 1 registered file\n"
    )
    fresh = cli("apply", "--yes", "--reinit", cwd=root)
    assert fresh.code == 0, fresh.out + fresh.err
    assert "+ data/x created: version 1" in fresh.out
