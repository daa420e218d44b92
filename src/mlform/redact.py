"""What mlform shows of a URL: the credentials some URLs carry, replaced.

Azure Storage takes a SAS token in the query of an `https://` URL (`?sv=…&sig=…`), and
S3 and Google Cloud Storage sign URLs the same way; a URL may also hold a password
(`https://user:password@host/`). mlform keeps such URLs in the state, where they are
needed to read the data, but never prints the signature: every line, table, JSON
document and error the CLI writes goes through `redact`. The other parameters stay
visible (a SAS token's `se=` expiry is what one looks for when access fails), as Azure's
own SDKs log them.

Secret values, which no pattern recognises, are masked where processes write them, by
`mlform.masking`.
"""

from __future__ import annotations

import re

REDACTED = "REDACTED"

# Query parameters that are a credential in themselves (compared case-insensitively).
SECRET_PARAMETERS = (
    "sig",  # Azure Storage SAS
    "signature",
    "x-amz-signature",  # S3 presigned URLs
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",  # Google Cloud Storage signed URLs
    "x-goog-credential",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "password",
    "secret",
    "client_secret",
    "code",
)

_PARAMETER = re.compile(
    r"([?&;](?:" + "|".join(re.escape(p) for p in SECRET_PARAMETERS) + r")=)[^&#\s\"'<>]+",
    re.IGNORECASE,
)
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@/\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by REDACTED."""
    if "=" not in text and "@" not in text:
        return text  # the common case: no query, no user info
    text = _PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    return _PASSWORD.sub(rf"\g<1>{REDACTED}@", text)
