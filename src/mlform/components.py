"""What a resource is made of, as one digest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlform.hashing import sha256_text
from mlform.plan import fingerprints


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest_of(components: Mapping[str, str]) -> str:
    """The digest of what a resource is made of. Secret fingerprints are left out: the
    plan compares them itself (`mlform.plan.fingerprints.compare`), since one made under
    another key says nothing of a change."""
    return sha256_text(
        *(f"{k}={v}" for k, v in sorted(components.items()) if not fingerprints.excluded(k))
    )
