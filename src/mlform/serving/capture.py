"""Data capture: sampled scoring inputs and outputs, appended as Parquet files.

What Azure ML's data collector does, for drift monitoring to read later with DuckDB:

    <root>/captures/<endpoint>/<deployment>/date=YYYY-MM-DD/part-<epoch_ms>-<pid>-<seq>.parquet

with the columns `ts` (timestamp[ms, UTC]), `request_id`, `endpoint`, `deployment`,
`inputs` and `outputs` (JSON text, encoded as `scoring.to_json` encodes run()'s result,
so numpy and pandas values are written as plain JSON, the deployment's secret values
masked as `***`). DuckDB reads them as

    select date, json_extract(inputs, '$[0]') from read_parquet(
        '<root>/captures/iris/blue/*/*.parquet', hive_partitioning = true)

The request path pays for a sampling decision and a deque append (`Capture.offer`);
encoding and writing happen on a daemon thread, every `flush_seconds` or as soon as
`max_batch` records wait. Each file is written under a temporary name in its folder and
renamed, so readers never see a partial file. pyarrow is imported by that thread only:
deployments without capture never need it.
"""

from __future__ import annotations

import atexit
import datetime
import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlform.masking import Masker
from mlform.serving.scoring import BadResult, to_json

logger = logging.getLogger("mlform.serving.capture")

MAX_PENDING = 100_000

# (ts in epoch seconds, request_id, inputs, outputs), as offer() queued it.
_Record = tuple[float, str, Any, Any]

# Process-wide, so two Captures of one deployment never pick the same file name.
_sequence = itertools.count()


class Capture:
    """Sampled (inputs, outputs) of one deployment, written off the request thread.

    Sampling is random, not a counter: each offer is kept when `random() < sampling_rate`
    (seeded by `seed`), so traffic with a period cannot line up with the sample. 1.0
    keeps everything, 0.0 nothing.

    Counters: `captured` records queued, `dropped` records refused because `max_pending`
    were already waiting (the disk is slower than the traffic) or offered after close(),
    `written_rows` and `written_files` what reached the disk, `errors` batches that failed
    to write (logged; their records are lost). `captured` and `dropped` are exact when
    offer() is called from one thread, as the server's event loop does.
    """

    def __init__(
        self,
        root: Path,
        endpoint: str,
        deployment: str,
        *,
        sampling_rate: float = 1.0,
        flush_seconds: float = 1.0,
        max_batch: int = 1000,
        max_pending: int = MAX_PENDING,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
        masker: Masker | None = None,
    ) -> None:
        for what, name in (("endpoint", endpoint), ("deployment", deployment)):
            if not name or name.startswith(".") or "/" in name or os.sep in name:
                raise ValueError(
                    f"capture {what} name {name!r} cannot be a folder name; use letters, "
                    "digits and dashes"
                )
        if not 0.0 <= sampling_rate <= 1.0:
            raise ValueError(f"capture sampling_rate must be between 0 and 1, not {sampling_rate}")
        if flush_seconds <= 0 or max_batch < 1 or max_pending < 1:
            raise ValueError("capture flush_seconds, max_batch and max_pending must be positive")
        self.folder = Path(root) / "captures" / endpoint / deployment
        self.endpoint = endpoint
        self.deployment = deployment
        self.sampling_rate = sampling_rate
        self.flush_seconds = flush_seconds
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.captured = 0
        self.dropped = 0
        self.written_rows = 0
        self.written_files = 0
        self.errors = 0
        self._masker = masker
        self._clock = clock
        self._random = random.Random(seed).random
        self._pending: deque[_Record] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._write_loop, name=f"mlform-capture-{endpoint}-{deployment}", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def offer(self, inputs: Any, outputs: Any, request_id: str) -> None:
        """Maybe capture one scored request: what run() received and what it returned.

        Cheap and safe on the request path: it never blocks, touches the disk or raises.
        The values are encoded later, by the writer, so they must not be mutated after.
        """
        try:
            if self._random() >= self.sampling_rate:
                return
            pending = self._pending
            if self._closing or len(pending) >= self.max_pending:
                self.dropped += 1
                return
            pending.append((self._clock(), request_id, inputs, outputs))
            self.captured += 1
            if len(pending) >= self.max_batch and not self._wake.is_set():
                self._wake.set()
        except Exception:  # an injected clock, say; a request must never fail for capture
            self.dropped += 1
            logger.exception("capture of request %s failed", request_id)

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything pending and stop the writer; later calls do nothing.

        Waits at most `timeout` seconds for the writer (a hung disk must not hang exit).
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error(
                "capture writer for %s/%s did not finish within %s s; %d records were not written",
                self.endpoint,
                self.deployment,
                timeout,
                len(self._pending),
            )

    def _write_loop(self) -> None:
        _warm_up()
        pending = self._pending
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            # Read before draining: a close() that lands mid-drain gets one more pass.
            closing = self._closing
            while pending:
                batch = [pending.popleft() for _ in range(min(self.max_batch, len(pending)))]
                try:
                    self._write_batch(batch)
                except Exception:  # a bug here must not stop the writer for good
                    self.errors += 1
                    logger.exception("capture lost a batch of %d records", len(batch))
            if closing:
                return

    def _write_batch(self, batch: list[_Record]) -> None:
        by_date: dict[str, list[tuple[int, str, str | None, str | None]]] = {}
        for ts, request_id, inputs, outputs in batch:
            ms = int(ts * 1000)
            day = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).date().isoformat()
            row = (
                ms,
                request_id,
                self._encode(inputs, request_id),
                self._encode(outputs, request_id),
            )
            by_date.setdefault(day, []).append(row)
        for day, rows in by_date.items():
            folder = self.folder / f"date={day}"
            try:
                self._write_file(folder, rows)
            except Exception as err:
                self.errors += 1
                logger.error(
                    "capture could not write %d records to %s: %s: %s; they are lost. Check "
                    "that the folder is writable and the disk has space",
                    len(rows),
                    folder,
                    type(err).__name__,
                    err,
                )
            else:
                self.written_files += 1
                self.written_rows += len(rows)

    def _encode(self, value: Any, request_id: str) -> str | None:
        text = _encode(value, request_id)
        return self._masker.text(text) if self._masker and text is not None else text

    def _write_file(
        self, folder: Path, rows: Iterable[tuple[int, str, str | None, str | None]]
    ) -> None:
        import pyarrow  # type: ignore[import-untyped]
        import pyarrow.parquet  # type: ignore[import-untyped]

        stamps, ids, inputs, outputs = zip(*rows, strict=True)
        table = pyarrow.table(
            {
                "ts": pyarrow.array(stamps, pyarrow.timestamp("ms", tz="UTC")),
                "request_id": pyarrow.array(ids, pyarrow.string()),
                "endpoint": pyarrow.array([self.endpoint] * len(ids), pyarrow.string()),
                "deployment": pyarrow.array([self.deployment] * len(ids), pyarrow.string()),
                "inputs": pyarrow.array(inputs, pyarrow.string()),
                "outputs": pyarrow.array(outputs, pyarrow.string()),
            }
        )
        folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{int(self._clock() * 1000)}-{os.getpid()}-{next(_sequence)}.parquet"
        # A dot name outside the *.parquet glob: readers never pick up a half-written file.
        temporary = folder / f".{name}.tmp"
        try:
            pyarrow.parquet.write_table(table, temporary)
            os.replace(temporary, folder / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _warm_up() -> None:
    """Import pyarrow and everything a first write imports, now rather than at exit.

    close() often runs from atexit, when importing a module that starts a thread pool
    fails (write_table imports pandas, which imports concurrent.futures): a first write
    then would lose its records. One tiny write to memory imports them all.
    """
    try:
        import pyarrow
        import pyarrow.parquet

        pyarrow.parquet.write_table(pyarrow.table({"x": [1]}), pyarrow.BufferOutputStream())
    except Exception as err:
        logger.error(
            "capture cannot write Parquet files: %s: %s; install pyarrow in the deployment's "
            "environment, or turn data capture off",
            type(err).__name__,
            err,
        )


def _encode(value: Any, request_id: str) -> str | None:
    """`value` as JSON text, or None (null in the file) when JSON cannot hold it."""
    try:
        return to_json(value).decode("ascii")
    except BadResult:
        logger.warning(
            "capture of request %s: a value of type %s cannot be encoded as JSON; written as null",
            request_id,
            type(value).__name__,
        )
        return None
