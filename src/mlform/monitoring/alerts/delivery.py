"""What became of an alert on one channel: `Delivery`, with the `Reason` code and the
`AlertError` a channel raises when it fails.

The channels share these, and the two helpers that keep their messages alike: `_network`
words a failure to reach a server at all, and `_scrub` takes secrets out of a message.
They live here, not in `notify`, because `notify` imports both channels.
"""

from __future__ import annotations

import enum
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mlform.errors import MlformError, printable
from mlform.redact import redact

_EXCERPT = 200  # characters of a server's answer quoted in a message
_MIN_SECRET = 4  # shorter values would blank out ordinary characters: as mlform.masking


class Reason(enum.StrEnum):
    """Why a delivery failed: the code a caller records; the message says the rest."""

    REFUSED = "refused"  # nothing listens on that host and port
    UNREACHABLE = "unreachable"  # the host name is unknown, or the network has no route
    TIMEOUT = "timeout"  # no answer within the timeout
    TLS = "tls"  # the TLS handshake or the certificate failed, or STARTTLS is missing
    AUTH = "auth"  # the SMTP server refused the login, or offers none
    INSECURE = "insecure"  # the password would cross the network unencrypted
    REJECTED = "rejected"  # the server answered, and refused: not retried
    UNAVAILABLE = "unavailable"  # the server failed (5xx, 429, closed the connection)
    UNCONFIGURED = "unconfigured"  # the settings cannot work as written
    ERROR = "error"  # anything else, an mlform bug included


class AlertError(MlformError):
    """An alert could not be delivered on one channel, or the channel's settings are
    wrong; `reason` is the code, `attempts` how many sends were tried."""

    def __init__(
        self, message: str, reason: Reason, attempts: int = 0, delivery_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts = attempts
        self.delivery_id = delivery_id


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of the alert on one channel: `target` is the recipients of the email
    or the webhook's URL as shown; `detail` says why it failed ("" when delivered);
    `id` is a webhook delivery's `X-Mlform-Delivery`."""

    channel: Literal["email", "webhook"]
    target: str
    delivered: bool
    attempts: int
    reason: Reason | None = None
    detail: str = ""
    id: str | None = None

    def __str__(self) -> str:
        if self.delivered:
            tries = f" ({self.attempts} attempts)" if self.attempts > 1 else ""
            return f"{self.channel} {self.target}: delivered{tries}"
        return f"{self.channel} {self.target}: failed ({self.reason}): {self.detail}"


def _network(err: OSError, hint: str, timeout: float) -> tuple[Reason, str]:
    """The reason and words for a failure to talk to a server at all."""
    hint = f". {hint}" if hint else ""
    if isinstance(err, ConnectionRefusedError):
        return Reason.REFUSED, f"the connection was refused{hint}"
    if isinstance(err, TimeoutError):
        return Reason.TIMEOUT, f"no answer within {timeout:g} s{hint}"
    if isinstance(err, ssl.SSLError):
        detail = getattr(err, "verify_message", None) or err.reason or err
        return Reason.TLS, f"TLS failed ({detail}){hint}"
    if isinstance(err, socket.gaierror):
        return Reason.UNREACHABLE, f"the host name was not found ({err.strerror}){hint}"
    if isinstance(err, ConnectionError):
        return Reason.UNAVAILABLE, f"the server closed the connection ({err}){hint}"
    return Reason.UNREACHABLE, f"{err.strerror or err}{hint}"


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret value replaced by `***`, longest first (a value may
    contain another), and the credentials of any URL in it redacted."""
    for value in sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True):
        text = text.replace(value, "***")
    return printable(redact(text))
