"""Stands in for a script that calls an API: it checks it got a token, never prints it."""

import os

token = os.environ["API_TOKEN"]
assert os.environ["AUTHORIZATION"] == f"Bearer {token}"
print(f"got an API token of {len(token)} characters")
