"""Environments declared in environments/*.yml: packages, variables and a base image."""

from mlform.kinds.environment.kind import EnvironmentKind

KIND = EnvironmentKind()
