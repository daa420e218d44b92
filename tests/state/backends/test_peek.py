"""The one-request ETag check agrees with the SDKs, and its signatures are the ones the
services verify."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlform.state.backends import RemoteSpec, from_url
from mlform.state.backends.peek import NOT_HERE, peek, sigv4
from mlform.state.remote import RemoteState
from tests.stores import Azurite, S3Server


def _state_file(tmp_path: Path) -> Path:
    import duckdb

    path = tmp_path / "state.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table meta (lineage varchar, serial integer)")
    con.close()
    return path


def _agrees(spec: RemoteSpec, tmp_path: Path) -> None:
    backend = RemoteState(spec, tmp_path).backend
    # Nothing there yet; S3's 404 to a HEAD does not say whether the bucket is missing too,
    # so that answer is left to the SDK.
    assert peek(spec) in (None, NOT_HERE) and backend.head() is None
    etag = backend.upload(_state_file(tmp_path), if_match=None, lineage="l-1", serial=7)
    seen = peek(spec)
    assert seen == backend.head()
    assert seen is not None and not isinstance(seen, str)
    assert (seen.etag, seen.lineage, seen.serial) == (etag, "l-1", 7)


def test_azure_shared_key_head_agrees_with_the_sdk(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.storage.blob import BlobServiceClient

    container = f"p{uuid.uuid4().hex[:12]}"
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    spec = from_url(f"az://{container}/a b/state.duckdb")  # a key that must be encoded
    _agrees(spec, tmp_path)
    # Azurite checks the signature: signed with another key, the answer is left to the SDK.
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    assert peek(spec) == NOT_HERE


def test_s3_sigv4_head_agrees_with_the_sdk(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.bucket(f"p{uuid.uuid4().hex[:12]}")
    _agrees(from_url(f"s3://{bucket}/a b/state.duckdb"), tmp_path)


def test_s3_signature_is_botocores() -> None:
    """moto does not check signatures, so the signature is checked against botocore's
    signer for the same request at the same moment."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    # Over plain HTTP botocore signs the (empty) payload's digest, as peek always does.
    url = "http://127.0.0.1:9000/bucket/team/a%20b/state.duckdb"
    request = AWSRequest(method="HEAD", url=url)
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret", "token"), "s3", "eu-west-1").add_auth(request)
    when = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sigv4(url, "AKIDEXAMPLE", "secret", "token", "eu-west-1", when)
    assert ours["Authorization"] == request.headers["Authorization"]


def test_credentials_it_cannot_use_are_left_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "ARM_ACCESS_KEY", "AZURE_STORAGE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ARM_SAS_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    assert peek(from_url("wasbs://c@acct.blob.core.windows.net/k")) == NOT_HERE  # Entra ID
    monkeypatch.setenv("AWS_PROFILE", "team")
    assert peek(from_url("s3://bucket/k")) == NOT_HERE  # a profile: botocore reads it
