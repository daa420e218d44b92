"""What `mlform secrets list|set|rotate` do: never a value out, values in only from the
caller (stdin, for the CLI), written where the secret's source keeps it."""

from __future__ import annotations

import secrets as random
from dataclasses import dataclass

from mlform.config.schema import did_you_mean
from mlform.errors import NotFound, SecretError
from mlform.loader import Config
from mlform.secrets import managed
from mlform.secrets.declared import Secret
from mlform.secrets.sources import SOURCES


@dataclass(frozen=True, slots=True)
class Listed:
    """A secret as `mlform secrets list` shows it: never its value."""

    name: str
    source: str  # `age: secrets/API_TOKEN.age`, or `managed`
    readable: bool  # whether it can be read here
    problem: str | None  # why not
    used_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Written:
    message: str  # where the value went
    rolls: tuple[str, ...]  # what the next apply rolls onto it
    warning: str | None = None  # the value cannot be read back here
    live: bool = False  # already in use where it is needed: nothing to roll


def listing(config: Config, managed_secrets: managed.Managed) -> list[Listed]:
    uses = config.secret_uses()
    found = []
    for name, secret in sorted(config.vault.declared.items()):
        problem = config.vault.problem(name)
        users = tuple(sorted(a for a, names in uses.items() if name in names))
        found.append(Listed(name, secret.described, problem is None, problem, users))
    for item in managed.every(config.specs, managed_secrets):
        found.append(Listed(item.name, f"managed: {item.secret.what}", True, None, (item.address,)))
    return found


def declared(config: Config, name: str) -> Secret:
    secret = config.vault.declared.get(name)
    if secret is not None:
        return secret
    known = sorted(config.vault.declared)
    hint = did_you_mean(name, known) or (f" (declared: {', '.join(known)})" if known else "")
    raise NotFound(f"no secret named {name} in workspace.yml{hint}; declare it under secrets:")


def set_value(config: Config, name: str, value: str) -> Written:
    """Keep `value` as the secret's value where its source keeps it."""
    secret = declared(config, name)
    if not value and secret.kind != "env":  # env: its source says what to do instead
        raise SecretError(f"no value given for {name}: pass it on standard input")
    said = SOURCES[secret.kind].write(secret, config.root, value)
    config.vault.forget(name)
    problem = config.vault.problem(name)
    warning = f"{name} cannot be read back here: {problem}" if problem else None
    return Written(said, rolls(config, name), warning)


def rotate(
    config: Config, name: str, value: str | None, managed_secrets: managed.Managed
) -> Written:
    """A new value for a declared secret (`value`, or a random one when None), or a new
    managed secret (`endpoint/NAME/signing-key`)."""
    found = managed.find(config.specs, name, managed_secrets)
    if found is not None:
        said = found.secret.rotate(config.home, found.owner)
        return Written("\n".join(said), (), live=True)
    return set_value(config, name, generate() if value is None else value)


def rolls(config: Config, name: str) -> tuple[str, ...]:
    """The resources whose processes get the secret: the next apply rolls them."""
    return tuple(sorted(a for a, names in config.secret_uses().items() if name in names))


def generate() -> str:
    """A random value: 256 bits, URL-safe text."""
    return random.token_urlsafe(32)
