"""Environments declared in environments/*.yml: packages, variables and a base image."""

from mlform.kinds.environment.declaring import DECLARING

__all__ = ["DECLARING"]
