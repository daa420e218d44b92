"""Names for what a file defines inline: an environment or a model written in place of a
reference (`environment: {image: …, conda_file: conda.yml}`, `model: {path: model}`).

Azure ML registers such an anonymous asset under a name and version made from a hash of
its definition (`CliV2AnonymousEnvironment:<hash>` for environments). mlform names it
`anonymous-<hash>` from the definition as written, with its paths taken from the
workspace root: two files that define the same environment share it, and editing the
conda file it names makes a new version of it (as for any environment) rather than a new
resource, so the plan shows what changed and every job that uses it runs again.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any

from mlform.hashing import sha256_text

PREFIX = "anonymous-"
_PATHS = {"conda_file", "requirements", "path"}  # keys whose value is relative to the file


def anonymous_name(definition: Mapping[str, Any], display: str) -> str:
    """The name of what `definition`, written in the file shown as `display`, declares."""
    folder = posixpath.dirname(display)
    digest = sha256_text(json.dumps(_rooted(definition, folder), sort_keys=True, default=str))
    return f"{PREFIX}{digest[:12]}"


def is_anonymous(name: str) -> bool:
    return name.startswith(PREFIX)


def _rooted(value: Any, folder: str) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, item in value.items():
        if key in _PATHS and isinstance(item, str) and "://" not in item:
            out[key] = posixpath.normpath(posixpath.join(folder, item))
        else:
            out[key] = _rooted(item, folder)
    return out
