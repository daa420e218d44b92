"""The servers' journal: whole lines, private, bounded, and emptied only once taken."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlform.access import journal


def test_lines_are_taken_then_the_file_is_emptied(tmp_path: Path) -> None:
    log = journal.Journal(tmp_path, "pipeline endpoint")
    log.record("denied", "anonymous", "GET /pipelines", 401, "no credential")
    log.record("invoke", "ci-bot", "pipeline/echo", 202, "run echo_1")
    assert log.file.stat().st_mode & 0o777 == 0o600
    taken: list[journal.Entry] = []
    assert journal.drain(log.file, taken.extend) == 2
    assert [(e.action, e.actor, e.target, e.status, e.source) for e in taken] == [
        ("denied", "anonymous", "GET /pipelines", "401", "pipeline endpoint"),
        ("invoke", "ci-bot", "pipeline/echo", "202", "pipeline endpoint"),
    ]
    assert log.file.read_bytes() == b""

    log.record("denied", "anonymous", "GET /pipelines", 401, "x")

    def fail(entries: list[journal.Entry]) -> None:
        raise RuntimeError("the state could not be written")

    with pytest.raises(RuntimeError):
        journal.drain(log.file, fail)
    assert len(log.file.read_text().splitlines()) == 1  # kept for the next ingest


def test_a_full_journal_counts_what_it_drops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal, "MAX_SIZE", 1)
    log = journal.Journal(tmp_path, "pipeline endpoint")
    for _ in range(4):
        log.record("denied", "anonymous", "GET /pipelines", 401, "no credential")
    assert len(log.file.read_text().splitlines()) == 1
    taken: list[journal.Entry] = []
    journal.drain(log.file, taken.extend)
    log.record("denied", "anonymous", "GET /pipelines", 401, "no credential")
    journal.drain(log.file, taken.extend)
    assert [(e.action, e.message) for e in taken] == [
        ("denied", "no credential"),
        ("dropped", "3 audit events dropped: the journal was full"),
        ("denied", "no credential"),
    ]
