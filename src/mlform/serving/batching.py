"""Concurrent requests scored together: one run() call for the rows of many.

A one-row prediction costs a scikit-learn model nearly what a fifty-row one does: the
fixed cost of validating a DataFrame and checking its feature names (about 0.3 ms)
dwarfs the arithmetic. When clients send requests at the same time, a scoring script that
scores each row on its own can take all of their rows in one call, and each client gets
its own rows' results. This is what BentoML calls adaptive batching and Ray Serve
`@serve.batch`; Azure ML's online endpoints have no such thing, so a script asks for it:

    MLFORM_PARSED_INPUT = True
    MLFORM_BATCHABLE = True    # run() gives one result per input row, in order

Nothing waits for a batch to fill: the requests that have arrived while the previous call
ran are the next batch (at most `MOST` of them), so an idle deployment answers a lone
request as fast as before, and a busy one makes fewer, larger calls.

Requests of up to `MOST_ROWS` rows join one call only when their rows would make the same
DataFrame apart from its length: the same payload key (`dataframe_split` without an index,
`dataframe_records`, or `data`/`instances`/`inputs` holding rows), the same columns, and
in each column values of one Python type (so pandas infers the same dtypes for the
combined rows as for each request's own). Any other request is scored alone.

The combined call's result is cut back into one part per request (a list, tuple, numpy
array or pandas object with one entry per row). When the call raises, each request is
scored alone, so only the one at fault gets the error (a 400 for its BadPayload). When
the result cannot be cut (a dict, a scalar, the wrong length), the script does not score
rows on its own after all: each request is scored alone, batching stops for this process
and the log says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlform.serving.placement import Placement
from mlform.serving.scoring import (
    BATCH_MARKER,
    ScoringScript,
    ServingError,
    parse_payload,
    read_json,
)

logger = logging.getLogger("mlform.serving")

MOST = 32  # requests in one run() call
# A request with more rows is scored alone: the fixed cost of a call is already small
# beside its rows, and checking each value's type would cost more than sharing saves.
MOST_ROWS = 64

_ROW_KEYS = ("data", "instances", "inputs")
_SCALARS = (int, float, str, bool, type(None))
_INT64 = (-(2**63), 2**63)


@dataclass(frozen=True)
class Rows:
    """One request's payload as rows that may join other requests' rows."""

    key: str  # the payload's key
    shape: tuple[Any, ...]  # the columns and each column's type: requests of one shape join
    rows: list[Any]


@dataclass
class _Waiting:
    rows: Rows
    payload: Any
    request_id: str
    future: asyncio.Future[bytes]
    outcome: bytes | BaseException | None = field(default=None)


class Batcher:
    """Scores `script` for requests that arrive together with as few run() calls as their
    shapes allow; run() is called where `placement` says (the loop or a thread).

    A request that cannot join others is given to `alone`, read as JSON. One whose answer takes
    longer than `timeout` seconds gets TimeoutError; its call goes on, for the others.
    """

    def __init__(
        self,
        script: ScoringScript,
        placement: Placement,
        alone: Callable[[Any, str], Awaitable[bytes]],
        *,
        timeout: float | None = None,
        most: int = MOST,
    ) -> None:
        self.script = script
        self.placement = placement
        self.alone = alone
        self.timeout = timeout
        self.most = most
        self.enabled = True
        self.calls = 0  # run() calls made for requests that could join others
        self.requests = 0  # those requests
        self._pending: list[_Waiting] = []
        self._drain: asyncio.Task[None] | None = None

    async def score(self, body: bytes, request_id: str) -> bytes:
        """The answer to one request, scored with whatever requests arrive with it."""
        self.script.require_ready()
        payload = read_json(body)
        rows = rows_of(payload) if self.enabled else None
        if rows is None:
            return await self.alone(payload, request_id)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(rows, payload, request_id, loop.create_future())
        self._pending.append(waiting)
        if self._drain is None:
            # A task's first step runs after the requests already read in this turn of the
            # loop have reached this point: they are all in the first batch.
            self._drain = loop.create_task(self._run_pending())
        async with asyncio.timeout(self.timeout):
            return await waiting.future

    async def _run_pending(self) -> None:
        batch: list[_Waiting] = []
        try:
            while self._pending:
                batch = self._pending[: self.most]
                del self._pending[: self.most]
                try:
                    await self.placement.call(self._score, batch)
                except BaseException as err:  # a bug here, or shutdown: nobody waits forever
                    for waiting in batch:
                        if waiting.outcome is None:
                            waiting.outcome = err
                    raise
                finally:
                    _settle(batch)
        finally:
            self._drain = None
            for waiting in self._pending:
                waiting.future.cancel()
            self._pending.clear()

    def _score(self, batch: list[_Waiting]) -> None:
        """Score `batch`: each group of one shape in one call where it can. Runs on the
        loop or in a thread: it only sets outcomes, which `_settle` hands out."""
        groups: dict[tuple[str, tuple[Any, ...]], list[_Waiting]] = {}
        for waiting in batch:
            groups.setdefault((waiting.rows.key, waiting.rows.shape), []).append(waiting)
        for group in groups.values():
            if len(group) == 1 or not self.enabled or not self._together(group):
                for waiting in group:
                    waiting.outcome = self._alone(waiting)

    def _together(self, group: list[_Waiting]) -> bool:
        """One call for the rows of `group`; False (nothing answered) if each must be
        scored alone."""
        key = group[0].rows.key
        counts = [len(waiting.rows.rows) for waiting in group]
        rows = [row for waiting in group for row in waiting.rows.rows]
        try:
            data = _data(key, group[0].rows, rows)
            result = self.script.call(data)
        except ServingError as err:
            logger.debug("a call for %d requests raised %s: each is scored alone", len(group), err)
            return False
        parts = cut(result, counts)
        if parts is None:
            self.enabled = False
            logger.warning(
                "%s sets %s, but run() returned %s for %d rows, not one result per row; "
                "requests are scored one at a time from now on",
                self.script.name,
                BATCH_MARKER,
                _described(result),
                sum(counts),
            )
            return False
        self.calls += 1
        self.requests += len(group)
        start = 0
        for waiting, part, count in zip(group, parts, counts, strict=True):
            try:
                waiting.outcome = self.script.answer(
                    _part(data, start, start + count), part, waiting.request_id
                )
            except ServingError as err:
                waiting.outcome = err
            start += count
        return True

    def _alone(self, waiting: _Waiting) -> bytes | BaseException:
        try:
            return self.script.score_parsed(waiting.payload, waiting.request_id)
        except Exception as err:
            return err


def _settle(batch: Sequence[_Waiting]) -> None:
    for waiting in batch:
        future, outcome = waiting.future, waiting.outcome
        if future.done():  # its client gave up (a timeout, a disconnect)
            continue
        if outcome is None or isinstance(outcome, asyncio.CancelledError):
            future.cancel()
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def rows_of(payload: Any) -> Rows | None:
    """The rows of a request body parsed as JSON, if they may join other requests' rows;
    None for a body that is scored alone."""
    if not isinstance(payload, dict) or len(payload) != 1:
        return None
    ((key, value),) = payload.items()
    if key == "dataframe_split":
        if not isinstance(value, dict) or value.keys() != {"columns", "data"}:
            return None  # with an index, or not a split at all (run alone, refused alone)
        columns, rows = value["columns"], value["data"]
        if not isinstance(columns, list) or not all(_name(column) for column in columns):
            return None
        types = _list_types(rows, len(columns))
        return None if types is None else Rows(key, (tuple(columns), types), rows)
    if key == "dataframe_records" or (key in _ROW_KEYS and _records(value)):
        shape = _record_shape(value)
        return None if shape is None else Rows(key, shape, value)
    if key in _ROW_KEYS and isinstance(value, list) and value and isinstance(value[0], list):
        types = _list_types(value, len(value[0]))
        return None if types is None else Rows(key, ((), types), value)
    return None


def _records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


def _name(column: Any) -> bool:
    return isinstance(column, str | int | float) and not isinstance(column, bool)


def _list_types(rows: Any, width: int) -> tuple[type, ...] | None:
    """The type of each column of `rows` (lists of `width` scalars), if every row has the
    same ones; None if not, if there are no rows, or more than MOST_ROWS."""
    if not isinstance(rows, list) or not rows or len(rows) > MOST_ROWS:
        return None
    first = rows[0]
    if not isinstance(first, list) or len(first) != width:
        return None
    types = tuple(map(type, first))
    if not all(t in _SCALARS for t in types):
        return None
    for row in rows:
        if not isinstance(row, list) or tuple(map(type, row)) != types or not _fits(row):
            return None
    return types


def _record_shape(records: Any) -> tuple[Any, ...] | None:
    """The keys of `records` (objects with the same keys in the same order) and the type
    of each value, if every record has the same ones; None if not."""
    if not _records(records) or len(records) > MOST_ROWS:
        return None
    keys = tuple(records[0])
    types = tuple(type(value) for value in records[0].values())
    if not all(t in _SCALARS for t in types):
        return None
    for record in records:
        if (
            not isinstance(record, dict)
            or tuple(record) != keys
            or tuple(map(type, record.values())) != types
            or not _fits(record.values())
        ):
            return None
    return (keys, types)


def _fits(values: Any) -> bool:
    """No integer outside int64, where pandas would pick another dtype for it alone."""
    low, high = _INT64
    return all(low <= value < high for value in values if type(value) is int)


def _data(key: str, first: Rows, rows: list[Any]) -> Any:
    """What run() gets for `rows` of one shape: what it would get for one request."""
    if key == "dataframe_split":
        columns = list(first.shape[0])
        return parse_payload({key: {"columns": columns, "data": rows}})
    return parse_payload({key: rows})


def _part(data: Any, start: int, stop: int) -> Any:
    """Rows `start` to `stop` of what run() got: one request's share, for data capture."""
    iloc = getattr(data, "iloc", None)
    return iloc[start:stop] if iloc is not None else data[start:stop]


def cut(result: Any, counts: Sequence[int]) -> list[Any] | None:
    """`result` cut into consecutive parts of `counts` entries; None if it is not one
    entry per row (a dict, a string, a scalar, another length)."""
    if isinstance(result, str | bytes | bytearray | dict):
        return None
    try:
        if len(result) != sum(counts):
            return None
        iloc = getattr(result, "iloc", None)
        take = iloc.__getitem__ if iloc is not None else result.__getitem__
        parts, start = [], 0
        for count in counts:
            parts.append(take(slice(start, start + count)))
            start += count
    except (TypeError, AttributeError, KeyError):
        return None
    return parts


def _described(result: Any) -> str:
    try:
        return f"a {type(result).__name__} of length {len(result)}"
    except TypeError:
        return f"a {type(result).__name__}"
