"""The environment kind."""
