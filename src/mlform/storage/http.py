"""Data behind an `http://` or `https://` URL: one file, fingerprinted by what the server
says of it (ETag, Last-Modified, size) and downloaded when a run needs it.

Azure ML accepts such URLs as `uri_file` paths of data assets and job inputs; a folder
cannot be listed over HTTP, so a URL is always one file, as there.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mlform import durable
from mlform.config import schemes
from mlform.errors import DatastoreError, why_unreachable

SCHEMES = schemes.HTTP
_TIMEOUT = 30.0


class NotThere(DatastoreError):
    """The server answered, and has nothing at that URL."""


@dataclass(frozen=True, slots=True)
class Remote:
    name: str  # the file name the URL ends in
    size: int
    fingerprint: str  # what changes when the content does


def name_of(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "index"


def stat(url: str) -> Remote:
    """What the server says of `url`, without downloading it (a HEAD request)."""
    with _open(url, "HEAD") as response:
        headers = response.headers
        size = int(headers.get("Content-Length") or 0)
        changed = headers.get("ETag") or headers.get("Last-Modified")
    fingerprint = f"etag:{changed}" if changed else f"size:{size}"
    return Remote(name_of(url), size, fingerprint)


def download(url: str, target: Path) -> None:
    """`url`'s content into `target`, whole or not at all."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = durable.partial(target)
    try:
        with _open(url, "GET") as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(partial, target)
    except OSError as err:
        raise DatastoreError(f"cannot download {url} to {target}: {err}") from err
    finally:
        partial.unlink(missing_ok=True)


def _open(url: str, method: str) -> http.client.HTTPResponse:
    host = urlsplit(url).hostname or url
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "mlform"})
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=_TIMEOUT)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code in (404, 410):
            raise NotThere(f"{url} does not exist (the server answered {err.code})") from None
        raise DatastoreError(
            f"{url}: the server answered {err.code} {err.reason}; check the URL, and that it "
            "needs no sign-in (a SAS token goes in the URL)"
        ) from None
    except urllib.error.URLError as err:
        raise DatastoreError(
            f"cannot reach {host}: {why_unreachable(err.reason)}; check the URL or your network"
        ) from None
    except (TimeoutError, ConnectionError) as err:
        raise DatastoreError(
            f"cannot reach {host}: {why_unreachable(err)}; check the URL or your network"
        ) from None
    return response
