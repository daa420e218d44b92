"""Secret values kept out of what processes print: every occurrence becomes `***`.

A run, a pipeline step or a deployment gets secret values as environment variables; what
it prints (its own lines, a library's logging, a C extension or a subprocess writing to
the same descriptors) goes through a pipe that mlform reads and copies on, masked, to the
log. As GitHub Actions masks secrets in job logs:

- `masker`: which byte strings to hide for a set of values, and the masking itself, one
  shot or as a stream cut anywhere (a value split across two writes is still hidden).
- `relay`: the thread copying a pipe to a log through a masker, and the takeover of a
  process's own stdout and stderr that a server does at startup.
- `variables`: where a server's environment holds its secrets, so that it masks them
  without being given the values twice.

This package and `serving` are all of mlform a deployment runs: standard library only.

Values shorter than `MIN_LENGTH` characters are not masked (see `masker`).
"""

from __future__ import annotations

from mlform.masking.masker import MASK, MIN_LENGTH, Masker, Stream

__all__ = ["MASK", "MIN_LENGTH", "Masker", "Stream"]
