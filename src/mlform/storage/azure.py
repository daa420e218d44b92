"""Azure Storage URLs as Azure ML writes them, for adlfs (the `mlform[azure]` extra).

Azure ML data paths name the account in the URL's host, as Hadoop's drivers do:
`wasbs://<container>@<account>.blob.core.windows.net/<path>` (Blob storage) and
`abfss://<filesystem>@<account>.dfs.core.windows.net/<path>` (Data Lake Storage Gen2)
(https://learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2). adlfs
serves both through one filesystem addressed `abfs://<container>/<path>` with the account
given as an option, so each is rewritten to that, the account (and a cloud other than
Azure's public one) passed as options the datastore's own `storage_options` may override.
"""

from __future__ import annotations

import re
from typing import Any

from mlform.config import schemes

SCHEMES = schemes.AZURE
_PUBLIC_CLOUD = "core.windows.net"
_HOSTED = re.compile(
    r"^(?P<scheme>wasbs?|abfss?)://(?P<container>[^@/]+)@(?P<account>[^./]+)"
    r"\.(?P<service>blob|dfs)\.(?P<suffix>[^/]+)(?:/(?P<path>.*))?$",
    re.IGNORECASE,
)


def translate(url: str) -> tuple[str, dict[str, Any]]:
    """`url` as adlfs reads it, and the options it needs; other URLs are returned as is.

    `wasbs://data@acct.blob.core.windows.net/iris/x.csv` → (`abfs://data/iris/x.csv`,
    {"account_name": "acct"}). `wasb://` and `abfs://` (plain HTTP) map the same way.
    """
    match = _HOSTED.match(url)
    if match is None:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("wasb", "wasbs", "abfss"):  # no account in the host: container/path
            return f"abfs://{url.split('://', 1)[1]}", {}
        return url, {}
    options: dict[str, Any] = {"account_name": match["account"]}
    suffix = match["suffix"].lower()
    if suffix != _PUBLIC_CLOUD:  # a sovereign cloud: its own host names
        options["account_host"] = f"{match['account']}.blob.{suffix}"
    path = (match["path"] or "").strip("/")
    target = f"abfs://{match['container']}/{path}" if path else f"abfs://{match['container']}"
    return target, options
