"""Free ports for the servers the tests start.

A port found by binding port 0 is free only until it is let go: the kernel gives the
same range (`ip_local_port_range`) to every outgoing connection as its local port, so on a
busy machine a connection can take it before the server binds it. A Ray head whose
dashboard agent lost its port that way came up without the agent and answered every job
with "No available agent to submit job". So ports are taken below that range, where the
kernel gives none out by itself, and above Ray's worker ports (10002-19999); none is given
twice in a session."""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20000
_given: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing holds and that no outgoing connection will take."""
    top = _ephemeral_start()
    for _ in range(200):
        port = random.randrange(LOWEST, top)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port between {LOWEST} and {top}")


def _ephemeral_start() -> int:
    """The first port the kernel gives to outgoing connections (Linux's default 32768)."""
    try:
        first = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
    if first - LOWEST < 1000:
        raise RuntimeError(
            f"ip_local_port_range starts at {first}: the tests need ports {LOWEST}-"
            f"{LOWEST + 1000} out of it (sysctl -w net.ipv4.ip_local_port_range='32768 60999')"
        )
    return first
