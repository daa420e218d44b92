"""The URL schemes a `path:` may use, and what each needs installed.

Checked when the files are read, so a typo'd scheme or a missing driver is a config
problem at its line rather than a failure halfway through an apply.
"""

from __future__ import annotations

HTTP = frozenset({"http", "https"})  # read with the standard library
AZURE = frozenset({"wasb", "wasbs", "abfs", "abfss"})  # Azure Blob Storage, through adlfs

# URL scheme → the extra that installs its fsspec driver
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
    "wasb": "azure",
    "wasbs": "azure",
}


def protocol_problem(scheme: str) -> str | None:
    """Why `scheme://` URLs cannot be used here, or None when they can."""
    # start-up: fsspec's registry is read only for a file with a URL in it
    import fsspec

    if scheme in HTTP:
        return None
    try:
        fsspec.get_filesystem_class("abfs" if scheme in AZURE else scheme)
    except ValueError:
        return f"unknown URL scheme '{scheme}://'; use a local path or an fsspec URL"
    except ImportError:
        extra = EXTRAS.get(scheme)
        how = f"pip install 'mlform[{extra}]'" if extra else "install its fsspec driver"
        return f"'{scheme}://' URLs need an extra package: {how}"
    return None
