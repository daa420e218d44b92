"""The audit log: who did what, when, in the state's `events` table.

The command line records its own events as it acts (an apply, a token made or revoked);
servers' events (a call denied, a pipeline invoked) come through the journal, which
`ingest` moves into the table. Events whose `actor` is set are the audit log; the other
rows of `events` are an apply's changes, one by one, under the apply's own event.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlform.access import journal
from mlform.state.store import Store

if TYPE_CHECKING:
    import duckdb

CLI = "cli"
_COLUMNS = "occurred_at, apply_id, address, action, status, message, actor, source, event_id"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: float  # epoch seconds
    actor: str
    action: str  # apply | token.create | token.revoke | invoke | denied | dropped
    target: str
    status: str
    message: str
    source: str


def record(
    store: Store,
    actor: str,
    action: str,
    target: str,
    status: str,
    message: str,
    apply_id: str | None = None,
) -> None:
    """Record an event of the command line, in a transaction of its own."""
    with store.transaction(bump=False) as con:
        insert(con, actor, action, target, status, message, apply_id)


def insert(
    con: duckdb.DuckDBPyConnection,
    actor: str,
    action: str,
    target: str,
    status: str,
    message: str,
    apply_id: str | None = None,
) -> None:
    """Record an event of the command line in the transaction `con` is in."""
    con.execute(
        f"insert into events ({_COLUMNS}) values (now(), ?, ?, ?, ?, ?, ?, ?, ?)",
        [apply_id, target, action, status, message, actor, CLI, uuid.uuid4().hex],
    )


def ingest(store: Store, state_dir: Path) -> int:
    """Move the journal's lines into the state: events into `events` (once each, by
    their id), token uses into `tokens.last_used_at`. The count of lines read."""
    file = journal.path(state_dir)
    try:
        if file.stat().st_size == 0:
            return 0
    except FileNotFoundError:
        return 0

    def take(entries: list[journal.Entry]) -> None:
        with store.transaction(bump=False) as con:
            ids = [e.id for e in entries]
            seen = {
                row[0]
                for row in con.execute(
                    "select event_id from events where event_id in (select unnest(?))", [ids]
                ).fetchall()
            }
            rows = [
                [e.at, e.target, e.action, e.status, e.message, e.actor, e.source, e.id]
                for e in entries
                if e.action != "used" and e.id not in seen
            ]
            if rows:
                con.executemany(
                    f"insert into events ({_COLUMNS}) "
                    "values (to_timestamp(?), null, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            last: dict[str, float] = {}
            for e in entries:
                if e.action == "used" and e.token_id is not None:
                    last[e.token_id] = max(e.at, last.get(e.token_id, 0.0))
            for token_id, at in last.items():
                con.execute(
                    "update tokens set last_used_at = to_timestamp(?) where id = ? and "
                    "(last_used_at is null or last_used_at < to_timestamp(?))",
                    [at, token_id, at],
                )

    return journal.drain(file, take)


def events(store: Store, since: float | None = None) -> list[AuditEvent]:
    """The audit log, oldest first; from `since` (epoch seconds) on, if given."""
    where = "actor is not null" + ("" if since is None else " and occurred_at >= to_timestamp(?)")
    rows = store.query(
        "select epoch(occurred_at), actor, action, address, status, coalesce(message, ''), "
        f"coalesce(source, '') from events where {where} order by occurred_at, rowid",
        [] if since is None else [since],
    )
    return [AuditEvent(float(r[0]), *(str(v) for v in r[1:])) for r in rows]
