"""Deterministic zips of a snapshot's files, written fast.

Small files are read, checked against their digest and compressed by worker threads
(zlib and hashlib let go of the GIL), then written in order; a large file is streamed.
`zipfile` is not used to write: its bookkeeping per member costs more than compressing a
typical source file. Entries carry a fixed timestamp and normalised modes, so the same
content always gives the same bytes; zip64 fields appear past the classic limits.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlform.errors import MlformError
from mlform.hashing import FileEntry

if TYPE_CHECKING:
    from concurrent.futures import Future

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: same content, same bytes
_CHUNK = 1 << 20
_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0)


def write_zip(root: Path, files: Sequence[FileEntry], archive: Path) -> None:
    """Write the snapshot's zip. Small files are read, checked against their digest and
    compressed by worker threads in batches (zlib and hashlib let go of the GIL) and written
    in order by this thread; a large file is streamed by it. `zipfile` is not used to write:
    its bookkeeping per member costs more than compressing a typical source file."""
    top = str(root)
    workers = min(4, os.cpu_count() or 1)
    with (
        open(archive, "wb", buffering=_CHUNK) as out,
        ThreadPoolExecutor(workers, thread_name_prefix="mlform-zip") as pool,
    ):
        writer = _ZipWriter(out)
        pending: deque[Future[list[_Packed]]] = deque()

        def write_done(keep: int) -> None:
            while len(pending) > keep:
                for packed in pending.popleft().result():
                    writer.add(*packed)

        batch: list[FileEntry] = []
        size = 0
        for entry in files:
            large = entry.size > _IN_MEMORY
            if not large:
                batch.append(entry)
                size += entry.size
            if batch and (large or size >= _BATCH_BYTES or len(batch) >= _BATCH_FILES):
                pending.append(pool.submit(_pack, top, batch))
                batch, size = [], 0
                write_done(0 if large else 2 * workers)
            if large:
                writer.stream(os.path.join(top, entry.relpath), entry)
        if batch:
            pending.append(pool.submit(_pack, top, batch))
        write_done(0)
        writer.finish()


_LEVEL = 1  # as git's loose objects: written once and seldom read, so speed first
_IN_MEMORY = 1 << 22  # files up to this size are read whole by a worker
_BATCH_BYTES = 1 << 20  # a worker's task: files adding up to this …
_BATCH_FILES = 256  # … or this many
_ZIP64_LIMIT = (1 << 31) - 1  # as zipfile: a size or offset past this needs zip64 fields
_COUNT_LIMIT = (1 << 16) - 1
_DOS_TIME = (_EPOCH[3] << 11) | (_EPOCH[4] << 5) | (_EPOCH[5] // 2)
_DOS_DATE = ((_EPOCH[0] - 1980) << 9) | (_EPOCH[1] << 5) | _EPOCH[2]
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END64 = struct.Struct("<4sQ2H2L4Q")
_LOCATOR64 = struct.Struct("<4sLQL")
_END = struct.Struct("<4s4H2LH")

_Packed = tuple[FileEntry, int, int, bytes]  # (entry, permission bits, crc32, deflated)


def _pack(top: str, batch: list[FileEntry]) -> list[_Packed]:
    packed = []
    for entry in batch:
        path = os.path.join(top, entry.relpath)
        try:
            fd = os.open(path, _READ)
            try:
                mode = _mode(fd)
                data = os.read(fd, entry.size + 1)
                while len(data) <= entry.size and (more := os.read(fd, entry.size + 1 - len(data))):
                    data += more
            finally:
                os.close(fd)
        except OSError as err:
            raise _unreadable(path, err) from err
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise _changed(path)
        # A window no larger than the file: zlib's full state is about 256 KiB, and making
        # it afresh for each small file costs more than compressing the file.
        wbits = min(15, max(9, (len(data) - 1).bit_length()))
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -wbits, wbits - 7)
        deflated = compressor.compress(data) + compressor.flush()
        packed.append((entry, mode, zlib.crc32(data), deflated))
    return packed


def _mode(fd: int) -> int:
    return 0o755 if os.fstat(fd).st_mode & 0o111 else 0o644


def _unreadable(path: str, err: OSError) -> MlformError:
    return MlformError(f"cannot add {path} to the snapshot: {err}")


def _changed(path: str) -> MlformError:
    return MlformError(f"{path} changed while its snapshot was being stored; run the command again")


class _ZipWriter:
    """A zip written member by member: deflated, dated 1980-01-01, with unix modes."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.offset = 0
        self.central: list[bytes] = []

    def add(self, entry: FileEntry, mode: int, crc: int, deflated: bytes) -> None:
        name, flags = _name(entry.relpath)
        header = _local_header(name, flags, crc, len(deflated), entry.size, zip64=False)
        self._record(name, flags, mode, crc, len(deflated), entry.size)
        self.out.write(header)
        self.out.write(deflated)
        self.offset += len(header) + len(deflated)

    def stream(self, path: str, entry: FileEntry) -> None:
        """A file too large to hold: its header is written again once its sizes are known."""
        name, flags = _name(entry.relpath)
        zip64 = entry.size * 1.05 > _ZIP64_LIMIT
        self.out.write(_local_header(name, flags, 0, 0, 0, zip64=zip64))
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -15)
        sha, crc, size, written = hashlib.sha256(), 0, 0, 0
        try:
            fd = os.open(path, _READ)
            try:
                mode = _mode(fd)
                while chunk := os.read(fd, _CHUNK):
                    sha.update(chunk)
                    crc = zlib.crc32(chunk, crc)
                    size += len(chunk)
                    deflated = compressor.compress(chunk)
                    self.out.write(deflated)
                    written += len(deflated)
            finally:
                os.close(fd)
        except OSError as err:
            raise _unreadable(path, err) from err
        deflated = compressor.flush()
        self.out.write(deflated)
        written += len(deflated)
        if sha.hexdigest() != entry.sha256:
            raise _changed(path)
        end = self.out.tell()
        self.out.seek(self.offset)
        self.out.write(_local_header(name, flags, crc, written, size, zip64=zip64))
        self.out.seek(end)
        self._record(name, flags, mode, crc, written, size)
        self.offset = end

    def finish(self) -> None:
        start, count = self.offset, len(self.central)
        size = sum(len(record) for record in self.central)
        self.out.write(b"".join(self.central))
        if count > _COUNT_LIMIT or start > _ZIP64_LIMIT or size > _ZIP64_LIMIT:
            end64 = start + size
            self.out.write(_END64.pack(b"PK\6\6", 44, 45, 45, 0, 0, count, count, size, start))
            self.out.write(_LOCATOR64.pack(b"PK\6\7", 0, end64, 1))
            count, size, start = min(count, 0xFFFF), min(size, 0xFFFFFFFF), min(start, 0xFFFFFFFF)
        self.out.write(_END.pack(b"PK\5\6", 0, 0, count, count, size, start, 0))

    def _record(
        self, name: bytes, flags: int, mode: int, crc: int, written: int, size: int
    ) -> None:
        fields: list[int] = []
        if size > _ZIP64_LIMIT or written > _ZIP64_LIMIT:
            fields += [size, written]
            size = written = 0xFFFFFFFF
        offset = self.offset
        if offset > _ZIP64_LIMIT:
            fields.append(offset)
            offset = 0xFFFFFFFF
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        version = 45 if fields else 20
        attributes = (stat.S_IFREG | mode) << 16
        record = _CENTRAL.pack(
            *(b"PK\1\2", version, 3, version, 0, flags, 8, _DOS_TIME, _DOS_DATE, crc, written),
            *(size, len(name), len(extra), 0, 0, 0, attributes, offset),
        )
        self.central.append(record + name + extra)


def _local_header(
    name: bytes, flags: int, crc: int, written: int, size: int, *, zip64: bool
) -> bytes:
    extra = struct.pack("<HHQQ", 1, 16, size, written) if zip64 else b""
    if zip64:
        written = size = 0xFFFFFFFF
    header = _LOCAL.pack(
        *(b"PK\3\4", 45 if zip64 else 20, 0, flags, 8, _DOS_TIME, _DOS_DATE, crc, written),
        *(size, len(name), len(extra)),
    )
    return header + name + extra


def _name(relpath: str) -> tuple[bytes, int]:
    """A member's name as bytes, and its flags: UTF-8 (bit 11) unless it is ASCII."""
    try:
        return relpath.encode("ascii"), 0
    except UnicodeEncodeError:
        return relpath.encode("utf-8"), 0x800
