"""The monitors pages: each monitor applied with what its latest run found, and one
monitor's history as heat maps, one per signal: a row per feature and metric, a column
per run (oldest on the left), each cell coloured by its value against the threshold it
was held to — pale below, amber at it, red at twice it (or at anything above a nil
threshold) — and marked when it breached.
A metric without a threshold is shaded against the largest value of its row."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from mlform.kinds.schedule import due
from mlform.state import monitors
from mlform.state.monitors import Recorded
from mlform.state.store import Store
from mlform.studio.render import page
from mlform.workspace import Workspace

HISTORY = 30  # runs a heat map shows
# (position, colour): 0 no drift, 1 at the threshold, 2 twice it or more
_SCALE = ((0.0, (0xF3, 0xF7, 0xFB)), (1.0, (0xFD, 0xB8, 0x63)), (2.0, (0xB2, 0x18, 0x2B)))
_UNHELD = ((0.0, (0xF3, 0xF7, 0xFB)), (1.0, (0x9E, 0xB9, 0xD4)))


@dataclass(frozen=True, slots=True)
class Cell:
    text: str
    background: str
    colour: str
    breached: bool
    title: str


@dataclass(frozen=True, slots=True)
class Row:
    feature: str
    metric: str
    threshold: float | None
    cells: list[Cell | None]  # None: not computed in that run


@dataclass(frozen=True, slots=True)
class HeatMap:
    signal: str
    signal_type: str
    columns: list[tuple[str, str]]  # (run id, window end) per run, oldest first
    rows: list[Row]
    notes: list[str]  # a run's note on the whole signal (no data in its window, …)


def monitors_list(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    found = []
    if ws.state_exists():
        with ws.store("studio") as store:
            for record in due.applied(store, "monitor"):
                latest = monitors.history(store, record.address, 1)
                found.append(
                    {
                        "name": record.name,
                        "target": str(record.outputs.get("target", "")),
                        "trigger": str(record.outputs.get("trigger", "")),
                        "run": latest[0] if latest else None,
                        "breached": latest[0].breaches() if latest else [],
                    }
                )
    return page(request, "monitors.html", title="Monitors", monitors=found, when=_when)


def monitor_page(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    name = request.path_params["name"]
    address = f"monitor/{name}"
    with ws.store("studio") as store:
        applied = {r.name for r in due.applied(store, "monitor")}
        if name not in applied:
            known = ", ".join(sorted(applied)) or "none"
            message = f"no monitor named {name} is applied (monitors: {known})"
            return page(
                request, "missing.html", title="No such monitor", message=message, status=404
            )
        history = monitors.history(store, address, HISTORY)[::-1]
    return page(
        request,
        "monitor.html",
        title=f"Monitor {name}",
        name=name,
        maps=heat_maps(history),
        runs=len(history),
        latest=history[-1] if history else None,
        when=_when,
    )


def heat_maps(history: Sequence[Recorded]) -> list[HeatMap]:
    """One heat map per signal over `history` (oldest first)."""
    columns = [(r.run_id, _when(r.end)) for r in history]
    signals: dict[str, str] = {}
    for recorded in history:
        for value in recorded.values:
            signals.setdefault(value.signal, value.signal_type)
    # each run's values by what they measure, looked up once a cell
    measured = [{(v.signal, v.feature, v.metric): v for v in r.values} for r in history]
    maps = []
    for signal, signal_type in signals.items():
        keys: dict[tuple[str, str], float | None] = {}
        notes: list[str] = []
        for recorded in history:
            for v in recorded.values:
                if v.signal != signal:
                    continue
                if v.feature is None:
                    if v.note:
                        notes.append(f"{_when(recorded.end)}: {v.note}")
                    continue
                keys[(v.feature, v.metric)] = v.threshold  # the latest run's threshold
        rows = []
        for (feature, metric), threshold in sorted(keys.items()):
            values = [run.get((signal, feature, metric)) for run in measured]
            largest = max(
                (abs(v.value) for v in values if v is not None and v.value is not None),
                default=0.0,
            )
            cells = [None if v is None else _cell(v, largest) for v in values]
            rows.append(Row(feature, metric, threshold, cells))
        maps.append(HeatMap(signal, signal_type, columns, rows, notes[-5:]))
    return maps


def _cell(value: monitors.Value, largest: float) -> Cell:
    if value.value is None:
        return Cell("–", "#ffffff", "#1b1f24", False, value.note or "not computed")
    if value.threshold is not None:
        if value.threshold == 0:  # a rate that should stay nil: any is as bad as can be
            position = 0.0 if value.value == 0 else 2.0
        else:
            position = min(abs(value.value) / abs(value.threshold), 2.0)
        background = _colour(_SCALE, position)
        title = f"{value.value:.4g} against the threshold {value.threshold:.4g}"
    else:
        position = abs(value.value) / largest if largest else 0.0
        background = _colour(_UNHELD, position)
        title = f"{value.value:.4g} (no threshold)"
    if value.breached:
        title += ": breached"
    return Cell(f"{value.value:.3g}", _hex(background), _text_on(background), value.breached, title)


def _colour(scale: Sequence[tuple[float, tuple[int, int, int]]], at: float) -> tuple[int, ...]:
    for (low, a), (high, b) in itertools.pairwise(scale):
        if at <= high:
            share = (at - low) / (high - low)
            return tuple(round(x + (y - x) * share) for x, y in zip(a, b, strict=True))
    return scale[-1][1]


def _hex(rgb: Sequence[int]) -> str:
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _luminance(rgb: Sequence[int]) -> float:
    """WCAG's relative luminance."""
    linear = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _text_on(rgb: Sequence[int]) -> str:
    """Black or white, whichever contrasts more with the cell."""
    light = _luminance(rgb)
    return "#000000" if (light + 0.05) / 0.05 >= 1.05 / (light + 0.05) else "#ffffff"


def latest_breaches(store: Store, monitor: str) -> list[str]:
    """Where the monitor's latest run found a breach; none before it has run."""
    latest = monitors.history(store, monitor, 1)
    return latest[0].breaches() if latest else []


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
