"""Each monitoring metric against an independent reference: SciPy's tests and distances,
NumPy's histogram, scikit-learn's scores, and rates counted by hand."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn import metrics as sk

from mlform.errors import MlformError
from mlform.monitoring import metrics, samples
from mlform.monitoring.metrics import (
    DEFAULT_THRESHOLDS,
    DRIFT_METRICS,
    FeatureResult,
    breached,
    data_drift,
    feature_types,
)
from mlform.monitoring.performance import model_performance
from mlform.monitoring.quality import data_quality

NUMERICAL = list(DRIFT_METRICS["numerical"])
CATEGORICAL = list(DRIFT_METRICS["categorical"])


def close(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def register(con: duckdb.DuckDBPyConnection, name: str, **columns: object) -> str:
    con.register(name, pa.table(columns))
    return name


def expected_numerical(ref: NDArray[np.float64], prod: NDArray[np.float64]) -> dict[str, float]:
    """The four numerical metrics, from SciPy and NumPy on the finite values."""
    ref, prod = ref[np.isfinite(ref)], prod[np.isfinite(prod)]
    low, high = min(ref.min(), prod.min()), max(ref.max(), prod.max())
    bins = math.ceil(math.log2(min(ref.size, prod.size)) + 1) if high > low else 1
    hist_r = np.histogram(ref, bins, range=(low, high))[0]
    hist_p = np.histogram(prod, bins, range=(low, high))[0]
    std = np.std(ref, ddof=1) if ref.size > 1 else 0.0
    return {
        "jensen_shannon_distance": float(jensenshannon(hist_r, hist_p, base=2)),
        "normalized_wasserstein_distance": stats.wasserstein_distance(ref, prod) / max(std, 0.001),
        "population_stability_index": psi(hist_r, hist_p),
        "two_sample_kolmogorov_smirnov_test": float(stats.ks_2samp(ref, prod).pvalue),
    }


def psi(hist_r: NDArray[np.int64], hist_p: NDArray[np.int64]) -> float:
    k = hist_r.size
    p = (hist_r + 1) / (hist_r.sum() + k)
    q = (hist_p + 1) / (hist_p.sum() + k)
    return float(np.sum((q - p) * np.log(q / p)))


def drift(
    con: duckdb.DuckDBPyConnection, ref: object, prod: object, wanted: list[str]
) -> FeatureResult:
    register(con, "ref", x=ref)
    register(con, "prod", x=prod)
    [result] = data_drift(con, "ref", "prod", {"x": "numerical"}, wanted)
    return result


@pytest.mark.parametrize(
    ("n_ref", "n_prod", "shift"),
    [
        (5_000, 2_000, 0.05),  # exact Kolmogorov-Smirnov distribution
        (12_000, 15_000, 0.0),  # asymptotic: one sample over 10,000 values
        (40, 30, 0.5),
    ],
)
def test_numerical_metrics_agree_with_scipy(n_ref: int, n_prod: int, shift: float) -> None:
    rng = np.random.default_rng(n_ref)
    ref = rng.normal(0.0, 1.0, n_ref)
    prod = rng.normal(shift, 1.2, n_prod)
    ref[:50] = np.round(ref[:50], 1)  # ties, within and across samples
    prod[:50] = np.round(prod[:50], 1)
    result = drift(duckdb.connect(), ref, prod, NUMERICAL)
    expected = expected_numerical(ref, prod)
    assert result.values == {metric: close(value) for metric, value in expected.items()}
    assert (result.reference_rows, result.production_rows, result.note) == (n_ref, n_prod, None)


@pytest.mark.parametrize(
    ("values", "wanted", "buckets"),
    [
        (3_000, ["normalized_wasserstein_distance"], 1 << 16),
        (70_000, NUMERICAL, 1 << 16),
        (70_000, NUMERICAL, 1 << 10),  # coarser buckets, each split eight ways
    ],
)
def test_buckets_split_finer_give_the_same_metrics(
    monkeypatch: pytest.MonkeyPatch, values: int, wanted: list[str], buckets: int
) -> None:
    # split whatever the first buckets leave unsettled, as millions of values would
    monkeypatch.setattr(metrics, "_SPLIT_ROWS", 0)
    monkeypatch.setattr(samples, "_MAX_BUCKETS", buckets)
    rng = np.random.default_rng(values)
    ref, prod = rng.normal(0, 1, values), rng.normal(0, 1, values // 2)
    prod[:100] = ref[:100]  # values on both sides
    result = drift(duckdb.connect(), ref, prod, wanted)
    expected = expected_numerical(ref, prod)
    assert result.values == {metric: close(expected[metric]) for metric in wanted}


def test_integers_on_bin_edges_bin_as_numpy_does(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(7)
    ref = rng.integers(0, 21, 3_000).astype(np.float64)
    prod = rng.integers(3, 25, 1_000).astype(np.float64)
    result = drift(con, ref, prod, NUMERICAL)
    assert result.values == {m: close(v) for m, v in expected_numerical(ref, prod).items()}


def test_nulls_nans_and_infinities_are_left_out_of_drift(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(11)
    ref, prod = rng.normal(0, 1, 800), rng.normal(0.3, 1, 600)
    ref[:20], prod[:10], prod[10:15] = np.nan, np.inf, -np.inf
    with_nulls = [None, None, *prod.tolist()]
    result = drift(con, ref, pa.array(with_nulls, pa.float64()), NUMERICAL)
    assert result.values == {m: close(v) for m, v in expected_numerical(ref, prod).items()}
    assert result.production_rows == 602


def test_a_constant_column_does_not_divide_by_zero(con: duckdb.DuckDBPyConnection) -> None:
    same = drift(con, np.full(500, 3.0), np.full(200, 3.0), NUMERICAL)
    assert same.values == {
        "jensen_shannon_distance": 0.0,
        "normalized_wasserstein_distance": 0.0,
        "population_stability_index": 0.0,
        "two_sample_kolmogorov_smirnov_test": 1.0,
    }
    ref, prod = np.full(500, 3.0), np.r_[np.full(150, 3.0), np.full(50, 4.5)]
    moved = drift(con, ref, prod, NUMERICAL)
    assert moved.values == {m: close(v) for m, v in expected_numerical(ref, prod).items()}
    # the reference's standard deviation is 0: Azure's floor of 0.001 divides
    assert moved.values["normalized_wasserstein_distance"] == close(0.375 / 0.001)


def test_the_connection_is_left_free_for_the_caller(con: duckdb.DuckDBPyConnection) -> None:
    # DuckDB refuses new work on a connection while a result is left unread
    register(con, "ref", x=[1.0, 2.0, 3.0])
    register(con, "empty", x=pa.array([], pa.float64()))
    data_drift(con, "ref", "empty", {"x": "numerical"})
    register(con, "pairs", prediction=[1.0], ground_truth=[2.0])
    data_quality(con, "ref", "empty", {"x": "numerical"})
    register(con, "pairs", prediction=[1.0], ground_truth=[2.0])
    model_performance(con, "pairs", "regression")
    assert con.execute("SELECT 42").fetchall() == [(42,)]


def test_an_empty_production_window_says_so(con: duckdb.DuckDBPyConnection) -> None:
    register(con, "ref", x=[1.0, 2.0], c=["a", "b"])
    register(con, "prod", x=pa.array([], pa.float64()), c=pa.array([], pa.string()))
    features = {"x": "numerical", "c": "categorical"}
    results = data_drift(con, "ref", "prod", features, NUMERICAL + CATEGORICAL)
    assert [(r.feature, r.note, r.production_rows) for r in results] == [
        ("x", "no production data in window", 0),
        ("c", "no production data in window", 0),
    ]
    assert all(value is None for r in results for value in r.values.values())
    assert results[0].breaches() == ()


def test_a_feature_missing_or_all_null_on_one_side_is_noted(con: duckdb.DuckDBPyConnection) -> None:
    register(con, "ref", x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0])
    register(con, "prod", x=pa.array([None, None], pa.float64()), z=[1.0, 2.0])
    features = {"x": "numerical", "y": "numerical"}
    results = data_drift(con, "ref", "prod", features)
    assert [(r.feature, r.values, r.note) for r in results] == [
        ("x", {"normalized_wasserstein_distance": None}, "no production value that is not null"),
        ("y", {"normalized_wasserstein_distance": None}, "missing from the production data"),
    ]


def test_categorical_metrics_agree_with_scipy(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(5)
    ref = rng.choice(["a", "b", "c", "only-ref"], 3_000, p=[0.5, 0.3, 0.15, 0.05]).tolist()
    prod = rng.choice(["a", "b", "c", "new"], 1_000, p=[0.4, 0.3, 0.2, 0.1]).tolist()
    register(con, "ref", **{'the "city"': [*ref, None]})
    register(con, "prod", **{'the "city"': [*prod, None, None]})
    [result] = data_drift(con, "ref", "prod", {'the "city"': "categorical"}, CATEGORICAL)
    categories = sorted(set(ref) | set(prod))
    counts_r = np.array([ref.count(c) for c in categories])
    counts_p = np.array([prod.count(c) for c in categories])
    chi2 = stats.chi2_contingency(np.vstack([counts_r, counts_p]), correction=False)
    assert result.values == {
        "jensen_shannon_distance": close(float(jensenshannon(counts_r, counts_p, base=2))),
        "population_stability_index": close(psi(counts_r, counts_p)),
        "pearsons_chi_squared_test": close(float(chi2.pvalue)),
    }
    assert (result.reference_rows, result.production_rows) == (3_001, 1_002)


def test_one_category_on_both_sides_has_not_drifted(con: duckdb.DuckDBPyConnection) -> None:
    register(con, "ref", c=["a"] * 10)
    register(con, "prod", c=["a"] * 4)
    [result] = data_drift(con, "ref", "prod", {"c": "categorical"}, CATEGORICAL)
    assert result.values == {
        "jensen_shannon_distance": 0.0,
        "population_stability_index": 0.0,
        "pearsons_chi_squared_test": 1.0,
    }


def test_relations_are_any_sql_that_follows_from(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ref, prod = rng.normal(0, 1, 400), rng.normal(0, 1, 300)
    pq.write_table(pa.table({"x": ref}), tmp_path / "ref.parquet")
    pq.write_table(pa.table({"x": prod}), tmp_path / "prod.parquet")
    [result] = data_drift(
        duckdb.connect(),
        f"read_parquet('{tmp_path / 'ref.parquet'}')",
        f"(SELECT * FROM read_parquet('{tmp_path / 'prod.parquet'}'))",
        {"x": "numerical"},
        NUMERICAL,
    )
    assert result.values == {m: close(v) for m, v in expected_numerical(ref, prod).items()}


def traffic(seed: int, shift: float) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)

    def table(n: int, moved: float) -> pa.Table:
        return pa.table(
            {
                "age": rng.normal(40, 12, n) + moved * 12,
                "income": rng.lognormal(10, 0.5, n),
                "score": rng.uniform(0, 1, n),
                "city": rng.choice(["paris", "lyon", "lille", "nice", "nantes"], n),
            }
        )

    return table(5_000, 0.0), table(2_000, shift)


FEATURES = {"age": "numerical", "income": "numerical", "score": "numerical", "city": "categorical"}


def breaches(seed: int, shift: float) -> list[str]:
    con = duckdb.connect()
    ref, prod = traffic(seed, shift)
    con.register("ref", ref)
    con.register("prod", prod)
    return [r.feature for r in data_drift(con, "ref", "prod", FEATURES) if r.breaches()]


def test_a_feature_moved_by_two_standard_deviations_breaches_alone() -> None:
    assert breaches(seed=1, shift=2.0) == ["age"]


def test_unshifted_traffic_breaches_nothing_at_default_thresholds() -> None:
    assert [seed for seed in range(20) if breaches(seed, shift=0.0)] == []


def test_p_values_breach_below_their_threshold_distances_above() -> None:
    assert breached("two_sample_kolmogorov_smirnov_test", 0.01, 0.05)
    assert not breached("two_sample_kolmogorov_smirnov_test", 0.2, 0.05)
    assert breached("normalized_wasserstein_distance", 0.2, 0.1)
    assert not breached("normalized_wasserstein_distance", 0.1, 0.1)
    assert breached("accuracy", 0.8, 0.9)
    assert DEFAULT_THRESHOLDS["jensen_shannon_distance"] == 0.1


def test_an_unknown_metric_is_refused(con: duckdb.DuckDBPyConnection) -> None:
    register(con, "ref", x=[1.0])
    with pytest.raises(MlformError, match="unknown data drift metric `wasserstein`"):
        data_drift(con, "ref", "ref", {"x": "numerical"}, ["wasserstein"])
    with pytest.raises(MlformError, match="cannot read the production data `nowhere`"):
        data_drift(con, "ref", "nowhere", {"x": "numerical"})


def test_feature_types_follow_azures_rule(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(0)
    register(
        con,
        "ref",
        price=rng.normal(0, 1, 1_000),
        count=rng.integers(0, 10_000, 1_000),
        rooms=rng.integers(1, 6, 1_000),
        city=rng.choice(["a", "b"], 1_000),
        member=rng.integers(0, 2, 1_000).astype(bool),
        tags=pa.array([[1]] * 1_000),
    )
    assert feature_types(con, "ref") == {
        "price": "numerical",
        "count": "numerical",
        "rooms": "categorical",  # 5 distinct values in 1,000 rows: under 5%
        "city": "categorical",
        "member": "categorical",
    }
    assert feature_types(con, "ref", ["rooms"]) == {"rooms": "categorical"}
    with pytest.raises(MlformError, match="no column `age` in the reference data"):
        feature_types(con, "ref", ["age"])


def test_data_quality_rates_counted_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    nan = float("nan")
    register(
        con,
        "ref",
        x=[0.0, 5.0, 10.0, None],
        c=["a", "b", "a", "b"],
        n=pa.array([1, 2, 3, 4], pa.int64()),
    )
    register(
        con,
        "prod",
        x=[None, nan, -1.0, 11.0, 5.0, 10.0, 0.0, float("inf")],
        c=["a", "c", None, "b", "d", "a", "a", "a"],
        n=["1", "abc", "2", None, "7", "x", "3", "4"],
    )
    features = {"x": "numerical", "c": "categorical", "n": "numerical"}
    results = {r.feature: r for r in data_quality(con, "ref", "prod", features)}
    assert results["x"].values == {
        "null_value_rate": 2 / 8,
        "data_type_error_rate": 0.0,
        "out_of_bounds_rate": 3 / 8,  # -1, 11 and infinity
    }
    assert results["c"].values == {
        "null_value_rate": 1 / 8,
        "data_type_error_rate": 0.0,
        "out_of_bounds_rate": 2 / 8,  # c and d
    }
    assert results["n"].values == {
        "null_value_rate": 1 / 8,
        "data_type_error_rate": 2 / 8,  # abc and x are no BIGINT
        "out_of_bounds_rate": 1 / 8,  # 7
    }
    assert results["x"].baselines == {
        "null_value_rate": 1 / 4,
        "data_type_error_rate": 0.0,
        "out_of_bounds_rate": 0.0,
    }
    assert results["x"].breaches() == ("out_of_bounds_rate",)  # 2/8 nulls is not above 1/4
    assert results["x"].breaches({"out_of_bounds_rate": 0.5}) == ()


def test_data_quality_of_an_empty_window_or_missing_column(con: duckdb.DuckDBPyConnection) -> None:
    register(con, "ref", x=[1.0, 2.0])
    register(con, "empty", x=pa.array([], pa.float64()))
    register(con, "other", y=[1.0])
    [empty] = data_quality(con, "ref", "empty", {"x": "numerical"}, ["null_value_rate"])
    assert (empty.values, empty.note) == ({"null_value_rate": None}, "no production data in window")
    [missing] = data_quality(con, "ref", "other", {"x": "numerical"})
    assert missing.note == "missing from the production data"
    [unbounded] = data_quality(con, "other", "ref", {"x": "numerical"})
    assert unbounded.values == {
        "null_value_rate": 0.0,
        "data_type_error_rate": None,
        "out_of_bounds_rate": None,
    }
    assert unbounded.note == "missing from the reference data"


def test_classification_performance_agrees_with_scikit_learn(
    con: duckdb.DuckDBPyConnection,
) -> None:
    rng = np.random.default_rng(9)
    truth = rng.choice(["cat", "dog", "fox", "owl"], 500)
    predicted = np.where(rng.random(500) < 0.7, truth, rng.choice(["cat", "dog", "eel"], 500))
    register(
        con, "pairs", prediction=[*predicted.tolist(), None], ground_truth=[*truth.tolist(), "cat"]
    )
    result = model_performance(con, "pairs", "classification")
    assert result.values == {
        "accuracy": close(sk.accuracy_score(truth, predicted)),
        "precision": close(sk.precision_score(truth, predicted, average="macro", zero_division=0)),
        "recall": close(sk.recall_score(truth, predicted, average="macro", zero_division=0)),
    }
    assert result.pairs == 500
    assert result.breaches({"accuracy": 0.99, "precision": 0.01}) == ("accuracy",)


def test_regression_performance_agrees_with_scikit_learn(con: duckdb.DuckDBPyConnection) -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(10, 3, 300)
    predicted = truth + rng.normal(0.5, 1, 300)
    register(con, "pairs", y=[*truth.tolist(), 1.0], yhat=[*predicted.tolist(), float("nan")])
    result = model_performance(con, "pairs", "regression", prediction="yhat", ground_truth="y")
    assert result.values == {
        "mean_absolute_error": close(sk.mean_absolute_error(truth, predicted)),
        "mean_squared_error": close(sk.mean_squared_error(truth, predicted)),
        "root_mean_squared_error": close(sk.root_mean_squared_error(truth, predicted)),
    }
    nothing = "(SELECT y AS ground_truth, yhat AS prediction FROM pairs WHERE false)"
    empty = model_performance(con, nothing, "regression", ["mean_absolute_error"])
    assert (empty.values, empty.pairs) == ({"mean_absolute_error": None}, 0)
