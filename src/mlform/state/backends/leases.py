"""What both remote locks share: a lease that lapses unless renewed, and the messages.

A remote lock is taken for LEASE seconds and renewed every RENEW seconds by a
background thread while its process runs. A process that dies, however it dies, stops
renewing, and its lock lapses within LEASE seconds: nothing waits forever, and
`mlform force-unlock ID` frees it at once. A process that stalls past LEASE loses the
lock; it notices before its next write (`check`), which is refused rather than made
beside another writer's.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import fields

from mlform.errors import StateLocked
from mlform.state.lock import LockInfo

LEASE = 30  # seconds: Azure's leases take 15-60
RENEW = 10.0
POLL = 1.0  # seconds between tries while waiting for a lock


class Renewal:
    """Calls `renew` every RENEW seconds until stopped; remembers why it failed."""

    def __init__(self, url: str, renew: Callable[[], None]) -> None:
        self.url = url
        self._renew = renew
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._run, name="mlform-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RENEW):
            try:
                self._renew()
            except Exception as err:  # any failure: the lock can no longer be vouched for
                self.lost = str(err).splitlines()[0] if str(err) else type(err).__name__
                return

    def check(self) -> None:
        if self.lost is not None:
            raise StateLocked(
                f"the lock on the state {self.url} was lost ({self.lost}): another process "
                "may have taken it. Nothing more is written; run `mlform plan` to see where "
                "things stand, then apply again"
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class HeldLease:
    """A lock taken and renewed in the background; a backend says how to let it go."""

    def __init__(
        self, url: str, info: LockInfo, earlier: LockInfo | None, renew: Callable[[], None]
    ) -> None:
        self.info = info
        self.interrupted = earlier
        self._renewal = Renewal(url, renew)

    def check(self) -> None:
        self._renewal.check()

    def release(self) -> None:
        self._renewal.stop()
        if self._renewal.lost is not None:
            return  # someone else's now
        with contextlib.suppress(Exception):  # else it lapses within LEASE seconds
            self._let_go()

    def _let_go(self) -> None:
        raise NotImplementedError


def refusal(url: str, holder: LockInfo | None) -> str:
    if holder is None:
        return f"the state {url} is locked by another process; try again in a moment"
    return (
        f"the state {url} is locked by {holder.describe()}. Wait for it to finish, or, if "
        f"no mlform process is running, run `mlform force-unlock {holder.id}` (a lock "
        f"whose process died lapses by itself within {LEASE} s)"
    )


def waiting(take: Callable[[], object | None], wait: float) -> object | None:
    """Call `take` until it returns something or `wait` seconds have passed."""
    deadline = time.monotonic() + wait
    while True:
        got = take()
        if got is not None or time.monotonic() >= deadline:
            return got
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))


def parse_info(data: bytes) -> LockInfo | None:
    """The holder a lock object names; None for an empty or unreadable one."""
    try:
        found = json.loads(data or b"null")
        if not isinstance(found, dict):
            return None
        return LockInfo(**{f.name: found[f.name] for f in fields(LockInfo)})
    except (ValueError, TypeError, KeyError):
        return None
