"""What a job's plan hands its run."""

from __future__ import annotations

from dataclasses import dataclass

from mlform import snapshot as snapshots
from mlform.gitinfo import GitInfo
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.plan.model import Payload


@dataclass(frozen=True, slots=True)
class RunPayload(Payload):
    """What running a job needs: a runconfig, or a pipeline step made into one."""

    spec: RunconfigSpec
    snap: snapshots.Snapshot | None  # its code, as planned; None: it has no code
    trial_job: str | None = None  # a sweep's: the digest of the job its trials run
    git: GitInfo | None = None  # its code's git state, when known already (a sweep's trial)
