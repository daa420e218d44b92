"""The runs table: one page of runs, filtered, searched and sorted in the state itself, so
that a workspace of 10,000 runs costs what one page of them costs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlform.runs import COLUMNS, Run, from_rows
from mlform.state.store import Store
from mlform.studio import search

PAGE_SIZES = (25, 50, 100, 200)
_SORTS = {
    "started": "started_at",
    "created": "created_at",
    "duration": "duration",
    "status": "status",
    "experiment": "experiment",
    "name": "name",
}


@dataclass(frozen=True, slots=True)
class Query:
    """What the runs page was asked for (its URL's parameters)."""

    experiment: str = ""
    status: str = ""
    tag: str = ""  # KEY=VALUE
    search: str = ""
    sort: str = "created"  # a column of _SORTS, or metrics.KEY / params.KEY
    descending: bool = True
    page: int = 1
    size: int = 50
    metrics: tuple[str, ...] = ()  # the metric columns shown (none chosen: the first few)
    params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    runs: list[Run]
    total: int  # runs that match, on every page
    metrics: tuple[str, ...]
    params: tuple[str, ...]
    experiments: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)
    param_keys: list[str] = field(default_factory=list)

    def pages(self, size: int) -> int:
        return max(1, -(-self.total // size))


def table(store: Store, query: Query) -> Table:
    """One page of the runs the query selects, with the columns it shows."""
    where, params = _where(query)
    (total,), *_ = store.query(f"select count(*) from runs where {where}", params)
    order, order_params = _order(query)
    offset = (max(1, query.page) - 1) * query.size
    rows = store.query(
        f"select {COLUMNS} from runs where {where} order by {order} "
        f"limit {int(query.size)} offset {int(offset)}",
        [*params, *order_params],
    )
    runs = from_rows(store, rows)
    metric_keys = [r[0] for r in store.query("select distinct key from metrics order by key")]
    param_keys = [r[0] for r in store.query("select distinct key from params order by key")]
    return Table(
        runs=runs,
        total=int(total),
        metrics=query.metrics or tuple(metric_keys[:4]),
        params=query.params or tuple(param_keys[:3]),
        experiments=[r[0] for r in store.query("select name from experiments order by name")],
        statuses=[r[0] for r in store.query("select distinct status from runs order by 1")],
        metric_keys=metric_keys,
        param_keys=param_keys,
    )


def _where(query: Query) -> tuple[str, list[Any]]:
    parts = ["parent_id is null"]  # a pipeline's steps and a sweep's trials: on its page
    params: list[Any] = []
    if query.experiment:
        parts.append("experiment = ?")
        params.append(query.experiment)
    if query.status:
        parts.append("status = ?")
        params.append(query.status)
    if query.tag:
        key, _, value = query.tag.partition("=")
        parts.append("id in (select run_id from tags where key = ? and value = ?)")
        params.extend([key.strip(), value.strip()])
    if query.search.strip():
        sql, found = search.where(search.parse(query.search))
        parts.append(f"({sql})")
        params.extend(found)
    return " and ".join(parts), params


_BY_KEY = {  # a column of a metric's last value, or of a param's value
    "metrics.": "(select arg_max(value, (step, ts)) from metrics "
    "where run_id = runs.id and key = ?)",
    "params.": "(select any_value(value) from params where run_id = runs.id and key = ?)",
}


def _order(query: Query) -> tuple[str, list[Any]]:
    way = "desc" if query.descending else "asc"
    for prefix, column in _BY_KEY.items():
        if query.sort.startswith(prefix):
            key = query.sort.removeprefix(prefix)
            return f"{column} {way} nulls last, created_at desc, seq desc", [key]
    column = _SORTS.get(query.sort, "created_at")
    return f"{column} {way} nulls last, seq {way}", []
