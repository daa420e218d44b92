"""The image kind."""
