"""Data assets declared in data/*.yml: files, folders and tables, versioned by content."""

from mlform.kinds.data.kind import DataKind

KIND = DataKind()
