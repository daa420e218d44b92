"""SQL over the relations a monitor reads (SQL that can follow FROM: a table, a view,
`read_parquet('…')`), shared by the signals: identifiers, column types, values as DOUBLE,
results as one row or as NumPy columns, each category's counts on both sides (data drift
and data quality), and each numerical column's finite range and count (data drift). Apart
from the signals' modules so that each reads a relation the same way and holds only its
own metrics.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
from numpy.typing import NDArray

from mlform.errors import MlformError

_NUMERIC = frozenset(
    {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint"}
    | {"uinteger", "ubigint", "uhugeint", "float", "double", "decimal"}
)


def quote(name: str) -> str:
    """`name` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def columns_of(
    con: duckdb.DuckDBPyConnection, relation: str, side: str
) -> dict[str, duckdb.sqltypes.DuckDBPyType]:
    """The columns of `relation` (SQL that can follow FROM) and their types; reading it
    is not started."""
    try:
        described = con.sql(f"SELECT * FROM {relation}")
        return dict(zip(described.columns, described.types, strict=True))
    except duckdb.Error as err:
        raise MlformError(f"cannot read the {side} data `{relation}`: {err}") from err


def is_numeric(kind: duckdb.sqltypes.DuckDBPyType) -> bool:
    """Whether a column of type `kind` holds numbers (integers, floats, decimals)."""
    return kind.id in _NUMERIC


def as_double(name: str, kind: duckdb.sqltypes.DuckDBPyType) -> str:
    """SQL for column `name` as DOUBLE: NULL where a value of another type is no number."""
    cast = "CAST" if is_numeric(kind) else "TRY_CAST"
    return f"{cast}({quote(name)} AS DOUBLE)"


def one_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object] | None = None
) -> tuple[Any, ...]:
    """The one row of an aggregate query without GROUP BY; read to its end, so that the
    connection is left with no result pending."""
    [row] = con.execute(sql, params).fetchall()
    return row


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, object]) -> dict[str, Any]:
    """`sql`'s result as NumPy columns, given those of `params` it names (DuckDB refuses
    a parameter the query does not use)."""
    named = {key: value for key, value in params.items() if re.search(rf"\${key}\b", sql)}
    return con.execute(sql, named).fetchnumpy()


def _array(result: Mapping[str, Any], key: str, dtype: type[Any]) -> NDArray[Any]:
    return np.asarray(result[key], dtype=dtype)


def _finite_profile(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    kinds: Mapping[str, duckdb.sqltypes.DuckDBPyType],
    numerical: Sequence[str],
) -> tuple[int, dict[str, tuple[float, float, int]]]:
    """The relation's row count, and each numerical column's finite minimum, maximum and
    count. Plain minima and maxima come from a Parquet file's statistics without reading
    it; only a column holding NaN (which sorts above every number) or an infinity is
    read again for its finite ones."""
    present = [name for name in numerical if name in kinds]
    values = {name: as_double(name, kinds[name]) for name in present}
    parts = ["count(*)"]
    for v in values.values():
        parts += [
            f"min({v})",
            f"max({v})",
            f"count({v})",
            f"coalesce(count_if(NOT isfinite({v})), 0)",
        ]
    row = one_row(con, f"SELECT {', '.join(parts)} FROM {relation}")
    profile = {
        name: (row[1 + 4 * i], row[2 + 4 * i], int(row[3 + 4 * i]) - int(row[4 + 4 * i]))
        for i, name in enumerate(present)
    }
    unbounded = [name for i, name in enumerate(present) if row[4 + 4 * i]]
    if unbounded:
        finite = [
            f"CASE WHEN isfinite({values[name]}) THEN {values[name]} END" for name in unbounded
        ]
        extremes = one_row(
            con, f"SELECT {', '.join(f'min({f}), max({f})' for f in finite)} FROM {relation}"
        )
        for i, name in enumerate(unbounded):
            profile[name] = (extremes[2 * i], extremes[2 * i + 1], profile[name][2])
    return int(row[0]), profile


def category_counts(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    production: str,
    feature: str,
    ref_kinds: Mapping[str, duckdb.sqltypes.DuckDBPyType],
    prod_kinds: Mapping[str, duckdb.sqltypes.DuckDBPyType],
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """How many times each category (each value that is neither NULL nor NaN) occurs in
    the reference and in production, over the categories either has. Production values
    of another type than the reference's are converted to it; those that do not convert
    are left out, as data type errors."""
    ref_kind, prod_kind = ref_kinds[feature], prod_kinds[feature]
    ref_value = _category(feature, ref_kind, quote(feature))
    prod_value = _category(
        feature,
        prod_kind,
        quote(feature) if prod_kind == ref_kind else f"TRY_CAST({quote(feature)} AS {ref_kind})",
    )
    rows = con.execute(
        f"""SELECT v, count_if(s) AS cr, count_if(NOT s) AS cp FROM (
                SELECT {ref_value} AS v, true AS s FROM {reference}
                UNION ALL SELECT {prod_value}, false FROM {production})
            WHERE v IS NOT NULL GROUP BY v"""
    ).fetchall()
    counts_r = np.array([row[1] for row in rows], dtype=np.int64)
    counts_p = np.array([row[2] for row in rows], dtype=np.int64)
    return counts_r, counts_p


def _category(name: str, kind: duckdb.sqltypes.DuckDBPyType, value: str) -> str:
    if kind.id in ("float", "double"):
        return f"CASE WHEN NOT isnan({quote(name)}) THEN {value} END"
    return value
