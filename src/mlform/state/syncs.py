"""What `mlform agent` records in the state: the commits it reconciled, and the plans it
holds back for approval (tables `syncs` and `approvals`, migration 0011_agent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlform.state.store import Store


@dataclass(frozen=True, slots=True)
class Sync:
    commit: str
    branch: str | None
    at: datetime
    result: str  # applied | no changes | failed | invalid | waiting for approval
    detail: str | None


@dataclass(frozen=True, slots=True)
class Approval:
    commit: str
    plan: str  # the digest of the plan's changes: an approval is for that plan only
    summary: str
    requested_at: datetime
    approved_at: datetime | None
    approved_by: str | None


def last(store: Store, *, applied: bool = False) -> Sync | None:
    """The latest sync (with `applied`: the latest whose commit the state reflects)."""
    where = "where result in ('applied', 'no changes')" if applied else ""
    rows = store.query(
        "select commit_sha, branch, synced_at, result, detail from syncs "
        f"{where} order by synced_at desc limit 1"
    )
    return Sync(*rows[0]) if rows else None


def record(store: Store, commit: str, branch: str | None, result: str, detail: str = "") -> None:
    """Add a sync, unless it says what the latest already says (a loop that waits, or
    fails the same way, ticks without filling the table)."""
    latest = last(store)
    if latest is not None and (latest.commit, latest.result) == (commit, result):
        return
    with store.transaction(bump=False) as con:
        con.execute(
            "insert into syncs values (?, ?, now(), ?, ?)", [commit, branch, result, detail]
        )


def request(store: Store, commit: str, plan: str, summary: str) -> Approval:
    """The approval `plan` waits for, asked for once."""
    found = approval(store, commit, plan)
    if found is not None:
        return found
    with store.transaction(bump=False) as con:
        con.execute(
            "insert into approvals values (?, ?, ?, now(), null, null)", [commit, plan, summary]
        )
    found = approval(store, commit, plan)
    assert found is not None
    return found


def approval(store: Store, commit: str, plan: str) -> Approval | None:
    rows = store.query(
        "select commit_sha, plan, summary, requested_at, approved_at, approved_by from approvals "
        "where commit_sha = ? and plan = ? order by requested_at desc limit 1",
        [commit, plan],
    )
    return Approval(*rows[0]) if rows else None


def waiting(store: Store) -> list[Approval]:
    rows = store.query(
        "select commit_sha, plan, summary, requested_at, approved_at, approved_by from approvals "
        "where approved_at is null order by requested_at"
    )
    return [Approval(*row) for row in rows]


def approve(store: Store, approval: Approval, who: str) -> None:
    with store.transaction(bump=False) as con:
        con.execute(
            "update approvals set approved_at = now(), approved_by = ? "
            "where commit_sha = ? and plan = ? and approved_at is null",
            [who, approval.commit, approval.plan],
        )
