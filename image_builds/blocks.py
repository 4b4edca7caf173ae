"""Pure block logic for EBS direct uploads (no AWS): sizes, data extents, zero blocks, checksums.

Checksums follow coldsnap: every block sent is padded to the full block size, its SHA-256 is sent
base64-encoded with the block, and CompleteSnapshot gets the LINEAR aggregate: SHA-256 over the
concatenation of the raw per-block digests of the blocks sent, in block-index order, base64.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import itertools
import os
import stat
from typing import Iterable, Iterator, Mapping

GIB = 1 << 30


def image_size(fd: int) -> int:
    """Size in bytes of an open regular file or block device."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size


def volume_size_gib(nbytes: int) -> int:
    """The smallest EBS volume (whole GiB, at least 1) that holds `nbytes`."""
    if nbytes < 0:
        raise ValueError("negative size")
    return max(1, -(-nbytes // GIB))


def block_count(nbytes: int, block_size: int) -> int:
    """Number of blocks of `block_size` that cover `nbytes` (the last one may be partial)."""
    if block_size <= 0:
        raise ValueError(f"bad block size {block_size}")
    return -(-nbytes // block_size)


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """Byte ranges [start, end) that may hold data, from SEEK_DATA/SEEK_HOLE.

    Holes of a sparse file are skipped without reading them. Where the file system or device does
    not support SEEK_DATA, the whole file is one extent (all of it is read and zero-checked)."""
    if size == 0:
        return []
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        return [(0, size)]
    extents: list[tuple[int, int]] = []
    offset = 0
    try:
        while offset < size:
            try:
                start = os.lseek(fd, offset, seek_data)
            except OSError as exc:  # ENXIO: no data after offset
                if exc.errno == errno.ENXIO:
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, seek_hole), size)
            extents.append((start, end))
            offset = end
    except OSError:
        return [(0, size)]
    return extents


def blocks_of_extents(extents: Iterable[tuple[int, int]], block_size: int) -> list[range]:
    """Block-index ranges that overlap the byte extents, merged and in order."""
    merged: list[list[int]] = []
    for start, end in extents:
        if end <= start:
            continue
        first, last = start // block_size, -(-end // block_size)
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [range(a, b) for a, b in merged]


def iter_indices(ranges: Iterable[range]) -> Iterator[int]:
    """All block indices of `ranges`, in order."""
    return itertools.chain.from_iterable(ranges)


_ZEROS: dict[int, bytes] = {}


def is_zero(data: bytes) -> bool:
    """True when every byte is zero (compared against a cached zero buffer: a memcmp)."""
    n = len(data)
    zeros = _ZEROS.get(n)
    if zeros is None:
        zeros = _ZEROS.setdefault(n, bytes(n))
    return data == zeros


def read_block(fd: int, index: int, block_size: int, size: int) -> bytes:
    """Block `index` of the image read with os.pread (no shared file offset), padded with zeros
    to `block_size` when the image ends inside it."""
    offset = index * block_size
    want = min(block_size, size - offset)
    if want <= 0:
        raise ValueError(f"block {index} is past the end of the image ({size} bytes)")
    chunks = []
    got = 0
    while got < want:
        chunk = os.pread(fd, want - got, offset + got)
        if not chunk:
            raise OSError(f"short read at offset {offset + got}: image shrank while uploading")
        chunks.append(chunk)
        got += len(chunk)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if want < block_size:
        data += bytes(block_size - want)
    return data


def block_digest(data: bytes) -> bytes:
    """Raw SHA-256 digest of one (padded) block."""
    return hashlib.sha256(data).digest()


def b64(digest: bytes) -> str:
    """Base64 text of a digest, as EBS direct expects in x-amz-Checksum."""
    return base64.b64encode(digest).decode("ascii")


def aggregate_checksum(digests: Mapping[int, bytes]) -> str:
    """LINEAR aggregate: base64(sha256(concat(raw digests in block-index order)))."""
    h = hashlib.sha256()
    for index in sorted(digests):
        h.update(digests[index])
    return b64(h.digest())


def nonzero_blocks(path: str | os.PathLike, block_size: int) -> list[int]:
    """Indices of the blocks of a file that are not all zero (for tests and verification)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = image_size(fd)
        ranges = blocks_of_extents(data_extents(fd, size), block_size)
        return [i for i in iter_indices(ranges) if not is_zero(read_block(fd, i, block_size, size))]
    finally:
        os.close(fd)
