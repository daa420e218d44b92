"""The compute kind."""
