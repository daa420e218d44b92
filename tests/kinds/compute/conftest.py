"""Real targets for the compute tests, each started once per session (`servers`): a
real SSH server (Debian's sshd on 127.0.0.1, installed with apt when missing, letting in
a second user account) and a real Ray cluster (a head and a worker node, from the `ray`
extra the test command installs). Elsewhere than CI, a test skips without them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kinds.compute.servers import RayCluster, Sshd, Unavailable, running_ray, running_sshd

__all__ = ["RayCluster", "Sshd"]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    try:
        with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
            yield server
    except Unavailable as err:
        _missing(str(err))


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    try:
        with running_ray(nodes=2) as cluster:
            yield cluster
    except Unavailable as err:
        _missing(str(err))
