"""Which environment variables hold secrets: how a server, which outlives the apply that
starts it, learns what to mask.

The values are in the server's environment already, as the variables the scoring script
reads; mlform adds only where they are (`MLFORM_SECRET_VARIABLES=API_TOKEN,DB_URL[13:29]`:
all of API_TOKEN, and characters 13 to 29 of DB_URL, a password inside a connection
string), so no value is passed twice, and the server masks those (`from_environment`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from mlform.masking.masker import Masker

VARIABLES = "MLFORM_SECRET_VARIABLES"
_PLACE = re.compile(r"([^,\[\]=\s]+)(?:\[(\d+):(\d+)\])?")


def places(variables: Mapping[str, str], secrets: Iterable[str]) -> str:
    """Where in `variables` each of `secrets` is, as `VARIABLES` says it: a variable's
    name when it holds the value whole, `NAME[start:end]` when it holds it inside a
    longer value. A secret no variable holds has no place (nothing to read it from)."""
    found: set[str] = set()
    for secret in filter(None, set(secrets)):
        for name, value in variables.items():
            if value == secret:
                found.add(name)
            elif (start := value.find(secret)) >= 0:
                found.add(f"{name}[{start}:{start + len(secret)}]")
    return ",".join(sorted(found))


def from_environment(environ: Mapping[str, str]) -> Masker:
    """The masker for the values at the places `VARIABLES` names in `environ`."""
    return Masker(_values(environ))


def _values(environ: Mapping[str, str]) -> Iterator[str]:
    for place in environ.get(VARIABLES, "").split(","):
        matched = _PLACE.fullmatch(place.strip())
        if matched is None or matched[1] not in environ:
            continue
        value = environ[matched[1]]
        yield value if matched[2] is None else value[int(matched[2]) : int(matched[3])]
