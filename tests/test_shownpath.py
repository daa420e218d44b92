from __future__ import annotations

from pathlib import Path

from mlform.shownpath import shown


def test_paths_are_shown_from_the_workspace(tmp_path: Path) -> None:
    assert shown(tmp_path / ".mlform" / "logs" / "a.log", tmp_path) == ".mlform/logs/a.log"
    assert shown(Path("/elsewhere/a.log"), tmp_path) == "/elsewhere/a.log"
