"""Data drift between a model's reference data and its production data, feature by
feature, as Azure Machine Learning's model monitoring computes it; and what every
monitoring result shares: a feature's result, the default thresholds, and which way a
metric breaches.

The signals and metric names are Azure ML's ("Azure Machine Learning model monitoring",
learn.microsoft.com/azure/machine-learning/concept-model-monitoring; "CLI (v2) schedule
YAML schema for model monitoring", .../reference-yaml-monitor). That documentation names
the metrics without defining them; Azure's own monitoring components do
(github.com/Azure/azureml-assets, assets/model_monitoring/components/src:
`data_drift_compute_metrics/`, `shared_utilities/histogram_utils.py`,
`model_monitor_evaluate_metrics_threshold/`), and mlform follows them except where said.

A feature is compared on its finite values: NULL, NaN and ±infinity are left out of
drift (NULL and NaN are what `null_value_rate` counts, in `quality`).

Numerical features:

- `normalized_wasserstein_distance`: the exact Wasserstein-1 distance between the two
  samples (`scipy.stats.wasserstein_distance`), divided by the reference's sample
  standard deviation or by 0.001 when that is smaller: Azure's floor, which keeps a
  constant reference column from dividing by zero.
- `two_sample_kolmogorov_smirnov_test`: the p-value of the two-sided two-sample
  Kolmogorov-Smirnov test, whose statistic D is the exact largest gap between the two
  empirical distribution functions. As `scipy.stats.ks_2samp(method="auto")`, which
  Azure calls: when neither sample has more than 10,000 values, D's exact null
  distribution (which SciPy offers only through `ks_2samp`, so it is handed the samples
  rebuilt from their value counts: at most 20,000 numbers); above, `kstwo.sf(D,
  round(n·m/(n+m)))`. Azure refuses samples over 10,000 values; mlform does not.
- `jensen_shannon_distance` and `population_stability_index` over a histogram of
  ceil(log2(n) + 1) bins (Sturges' rule, n the smaller sample's count) of equal width
  across the range both samples span, the last bin closed: each sample's
  `numpy.histogram(values, bins, range=(low, high))`. A feature with a single value on
  both sides has one bin.

Categorical features are compared on the proportion of each category seen on either
side; a category only one side has counts zero on the other.

- `jensen_shannon_distance`: as above, over the categories.
- `population_stability_index`: as above, over the categories.
- `pearsons_chi_squared_test`: the p-value of Pearson's chi-squared test of homogeneity
  on the 2 × k table of counts (`scipy.stats.chi2_contingency` without Yates'
  correction). Azure tests production's counts for goodness of fit against the
  reference's proportions instead: that treats the reference as exact, not as a sample,
  and its statistic is infinite as soon as production shows a category the reference
  never had.

The Jensen-Shannon distance is the square root of the Jensen-Shannon divergence in
base 2, between 0 and 1, as Azure computes it. The population stability index is
Σ (q − p)·ln(q / p) with every bin's or category's count raised by one before the
proportions are taken, p = (count + 1) / (n + k): Azure's smoothing for numerical
features, so that an empty bin does not make the index infinite. mlform smooths
categories the same way; Azure divides by n there, so its proportions do not sum to one.

Everything is counted in DuckDB, numerical features in buckets (`samples` says how);
Python sees counts, never rows, so memory follows those and not the data. Each numerical
feature reads its column from both relations two or three times, each categorical feature
once: a relation should be cheap to read again (a Parquet scan, a table); a costly view is
better materialised first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import duckdb
import numpy as np
from numpy.typing import NDArray

from mlform.errors import MlformError
from mlform.monitoring.names import (
    CHI_SQUARED,
    JENSEN_SHANNON,
    KOLMOGOROV_SMIRNOV,
    PSI,
    WASSERSTEIN,
    check_metrics,
)
from mlform.monitoring.relations import (
    _NUMERIC,
    _finite_profile,
    as_double,
    category_counts,
    columns_of,
    one_row,
    quote,
)
from mlform.monitoring.samples import (
    _bucket_count,
    _Cells,
    _Grid,
    _histograms,
    _Sample,
    _split_shift,
    _tally,
    _Values,
)

FeatureType = Literal["numerical", "categorical"]

DRIFT_METRICS: Mapping[FeatureType, tuple[str, ...]] = MappingProxyType(
    {
        "numerical": (JENSEN_SHANNON, WASSERSTEIN, PSI, KOLMOGOROV_SMIRNOV),
        "categorical": (JENSEN_SHANNON, PSI, CHI_SQUARED),
    }
)
# azure-ai-ml's defaults: NumericalDriftMetrics.defaults(), CategoricalDriftMetrics.defaults()
DEFAULT_DRIFT_METRICS: Mapping[FeatureType, str] = MappingProxyType(
    {"numerical": WASSERSTEIN, "categorical": JENSEN_SHANNON}
)
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {
        # azure-ai-ml's defaults for the default metrics, and DataQualityMetricsNumerical
        # and DataQualityMetricsCategorical.defaults() (a rate above the reference's own)
        WASSERSTEIN: 0.1,
        JENSEN_SHANNON: 0.1,
        "null_value_rate": 0.0,
        "data_type_error_rate": 0.0,
        "out_of_bounds_rate": 0.0,
        # mlform's, where Azure documents none: the usual significance level, and the
        # customary "significant shift" line of the population stability index
        KOLMOGOROV_SMIRNOV: 0.05,
        CHI_SQUARED: 0.05,
        PSI: 0.2,
    }
)
# p-values and scores breach below their threshold; everything else above it
_AT_LEAST = frozenset({KOLMOGOROV_SMIRNOV, CHI_SQUARED, "accuracy", "precision", "recall"})

_INTEGER = _NUMERIC - {"float", "double", "decimal"}
_NESTED = frozenset({"list", "array", "struct", "map", "union"})
_EXACT_KS_LIMIT = 10_000  # ks_2samp's MAX_AUTO_N
# unsettled values beyond which their buckets are split rather than read value by value
_SPLIT_ROWS = 1 << 19


def breached(metric: str, value: float, threshold: float) -> bool:
    """Whether `value` breaches `threshold`: below it for a p-value, accuracy, precision
    or recall, above it for a distance, an index, a rate or an error, as Azure's
    evaluate_metrics_threshold decides. A value equal to its threshold does not breach."""
    return value < threshold if metric in _AT_LEAST else value > threshold


@dataclass(frozen=True, slots=True)
class FeatureResult:
    """One feature's metrics for one signal, over relations of `reference_rows` and
    `production_rows` rows (nulls included). A value is None when it cannot be computed,
    and `note` says why: no production data in the window, the column missing from one
    side, no value that is not null. `baselines` holds the reference's own value of a
    data quality rate, which its threshold is added to."""

    feature: str
    type: FeatureType
    values: Mapping[str, float | None]
    reference_rows: int
    production_rows: int
    note: str | None = None
    baselines: Mapping[str, float] = field(default_factory=dict)

    def breaches(self, thresholds: Mapping[str, float] = DEFAULT_THRESHOLDS) -> tuple[str, ...]:
        """The metrics whose value breaches its threshold (metrics without one never do)."""
        return tuple(
            metric
            for metric, value in self.values.items()
            if value is not None
            and metric in thresholds
            and breached(metric, value, thresholds[metric] + self.baselines.get(metric, 0.0))
        )


def feature_types(
    con: duckdb.DuckDBPyConnection, reference: str, columns: Sequence[str] | None = None
) -> dict[str, FeatureType]:
    """Whether each column of the reference data is numerical or categorical, by Azure's
    rule (shared_utilities/df_utils.py): floating-point and decimal columns are
    numerical; integer columns too, unless they hold fewer distinct values than 5% of
    their rows; text, booleans, dates, times and other scalars are categorical. Nested
    columns (lists, structs, maps) are left out."""
    kinds = columns_of(con, reference, "reference")
    names = list(kinds) if columns is None else list(columns)
    missing = [name for name in names if name not in kinds]
    if missing:
        raise MlformError(
            f"no column {', '.join(f'`{m}`' for m in missing)} in the reference data "
            f"`{reference}`; its columns are {', '.join(kinds) or 'none'}"
        )
    integers = [name for name in names if kinds[name].id in _INTEGER]
    distinct: dict[str, float] = {}
    if integers:
        counts = ", ".join(f"count(DISTINCT {quote(name)})" for name in integers)
        rows, *found = one_row(con, f"SELECT count(*), {counts} FROM {reference}")
        distinct = {
            name: n / rows if rows else 1.0 for name, n in zip(integers, found, strict=True)
        }
    types: dict[str, FeatureType] = {}
    for name in names:
        kind = kinds[name].id
        if kind in _NESTED:
            continue
        numerical = kind in _NUMERIC and distinct.get(name, 1.0) >= 0.05
        types[name] = "numerical" if numerical else "categorical"
    return types


def data_drift(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    production: str,
    features: Mapping[str, FeatureType],
    metrics: Collection[str] | None = None,
) -> list[FeatureResult]:
    """Each feature's drift from `reference` to `production` (SQL that can follow FROM:
    a table, a view, `read_parquet('…')`), in the order of `features`. `metrics` picks
    among DRIFT_METRICS, each computed for the feature types it applies to; by default,
    DEFAULT_DRIFT_METRICS."""
    known = sorted(set(DRIFT_METRICS["numerical"]) | set(DRIFT_METRICS["categorical"]))
    check_metrics(metrics, known, "data drift")
    ref_kinds = columns_of(con, reference, "reference")
    prod_kinds = columns_of(con, production, "production")
    numerical = [f for f, t in features.items() if t == "numerical"]
    ref_rows, ref_counts = _finite_profile(con, reference, ref_kinds, numerical)
    prod_rows, prod_counts = _finite_profile(con, production, prod_kinds, numerical)
    results = []
    for feature, kind in features.items():
        wanted = [
            m
            for m in DRIFT_METRICS[kind]
            if (m == DEFAULT_DRIFT_METRICS[kind] if metrics is None else m in metrics)
        ]
        note = _absence(feature, ref_rows, prod_rows, ref_kinds, prod_kinds)
        values: dict[str, float | None] = dict.fromkeys(wanted)
        if note is None and wanted:
            if kind == "numerical":
                low_r, high_r, n_r = ref_counts[feature]
                low_p, high_p, n_p = prod_counts[feature]
                note = _emptiness(n_r, n_p)
                if note is None:
                    ref_value = as_double(feature, ref_kinds[feature])
                    prod_value = as_double(feature, prod_kinds[feature])
                    sample = _Sample(reference, production, ref_value, prod_value, n_r, n_p)
                    values |= _numerical_drift(
                        con, sample, wanted, min(low_r, low_p), max(high_r, high_p)
                    )
            else:
                counts_r, counts_p = category_counts(
                    con, reference, production, feature, ref_kinds, prod_kinds
                )
                note = _emptiness(int(counts_r.sum()), int(counts_p.sum()))
                if note is None:
                    values |= _categorical_drift(counts_r, counts_p, wanted)
        results.append(FeatureResult(feature, kind, values, ref_rows, prod_rows, note))
    return results


def _absence(
    feature: str,
    ref_rows: int,
    prod_rows: int,
    ref_kinds: Mapping[str, object],
    prod_kinds: Mapping[str, object],
) -> str | None:
    if feature not in ref_kinds:
        return "missing from the reference data"
    if feature not in prod_kinds:
        return "missing from the production data"
    if prod_rows == 0:
        return "no production data in window"
    if ref_rows == 0:
        return "no reference data"
    return None


def _emptiness(n_r: int, n_p: int) -> str | None:
    if n_r == 0:
        return "no reference value that is not null"
    if n_p == 0:
        return "no production value that is not null"
    return None


def _numerical_drift(
    con: duckdb.DuckDBPyConnection,
    sample: _Sample,
    wanted: Collection[str],
    low: float,
    high: float,
) -> dict[str, float]:
    """The numerical metrics from counts in buckets (see _Cells): a first read counts
    both samples in a grid; where more than a few values fall in buckets the grid cannot
    settle, a second read splits those buckets finer; a last read counts the distinct
    values of the buckets still unsettled, and of those across a histogram bin's edge."""
    n_r, n_p = sample.n_r, sample.n_p
    grid = _Grid("b", low, high, _bucket_count(n_r + n_p) if high > low else 1)
    tally = _tally(con, sample, grid, np.arange(grid.count))
    cells = _Cells.of(grid, tally, n_r, n_p)
    bins = math.ceil(math.log2(min(n_r, n_p)) + 1) if high > low else 1  # Sturges
    binned = JENSEN_SHANNON in wanted or PSI in wanted
    small = KOLMOGOROV_SMIRNOV in wanted and max(n_r, n_p) <= _EXACT_KS_LIMIT
    straddling = grid.straddling(bins) if binned else np.zeros(grid.count, dtype=bool)
    read = (straddling | cells.occupied) if small else straddling
    unsettled = cells.unsettled(wanted) & ~read
    fine = None
    if cells.rows(unsettled) > _SPLIT_ROWS:
        parents = np.flatnonzero(unsettled)
        shift = _split_shift(cells.rows(unsettled), parents.size)
        fine = grid.finer(shift)
        children = ((parents[:, None] << shift) + np.arange(1 << shift)).ravel()
        split = _tally(con, sample, fine, children, grid, parents)
        cells, read = cells.split(unsettled, read, fine, split, shift)
        unsettled = cells.unsettled(wanted) & ~read
    values = _Values.read(con, sample, grid, fine, cells, read | unsettled)
    result: dict[str, float] = {}
    if binned:
        hist_r, hist_p = _histograms(grid, tally, bins, straddling, values)
        if JENSEN_SHANNON in wanted:
            result[JENSEN_SHANNON] = _js_distance(hist_r, hist_p)
        if PSI in wanted:
            result[PSI] = _population_stability_index(hist_r, hist_p)
    if KOLMOGOROV_SMIRNOV in wanted:
        d = max(cells.edge_gap, values.largest_gap(cells))
        samples = (np.repeat(values.v, values.r), np.repeat(values.v, values.p)) if small else None
        result[KOLMOGOROV_SMIRNOV] = _ks_pvalue(d, n_r, n_p, samples)
    if WASSERSTEIN in wanted:
        settled = ~((read | unsettled) & cells.occupied)
        distance = cells.settled_integral(settled) + values.integral(cells)
        result[WASSERSTEIN] = distance / max(tally.reference_std(grid, n_r), 0.001)
    return result


def _categorical_drift(
    counts_r: NDArray[np.int64],
    counts_p: NDArray[np.int64],
    wanted: Collection[str],
) -> dict[str, float]:
    values: dict[str, float] = {}
    if JENSEN_SHANNON in wanted:
        values[JENSEN_SHANNON] = _js_distance(counts_r, counts_p)
    if PSI in wanted:
        values[PSI] = _population_stability_index(counts_r, counts_p)
    if CHI_SQUARED in wanted:
        values[CHI_SQUARED] = _chi_squared_pvalue(counts_r, counts_p)
    return values


def _js_distance(counts_r: NDArray[Any], counts_p: NDArray[Any]) -> float:
    """The Jensen-Shannon distance, base 2, between two histograms' proportions
    (`scipy.spatial.distance.jensenshannon(p, q, base=2)`)."""
    p = counts_r / counts_r.sum()
    q = counts_p / counts_p.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    divergence = (left.sum() + right.sum()) / math.log(2)
    return math.sqrt(max(float(divergence) / 2, 0.0))


def _population_stability_index(counts_r: NDArray[Any], counts_p: NDArray[Any]) -> float:
    """Σ (q − p)·ln(q / p) over bins, each count raised by one first."""
    k = counts_r.size
    p = (counts_r + 1) / (counts_r.sum() + k)
    q = (counts_p + 1) / (counts_p.sum() + k)
    return float(np.sum((q - p) * np.log(q / p)))


def _stats() -> Any:
    """scipy.stats, imported by the first p-value asked for: importing it costs about
    half a second, more than the distances over a million rows take."""
    from scipy import stats  # type: ignore[import-untyped]

    return stats


def _chi_squared_pvalue(counts_r: NDArray[Any], counts_p: NDArray[Any]) -> float:
    """The p-value of Pearson's chi-squared test of homogeneity on the 2 × k table."""
    if counts_r.size < 2:
        return 1.0
    observed = np.vstack([counts_r, counts_p]).astype(np.float64)
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return float(_stats().chi2.sf(statistic, counts_r.size - 1))


def _ks_pvalue(
    d: float,
    n_r: int,
    n_p: int,
    samples: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
) -> float:
    """The two-sided p-value of the Kolmogorov-Smirnov statistic `d` for samples of `n_r`
    and `n_p` values, as ks_2samp(method="auto") gives it: exact, from `samples`, when
    neither has more than 10,000 values; else Smirnov's distribution, kstwo."""
    stats = _stats()
    if samples is not None:
        with warnings.catch_warnings():
            # ks_2samp falls back to the asymptotic p-value, and warns, where the exact
            # one overflows; that fallback is the answer wanted
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(*samples).pvalue)
    m, n = sorted((float(n_r), float(n_p)), reverse=True)
    return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))
