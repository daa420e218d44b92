"""The library's front door, as a script would use it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from pathlib import Path

from mlform.workspace import Workspace

Make = Callable[[Mapping[str, str]], Path]

SMALL = {
    "workspace.yml": "name: small\n",
    "data/x.yml": "name: x\ntype: uri_file\npath: x.csv\n",
    "data/x.csv": "a,b\n1,2\n",
}


def test_planning_leaves_the_garbage_collector_as_it_found_it(make_workspace: Make) -> None:
    # Loading and planning pause the cyclic collector; a library must not keep it off.
    root = make_workspace(SMALL)
    assert gc.isenabled()
    assert [c.address for c in Workspace(root).plan().changes] == [
        "datastore/workspaceblobstore",
        "data/x",
    ]
    assert gc.isenabled()
    gc.disable()
    try:
        Workspace(root).plan()
        assert not gc.isenabled()
    finally:
        gc.enable()
