"""What a package list may hold: requirement specifiers, never pip options.

Every package list an environment takes (`pip:`, a requirements file, a conda file's
`pip:` section) is written into a requirements file that pip reads. pip takes options in
such a file too: `-r /etc/passwd` reads any file on the building machine, `--index-url`
swaps where every package comes from, `-e` runs a setup script from anywhere. So an
entry must be a PEP 508 requirement, as `packaging` (pip's own parser) reads it: a name
with extras, versions and markers, or `name @ URL`. The only option kept is `--hash`,
which pins what a line installs and reads nothing. A local package (an absolute path,
or `name @ file://…`) must lie inside the workspace, as every local path must. Index
settings have no key yet: pip uses the building machine's own configuration (pip.conf,
PIP_INDEX_URL).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlform.config.containment import Boundary

_HASH = re.compile(r"\s+--hash[= ]\w+:[0-9a-fA-F]+")
_URL_SCHEMES = ("https", "http", "git+https", "git+http", "git+ssh", "file")


def requirement_problem(entry: str, root: Path) -> str | None:
    """Why `entry` is not a requirement this workspace may install, or None."""
    text = _HASH.sub("", entry).strip()
    if text.startswith("-"):
        option = text.split(None, 1)[0].split("=", 1)[0]
        return (
            f"'{entry}' is a pip option ({option}), not a package: package lists take "
            "requirement specifiers only (name, name==1.2, name[extra]>=1, name @ https://…); "
            f"{_OPTION_FIX.get(option, 'remove it')}"
        )
    if text[:1] in ("/", ".", "~"):
        return _local(entry, text, root)
    # start-up: packaging's parser, only where there is a requirement to read
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement as err:
        reason = str(err).splitlines()[0]  # the rest draws a caret under the line
        return (
            f"'{entry}' is not a package requirement ({reason}); write a requirement "
            "specifier such as name, name==1.2 or name @ https://…"
        )
    if requirement.url is None:
        return None
    scheme = urlsplit(requirement.url).scheme.lower()
    if scheme not in _URL_SCHEMES:
        return (
            f"'{entry}' installs from a {scheme or 'schemeless'} URL; use https://, "
            "git+https:// or a file:// path inside the workspace"
        )
    if scheme == "file":
        return _local(entry, unquote(urlsplit(requirement.url).path), root)
    return None


def _local(entry: str, path: str, root: Path) -> str | None:
    """A package from a local folder or file: only from inside the workspace."""
    if not os.path.isabs(path):
        return (
            f"'{entry}' is a relative path, which pip reads from wherever it runs; write the "
            "package's absolute path inside the workspace, or name @ file:///…"
        )
    target = Boundary.of(root).outside(path)
    if target is None:
        return None
    return (
        f"'{entry}' installs from {target}, outside the workspace; copy the package into "
        "the workspace and point at it there"
    )


_INDEX = (
    "mlform has no key for package indexes yet: set PIP_INDEX_URL or pip.conf on the "
    "machine that builds the environment"
)
_OPTION_FIX = {
    "-r": "list the packages here instead of naming another file",
    "--requirement": "list the packages here instead of naming another file",
    "-c": "pin the versions in the requirements themselves",
    "--constraint": "pin the versions in the requirements themselves",
    "-e": "write name @ file://… for a package inside the workspace, or name @ https://…",
    "--editable": "write name @ file://… for a package inside the workspace, or name @ https://…",
    "-i": _INDEX,
    "--index-url": _INDEX,
    "--extra-index-url": _INDEX,
    "-f": _INDEX,
    "--find-links": _INDEX,
    "--trusted-host": _INDEX,
}
