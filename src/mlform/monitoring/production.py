"""Production data: the rows a deployment scored in a window, as its data capture wrote
them (`mlform.serving.capture`), one SQL row per scored input row, for the signals to
compare with the reference data.

Captures are Parquet files

    <captures>/<endpoint>/<deployment>/date=YYYY-MM-DD/part-*.parquet

of requests: `ts`, `request_id`, and `inputs` and `outputs` as JSON text, what the
scoring script's run() received and returned. A request's `inputs` hold rows:

- a list of rows, `[[5.1, 3.5, 1.4, 0.2], …]` (`{"data": …}`), or of records,
  `[{"sepal_length": 5.1, …}, …]` (MLflow's `dataframe_split` and `dataframe_records`,
  which arrive as a DataFrame and are written as records);
- one row: a flat list of values, or one record.

A row that is a list gives its values to the features by position; a record by name (a
feature it lacks is NULL, a key that is no feature is left out). Anything else (text the
script parsed itself, a value JSON could not hold) gives no row. Its `outputs` give each
row its prediction when they line up one per row: a list of as many values as the
request has rows, or such a list as the `predictions` member (MLflow's answer) or only
member of an object; a single row's prediction may also be one value.

Only the folders of the window's days are listed, so a week's window over a year of
captures reads eight folders at most. Everything is done by DuckDB: JSON is taken apart
with its json functions and `unnest`, and never row by row in Python.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from mlform.errors import MlformError

# JSON's numbers, as DuckDB's json_type names them
_NUMBERS = frozenset({"BIGINT", "UBIGINT", "DOUBLE"})


@dataclass(frozen=True, slots=True)
class _Window:
    """The captured requests of one deployment with `ts` in [start, end)."""

    captures: str
    endpoint: str
    deployment: str
    start: datetime.datetime
    end: datetime.datetime

    @property
    def folder(self) -> str:
        return f"{self.captures.rstrip('/')}/{self.endpoint}/{self.deployment}"

    def days(self) -> list[datetime.date]:
        """The UTC days the window touches, each one folder of captures."""
        if self.end <= self.start:
            return []
        first = self.start.date()
        last = (self.end - datetime.timedelta(microseconds=1)).date()
        return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]

    def files(self, con: duckdb.DuckDBPyConnection) -> list[str]:
        """The capture files of the window's days; listed once, so that every read of the
        window sees the same files while the writer goes on adding to today's folder."""
        patterns = [f"{self.folder}/date={day.isoformat()}/*.parquet" for day in self.days()]
        if not patterns:
            return []
        rows = con.execute("SELECT file FROM glob($patterns) ORDER BY file", {"patterns": patterns})
        return [file for (file,) in rows.fetchall()]

    def parameters(self, files: list[str]) -> dict[str, object]:
        """The parameters of the SQL of the window's rows (`_rows_sql`)."""
        return {"files": files, "start": self.start, "end": self.end}


def _window(
    captures: str, endpoint: str, deployment: str, start: datetime.datetime, end: datetime.datetime
) -> _Window:
    return _Window(captures, endpoint, deployment, _utc(start), _utc(end))


def _utc(moment: datetime.datetime) -> datetime.datetime:
    """`moment` in UTC, the zone of `ts` and of the date folders; naive means UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC)


def production(
    con: duckdb.DuckDBPyConnection,
    captures: str,
    endpoint: str,
    deployment: str,
    start: datetime.datetime,
    end: datetime.datetime,
    features: Sequence[str],
    *,
    outputs: str | None = None,
    name: str = "production",
) -> str:
    """Register in `con` the production data of `deployment` of `endpoint` with `ts` in
    [start, end) (naive times are UTC), as the temporary table `name`, and return that
    name as SQL that can follow FROM.

    One row per scored input row, with a column per feature: DOUBLE where every value
    is a JSON number, BOOLEAN where every value is true or false, else VARCHAR (strings
    as they are, other values as JSON text); NULL where the row has no value. Then `ts`,
    `request_id`, `row` (the row's place in its request, from 0) and, when `outputs`
    names it, the row's prediction, typed the same way: NULL where the outputs do not
    line up one per row. A feature called `ts`, `request_id` or `row` takes that
    column's place. A window without captures gives a table without rows.

    A table rather than a view: the drift metrics read each feature two or three times,
    and each read of a view would take the JSON apart again. Over 490,000 rows of 8
    features, drift and quality ran 10 to 25 times faster over the table, which costs
    two passes over the JSON to fill (one for the columns' types, one for the rows).
    """
    features = list(dict.fromkeys(features))
    if outputs is not None and outputs in features:
        raise MlformError(
            f"the production data's column of predictions cannot be called `{outputs}`: a "
            "monitored feature has that name; list the features to monitor without it "
            "under the signal's `features:`"
        )
    window = _window(captures, endpoint, deployment, start, end)
    files = window.files(con)
    columns = [*features, *([outputs] if outputs is not None else [])]
    kinds = _kinds(con, window, files, features, outputs)
    typed = [f"{_typed(f'v[{i + 1}]', kinds[i])} AS {_quote(c)}" for i, c in enumerate(columns)]
    own = [column for column in ("ts", "request_id", "row") if column not in features]
    source = f"({_values_sql(features, outputs)})" if files else _EMPTY
    table = _quote(name)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {', '.join(typed + own)} FROM {source}",
        window.parameters(files) if files else None,
    )
    return table


# The columns of a window without captures, as _values_sql gives them.
_EMPTY = (
    "(SELECT NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS request_id, NULL::BIGINT AS row, "
    "NULL::JSON[] AS v LIMIT 0)"
)


def _kinds(
    con: duckdb.DuckDBPyConnection,
    window: _Window,
    files: list[str],
    features: Sequence[str],
    outputs: str | None,
) -> list[str]:
    """The SQL type of each feature (and of the predictions, last), from the JSON types
    of its values in the window."""
    count = len(features) + (outputs is not None)
    if not files or not count:
        return ["DOUBLE"] * count
    seen = ", ".join(f"list(DISTINCT json_type(v[{i + 1}]))" for i in range(count))
    [row] = con.execute(
        f"SELECT {seen} FROM ({_values_sql(features, outputs)})", window.parameters(files)
    ).fetchall()
    # list() over no rows is NULL
    return [_kind({k for k in kinds or () if k not in (None, "NULL")}) for kinds in row]


def _kind(types: set[str]) -> str:
    """The SQL type of a column whose values have the JSON `types` (nulls aside)."""
    if types <= _NUMBERS:
        return "DOUBLE"
    if types == {"BOOLEAN"}:
        return "BOOLEAN"
    return "VARCHAR"


def _typed(value: str, kind: str) -> str:
    """SQL for the JSON `value` as SQL type `kind`: strings unquoted in VARCHAR."""
    if kind == "VARCHAR":
        return f"({value} ->> '$')"
    return f"TRY_CAST({value} AS {kind})"


def _rows_sql(outputs: bool) -> str:
    """SQL of the window's rows: `ts`, `request_id`, `row`, `r` the row as JSON and, with
    `outputs`, `p` its prediction as JSON; parameters $files, $start and $end."""
    answer = (
        ", CASE try(json_type(outputs)) WHEN 'OBJECT' THEN coalesce(json_extract(outputs, "
        "'$.predictions'), CASE WHEN len(json_keys(outputs)) = 1 THEN json_extract(outputs, "
        "'$.*')[1] END) ELSE try(outputs::JSON) END AS answer"
        if outputs
        else ""
    )
    predictions = (
        ", CASE json_type(answer) WHEN 'ARRAY' THEN json_extract(answer, '$[*]') "
        "ELSE [answer] END AS predictions"
        if outputs
        else ""
    )
    prediction = (
        ", unnest(CASE WHEN len(predictions) = len(rows) THEN predictions ELSE [] END) AS p"
        if outputs
        else ""
    )
    return f"""
        WITH requests AS (
            SELECT ts, request_id, inputs, try(json_type(inputs, ['$', '$[0]'])) AS shape{answer}
            FROM read_parquet($files)
            WHERE ts >= $start AND ts < $end
        ), shaped AS (
            SELECT ts, request_id, CASE
                WHEN shape[2] IN ('ARRAY', 'OBJECT') THEN json_extract(inputs, '$[*]')
                WHEN shape[1] = 'OBJECT' OR shape[2] IS NOT NULL THEN [inputs::JSON]
                ELSE []::JSON[]
            END AS rows{predictions}
            FROM requests
        )
        SELECT ts, request_id, unnest(rows) AS r, unnest(range(len(rows))) AS row{prediction}
        FROM shaped
    """


def _values_sql(features: Sequence[str], outputs: str | None) -> str:
    """SQL of the window's rows with `v`: each feature's value as JSON, then the
    prediction's; one parse of each row gets them all."""
    positions = [f"'$[{i}]'" for i in range(len(features))]
    names = [_literal(_member(feature)) for feature in features]
    paths = ", ".join([*positions, *names]) or "'$[0]'"
    count = len(features)
    values = [f"coalesce(e[{i + 1}], e[{count + i + 1}])" for i in range(count)]
    if outputs is not None:
        values.append("p")
    return f"""
        SELECT ts, request_id, row, [{", ".join(values)}]::JSON[] AS v
        FROM (SELECT *, json_extract(r, [{paths}]) AS e FROM ({_rows_sql(outputs is not None)}))
    """


def infer_features(
    con: duckdb.DuckDBPyConnection,
    captures: str,
    endpoint: str,
    deployment: str,
    start: datetime.datetime,
    end: datetime.datetime,
    reference_columns: Sequence[str],
    target: str | None = None,
) -> list[str]:
    """The features to monitor, from the rows captured in the window: the keys of the
    records (in the reference's column order, then those the reference lacks, sorted);
    for rows that are lists, the reference's columns but the target, which must be as
    many as the rows' values. Without a row in the window, the reference's columns but
    the target."""
    columns = [c for c in reference_columns if c != target]
    if target is not None and len(columns) == len(reference_columns):
        raise MlformError(
            f"the target column `{target}` is not a column of the reference data, whose "
            f"columns are {_listed(reference_columns)}: name one of them as the target "
            "(`target_column_name`, or `data_column_names.target_column`), or none"
        )
    window = _window(captures, endpoint, deployment, start, end)
    files = window.files(con)
    if not files:
        return columns
    shapes = con.execute(
        f"""SELECT DISTINCT kind, width, key FROM (
                SELECT json_type(r) AS kind,
                    CASE WHEN kind = 'ARRAY' THEN json_array_length(r) END AS width,
                    unnest(CASE WHEN kind = 'OBJECT' THEN json_keys(r) ELSE [NULL] END) AS key
                FROM ({_rows_sql(False)}))""",
        window.parameters(files),
    ).fetchall()
    widths = sorted({width for kind, width, _ in shapes if kind == "ARRAY"})
    keys = {key for kind, _, key in shapes if kind == "OBJECT" and key != target}
    if widths and widths != [len(columns)]:
        raise MlformError(_mismatch(window, widths, columns, target))
    seen = (set(columns) if widths else set()) | keys
    if not seen:
        return columns
    return [c for c in columns if c in seen] + sorted(keys - set(columns))


def _mismatch(
    window: _Window, widths: Sequence[int], columns: Sequence[str], target: str | None
) -> str:
    """Rows of another width than the reference's features: what was seen, and how to
    say which columns the rows hold."""
    seen = " and ".join(map(str, widths))
    besides = f" besides the target `{target}`" if target is not None else ""
    fix = (
        "List the columns the rows hold, in their order, under the signal's `features:`"
        if target is not None
        else "If one of them is the target, name it (`target_column_name`, or "
        "`data_column_names.target_column`); else list the columns the rows hold, in "
        "their order, under the signal's `features:`"
    )
    return (
        f"the requests captured from endpoint `{window.endpoint}` deployment "
        f"`{window.deployment}` hold rows of {seen} value{'s' if widths != [1] else ''}, "
        "which are matched to the reference data's columns by position, but it has "
        f"{len(columns)}{besides}: {_listed(columns)}. {fix}"
    )


def _listed(names: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) or "none"


def _member(key: str) -> str:
    """The JSON path of an object's member `key`."""
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote(name: str) -> str:
    """`name` as an SQL identifier (as `relations.quote`, which would load NumPy)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """`text` as an SQL string."""
    return "'" + text.replace("'", "''") + "'"
