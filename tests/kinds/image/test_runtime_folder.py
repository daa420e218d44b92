"""The serving runtime's folder in the cache, built once however many ask at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlform.kinds.image.kind import runtime_folder


def test_callers_at_the_same_moment_get_one_whole_folder(tmp_path: Path) -> None:
    # An image and a local deployment of a fresh apply ask side by side.
    with ThreadPoolExecutor(max_workers=8) as pool:
        folders = list(pool.map(lambda _: runtime_folder(tmp_path), range(8)))
    assert len(set(folders)) == 1
    assert (folders[0] / "mlform" / "serving" / "app.py").is_file()
    assert (folders[0] / "mlform" / "__init__.py").is_file()
    assert [p.name for p in (tmp_path / "runtime").iterdir() if p.is_dir()] == [folders[0].name]
