"""The server's own output, masked: what the scoring script prints or logs, in init() or
run(), and what its C extensions and subprocesses write, shows its secret values as ***.

At startup, before the scoring script is imported, file descriptors 1 and 2 become pipes
that threads of this process copy, masked, to where they went (the deployment's log, or
the container's output). Which values to mask comes from the environment
(`masking.variables`). Before the process ends (at exit, or by SIGTERM or SIGINT, which
then still end it by that signal), what the pipes hold is let out.

With several workers, each worker masks its own output too, in front of the supervisor's
relays: two workers printing a value at once, each in two writes, would otherwise reach
the supervisor's pipe interleaved, in pieces that are no longer the value. A worker lets
out whole lines, so that two workers' lines do not merge in the log either.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from types import FrameType

from starlette.applications import Starlette

from mlform.masking import Masker
from mlform.masking.relay import TakeOver
from mlform.masking.variables import from_environment


def mask_output() -> Masker:
    """Mask this process's stdout and stderr if its environment names secrets; the
    masker, for the other places the server writes what it was sent (data capture)."""
    masker = from_environment(os.environ)
    if not masker:
        return masker
    taken = TakeOver(masker)
    atexit.register(taken.end, back=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ended_then_raised(taken))
    return masker


def mask_worker_output() -> Callable[[Starlette], Starlette]:
    """In a worker of `--workers`, whose stdout and stderr are the supervisor's masked
    pipes: mask its own output in front of them, from now until the app the returned
    function is given shuts down. The worker then ends by the signal that stopped it,
    without exit handlers; what it writes after its app has shut down goes straight to
    the supervisor's pipes again, and nothing is lost."""
    masker = from_environment(os.environ)
    if not masker:
        return lambda app: app
    taken = TakeOver(masker, whole_lines=True)
    atexit.register(taken.end, back=True)

    @contextlib.asynccontextmanager
    async def lifespan(_: object) -> AsyncIterator[None]:
        try:
            yield
        finally:
            taken.end(back=True)

    def until_shutdown(app: Starlette) -> Starlette:
        app.router.lifespan_context = lifespan
        return app

    return until_shutdown


def _ended_then_raised(taken: TakeOver) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        taken.end(back=False)
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    return handler
