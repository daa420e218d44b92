"""The data kind."""
