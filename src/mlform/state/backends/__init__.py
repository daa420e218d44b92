"""Remote state backends: where a team's state lives when it is not a local file.

`workspace.yml` names one the way Terraform's `azurerm` and `s3` backends do, as a
mapping, or as a URL (`state migrate --to` takes the same URLs):

    state: {backend: azurerm, storage_account_name: acct, container_name: c, key: k}
    state: {backend: s3, bucket: b, key: k, region: eu-west-1}
    state: wasbs://c@acct.blob.core.windows.net/k    az://c/k    s3://b/k

Credentials never come from the file: each backend reads them where its own tools do
(Azure's connection string, account key or SAS token in the environment, else
azure-identity's chain; boto's environment variables, profiles and instance roles).

A backend is a small `Backend` protocol over one object (the DuckDB file) and its lock;
adding one is one module and one line in `BACKENDS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from mlform.state.lock import LockInfo

# Keys that would put a credential in a committed file; the message says where it goes.
SECRET_KEYS = {
    "access_key": "ARM_ACCESS_KEY or AZURE_STORAGE_KEY",
    "sas_token": "ARM_SAS_TOKEN or AZURE_STORAGE_SAS_TOKEN",
    "connection_string": "AZURE_STORAGE_CONNECTION_STRING",
    "client_secret": "AZURE_CLIENT_SECRET (azure-identity)",
    "secret_key": "AWS_SECRET_ACCESS_KEY or an AWS profile",
    "access_key_id": "AWS_ACCESS_KEY_ID or an AWS profile",
    "token": "AWS_SESSION_TOKEN or an AWS profile",
}
FIELDS = {
    "azurerm": ("storage_account_name", "container_name", "key"),
    "s3": ("bucket", "key", "region", "endpoint", "profile"),
}
REQUIRED = {"azurerm": ("container_name", "key"), "s3": ("bucket", "key")}


class BadState(ValueError):
    """A `state:` setting that cannot be used; `where` is the key under `state` at fault."""

    def __init__(self, message: str, where: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.where = where


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    """A remote state's address: its backend and that backend's settings."""

    backend: str  # a key of BACKENDS
    settings: tuple[tuple[str, str], ...] = field(default=())

    def get(self, name: str) -> str | None:
        return dict(self.settings).get(name)

    @property
    def url(self) -> str:
        """The state's URL, as messages and `state migrate --to` write it."""
        s = dict(self.settings)
        if self.backend == "s3":
            return f"s3://{s['bucket']}/{s['key']}"
        account = s.get("storage_account_name")
        if account:
            return f"wasbs://{s['container_name']}@{account}.blob.core.windows.net/{s['key']}"
        return f"az://{s['container_name']}/{s['key']}"

    @property
    def slug(self) -> str:
        """A folder name for this state's copies on this machine."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Version:
    """One persisted version of the state: the store's ETag and what the file records."""

    etag: str
    lineage: str | None
    serial: int


class Held(Protocol):
    """A held remote lock, renewed in the background until released."""

    info: LockInfo
    interrupted: LockInfo | None  # an earlier holder whose lock had expired or was broken

    def check(self) -> None:
        """Raise StateLocked if the lock was lost (expired while this process stalled,
        or broken with force-unlock): nothing may be written under a lost lock."""

    def release(self) -> None: ...


class Backend(Protocol):
    spec: RemoteSpec

    def head(self) -> Version | None:
        """The latest version, or None when no state was persisted yet."""

    def download(self, dest: BinaryIO) -> Version:
        """Write the latest version into `dest`, streamed; StateError if there is none."""

    def upload(self, source: Path, *, if_match: str | None, lineage: str, serial: int) -> str:
        """Replace the version `if_match` (None: create, refused if one exists) with
        `source`; return the new ETag. StateConflict when the state moved meanwhile."""

    def lock(self, info: LockInfo, *, wait: float) -> Held:
        """Take the lock, waiting up to `wait` s; StateLocked naming the holder if not."""

    def holder(self) -> LockInfo | None:
        """Who holds the lock now (an expired lock is not held)."""

    def break_lock(self, lock_id: str) -> LockInfo:
        """Remove the lock with `lock_id`; StateError if the lock is not that one."""


def parse(value: object) -> RemoteSpec | str | None:
    """`state:` as a RemoteSpec; a local path (str) when it is one; None when absent.

    Raises BadState with a message for the config problem it reports."""
    if value is None:
        return None
    if isinstance(value, str):
        return from_url(value) if "://" in value else value
    if not isinstance(value, Mapping):
        raise BadState("`state` is a path, a URL or a backend mapping")
    backend = value.get("backend")
    if backend not in FIELDS:
        raise BadState(
            f"state backend {backend!r} is not known; use one of: {', '.join(FIELDS)}",
            ("backend",),
        )
    for name in value:
        if name in SECRET_KEYS:
            raise BadState(
                f"state.{name} would put a credential in the repository; mlform reads it "
                f"from {SECRET_KEYS[name]} in the environment instead",
                (name,),
            )
        if name != "backend" and name not in FIELDS[backend]:
            raise BadState(
                f"state.{name} is not a setting of the {backend} backend; it takes: "
                f"{', '.join(FIELDS[backend])}",
                (name,),
            )
    settings = {}
    for name in FIELDS[backend]:
        given = value.get(name)
        if given is None:
            if name in REQUIRED[backend]:
                raise BadState(f"the {backend} state backend needs `{name}`")
            continue
        if not isinstance(given, str) or not given.strip("/"):
            raise BadState(f"state.{name} must be a non-empty string", (name,))
        settings[name] = given.strip("/") if name == "key" else given
    return RemoteSpec(str(backend), tuple(sorted(settings.items())))


def from_url(url: str) -> RemoteSpec:
    """`s3://bucket/key`, `az://container/key`, `abfs://container/key`, or Azure ML's
    `wasbs://container@account.blob.core.windows.net/key` (abfss:// and .dfs. too)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    key = parts.path.strip("/")
    if not key:
        raise BadState(f"state URL {url} names no object: add its key, e.g. {url}/state.duckdb")
    if scheme == "s3":
        return RemoteSpec("s3", (("bucket", parts.netloc), ("key", key)))
    if scheme in ("az", "abfs", "abfss", "wasb", "wasbs"):
        container, _, host = parts.netloc.partition("@")
        settings = {"container_name": container, "key": key}
        if host:
            account, _, suffix = host.partition(".")
            if suffix.split(".", 1)[-1] != "core.windows.net":
                raise BadState(
                    f"state URL {url}: only Azure's public cloud hosts "
                    "(<account>.blob.core.windows.net) are supported as state URLs"
                )
            settings["storage_account_name"] = account
        return RemoteSpec("azurerm", tuple(sorted(settings.items())))
    raise BadState(
        f"state URL {url}: the scheme {scheme}:// is not a state backend; "
        "use s3://, az://, abfss:// or wasbs://, or a local path"
    )


def connect(spec: RemoteSpec) -> Backend:
    return BACKENDS[spec.backend](spec)


def _azure(spec: RemoteSpec) -> Backend:
    # start-up: a backend's SDK only when its state is opened
    from mlform.state.backends.azure import AzureBackend

    return AzureBackend(spec)


def _s3(spec: RemoteSpec) -> Backend:
    # start-up: a backend's SDK only when its state is opened
    from mlform.state.backends.s3 import S3Backend

    return S3Backend(spec)


BACKENDS: dict[str, Callable[[RemoteSpec], Backend]] = {"azurerm": _azure, "s3": _s3}
