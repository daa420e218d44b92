"""Which byte strings hide a set of secret values, and hiding them in a stream of chunks.

Every byte that an occurrence of a value covers is hidden. Occurrences may overlap or
touch (`abcdef` and `cdefgh` in `abcdefgh`): the bytes they cover form runs, and each run
becomes one `***`, as GitHub Actions' secret masker merges overlapping matches, so no
part of either value shows.

A `Stream` masks output that arrives in chunks cut anywhere, a value split across two
writes included: it lets out at once every byte that cannot be the start of a value, and
holds back only a tail that is the beginning of one (at most the longest pattern less one
byte), until the next chunk completes or refutes it, or `flush` lets it out. Fed any cut
of a text and flushed once at the end, it gives exactly what `Masker.mask` gives for the
whole text.

What is hidden, for each value (a `str`, hidden as its UTF-8 bytes):

- the value, and each line of a value of several lines;
- the forms a script is likely to print it in: JSON-escaped (`json.dumps`, as a value with
  a quote, a backslash or a non-ASCII character shows inside a JSON document),
  percent-encoded (in a URL), and base64 (standard and URL-safe) at each of the three
  alignments a value can have inside a longer base64 text (`base64(user:password)`), as
  GitHub Actions does. Of each, only the characters that depend on the value's bits
  alone, so the value's part of a longer encoding is hidden, all but the few bits it
  shares a character with its neighbours.

Values shorter than `MIN_LENGTH` characters, and forms shorter than `MIN_LENGTH` bytes,
are not hidden. GitHub Actions masks any value that is not empty, so a secret `1` turns
every `1` of a log into `***`: the log is unreadable, and the pattern of stars in ordinary
text tells the value anyway. Ansible ignores values under 4 characters for the same
reason; a secret that short is guessed faster than it is read.

No transformation of the value beyond those forms is caught: a value reversed, hashed,
split into pieces printed apart, or upper-cased shows as it is printed.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator

MASK = b"***"
MIN_LENGTH = 4


class Masker:
    """The patterns that hide `values`; masks whole texts, or makes a `Stream`."""

    def __init__(self, values: Iterable[str]) -> None:
        found: set[bytes] = set()
        for value in values:
            if len(value) >= MIN_LENGTH:
                found.update(_forms(value))
        # longest first: at one position, the regex's alternation takes the longest match
        self.patterns = tuple(
            sorted((p for p in found if len(p) >= MIN_LENGTH), key=lambda p: (-len(p), p))
        )
        self.longest = max((len(p) for p in self.patterns), default=0)
        alternatives = b"|".join(re.escape(p) for p in self.patterns)
        # a lookahead finds the match at every position, overlapping ones included
        self._find = re.compile(b"(?=(" + alternatives + b"))") if self.patterns else None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def mask(self, data: bytes) -> bytes:
        """`data` with every run of bytes covered by an occurrence replaced by `***`."""
        stream = self.stream()
        return stream.feed(data) + stream.flush()

    def text(self, text: str) -> str:
        """`mask` for text."""
        if not self.patterns:
            return text
        return self.mask(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")

    def stream(self) -> Stream:
        return Stream(self)

    def occurrences(self, data: bytes, stop: int) -> Iterator[tuple[int, int]]:
        """(start, end) of the longest occurrence at each start before `stop`, in order."""
        if self._find is None:
            return
        for match in self._find.finditer(data):
            start = match.start()
            if start >= stop:
                return
            yield start, start + len(match[1])

    def undecided(self, data: bytes) -> int:
        """Where the tail of `data` that may be the start of a pattern begins (the
        earliest such position), or len(data) if no tail may be."""
        size = earliest = len(data)
        for pattern in self.patterns:
            start = max(0, size - len(pattern) + 1)
            # only starts before the earliest found so far matter, in order
            while (start := data.find(pattern[:1], start, earliest)) >= 0:
                tail = size - start
                # eight bytes first: most candidates fail there, without a long copy
                if data[start : start + 8] == pattern[: min(8, tail)] and data.endswith(
                    pattern[:tail]
                ):
                    earliest = start
                    break
                start += 1
        return earliest


class Stream:
    """Masks output that arrives in chunks: `feed` each chunk, write what it returns;
    `flush` at the end, or when the output has been idle a while (a tail held back as the
    possible start of a value is then let out as it is)."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._window = b""  # received, not yet let out
        self._reach = 0  # the window's first bytes already known to be hidden
        self._in_run = False  # the last byte let out was hidden: a run goes on, no new ***

    @property
    def pending(self) -> int:
        """How many bytes are held back."""
        return len(self._window)

    def feed(self, data: bytes) -> bytes:
        if not self._masker:
            return data
        self._window += data
        return self._let_out(self._masker.undecided(self._window))

    def flush(self) -> bytes:
        return self._let_out(len(self._window))

    def _let_out(self, stop: int) -> bytes:
        """Decide the window's bytes before `stop`: every occurrence that covers one of
        them starts before `stop` and is complete in the window."""
        if stop == 0:
            return b""
        window = self._window
        runs: list[list[int]] = [[0, self._reach]] if self._reach else []
        for start, end in self._masker.occurrences(window, stop):
            if runs and start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        out = bytearray()
        done = 0
        in_run = self._in_run
        for start, end in runs:
            if start > done:
                out += window[done:start]
                in_run = False
            if not in_run:
                out += MASK
                in_run = True
            done = end
        if done < stop:
            out += window[done:stop]
            in_run = False
        self._reach = max(0, done - stop)
        self._window = window[stop:]
        self._in_run = in_run
        return bytes(out)


def _forms(value: str) -> Iterator[bytes]:
    lines = value.splitlines()
    for text in {value, *(lines if len(lines) > 1 else ())}:
        yield text.encode("utf-8", "surrogatepass")
        yield json.dumps(text)[1:-1].encode("ascii")
        yield urllib.parse.quote(text, safe="").encode("ascii")
    data = value.encode("utf-8", "surrogatepass")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        yield encode(data)  # on its own, with its padding
        for before in range(3):  # bytes of the longer text in the value's first group
            size = before + len(data)
            # the characters that depend on the value's bits alone: from the first one
            # free of the bytes before it, to the last one free of the bytes after it
            yield encode(bytes(before) + data)[(0, 2, 3)[before] : size // 3 * 4 + size % 3]
