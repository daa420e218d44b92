"""The state as a blob in Azure Storage (the `mlform[azure]` extra), like Terraform's
`azurerm` backend.

The lock is a lease on a second blob, `<key>.lock`, which holds the holder's details
while leased: the state blob itself is only ever written with an `If-Match` on the ETag
it was read at, so a state someone else wrote is never overwritten, lock or not.

Credentials, in the order Azure's own tools read them: AZURE_STORAGE_CONNECTION_STRING;
an account key (ARM_ACCESS_KEY, as Terraform reads it, or AZURE_STORAGE_KEY); a SAS token
(ARM_SAS_TOKEN or AZURE_STORAGE_SAS_TOKEN); else azure-identity's
DefaultAzureCredential (a managed identity, `az login`, workload identity in CI).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlform.errors import StateConflict, StateError, StateLocked
from mlform.state.backends import RemoteSpec, Version
from mlform.state.backends.leases import LEASE, HeldLease, parse_info, refusal, waiting
from mlform.state.lock import LockInfo, check_id

if TYPE_CHECKING:
    from azure.storage.blob import BlobLeaseClient

_OPTIONS: dict[str, Any] = {"retry_total": 3, "connection_timeout": 10, "read_timeout": 120}


class AzureBackend:
    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.url = spec.url
        container = _service(spec).get_container_client(str(spec.get("container_name")))
        key = str(spec.get("key"))
        self._blob = container.get_blob_client(key)
        self._lock = container.get_blob_client(f"{key}.lock")

    def head(self) -> Version | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors():
            try:
                props = self._blob.get_blob_properties()
            except ResourceNotFoundError as err:
                if _code(err) == "ContainerNotFound":
                    raise
                return None
        return _version(props.etag, props.metadata)

    def download(self, dest: BinaryIO) -> Version:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors():
            try:
                downloader = self._blob.download_blob(max_concurrency=1)
            except ResourceNotFoundError as err:
                if _code(err) == "ContainerNotFound":
                    raise
                raise StateError(f"there is no state at {self.url} yet") from err
            downloader.readinto(dest)  # in chunks, each checked against the first's ETag
        return _version(downloader.properties.etag, downloader.properties.metadata)

    def upload(self, source: Path, *, if_match: str | None, lineage: str, serial: int) -> str:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError

        metadata = {"lineage": lineage, "serial": str(serial)}
        condition: dict[str, Any] = (
            {"overwrite": False}
            if if_match is None
            else {
                "overwrite": True,
                "etag": if_match,
                "match_condition": MatchConditions.IfNotModified,
            }
        )
        with self._errors(), source.open("rb") as data:
            try:
                done = self._blob.upload_blob(data, metadata=metadata, **condition)
            except (ResourceExistsError, ResourceModifiedError) as err:
                raise StateConflict(self.url) from err
        return str(done["etag"])

    def lock(self, info: LockInfo, *, wait: float) -> _Lease:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError
        from azure.storage.blob import BlobLeaseClient

        with self._errors():
            with contextlib.suppress(ResourceExistsError):  # its lease is the lock
                self._lock.upload_blob(b"", overwrite=False)

            def take() -> BlobLeaseClient | None:
                lease = BlobLeaseClient(self._lock)
                try:
                    lease.acquire(lease_duration=LEASE)
                except HttpResponseError as err:
                    if err.status_code == 409:  # LeaseAlreadyPresent
                        return None
                    raise
                return lease

            lease = waiting(take, wait)
            if lease is None:
                raise StateLocked(refusal(self.url, self.holder()))
            assert isinstance(lease, BlobLeaseClient)
            earlier = parse_info(self._lock.download_blob(lease=lease).readall())
            self._lock.upload_blob(json.dumps(asdict(info)), overwrite=True, lease=lease)
        return _Lease(self, lease, info, earlier)

    def holder(self) -> LockInfo | None:
        with self._errors():
            props = self._lock_properties()
            if props is None or props.lease.state != "leased":
                return None
            return parse_info(self._lock.download_blob().readall())

    def break_lock(self, lock_id: str) -> LockInfo:
        from azure.storage.blob import BlobLeaseClient

        with self._errors():
            holder = self.holder()
            check_id(self.url, holder, lock_id)
            assert holder is not None
            BlobLeaseClient(self._lock).break_lease(lease_break_period=0)
        return holder

    def _lock_properties(self) -> Any:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._lock.get_blob_properties()
        except ResourceNotFoundError as err:
            if _code(err) == "ContainerNotFound":
                raise
            return None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's errors as a message naming the state and what to do."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        container = self.spec.get("container_name")
        try:
            yield
        except ResourceNotFoundError as err:
            if _code(err) != "ContainerNotFound":
                raise
            raise StateError(
                f"the container '{container}' of the state {self.url} does not exist; "
                "create it (`az storage container create`) or fix `state:` in workspace.yml"
            ) from err
        except ClientAuthenticationError as err:
            raise StateError(
                f"Azure Storage refused the credentials for the state {self.url} "
                f"({_first(err)}); check AZURE_STORAGE_CONNECTION_STRING, ARM_ACCESS_KEY or "
                "your `az login`"
            ) from err
        except ServiceRequestError as err:
            raise StateError(
                f"cannot reach the state {self.url} ({_first(err)}); check the account "
                "name and your network"
            ) from err
        except HttpResponseError as err:
            if err.status_code == 403:
                raise StateError(
                    f"Azure Storage denied access to the state {self.url} ({_first(err)}); "
                    "the credential needs read and write on the container"
                ) from err
            raise StateError(f"the state {self.url}: {_first(err)}") from err


class _Lease(HeldLease):
    def __init__(
        self,
        backend: AzureBackend,
        lease: BlobLeaseClient,
        info: LockInfo,
        earlier: LockInfo | None,
    ) -> None:
        super().__init__(backend.url, info, earlier, lease.renew)
        self._backend = backend
        self._lease = lease

    def _let_go(self) -> None:
        # Cleared first, so a later holder does not take it for an interrupted one.
        self._backend._lock.upload_blob(b"", overwrite=True, lease=self._lease)
        self._lease.release()


def _service(spec: RemoteSpec) -> Any:
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as err:
        raise StateError(
            f"the state {spec.url} is in Azure Storage, which needs the azure extra: "
            "pip install 'mlform[azure]'"
        ) from err
    account = spec.get("storage_account_name") or os.environ.get("AZURE_STORAGE_ACCOUNT")
    connection = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection:
        service = BlobServiceClient.from_connection_string(connection, **_OPTIONS)
        if account and service.account_name != account:
            raise StateError(
                f"AZURE_STORAGE_CONNECTION_STRING is for the account "
                f"'{service.account_name}', but the state {spec.url} is in '{account}'"
            )
        return service
    if not account:
        raise StateError(
            f"the state {spec.url} names no storage account: set `storage_account_name` "
            "under `state:` in workspace.yml, or AZURE_STORAGE_ACCOUNT"
        )
    credential: Any = (
        os.environ.get("ARM_ACCESS_KEY")
        or os.environ.get("AZURE_STORAGE_KEY")
        or os.environ.get("ARM_SAS_TOKEN")
        or os.environ.get("AZURE_STORAGE_SAS_TOKEN")
    )
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError as err:
            raise StateError(
                f"no credential for the state {spec.url}: set AZURE_STORAGE_CONNECTION_STRING "
                "or ARM_ACCESS_KEY, or install azure-identity to use `az login` or a "
                "managed identity"
            ) from err
        credential = DefaultAzureCredential()
    return BlobServiceClient(f"https://{account}.blob.core.windows.net", credential, **_OPTIONS)


def _version(etag: str, metadata: dict[str, str] | None) -> Version:
    meta = metadata or {}
    serial = meta.get("serial", "")
    return Version(str(etag), meta.get("lineage"), int(serial) if serial.isdigit() else 0)


def _code(err: Any) -> str | None:
    return getattr(err, "error_code", None)


def _first(err: BaseException) -> str:
    text = str(getattr(err, "reason", None) or err)
    return text.splitlines()[0] if text else type(err).__name__
