"""A socket for one of mlform's own servers (the pipeline endpoint, the agent), bound
before uvicorn is handed it, so that a port in use is the user's error, said plainly."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from mlform.errors import MlformError


@dataclass(frozen=True)
class Listening:
    sock: socket.socket
    port: int  # the one bound: given, or picked by the system for port 0
    shown: str  # the host as a URL writes it ([::1] for IPv6)


def listen(host: str, port: int) -> Listening:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise MlformError(
            f"cannot listen on {host}:{port} ({err.strerror}); pick another with --port"
        ) from None
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return Listening(sock, int(sock.getsockname()[1]), shown)
