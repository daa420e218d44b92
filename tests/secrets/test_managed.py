"""Secrets mlform keeps itself are found by name, `<kind>/<name>/<secret>`, for the same
`mlform secrets rotate`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from mlform import secretops as operations
from mlform.errors import NotFound
from mlform.kind import managed_secrets
from mlform.secrets import managed
from mlform.workspace import Workspace


def test_a_token_endpoint_has_a_signing_key_a_key_endpoint_has_none(
    make_workspace: Callable[[Mapping[str, str]], Path],
) -> None:
    root = make_workspace(
        {
            "workspace.yml": "name: m\n",
            "endpoints/a.yml": "name: a\nauth_mode: token\n",
            "endpoints/b.yml": "name: b\nauth_mode: key\n",
        }
    )
    config = Workspace(root).config
    assert [(f.name, f.address) for f in managed.every(config.specs, managed_secrets())] == [
        ("endpoint/a/signing-key", "endpoint/a")
    ]
    assert managed.find(config.specs, "endpoint/b/signing-key", managed_secrets()) is None
    with pytest.raises(NotFound, match="no secret named endpoint/b/signing-key in workspace"):
        operations.rotate(config, "endpoint/b/signing-key", None, managed_secrets())
