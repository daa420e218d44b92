"""The credentials in URLs, replaced wherever a URL may appear in a text."""

from __future__ import annotations

import pytest

from mlform.redact import redact


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (  # an Azure Storage SAS: the signature goes, the expiry and the rest stay
            "https://acct.blob.core.windows.net/c/iris.csv?sv=2022-11-02&se=2030-01-01&sp=r"
            "&sig=abc%2Bdef%3D",
            "https://acct.blob.core.windows.net/c/iris.csv?sv=2022-11-02&se=2030-01-01&sp=r"
            "&sig=REDACTED",
        ),
        (  # an S3 presigned URL
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK"
            "%2F2026&X-Amz-Signature=0f0f&X-Amz-Expires=60",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
            "REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=60",
        ),
        (
            "https://user:hunter2@example.com/data.csv",
            "https://user:REDACTED@example.com/data.csv",
        ),
        (  # inside a message, the URL's end found by the quote after it
            "data/iris: 'https://h/x.csv?sig=s3cr3t' does not exist",
            "data/iris: 'https://h/x.csv?sig=REDACTED' does not exist",
        ),
        ("https://h/x.csv?Sig=A&Token=B#frag", "https://h/x.csv?Sig=REDACTED&Token=REDACTED#frag"),
        ("no URL here: a=1, key step=3", "no URL here: a=1, key step=3"),
        ("https://h/x.csv?signed=1&design=2", "https://h/x.csv?signed=1&design=2"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
)
def test_credentials_in_urls_are_replaced(text: str, shown: str) -> None:
    assert redact(text) == shown
