"""Datastores declared under datastores: in workspace.yml: where versions are kept."""

from mlform.kinds.datastore.declaring import DECLARING

__all__ = ["DECLARING"]
