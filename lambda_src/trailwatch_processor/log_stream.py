"""The decompressed bytes of one log object (``open_log``): gzip when it starts with 1f 8b (one or more
members, each CRC- and length-checked by zlib), else the bytes as they are; read to at most
``MAX_DECOMPRESSED_BYTES``, and every gzip fault is a ``LogFileError``.

1 GiB: CloudTrail's files are KBs to a few MB of gzip, 10-20 times that decompressed; a gzip bomb (deflate
reaches ~1000:1, so 1 MB of input gives ~1 GB) could otherwise cost unbounded time.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

_GZ_INPUT = 1 << 18  # compressed bytes per read of the source
_READ_ALL_STEP = 1 << 20  # decompressed bytes per step of read(-1)
GZIP_MAGIC = b"\x1f\x8b"
MAX_DECOMPRESSED_BYTES = 1 << 30  # module docstring: why 1 GiB


class LogFileError(Exception):
    """The object is not a CloudTrail log: not gzip/JSON, truncated, or no ``Records`` list."""


class _Readable(io.RawIOBase):
    """A raw stream whose subclass defines ``read``."""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Prefixed(_Readable):
    """``raw`` with the bytes already sniffed put back in front; counts bytes handed out."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0 or size >= len(self._head):
                data, self._head = self._head, b""
                more = self._raw.read(-1 if size is None or size < 0 else size - len(data))
                data += more or b""
            else:
                data, self._head = self._head[:size], self._head[size:]
        else:
            data = self._raw.read(size) or b""
        self.consumed += len(data)
        return data


class _LogStream(_Readable):
    """Decompressed bytes of a log object; gzip format errors become ``LogFileError``."""

    def __init__(self, inner: BinaryIO, source: _Prefixed, compressed: bool) -> None:
        self._inner = inner
        self._source = source
        self.compressed = compressed
        self.offset = 0
        self.limit = MAX_DECOMPRESSED_BYTES

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._inner.read(size)
        except EOFError as err:
            raise LogFileError(
                f"truncated gzip: the compressed data ended after {self._source.consumed} bytes "
                f"({self.offset} bytes decompressed) before the end-of-stream marker"
            ) from err
        except (gzip.BadGzipFile, zlib.error) as err:
            raise LogFileError(
                f"corrupt gzip near compressed byte {self._source.consumed} "
                f"({self.offset} bytes decompressed): {err}"
            ) from err
        self.offset += len(data)
        if self.offset > self.limit:
            raise LogFileError(
                f"over {self.limit} bytes decompressed (from {self._source.consumed} bytes of the object): "
                "not read further (a gzip bomb, or no CloudTrail file)"
            )
        return data


class _Gunzip:
    """Decompressed bytes of a gzip stream of one or more members (zero padding between them allowed).

    zlib decodes the gzip wrapper itself (``wbits=31``) and checks each member's CRC-32 and length, so
    no second pass over the data is needed; ``zlib.error`` (corrupt, bad check) and ``EOFError``
    (input ended inside a member) are turned into ``LogFileError`` by ``_LogStream``.
    """

    def __init__(self, source: _Prefixed) -> None:
        self._source = source
        self._inflate = zlib.decompressobj(31)
        self._input = b""  # compressed bytes not yet given to zlib
        self._in_member = False
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_READ_ALL_STEP), b""))
        out: list[bytes] = []
        want = size
        while want > 0 and not self._eof:
            data = self._inflate.unconsumed_tail or self._next_input()
            if not data:
                continue
            piece = self._inflate.decompress(data, want)
            self._in_member = True
            want -= len(piece)
            out.append(piece)
            if self._inflate.eof:
                self._input = self._inflate.unused_data
                self._inflate = zlib.decompressobj(31)
                self._in_member = False
        return b"".join(out)

    def _next_input(self) -> bytes:
        """Compressed bytes for zlib; b"" after skipping padding; sets ``_eof`` at a clean end."""
        data, self._input = self._input, b""
        if not data:
            data = self._source.read(_GZ_INPUT) or b""
            if not data:
                if self._in_member:
                    raise EOFError("compressed data ended before the end-of-stream marker")
                self._eof = True
                return b""
        if not self._in_member:
            data = data.lstrip(b"\0")
        return data


def open_log(raw: BinaryIO) -> BinaryIO:
    """Decompressed view of a log object: gzip when it starts with 1f 8b, else the bytes as they are."""
    if isinstance(raw, _LogStream):
        return raw
    head = b""
    while len(head) < 2:
        more = raw.read(2 - len(head))
        if not more:
            break
        head += more
    source = _Prefixed(head, raw)
    if head == GZIP_MAGIC:
        inner: BinaryIO = _Gunzip(source)  # type: ignore[assignment]
        return _LogStream(inner, source, compressed=True)  # type: ignore[return-value]
    return _LogStream(source, source, compressed=False)  # type: ignore[return-value,arg-type]
