"""Where the shipped schema/ and templates/ folders are, installed or in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def resource_dir(name: str) -> Path:
    package = Path(__file__).resolve().parent
    installed = package / name  # a wheel carries them inside the package
    if installed.is_dir():
        return installed
    checkout = package.parents[1] / name  # an editable install reads the repository's own
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"mlform is missing its {name}/ folder (looked in {package})")
