"""Secret environment variables a container gets in a mounted file rather than in its
environment, which `docker inspect` shows to anyone who may talk to the engine.

mlform writes the variables that hold a workspace secret to a JSON object in a file only
its owner reads, mounts the file's folder read-only into the container and sets
MLFORM_SECRET_FILE to it; the server puts them into its own environment before anything
reads one (the masking of its output, the scoring script, its workers).
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping

FILE = "MLFORM_SECRET_FILE"


def load(environ: MutableMapping[str, str] = os.environ) -> None:
    """Put the variables of the file MLFORM_SECRET_FILE names into `environ`; ValueError
    (saying which file and why) if it cannot be read."""
    path = environ.get(FILE)
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            variables = json.load(handle)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the secret variables in {path} ({FILE}): {err}") from None
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise ValueError(f"{path} ({FILE}) must hold a JSON object of text values")
    environ.update(variables)
