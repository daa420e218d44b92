"""The secrets an endpoint has that mlform makes and keeps itself."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlform.config.specs import Spec
from mlform.kinds.endpoint.spec import EndpointSpec


class SigningKey:
    """The key an `auth_mode: token` endpoint signs its tokens with
    (`signing`)."""

    kind = "endpoint"
    what = "token-signing key"

    def owners(self, specs: Mapping[str, Spec]) -> list[str]:
        return sorted(
            spec.name
            for spec in specs.values()
            if isinstance(spec, EndpointSpec) and spec.auth_mode in ("token", "aml_token")
        )

    def rotate(self, state_dir: Path, owner: str) -> list[str]:
        # start-up: `mlform --help` imports this module; the key ring only when rotating
        from mlform.kinds.endpoint import signing

        return signing.rotate(state_dir, owner).lines()


MANAGED = {"signing-key": SigningKey()}
