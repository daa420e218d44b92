from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import Ran


def test_validate_example(cli: Callable[..., Ran], example: Path) -> None:
    ran = cli("validate", cwd=example)
    assert ran.code == 0, ran.err
    assert ran.out.startswith("Valid: 5 resources in ")
