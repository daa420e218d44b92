"""Conda package specs become the pip lines that select the same versions."""

from __future__ import annotations

import pytest

from mlform.kinds.environment.conda import CondaSpecError, PipLine, to_pip


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        ("numpy", "numpy"),
        ("numpy=1.23", "numpy==1.23.*"),
        ("numpy=1.23.5", "numpy==1.23.5.*"),
        ("numpy=1.23.*", "numpy==1.23.*"),
        ("numpy=1.23.5=py310h5f9d8c6_0", "numpy==1.23.5"),
        ("numpy 1.23.*", "numpy==1.23.*"),
        ("numpy 1.23.5", "numpy==1.23.5"),
        ("numpy 1.23.5 py310h5f9d8c6_0", "numpy==1.23.5"),
        ("numpy==1.23.5", "numpy==1.23.5"),
        ("pandas~=1.5.3", "pandas~=1.5.3"),
        ("scikit-learn==1.2.*", "scikit-learn==1.2.*"),
        ("numpy>=1.8,<2", "numpy>=1.8,<2"),
        ("numpy >=1.8, <2", "numpy>=1.8,<2"),
        ("numpy!=1.9.0", "numpy!=1.9.0"),
        ("conda-forge::foo=1.0", "foo==1.0.*"),
        ("conda-forge/linux-64::lightgbm", "lightgbm"),
        ("numpy[version='>=1.8']", "numpy>=1.8"),
        ("numpy[version='1.23.*', build=py310*]", "numpy==1.23.*"),
        ("pytorch=2.1", "torch==2.1.*"),
        ("py-xgboost", "xgboost"),
        ("Pillow", "pillow"),
    ],
)
def test_conda_specs_become_pip_lines(spec: str, line: str) -> None:
    assert to_pip(spec).line == line


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("python=3.10", PipLine("python", None, "==3.10.*")),
        ("python", PipLine("python", None, None)),
        ("pip", PipLine("pip", None, None)),
        ("pip=23.3", PipLine("pip", None, "==23.3.*")),
        ("defaults::mkl=2023.1", PipLine("mkl", None, "==2023.1.*")),
    ],
)
def test_conda_only_packages_are_not_passed_to_pip(spec: str, expected: PipLine) -> None:
    assert to_pip(spec) == expected


def test_a_choice_of_versions_has_no_pip_equivalent() -> None:
    with pytest.raises(CondaSpecError) as caught:
        to_pip("numpy=1.11.1|1.11.3")
    assert str(caught.value) == (
        "'numpy=1.11.1|1.11.3' accepts either of several versions, which pip cannot say; pin one"
    )
