"""How the planner compares secret fingerprints (`mlform.secrets.fingerprint` makes them):
a secret whose fingerprint moved under the same key changed; under another key nothing
can be said, and the plan notes it once rather than rolling everything. Fingerprints are
left out of a resource's digest (`excluded`) for that reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.plan import keys
from mlform.plan import reasons as why

_KEY_ID = str(keys.FingerprintKey())
# The variable that may hold the key instead of the file beside the state (read by
# `mlform.secrets.fingerprint`); a plan that cannot compare says to use it.
ENV = "MLFORM_SECRETS_FINGERPRINT_KEY"


def excluded(component: str) -> bool:
    """Whether a component is left out of a digest (compared by `compare` instead)."""
    return isinstance(keys.parse(component), keys.Secret | keys.FingerprintKey)


@dataclass(frozen=True, slots=True)
class Comparison:
    changed: tuple[str, ...] = ()  # names whose value changed
    other_key: str | None = None  # the recorded key id, when it is not the current one

    def reasons(self) -> list[str]:
        return [why.secret_changed(name).text for name in self.changed]


def compare(old: Mapping[str, str], new: Mapping[str, str]) -> Comparison:
    """Which secrets changed between recorded and desired components. A secret newly
    referenced is not "changed": the reference itself is a change of the spec."""
    names = sorted(k.name for k in map(keys.parse, new) if isinstance(k, keys.Secret))
    compared = [n for n in names if str(keys.Secret(n)) in old]
    if not compared:
        return Comparison()
    if old.get(_KEY_ID) != new.get(_KEY_ID):
        return Comparison(other_key=str(old.get(_KEY_ID)))
    changed = tuple(n for n in compared if old[str(keys.Secret(n))] != new[str(keys.Secret(n))])
    return Comparison(changed)
