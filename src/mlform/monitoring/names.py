"""The names of the data drift metrics, Azure Machine Learning's (`metrics` defines
them), and the check of the names a caller asks for. A module of their own because both
the formulas (`metrics`) and the counting that settles them exactly (`samples`) name
them, and neither imports the other's module."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from mlform.errors import MlformError

JENSEN_SHANNON = "jensen_shannon_distance"
WASSERSTEIN = "normalized_wasserstein_distance"
PSI = "population_stability_index"
KOLMOGOROV_SMIRNOV = "two_sample_kolmogorov_smirnov_test"
CHI_SQUARED = "pearsons_chi_squared_test"


def check_metrics(asked: Collection[str] | None, known: Sequence[str], signal: str) -> None:
    """Refuse metric names `signal` (`data quality`, `classification`) does not know."""
    unknown = sorted(set(asked or ()) - set(known))
    if unknown:
        raise MlformError(
            f"unknown {signal} metric {', '.join(f'`{m}`' for m in unknown)}: "
            f"choose among {', '.join(known)}"
        )
