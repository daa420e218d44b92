"""Alerts by webhook: `Webhook`, `Retry`, `send_webhook`, and the `signature` that a
receiver checks with `verify`.

A webhook receives the JSON document as its body, signed as GitHub signs its webhooks
(https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries):
`X-Mlform-Signature-256: sha256=<hex HMAC-SHA256 of the exact body, keyed with the
secret>`, so the verification code a receiver has for GitHub works once the header
name is changed. As with GitHub's, the signature covers the body only: the
`X-Mlform-Delivery` id (the same on every retry of one delivery) and the
`X-Mlform-Timestamp` (Unix seconds) are not signed. A replayed body is byte for byte an
earlier alert, so a receiver that must not act twice keeps the `(monitor, run_id)` pairs
it has seen. Connection failures, timeouts, 429 and 5xx answers are retried with
exponential backoff (a `Retry-After` of a few seconds is honoured); any other answer
is final. Redirects are followed only with 307 or 308 (which keep the POST and its body)
to the same scheme, host and port: the signed alert is never handed to another server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import IO

from mlform.errors import printable
from mlform.monitoring.alerts.delivery import (
    _EXCERPT,
    AlertError,
    Delivery,
    Reason,
    _network,
    _scrub,
)
from mlform.monitoring.alerts.document import Alert

SIGNATURE_HEADER = "X-Mlform-Signature-256"
DELIVERY_HEADER = "X-Mlform-Delivery"
TIMESTAMP_HEADER = "X-Mlform-Timestamp"

_READ_LIMIT = 1 << 16  # bytes of a receiver's answer read before closing


@dataclass(frozen=True, slots=True)
class Webhook:
    """A receiver of the alert's JSON; `secret` keys the signature. The URL may carry
    user information (sent as HTTP Basic authentication) and a query: both are kept out
    of every message."""

    url: str
    secret: str

    def __post_init__(self) -> None:
        _parse(self.url)
        if not self.secret:
            raise AlertError(f"webhook {self.shown}: its secret is empty", Reason.UNCONFIGURED)

    def __repr__(self) -> str:
        return f"Webhook(url={self.shown!r})"

    @property
    def shown(self) -> str:
        return _parse(self.url).shown


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a webhook is tried: `attempts` in all, waiting `delay` seconds after the
    first failure, `factor` times longer after each next one, never over `max_delay`."""

    attempts: int = 4
    delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.delay < 0 or self.factor < 1 or self.max_delay < 0:
            raise ValueError(f"{self}: attempts >= 1, delays >= 0 and factor >= 1")

    def wait(self, failures: int, retry_after: float | None) -> float:
        """Seconds to wait after `failures` failed attempts; a receiver's Retry-After
        replaces the backoff, up to `max_delay`."""
        backoff = min(self.delay * self.factor ** (failures - 1), self.max_delay)
        return backoff if retry_after is None else min(max(retry_after, 0.0), self.max_delay)


RETRY = Retry()


def signature(body: bytes, secret: str) -> str:
    """The `X-Mlform-Signature-256` value of `body`: `sha256=` and the HMAC's hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Whether `header` is the signature of exactly `body` under `secret`, compared in
    constant time so that a forger learns nothing from how long a refusal takes."""
    if not header:
        return False
    return hmac.compare_digest(signature(body, secret).encode(), header.encode())


def send_webhook(
    alert: Alert,
    hook: Webhook,
    retry: Retry = RETRY,
    timeout: float = 10.0,
) -> Delivery:
    """POST `alert`'s JSON to `hook`, retried as `retry` says; raise `AlertError` when
    it was not delivered. `timeout` bounds each network operation, in seconds."""
    url = _parse(hook.url)
    body = alert.to_json()
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "mlform",
        SIGNATURE_HEADER: signature(body, hook.secret),
        DELIVERY_HEADER: delivery_id,
    }
    if url.authorization:
        headers["Authorization"] = url.authorization
    opener = urllib.request.build_opener(_SameOrigin)
    secrets = [hook.secret, *url.secrets]
    attempt = 0
    while True:
        attempt += 1
        headers[TIMESTAMP_HEADER] = str(int(time.time()))
        request = urllib.request.Request(url.request, body, headers, method="POST")
        failure = _post(opener, request, timeout)
        if failure is None:
            return Delivery("webhook", url.shown, True, attempt, id=delivery_id)
        if not failure.retry or attempt >= retry.attempts:
            break
        time.sleep(retry.wait(attempt, failure.retry_after))
    tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
    text = _scrub(f"{failure.text} ({tries}). {failure.hint}", secrets)
    message = f"could not deliver the alert to the webhook {url.shown}: {text}"
    raise AlertError(message, failure.reason, attempt, delivery_id)


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: Reason
    text: str
    hint: str
    retry: bool
    retry_after: float | None = None


def _post(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float
) -> _Failure | None:
    """One attempt: None when the receiver answered 2xx."""
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(_READ_LIMIT)
        return None
    except urllib.error.HTTPError as err:
        with err:
            return _answer(err.code, err.reason, err.headers, err, request.full_url)
    except urllib.error.URLError as err:
        cause: object = err.reason
    except (OSError, http.client.HTTPException) as err:
        cause = err
    if isinstance(cause, OSError):
        reason, text = _network(cause, "", timeout)
        retry = reason in (Reason.REFUSED, Reason.TIMEOUT, Reason.UNAVAILABLE) or (
            isinstance(cause, socket.gaierror) and cause.errno == socket.EAI_AGAIN
        )
        hint = "Check the URL, and that the receiver runs and this machine can reach it"
        return _Failure(reason, text, hint, retry)
    text = f"the receiver's answer is not HTTP ({cause})"
    return _Failure(Reason.UNAVAILABLE, text, "Check the URL", False)


def _answer(status: int, phrase: str, headers: Message, body: IO[bytes], url: str) -> _Failure:
    said = " ".join(body.read(_READ_LIMIT).decode("utf-8", "replace").split())[:_EXCERPT]
    text = f"it answered {status} {phrase}" + (f" ({said!r})" if said else "")
    if 300 <= status < 400:
        location = urllib.parse.urljoin(url, headers.get("Location", ""))
        shown = _parse(location).shown if _usable(location) else "an unusable address"
        text = f"it answered {status} {phrase} to {shown}"
        hint = (
            "A webhook follows only a 307 or 308 to the same host and port, so that the "
            "signed alert reaches no other server: set its URL to the address it moved to"
        )
        return _Failure(Reason.REJECTED, text, hint, False)
    if status == 429 or status >= 500:
        wait = headers.get("Retry-After", "")
        retry_after = float(wait) if wait.strip().isdigit() else None
        hint = "The receiver is failing or overloaded: its log says why"
        return _Failure(Reason.UNAVAILABLE, text, hint, True, retry_after)
    hint = "The receiver refused the alert: its log says why"
    if status in (401, 403):
        hint += f"; check that it verifies {SIGNATURE_HEADER} with the same secret"
    elif status == 404:
        hint = "Check the webhook's URL: the receiver has no such path"
    return _Failure(Reason.REJECTED, text, hint, False)


class _SameOrigin(urllib.request.HTTPRedirectHandler):
    """Follows 307 and 308, which repeat the POST with its body, to the same origin;
    any other redirect is returned as the answer (and so refused)."""

    max_redirections = 3

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        if code not in (307, 308) or _origin(newurl) != _origin(req.full_url):
            return None
        return urllib.request.Request(newurl, req.data, dict(req.header_items()), method="POST")


@dataclass(frozen=True, slots=True)
class _Url:
    request: str  # what is requested: no user information, no fragment
    shown: str  # what messages show: scheme, host, port and path
    authorization: str | None
    secrets: tuple[str, ...]  # the parts that must not be shown


def _parse(url: str) -> _Url:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        scheme, sep, rest = url.split("?")[0].rpartition("://")
        shown = printable(scheme + sep + rest.rpartition("@")[2])  # no user information
        raise AlertError(
            f"the webhook URL {shown} is not an http:// or https:// URL with a host",
            Reason.UNCONFIGURED,
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    secrets = [url, parts.query, *(v for _, v in urllib.parse.parse_qsl(parts.query))]
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
        secrets += [password, parts.password or "", token]
    return _Url(
        request=urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        shown=printable(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))),
        authorization=authorization,
        secrets=tuple(s for s in secrets if s),
    )


def _usable(url: str) -> bool:
    try:
        _parse(url)
    except AlertError:
        return False
    return True


def _origin(url: str) -> tuple[str, str, int | None] | None:
    if not _usable(url):
        return None
    parts = urllib.parse.urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname or "", parts.port or default
