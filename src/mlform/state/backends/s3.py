"""The state as an object in S3 or an S3-compatible store (the `mlform[s3]` extra), like
Terraform's `s3` backend with `use_lockfile`.

The lock is a second object, `<key>.lock`, created with a conditional put
(`If-None-Match: *`) and renewed with `If-Match` on its own ETag; one whose last renewal
is older than the lease, by the store's own clock, is taken over the same way. The state
object is only written with `If-Match` on the ETag it was read at.

Credentials and endpoint come from botocore's usual chain: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, instance and container roles,
AWS_ENDPOINT_URL_S3 (or `endpoint:` in workspace.yml) for an S3-compatible store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

from mlform.errors import StateConflict, StateError, StateLocked
from mlform.state.backends import RemoteSpec, Version
from mlform.state.backends.leases import LEASE, HeldLease, parse_info, refusal, waiting
from mlform.state.lock import LockInfo, check_id

_CHUNK = 1 << 20
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}


class S3Backend:
    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.url = spec.url
        self.bucket = str(spec.get("bucket"))
        self.key = str(spec.get("key"))
        self.lock_key = f"{self.key}.lock"
        self._client = _client(spec)

    def head(self) -> Version | None:
        with self._errors():
            try:
                found = self._client.head_object(Bucket=self.bucket, Key=self.key)
            except self._client.exceptions.ClientError as err:
                if _code(err) not in ("404", "NoSuchKey", "NotFound"):
                    raise
                # A HEAD's 404 has no body to tell a missing key from a missing bucket.
                self._client.head_bucket(Bucket=self.bucket)
                return None
        return _version(found)

    def download(self, dest: BinaryIO) -> Version:
        with self._errors():
            try:
                found = self._client.get_object(Bucket=self.bucket, Key=self.key)
            except self._client.exceptions.NoSuchKey as err:
                raise StateError(f"there is no state at {self.url} yet") from err
            for chunk in found["Body"].iter_chunks(_CHUNK):
                dest.write(chunk)
        return _version(found)

    def upload(self, source: Path, *, if_match: str | None, lineage: str, serial: int) -> str:
        condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": if_match}
        with self._errors(), source.open("rb") as data:
            try:
                done = self._client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=data,
                    Metadata={"lineage": lineage, "serial": str(serial)},
                    **condition,
                )
            except self._client.exceptions.ClientError as err:
                if _code(err) in _CONFLICT:
                    raise StateConflict(self.url) from err
                raise
        return str(done["ETag"])

    def lock(self, info: LockInfo, *, wait: float) -> _LockObject:
        taken: list[LockInfo | None] = []

        def take() -> str | None:
            body = _body(info, 0)
            try:
                return self._put_lock(body, {"IfNoneMatch": "*"})
            except self._client.exceptions.ClientError as err:
                if _code(err) not in _CONFLICT:
                    raise
            found = self._get_lock()
            if found is None or not found[2]:
                return None  # gone meanwhile (try again), or held
            try:  # lapsed: take it over, unless someone else just did
                etag = self._put_lock(body, {"IfMatch": found[1]})
            except self._client.exceptions.ClientError as err:
                if _code(err) in _CONFLICT:
                    return None
                raise
            taken.append(found[0])
            return etag

        with self._errors():
            etag = waiting(take, wait)
            if etag is None:
                raise StateLocked(refusal(self.url, self.holder()))
        assert isinstance(etag, str)
        return _LockObject(self, info, etag, taken[0] if taken else None)

    def holder(self) -> LockInfo | None:
        with self._errors():
            found = self._get_lock()
        return None if found is None or found[2] else found[0]

    def break_lock(self, lock_id: str) -> LockInfo:
        with self._errors():
            found = self._get_lock()
            holder = None if found is None else found[0]
            check_id(self.url, holder, lock_id)
            assert found is not None and holder is not None
            try:
                self._client.delete_object(Bucket=self.bucket, Key=self.lock_key, IfMatch=found[1])
            except self._client.exceptions.ClientError as err:
                if _code(err) not in _CONFLICT:
                    raise
                raise StateError(
                    f"the lock on {self.url} changed while it was being removed; run "
                    "`mlform plan` to see who holds it now"
                ) from err
        return holder

    def _put_lock(self, body: bytes, condition: dict[str, str]) -> str:
        done = self._client.put_object(
            Bucket=self.bucket, Key=self.lock_key, Body=body, **condition
        )
        return str(done["ETag"])

    def _get_lock(self) -> tuple[LockInfo | None, str, bool] | None:
        """(holder, ETag, lapsed) of the lock object; None if there is none."""
        try:
            found = self._client.get_object(Bucket=self.bucket, Key=self.lock_key)
        except self._client.exceptions.NoSuchKey:
            return None
        holder = parse_info(found["Body"].read())
        return holder, str(found["ETag"]), _lapsed(found)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """botocore's errors as a message naming the state and what to do."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            yield
        except NoCredentialsError as err:
            raise StateError(
                f"no AWS credentials for the state {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from err
        except EndpointConnectionError as err:
            raise StateError(
                f"cannot reach the state {self.url} ({err}); check the endpoint and your network"
            ) from err
        except ClientError as err:
            code = _code(err)
            if code == "NoSuchBucket" or (code == "404" and err.operation_name == "HeadBucket"):
                raise StateError(
                    f"the bucket '{self.bucket}' of the state {self.url} does not exist; "
                    "create it or fix `state:` in workspace.yml"
                ) from err
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StateError(
                    f"S3 denied access to the state {self.url} ({code}); the credential "
                    "needs s3:GetObject, s3:PutObject and s3:DeleteObject on the key and "
                    "its .lock"
                ) from err
            raise StateError(f"the state {self.url}: {err}") from err
        except BotoCoreError as err:
            raise StateError(f"the state {self.url}: {err}") from err


class _LockObject(HeldLease):
    def __init__(
        self, backend: S3Backend, info: LockInfo, etag: str, earlier: LockInfo | None
    ) -> None:
        self._backend = backend
        self._etag = etag
        self._renewals = 0
        super().__init__(backend.url, info, earlier, self._renew)

    def _renew(self) -> None:
        self._renewals += 1  # a new body each time: a new ETag, so a takeover cannot match
        self._etag = self._backend._put_lock(
            _body(self.info, self._renewals), {"IfMatch": self._etag}
        )

    def _let_go(self) -> None:
        self._backend._client.delete_object(
            Bucket=self._backend.bucket, Key=self._backend.lock_key, IfMatch=self._etag
        )


def _client(spec: RemoteSpec) -> Any:
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError as err:
        raise StateError(
            f"the state {spec.url} is in S3, which needs the s3 extra: pip install 'mlform[s3]'"
        ) from err
    session = botocore.session.Session(profile=spec.get("profile"))
    config = Config(connect_timeout=10, read_timeout=120, retries={"max_attempts": 3})
    return session.create_client(
        "s3", region_name=spec.get("region"), endpoint_url=spec.get("endpoint"), config=config
    )


def _body(info: LockInfo, renewals: int) -> bytes:
    return json.dumps({**asdict(info), "renewals": renewals}).encode()


def _lapsed(found: dict[str, Any]) -> bool:
    """Whether the lock was last renewed more than LEASE seconds ago, by the store's clock."""
    modified: datetime = found["LastModified"]
    headers = found.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        now = parsedate_to_datetime(headers["date"])
    except (KeyError, TypeError, ValueError):
        return False  # cannot tell: held, until force-unlock
    return (now - modified).total_seconds() > LEASE


def _version(found: dict[str, Any]) -> Version:
    meta = found.get("Metadata") or {}
    serial = str(meta.get("serial", ""))
    return Version(str(found["ETag"]), meta.get("lineage"), int(serial) if serial.isdigit() else 0)


def _code(err: Any) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
