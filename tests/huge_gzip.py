"""Gzip streams of hundreds of MiB, written in milliseconds: inputs for the reader's size and memory bounds.

Once the compressor's 32 KiB window holds nothing but a repeated block, every further copy of that block
compresses (with a sync flush after it) to the same bytes. So a block repeated `times` times is compressed
until two copies give the same output, and those bytes are written for the remaining copies; the compressor
never sees them, and its window is the same as if it had. The result is one ordinary gzip member (RFC 1952
header, deflate stream, CRC-32 and length trailer): `gzip.decompress` gives back the whole text, and a wrong
byte anywhere would fail the CRC check of every reader, ours included.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator

HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # magic, deflate, no flags, no mtime, best compression
WINDOW = 1 << zlib.MAX_WBITS


def gzip_chunks(parts: Iterable[tuple[bytes, int]]) -> Iterator[bytes]:
    """The gzip of the concatenation of `data * times` for each `(data, times)`, as chunks to write."""
    pack = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = size = 0
    yield HEADER
    for data, times in parts:
        last = b""
        steady = False
        for _ in range(times):
            crc = zlib.crc32(data, crc)
            size += len(data)
            if not steady:
                out = pack.compress(data) + pack.flush(zlib.Z_SYNC_FLUSH)
                # Only a block at least a window long leaves a window of nothing but itself.
                steady = out == last and len(data) >= WINDOW
                last = out
            yield last
    yield pack.flush()
    yield struct.pack("<II", crc, size & 0xFFFFFFFF)


def gzip_bytes(parts: Iterable[tuple[bytes, int]]) -> bytes:
    return b"".join(gzip_chunks(parts))
