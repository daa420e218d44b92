"""The datastore kind."""
