"""Datastores declared under datastores: in workspace.yml: where versions are kept."""

from mlform.kinds.datastore.kind import DatastoreKind

KIND = DatastoreKind()
