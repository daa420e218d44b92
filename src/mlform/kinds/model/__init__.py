"""Models declared in models/*.yml: files registered as a new version when they change."""

from mlform.kinds.model.declaring import DECLARING

__all__ = ["DECLARING"]
