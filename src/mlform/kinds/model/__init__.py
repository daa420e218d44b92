"""The model kind."""
