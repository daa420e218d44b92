"""A state's ETag in one signed HEAD request, with the standard library only.

A no-change `mlform plan` on a remote state asks the store one thing: has the state
moved since this machine copied it? Importing a cloud SDK to ask it costs more than the
plan itself (Azure's Blob SDK takes about 0.3 s to import, botocore 0.13 s), so that one
question is asked here: a HEAD request signed as each service documents, SharedKey for
Azure Storage (https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key)
and Signature Version 4 for S3
(https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).

Only credentials given plainly in the environment are used here (a connection string,
an account key or SAS token; AWS access keys with a region): for anything else (Entra
ID, AWS profiles and roles) `peek` returns NOT_HERE and the SDK asks instead, as it does
for every write and download.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Final
from urllib.parse import quote, urlsplit

from mlform.state.backends import RemoteSpec, Version

NOT_HERE: Final = "not here"  # this module cannot ask; the SDK must
TIMEOUT = 10.0
_AZURE_VERSION = "2021-08-06"


def peek(spec: RemoteSpec) -> Version | str | None:
    """The state's Version, None if there is none, or NOT_HERE."""
    request = _azure(spec) if spec.backend == "azurerm" else _s3(spec)
    if request is None:
        return NOT_HERE
    url, headers, meta = request
    parts = urlsplit(url)
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.netloc, timeout=TIMEOUT)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request("HEAD", target, headers=headers)
        response = connection.getresponse()
        response.read()
    except OSError:
        return NOT_HERE  # the SDK retries, and says what is wrong in its words
    finally:
        connection.close()
    if response.status == 404 and spec.backend == "azurerm":
        # A missing container is an error the SDK words; a missing blob is no state.
        return None if response.getheader("x-ms-error-code") == "BlobNotFound" else NOT_HERE
    if response.status != 200:
        return NOT_HERE  # a missing bucket, a denied key, a redirect: the SDK explains
    serial = response.getheader(f"{meta}serial") or ""
    return Version(
        str(response.getheader("ETag")),
        response.getheader(f"{meta}lineage"),
        int(serial) if serial.isdigit() else 0,
    )


# -- Azure Storage ---------------------------------------------------------------------


def _azure(spec: RemoteSpec) -> tuple[str, dict[str, str], str] | None:
    account = spec.get("storage_account_name") or os.environ.get("AZURE_STORAGE_ACCOUNT")
    endpoint, key, sas = None, None, None
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        fields = dict(part.split("=", 1) for part in connection.split(";") if "=" in part)
        if fields.get("UseDevelopmentStorage") or account not in (None, fields.get("AccountName")):
            return None
        account = fields.get("AccountName")
        key = fields.get("AccountKey")
        sas = fields.get("SharedAccessSignature")
        endpoint = fields.get("BlobEndpoint") or (
            f"{fields.get('DefaultEndpointsProtocol', 'https')}://{account}.blob."
            f"{fields.get('EndpointSuffix', 'core.windows.net')}"
        )
    else:
        key = os.environ.get("ARM_ACCESS_KEY") or os.environ.get("AZURE_STORAGE_KEY")
        sas = os.environ.get("ARM_SAS_TOKEN") or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
        endpoint = f"https://{account}.blob.core.windows.net" if account else None
    if not account or not endpoint or not (key or sas):
        return None
    path = f"{spec.get('container_name')}/{spec.get('key')}"
    url = f"{endpoint.rstrip('/')}/{quote(path)}"
    if not key:
        return f"{url}?{str(sas).lstrip('?')}", {"x-ms-version": _AZURE_VERSION}, "x-ms-meta-"
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": _AZURE_VERSION}
    headers["Authorization"] = f"SharedKey {account}:{shared_key(key, account, url, headers)}"
    return url, headers, "x-ms-meta-"


def shared_key(key: str, account: str, url: str, headers: dict[str, str]) -> str:
    """The SharedKey signature of a HEAD request with no body or conditions."""
    canonical_headers = "".join(
        f"{name.lower()}:{value}\n"
        for name, value in sorted(headers.items(), key=lambda item: item[0].lower())
        if name.lower().startswith("x-ms-")
    )
    # 11 empty standard headers: Content-Encoding … Range
    to_sign = "HEAD\n" + "\n" * 11 + canonical_headers + f"/{account}{urlsplit(url).path}"
    digest = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# -- S3 --------------------------------------------------------------------------------


def _s3(spec: RemoteSpec) -> tuple[str, dict[str, str], str] | None:
    access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    region = (
        spec.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    if spec.get("profile") or os.environ.get("AWS_PROFILE") or not (access and secret and region):
        return None
    bucket, key = str(spec.get("bucket")), str(spec.get("key"))
    endpoint = (
        spec.get("endpoint")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:  # an S3-compatible store: path-style addressing, as botocore uses there
        url = f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"
    elif "." in bucket:
        return None  # virtual-hosted style breaks TLS for dotted names; botocore copes
    else:
        url = f"https://{bucket}.s3.{region}.amazonaws.com/{quote(key)}"
    token = os.environ.get("AWS_SESSION_TOKEN")
    now = datetime.now(UTC)
    return url, sigv4(url, access, secret, token, region, now), "x-amz-meta-"


def sigv4(
    url: str, access: str, secret: str, token: str | None, region: str, now: datetime
) -> dict[str, str]:
    """The headers of a HEAD request to `url`, signed with Signature Version 4."""
    parts = urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": empty, "x-amz-date": stamp}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canonical = "\n".join(
        [
            "HEAD",
            parts.path or "/",
            parts.query,
            "".join(f"{name}:{headers[name].strip()}\n" for name in names),
            ";".join(names),
            empty,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    del headers["host"]  # http.client sends it, the same value
    return headers
