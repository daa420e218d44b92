"""Compute targets declared in compute/*.yml: a name that jobs run on.

A compute of type local is this machine, so creating one provisions nothing; it is a
resource all the same, so the plan shows it (`+ compute/cpu-cluster`), jobs are ordered
after it, and removing a file that jobs still name is refused by validation.

    spec        ComputeSpec and its parsing; the built-in target (local)
    kind        the kind: plan and apply
"""

from mlform.kinds.compute.declaring import DECLARING

__all__ = ["DECLARING"]
