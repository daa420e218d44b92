"""Conda package specs (MatchSpec) as pip requirement lines.

Azure ML environments name their packages in a conda file; mlform installs them with pip
into a virtual environment, so each conda spec becomes the pip line that selects the
same versions (conda's documented match specifications:
https://docs.conda.io/projects/conda-build/en/stable/resources/package-spec.html):

    numpy            → numpy
    numpy=1.23       → numpy==1.23.*      (conda's `=` is a prefix match)
    numpy 1.23.*     → numpy==1.23.*
    numpy 1.23.5     → numpy==1.23.5      (a version after a space is exact)
    numpy=1.23.5=py310h_0 → numpy==1.23.5 (a build string pins the version exactly)
    numpy>=1.8,<2, pandas~=1.5.3, scikit-learn==1.2.*   → unchanged
    conda-forge::numpy=1.23 → numpy==1.23.*  (channels mean nothing to pip)
    numpy[version='>=1.8'] → numpy>=1.8

`python` is not a package pip installs: its pin picks the interpreter. Packages only conda
has (`pip`, `mkl`, `cudatoolkit`, …) are left out, each with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Packages that exist only as conda packages (the toolchain, native libraries, conda
# itself): pip has nothing to install for them.
CONDA_ONLY = frozenset(
    {
        "_libgcc_mutex",
        "_openmp_mutex",
        "blas",
        "ca-certificates",
        "conda",
        "cudatoolkit",
        "cudnn",
        "libblas",
        "libcblas",
        "libgcc-ng",
        "libgomp",
        "liblapack",
        "libstdcxx-ng",
        "mkl",
        "mkl-service",
        "nomkl",
        "openssl",
        "pip",
        "python",
        "tk",
        "tzdata",
        "xz",
        "zlib",
    }
)
# Conda names whose PyPI project is named otherwise.
PIP_NAMES = {"pytorch": "torch", "pytorch-cpu": "torch", "py-xgboost": "xgboost"}

_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*(?P<rest>.*)$")
_BRACKET = re.compile(r"\[(?P<body>[^\]]*)\]\s*$")
_BRACKET_VERSION = re.compile(r"""version\s*=\s*['"]?(?P<version>[^'",]+(?:,[^'",]+)*)['"]?""")
_OPERATOR = re.compile(r"^(==|>=|<=|!=|~=|>|<)")


class CondaSpecError(ValueError):
    """A conda spec with no pip equivalent; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class PipLine:
    name: str  # the conda package name, lower case, channel dropped
    line: str | None  # the pip requirement, None for a conda-only package
    version: str | None  # the version constraint as pip writes it, e.g. "==3.10.*"


def to_pip(spec: str) -> PipLine:
    """One conda MatchSpec as a pip requirement line."""
    text = spec.strip()
    if "::" in text:
        text = text.split("::", 1)[1].strip()  # conda-forge::numpy, conda-forge/linux-64::x
    bracket = _BRACKET.search(text)
    bracketed = None
    if bracket:
        text = text[: bracket.start()].strip()
        found = _BRACKET_VERSION.search(bracket["body"])
        bracketed = found["version"].strip() if found else None
    match = _NAME.match(text)
    if match is None:
        raise CondaSpecError(f"'{spec}' is not a conda package spec")
    name, rest = match["name"].lower(), match["rest"].strip()
    version = _version(spec, bracketed if bracketed is not None else rest)
    if name in CONDA_ONLY:
        return PipLine(name, None, version)
    pip_name = PIP_NAMES.get(name, name)
    return PipLine(name, f"{pip_name}{version or ''}", version)


def _version(spec: str, rest: str) -> str | None:
    """The pip version constraint for what follows the name (`=1.2`, ` 1.2 build`, `>=1`)."""
    if not rest:
        return None
    if "|" in rest:
        raise CondaSpecError(
            f"'{spec}' accepts either of several versions, which pip cannot say; pin one"
        )
    if rest.startswith("=") and not rest.startswith("=="):
        version, _, build = rest[1:].partition("=")
        version = version.strip()
        if build or version.endswith("*"):
            return _exact(version)
        return f"=={version}.*"  # conda's `=1.5` is a prefix match: 1.5, 1.5.0, 1.5.3
    if _OPERATOR.match(rest):
        return re.sub(r"\s+", "", rest)
    version = rest.split()[0]  # `numpy 1.8.1 py27_0`: version, then a build string
    return _exact(version)


def _exact(version: str) -> str:
    if version.endswith("*"):
        return f"=={version.rstrip('*').rstrip('.')}.*"
    return f"=={version}"
