"""Data drift, feature by feature, against Evidently on the same Parquet files, in one run.

Targets:
- on 1,000,000 rows a side (reference and production) of 10 numerical and 2 categorical
  columns, mlform's whole process is ≥ 20 × faster than Evidently's, and its peak
  resident memory is at most a third of Evidently's;
- mlform on 10,000,000 rows a side takes ≤ 12 × its time on 1,000,000 (Evidently is not
  run there).

Each side is a new process doing the whole job: read the two Parquet files, compute each
column's drift tests, hand back each column's results. mlform's script calls
`feature_types` and `data_drift` over DuckDB's `read_parquet`; Evidently's reads the files
with `pandas.read_parquet` and runs a `Report` of its data drift preset
(`DataDriftPreset`) on `Dataset`s told which columns are numerical and which categorical.
Wall clock from start to exit, and the peak RSS of that one process (`wait4`).

Two jobs, each the same tests on both sides:
- default: the normalized Wasserstein distance of each numerical column and the
  Jensen-Shannon distance of each categorical one. These are mlform's (Azure's) default
  metrics, and what Evidently's preset picks by itself above 1,000 rows; it is told
  (`num_method="wasserstein", cat_method="jensenshannon"`).
- every test: everything mlform computes: Wasserstein, Kolmogorov-Smirnov, Jensen-Shannon
  and PSI for numerical columns, Jensen-Shannon, PSI and chi-squared for categorical
  ones. Evidently's preset runs one test a column, so its report holds four presets, one
  a test: (wasserstein, jensenshannon), (ks, psi), (jensenshannon, chisquare), and psi
  over the numerical columns.

Evidently's preset computes each column's test more than once (for its count of drifted
columns, for each column's `ValueDrift`, and for the table it renders), so a report of
`ValueDrift` metrics alone, one per column, is timed beside it as information.

The data is generated once with NumPy (seeded) into benchmarks/.work/drift/ and reused
while the generator is unchanged. Evidently (a heavy install) lives in its own virtual
environment, benchmarks/.work/evidently-venv, made on first use.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import (
    BYTECODE,
    WORK,
    Comparison,
    WorkerFailed,
    at_most,
    duration,
    report,
    times,
    verdict,
    worker,
)

describe = "per-column data drift of two Parquet files vs Evidently's preset (1M and 10M rows)"

HERE = Path(__file__).resolve()
EVIDENTLY_VENV = WORK / "evidently-venv"
# what the figures in the README were measured with; Evidently 0.7.23 imports a pandas
# internal that pandas 3 no longer has
EVIDENTLY = ("evidently==0.7.23", "pandas<3")

# (rows a side, rows a side for the growth check, mlform's rounds, Evidently's rounds)
FULL = (1_000_000, 10_000_000, 5, 2)
QUICK = (100_000, 1_000_000, 1, 1)

TARGET_SPEED = 20.0
TARGET_MEMORY = 3.0
TARGET_GROWTH = 12.0

NUMERICAL = tuple(f"num_{i}" for i in range(10))
CATEGORICAL = ("cat_0", "cat_1")
JOBS = ("default", "every")
TESTS = {
    "default": {"numerical": ("wasserstein",), "categorical": ("jensenshannon",)},
    "every": {
        "numerical": ("wasserstein", "ks", "jensenshannon", "psi"),
        "categorical": ("jensenshannon", "psi", "chisquare"),
    },
}
TESTS["values"] = TESTS["default"]  # Evidently's ValueDrift metrics, without the preset
LABELS = {"default": "default tests", "every": "every test"}
STAMP = ".bench.json"


# -- the generated data ------------------------------------------------------------------
# Everything in this section feeds the cache key: edit it and the files are rebuilt.

CHUNK = 1_000_000  # rows generated and written at a time: one Parquet row group each
SEED = 20_251


def generate(folder: str, rows: str) -> dict[str, Any]:
    """reference.parquet and production.parquet of `rows` rows each; production has moved
    in num_0 (mean), num_1 (spread) and cat_0 (proportions)."""
    import numpy as np
    import pyarrow.parquet as pq

    n = int(rows)
    Path(folder).mkdir(parents=True)
    for side, production in (("reference", False), ("production", True)):
        writer = None
        for chunk in range(max(1, n // CHUNK)):
            rng = np.random.default_rng([SEED, int(production), chunk])
            table = _chunk(rng, min(n, CHUNK), production=production)
            writer = writer or pq.ParquetWriter(Path(folder) / f"{side}.parquet", table.schema)
            writer.write_table(table)
        assert writer is not None
        writer.close()
    return {"rows": n}


def _chunk(rng: Any, n: int, *, production: bool) -> Any:
    import numpy as np
    import pyarrow as pa

    columns = {
        "num_0": rng.normal(0.25 if production else 0.0, 1.0, n),
        "num_1": rng.normal(50.0, 12.0 if production else 10.0, n),
        "num_2": rng.lognormal(0.0, 0.75, n),
        "num_3": rng.exponential(2.0, n),
        "num_4": rng.uniform(0.0, 100.0, n),
        "num_5": rng.gamma(2.0, 2.0, n),
        "num_6": np.round(rng.lognormal(3.0, 0.5, n), 2),  # a price, in cents
        "num_7": np.round(np.clip(rng.normal(40.0, 12.0, n), 18, 90)),  # an age
        "num_8": rng.beta(2.0, 5.0, n),
        "num_9": rng.standard_t(5, n),
    }
    table = {name: pa.array(values) for name, values in columns.items()}
    # a column with gaps: 2 % of num_2 and 1 % of cat_1 are null
    table["num_2"] = pa.array(columns["num_2"], mask=rng.random(n) < 0.02)
    shares = [0.25, 0.25, 0.2, 0.15, 0.15] if production else [0.35, 0.25, 0.2, 0.15, 0.05]
    table["cat_0"] = _categories(rng, n, [f"segment_{i}" for i in range(5)], shares)
    zipf = 1.0 / np.arange(1, 41)
    cat_1 = _categories(rng, n, [f"region_{i:02d}" for i in range(40)], zipf / zipf.sum())
    table["cat_1"] = pa.array(cat_1.to_pylist(), mask=rng.random(n) < 0.01)
    return pa.table(table)


def _categories(rng: Any, n: int, names: list[str], shares: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    codes = pa.array(rng.choice(len(names), n, p=shares).astype(np.int32))
    return pa.DictionaryArray.from_arrays(codes, names).dictionary_decode()


_GENERATOR = (generate, _chunk, _categories)


def cache_key(rows: int) -> str:
    source = "".join(inspect.getsource(f) for f in _GENERATOR)
    text = f"{rows}\0{CHUNK}\0{SEED}\0{source}"
    return hashlib.sha256(text.encode()).hexdigest()


def prepare(rows: int) -> Path:
    """The folder holding the two files of `rows` rows, generated unless its stamp matches."""
    folder = WORK / "drift" / f"n{rows}"
    key = cache_key(rows)
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("key") != key:
        if folder.exists():
            shutil.rmtree(folder)
        print(f"   generating {rows:,} rows a side (not timed) …", flush=True)
        # in a process of its own: see `measure`
        worker(HERE, "generate", str(folder), str(rows))
        (folder / STAMP).write_text(json.dumps({"key": key}), encoding="utf-8")
    return folder


def _read_through(folder: Path) -> None:
    """Read the files once, so that both sides find them in the page cache."""
    for name in ("reference.parquet", "production.parquet"):
        with (folder / name).open("rb") as file:
            while file.read(1 << 24):
                pass


# -- Evidently -----------------------------------------------------------------------------


def evidently_python() -> Path:
    """Evidently in its own virtual environment (it pulls in much mlform's must not have)."""
    python = EVIDENTLY_VENV / "bin" / "python"
    stamp = EVIDENTLY_VENV / ".bench-requirements"
    wanted = " ".join(EVIDENTLY)
    if python.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == wanted:
        return python
    print(f"   installing {wanted} into {EVIDENTLY_VENV} (first run only) …", flush=True)
    if EVIDENTLY_VENV.exists():
        shutil.rmtree(EVIDENTLY_VENV)
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *EVIDENTLY], check=True)
    stamp.write_text(wanted, encoding="utf-8")
    return python


# -- running a side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall clock, start to exit
    cpu: float  # user and system CPU time, every thread
    peak_kib: int  # the process's peak resident set size
    result: dict[str, Any]


def measure(side: str, job: str, folder: Path, evidently: Path) -> Measured:
    """`python drift.py --worker SIDE JOB FOLDER` as a new process, with mlform's
    interpreter or Evidently's; its last line of output is the JSON it answered."""
    python, env = (evidently, {}) if side == "evidently" else (Path(sys.executable), BYTECODE)
    command = [str(python), str(HERE), "--worker", side, job, str(folder)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env={**os.environ, **env})
        # this child's own usage, where getrusage(RUSAGE_CHILDREN) would give the largest
        # of every child waited for so far. Linux counts in a child's peak the peak of the
        # process that started it (exec records the memory it replaces): this one must
        # stay small, which is why the data is generated in a process of its own.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        printed = out.read().decode(errors="replace")
        problems = err.read().decode(errors="replace")
    lines = printed.strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = "\n".join((printed + problems).strip().splitlines()[-15:])
        raise WorkerFailed(f"`{side} {job}` exited {process.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    _check_columns(side, job, result["columns"])
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, result)


def _check_columns(side: str, job: str, columns: dict[str, dict[str, float]]) -> None:
    expected = {name: set(TESTS[job]["numerical"]) for name in NUMERICAL} | {
        name: set(TESTS[job]["categorical"]) for name in CATEGORICAL
    }
    got = {name: set(tests) for name, tests in columns.items()}
    if got != expected:
        raise WorkerFailed(f"{side} computed {got} for `{job}`, not {expected}")


def agreement(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Where both sides compute the same figure, it must be the same; raises when not.
    Evidently divides the Wasserstein distance by the reference's population standard
    deviation (mlform by the sample's) and takes the Jensen-Shannon distance in base e
    (mlform in base 2, so Evidently's is √ln 2 times mlform's)."""
    worst = {"wasserstein": 0.0, "categorical jensenshannon": 0.0, "ks": 0.0}
    for name, values in ours.items():
        other = theirs[name]
        pairs = [("ks", values.get("ks"), other.get("ks"), False)]
        if name in NUMERICAL:
            pairs.append(("wasserstein", values["wasserstein"], other["wasserstein"], True))
        else:
            scaled = values["jensenshannon"] * math.sqrt(math.log(2))
            pairs.append(("categorical jensenshannon", scaled, other["jensenshannon"], True))
        for test, a, b, relative in pairs:
            if a is None or b is None:
                continue
            gap = abs(a - b) / max(abs(b), 1e-12) if relative else abs(a - b)
            if gap > 1e-4:
                raise WorkerFailed(f"{name} {test}: mlform {a!r}, Evidently {b!r}")
            worst[test] = max(worst[test], gap)
    return (
        f"Wasserstein within {worst['wasserstein']:.0e} (relative), categorical "
        f"Jensen-Shannon within {worst['categorical jensenshannon']:.0e} (relative, "
        f"base 2 against base e), KS p-values within {worst['ks']:.0e}"
    )


# -- the benchmark ---------------------------------------------------------------------------


def run(*, quick: bool = False) -> bool:
    rows, big, rounds, peer_rounds = QUICK if quick else FULL
    try:
        evidently = evidently_python()
        small_data, big_data = prepare(rows), prepare(big)
        # untimed: mlform's modules compiled into the bytecode cache, Evidently's install
        # read once, both files in the page cache
        _warm_up(evidently, small_data)
        _read_through(big_data)
        runs: dict[tuple[str, str, int], list[Measured]] = {}
        for i in range(rounds):  # taking turns, so a busier moment slows both alike
            for job in JOBS:
                turn = [("mlform", job, small_data, rows), ("mlform", job, big_data, big)]
                if i < peer_rounds:
                    turn.append(("evidently", job, small_data, rows))
                    if job == "default":
                        turn.append(("evidently", "values", small_data, rows))
                for side, name, folder, n in reversed(turn) if i % 2 else turn:
                    measured = measure(side, name, folder, evidently)
                    runs.setdefault((side, name, n), []).append(measured)
        agreed = {
            job: agreement(
                runs["mlform", job, rows][0].result["columns"],
                runs["evidently", job, rows][0].result["columns"],
            )
            for job in JOBS
        }
    except WorkerFailed as err:
        print(f"   a side failed, so there is no figure. {err}")
        return False

    peer = runs["evidently", "default", rows][0].result
    size = sum((small_data / n).stat().st_size for n in ("reference.parquet", "production.parquet"))
    print(
        f"   data: {rows:,} rows a side, {len(NUMERICAL)} numerical + {len(CATEGORICAL)} "
        f"categorical columns, two Parquet files of {size / 2 / 1e6:,.0f} MB; production "
        f"moved in num_0, num_1 and cat_0"
    )
    print(
        f"   Evidently {peer['version']} (pandas {peer['pandas']}, pyarrow {peer['pyarrow']}); "
        f"mlform on DuckDB {runs['mlform', 'default', rows][0].result['duckdb']}"
    )
    comparisons = []
    for job in JOBS:
        ours, theirs = runs["mlform", job, rows], runs["evidently", job, rows]
        label = LABELS[job]
        comparisons += [
            Comparison(
                f"{label}: time (whole process)",
                duration(_median_seconds(ours)),
                duration(_median_seconds(theirs)),
                _median_seconds(theirs) / _median_seconds(ours),
                TARGET_SPEED,
            ),
            Comparison(
                f"{label}: peak RSS (Evidently's ÷ mlform's)",
                _mib(_median_peak(ours)),
                _mib(_median_peak(theirs)),
                _median_peak(theirs) / _median_peak(ours),
                TARGET_MEMORY,
            ),
        ]
    ok = report(f"Evidently {peer['version']}", comparisons)
    for job in JOBS:
        growth = _median_seconds(runs["mlform", job, big]) / _median_seconds(
            runs["mlform", job, rows]
        )
        met = at_most(growth, TARGET_GROWTH)
        ok = ok and met
        print(
            f"   check mlform {_rows(big)} / {_rows(rows)} rows, {LABELS[job]} = "
            f"{times(growth, up=True)} ≤ {TARGET_GROWTH:g}×  {verdict(met)}"
        )
    for job in JOBS:
        print(
            f"   mlform     {job:<7} {_rows(rows)}: {_spread(runs['mlform', job, rows])} · "
            f"{_rows(big)}: {_spread(runs['mlform', job, big])}"
        )
    for job in (*JOBS, "values"):
        what = "ValueDrift only" if job == "values" else job
        print(f"   Evidently  {what:<7} {_rows(rows)}: {_spread(runs['evidently', job, rows])}")
    lean = _median_seconds(runs["evidently", "values", rows])
    print(
        f"   Evidently's default tests as ValueDrift metrics alone (no preset; information): "
        f"{times(lean / _median_seconds(runs['mlform', 'default', rows]))} mlform's time"
    )
    cpu = {
        (side, job): statistics.median(r.cpu for r in runs[side, job, rows])
        for side in ("mlform", "evidently")
        for job in (*JOBS, "values")
        if (side, job, rows) in runs
    }
    print(
        f"   CPU time (user + system, all threads; information), {_rows(rows)}: default tests "
        f"mlform {duration(cpu['mlform', 'default'])}, Evidently "
        f"{duration(cpu['evidently', 'default'])} = "
        f"{times(cpu['evidently', 'default'] / cpu['mlform', 'default'])} · every test "
        f"{duration(cpu['mlform', 'every'])}, {duration(cpu['evidently', 'every'])} = "
        f"{times(cpu['evidently', 'every'] / cpu['mlform', 'every'])} · ValueDrift only "
        f"{duration(cpu['evidently', 'values'])} = "
        f"{times(cpu['evidently', 'values'] / cpu['mlform', 'default'])}"
    )
    print(f"   agreement, default tests: {agreed['default']}")
    print(f"   agreement, every test: {agreed['every']}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"   medians of {rounds} rounds for mlform and {peer_rounds} for Evidently, taking "
        f"turns; files in the page cache; load average {_load()}; this process peaked at "
        f"{_mib(own)}, under every side's figure"
    )
    return ok


def _warm_up(evidently: Path, folder: Path) -> None:
    measure("mlform", "every", folder, evidently)
    done = subprocess.run(
        [str(evidently), str(HERE), "--worker", "imports"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise WorkerFailed(f"Evidently's imports failed:\n{done.stderr[-2000:]}")


def _median_seconds(runs: list[Measured]) -> float:
    return statistics.median(r.seconds for r in runs)


def _median_peak(runs: list[Measured]) -> float:
    return statistics.median(r.peak_kib for r in runs)


def _mib(kib: float) -> str:
    return f"{kib / 1024:,.0f} MiB"


def _rows(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def _spread(runs: list[Measured]) -> str:
    """Each run's wall clock, peak RSS and the side's own breakdown of the median run."""
    each = ", ".join(duration(r.seconds) for r in runs)
    median = sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]
    parts = " + ".join(f"{name} {duration(s)}" for name, s in median.result["seconds"].items())
    cpu = duration(statistics.median(r.cpu for r in runs))
    return f"{each} (peak {_mib(_median_peak(runs))}, CPU {cpu}; {parts})"


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# -- the two sides ---------------------------------------------------------------------------


def _mlform(job: str, folder: str) -> dict[str, Any]:
    started = time.perf_counter()
    import duckdb

    from mlform.monitoring.metrics import DRIFT_METRICS, data_drift, feature_types
    from mlform.monitoring.names import (
        CHI_SQUARED,
        JENSEN_SHANNON,
        KOLMOGOROV_SMIRNOV,
        PSI,
        WASSERSTEIN,
    )

    imported = time.perf_counter()
    con = duckdb.connect()
    reference = f"read_parquet('{folder}/reference.parquet')"
    production = f"read_parquet('{folder}/production.parquet')"
    types = feature_types(con, reference)
    wanted = None if job == "default" else [*DRIFT_METRICS["numerical"], CHI_SQUARED]
    results = data_drift(con, reference, production, types, wanted)
    done = time.perf_counter()
    names = {
        WASSERSTEIN: "wasserstein",
        KOLMOGOROV_SMIRNOV: "ks",
        JENSEN_SHANNON: "jensenshannon",
        PSI: "psi",
        CHI_SQUARED: "chisquare",
    }
    if types != dict.fromkeys(NUMERICAL, "numerical") | dict.fromkeys(CATEGORICAL, "categorical"):
        raise SystemExit(f"mlform took the columns for {types}")
    return {
        "duckdb": duckdb.__version__,
        "seconds": {"imports": imported - started, "read and drift": done - imported},
        "columns": {r.feature: {names[m]: v for m, v in r.values.items()} for r in results},
    }


def _evidently_metrics(job: str) -> list[Any]:
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if job == "values":
        return [ValueDrift(column=c, method="wasserstein") for c in NUMERICAL] + [
            ValueDrift(column=c, method="jensenshannon") for c in CATEGORICAL
        ]
    if job == "default":
        return [DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon")]
    return [
        DataDriftPreset(num_method="wasserstein", cat_method="jensenshannon"),
        DataDriftPreset(num_method="ks", cat_method="psi"),
        DataDriftPreset(num_method="jensenshannon", cat_method="chisquare"),
        DataDriftPreset(columns=list(NUMERICAL), num_method="psi"),
    ]


def _evidently(job: str, folder: str) -> dict[str, Any]:
    started = time.perf_counter()
    import evidently
    import pandas as pd
    import pyarrow
    from evidently import DataDefinition, Dataset, Report

    imported = time.perf_counter()
    reference = pd.read_parquet(f"{folder}/reference.parquet")
    production = pd.read_parquet(f"{folder}/production.parquet")
    read = time.perf_counter()
    definition = DataDefinition(
        numerical_columns=list(NUMERICAL), categorical_columns=list(CATEGORICAL)
    )
    snapshot = Report(_evidently_metrics(job)).run(
        current_data=Dataset.from_pandas(production, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    columns: dict[str, dict[str, float]] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns.setdefault(config["column"], {})[config["method"]] = float(metric["value"])
    done = time.perf_counter()
    return {
        "version": evidently.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "seconds": {
            "imports": imported - started,
            "read_parquet": read - imported,
            "report": done - read,
        },
        "columns": columns,
    }


def _imports() -> dict[str, Any]:
    import evidently.metrics
    import evidently.presets
    import pandas

    return {"evidently": evidently.__version__, "pandas": pandas.__version__}


WORKERS = {"mlform": _mlform, "evidently": _evidently, "imports": _imports, "generate": generate}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(WORKERS[sys.argv[2]](*sys.argv[3:])))
    else:
        sys.exit(0 if run(quick="--quick" in sys.argv) else 1)
