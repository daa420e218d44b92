"""The roles an API token can have, ordered: each may do what the ones below it may.

They mirror Azure ML's built-in roles (https://learn.microsoft.com/azure/machine-learning/
how-to-assign-roles#default-roles): `reader` is Reader (see everything, change nothing),
`operator` is AzureML Data Scientist (run pipelines, send test requests, approve the
agent's changes; not manage access), `admin` is Owner (also manage who has access).
"""

from __future__ import annotations

import enum

from mlform.errors import MlformError


class Role(enum.IntEnum):
    READER = 1
    OPERATOR = 2
    ADMIN = 3

    def __str__(self) -> str:
        return self.name.lower()

    def allows(self, needed: Role) -> bool:
        return self >= needed


NAMES = tuple(str(role) for role in Role)


def parse(text: str) -> Role:
    """The role named `text`; MlformError naming the roles there are otherwise."""
    try:
        return Role[text.upper()]
    except KeyError:
        raise MlformError(f"no role {text!r}: use one of {', '.join(NAMES)}") from None
