"""Data assets declared in data/*.yml: files, folders and tables, versioned by content."""

from mlform.kinds.data.declaring import DECLARING

__all__ = ["DECLARING"]
