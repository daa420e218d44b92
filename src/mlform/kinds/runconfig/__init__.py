"""Running one job (a runconfig, or a pipeline step made into one) on a compute target."""

from mlform.kinds.runconfig.kind import RunconfigKind

KIND = RunconfigKind()
