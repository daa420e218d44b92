"""Monitors declared in monitors/*.yml: Azure ML's model monitoring of a deployment
(`trigger:` and `create_monitor:`), its signals computed over the requests the endpoint
captured, against the data the deployed model was trained on.

Applying a monitor records it. It is computed when due (`mlform agent`, `mlform
schedules run-due`) or on demand (`mlform monitors run NAME`), each run recorded with
one value per signal, feature and metric (`mlform monitors show NAME`).

    spec        MonitorSpec and its signals, read from Azure's keys
    declaring   reading: the endpoint and deployment it watches, the data it compares
    kind        the kind: plan and apply (recording it)
"""

from mlform.kinds.monitor.declaring import DECLARING

__all__ = ["DECLARING"]
