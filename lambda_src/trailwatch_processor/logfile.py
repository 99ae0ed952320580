"""Streaming read of one CloudTrail log object: bounded memory, one record parsed at a time, and one skip.

The (gunzipped) bytes are decoded in 1 MiB reads into a text window; ``{"Records": [...]}`` of any valid
layout is parsed one record at a time with ``json.JSONDecoder.raw_decode``.

The skip (``iter_matches`` when the matcher has ``literals``): at a record start, take the window up to
its last ``},{"eventVersion":`` and find the hits in it: the rules' needles, ``"eventName"`` members whose
value is one of ``event_names``, starts with one of ``event_name_prefixes`` or is not a plain string, and
``\\u``/``\\/`` escapes (``literals`` says why every record a rule matches holds one). The records
before the next hit are counted, not parsed, once ``_whole_records`` proves them whole records of the
Records array; any doubt parses instead. Skipped records are not checked for syntax errors (the gzip CRC
and length still are).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .config import Rule
    from .literals import Literals
    from .patterns import Matcher

CHUNK_SIZE = 1 << 20
_GZ_INPUT = 1 << 18  # compressed bytes per read of the source
GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8
_WS = re.compile(r"[ \t\n\r]*")
# Errors of raw_decode that more data may cure: the value runs to (or within a few bytes of) the end.
_NEAR_END = 16


class LogFileError(Exception):
    """The object is not a CloudTrail log: not gzip/JSON, truncated, or no ``Records`` list."""


@dataclass
class FileStats:
    """Per file: ``records`` counted (parsed or skipped), ``parsed`` objects, ``matched`` records;
    ``fast_path`` is True when the skip was on."""

    records: int = 0
    parsed: int = 0
    matched: int = 0
    skipped_non_objects: int = 0
    fast_path: bool = False


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
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
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


def _read_chunk(stream: BinaryIO, size: int | None = None) -> bytes:
    """Up to ``size`` bytes (default ``CHUNK_SIZE``); fewer only at the end of the stream."""
    size = size or CHUNK_SIZE
    data = stream.read(size) or b""
    while data and len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


class _Text:
    """Decoded text window over the stream: ``pos`` indexes ``s``; ``base`` is the byte offset of s[0]."""

    def __init__(self, stream: BinaryIO, initial: bytes, base: int) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.s = ""
        self.pos = 0
        self.dropped = 0  # characters dropped from the front of ``s``: s[0] is character ``dropped``
        self.base = base
        self.eof = False
        self._bytes_in = base
        self._feed(initial, final=False)

    def _feed(self, data: bytes, final: bool) -> None:
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as err:
            at = self._bytes_in + err.start - len(self._decoder.getstate()[0])
            raise LogFileError(f"not UTF-8 text: invalid byte at offset {max(at, 0)}") from err
        self._bytes_in += len(data)
        self.s += text

    def more(self, want: int = 0) -> bool:
        """Append at least ``want`` more bytes (less at EOF); False when nothing was left."""
        if self.eof:
            return False
        if self.pos:
            self.base += len(self.s[: self.pos].encode("utf-8", "surrogatepass"))
            self.s = self.s[self.pos :]
            self.dropped += self.pos
            self.pos = 0
        data = _read_chunk(self._stream, max(want, CHUNK_SIZE))
        if not data:
            self.eof = True
            self._feed(b"", final=True)
            return False
        self._feed(data, final=False)
        return True

    def offset(self, pos: int | None = None) -> int:
        at = self.pos if pos is None else pos
        return self.base + len(self.s[:at].encode("utf-8", "surrogatepass"))

    def skip_ws(self) -> str:
        """Skip whitespace; the next character, or '' at the end of the stream."""
        while True:
            self.pos = _WS.match(self.s, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.s):
                return self.s[self.pos]
            if not self.more():
                return ""

    def expect(self, char: str, what: str) -> None:
        found = self.skip_ws()
        if found != char:
            raise LogFileError(f"{what}: expected {char!r} at byte {self.offset()}, found {_show(found)}")
        self.pos += 1

    def value(self, decoder: json.JSONDecoder, what: str) -> object:
        """Decode one JSON value at ``pos``, reading more while it is incomplete."""
        self.skip_ws()
        while True:
            try:
                obj, end = decoder.raw_decode(self.s, self.pos)
            except RecursionError as err:
                raise LogFileError(f"{what} at byte {self.offset()} is nested too deeply") from err
            except json.JSONDecodeError as err:
                if self.eof or not self._maybe_incomplete(err):
                    raise LogFileError(
                        f"invalid JSON in {what} at byte {self.offset(err.pos)}: {err.msg}"
                        + (" (the object ends there: truncated?)" if self._at_end(err) else "")
                    ) from err
                self.more(2 * (len(self.s) - self.pos))
                continue
            if end >= len(self.s) and not self.eof:  # a number may continue in the next chunk
                self.more(2 * (len(self.s) - self.pos))
                continue
            self.pos = end
            return obj

    def _at_end(self, err: json.JSONDecodeError) -> bool:
        return err.msg.startswith("Unterminated string") or err.pos >= len(self.s)

    def _maybe_incomplete(self, err: json.JSONDecodeError) -> bool:
        return err.msg.startswith("Unterminated string") or err.pos >= len(self.s) - _NEAR_END


def _show(found: str) -> str:
    return "the end of the object" if found == "" else repr(found)


def _general(stream: BinaryIO, stats: FileStats, skip: _Skip | None) -> Iterator[dict]:
    """Records of ``{"Records": [...]}`` in any layout (after a UTF-8 byte order mark, if any)."""
    data = _read_chunk(stream)
    base = len(_BOM) if data.startswith(_BOM) else 0
    text = _Text(stream, data[base:], base)
    decoder = json.JSONDecoder()
    seen_records = False
    first = text.skip_ws()
    if first == "":
        raise LogFileError('empty object: 0 bytes of JSON, expected {"Records": [...]}')
    if first != "{":
        kind = "a JSON list" if first == "[" else "not JSON"
        raise LogFileError(
            f"not a CloudTrail log: {kind}; expected an object with 'Records' at byte {text.offset()}, "
            f"found {first!r}"
        )
    text.pos += 1
    closed = text.skip_ws() == "}"
    text.pos += closed
    while not closed:
        char = text.skip_ws()
        if char != '"':
            raise LogFileError(
                f"top-level object: expected a key at byte {text.offset()}, found {_show(char)}"
            )
        key = text.value(decoder, "a top-level key")
        text.expect(":", f"top-level key {key!r}")
        if key == "Records":
            if seen_records:
                raise LogFileError(f"duplicate 'Records' key at byte {text.offset()}")
            seen_records = True
            yield from _records_array(text, decoder, stats, skip)
        else:
            text.value(decoder, f"top-level value of {key!r}")
        closed = _after_member(text)
    if not seen_records:
        raise LogFileError("not a CloudTrail log: the JSON object has no 'Records' key")
    _expect_end(text)


def _after_member(text: _Text) -> bool:
    """Consume the ',' or '}' after a top-level member; True at '}'."""
    char = text.skip_ws()
    text.pos += 1
    if char not in ("}", ","):
        raise LogFileError(
            f"top-level object: expected ',' or '}}' at byte {text.offset() - 1}, found {_show(char)}"
        )
    return char == "}"


def _expect_end(text: _Text) -> None:
    char = text.skip_ws()
    if char:
        raise LogFileError(f"unexpected data after the top-level object at byte {text.offset()}")


def _records_array(
    text: _Text, decoder: json.JSONDecoder, stats: FileStats, skip: _Skip | None
) -> Iterator[dict]:
    char = text.skip_ws()
    if char != "[":
        kind = "missing" if char == "" else f"not a list (starts with {char!r})"
        raise LogFileError(f"'Records' is {kind} at byte {text.offset()}")
    text.pos += 1
    if text.skip_ws() == "]":
        text.pos += 1
        return
    while True:
        if skip is not None:
            stats.records += skip.advance(text)
        record = text.value(decoder, f"record {stats.records}")
        stats.records += 1
        if isinstance(record, dict):
            stats.parsed += 1
            yield record
        else:
            stats.skipped_non_objects += 1
        char = text.skip_ws()
        text.pos += 1
        if char == "]":
            return
        if char != ",":
            raise LogFileError(
                f"'Records' list: expected ',' or ']' at byte {text.offset() - 1}, found {_show(char)}"
            )


_SEP = '},{"eventVersion":'
_ESCAPES = re.compile(r"\\[u/]")
# Every "eventName" member; group 1 is its value when spelled plainly (no space, no backslash, a string).
_EVENT_NAME = re.compile(r'"eventName"(?::"([^"\\]*)")?')
# Raw control bytes cannot occur in valid JSON: they mark the separators and each record's own braces.
_MARK, _OPEN, _CLOSE = b"\x01", b"\x02", b"\x03"
_SEP_BYTES = _SEP.encode()
_SEP_MARKED = _CLOSE + _MARK + _OPEN + _SEP_BYTES[3:]  # "}" "," "{" replaced, same length
_KEEP = b'"{}[]' + _MARK + _OPEN + _CLOSE
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STRINGS = re.compile(rb'"[^"]*"')
_ESCAPE_PAIRS = re.compile(rb"\\.", re.DOTALL)
MAX_SKIP_DEPTH = 64  # brackets nested deeper than this in a stretch: it is parsed, not skipped


def _whole_records(window: str) -> int | None:
    """How many records ``window`` holds when it is a run of whole objects, else None.

    ``window`` starts at a record start in the Records array and ends with the ``}`` before a separator.
    The separators and each record's own braces are marked; escape pairs go (so every quote left
    delimits a string), then strings, then all but brackets and marks; matched pairs (marked braces
    among them) cancel until nothing changes. A separator mark inside a pair blocks it, and marked braces
    around two values leave brackets behind: only the separator marks remain exactly when every
    separator lies between two records, each one object. C loops over the window, then its residue.
    """
    if window[:1] != "{" or window[-1:] != "}":
        return None
    data = window.encode("utf-8", "surrogatepass").replace(_SEP_BYTES, _SEP_MARKED)
    if b"\\" in data:  # escape pairs go, left to right as JSON reads them: \\ and \" among them
        data = _ESCAPE_PAIRS.sub(b"", data)
    residue = data.translate(None, _DELETE)  # still starts with the window's "{", ends with its "}"
    residue = (_OPEN + residue[1:-1] + _CLOSE).replace(b'""', b"")
    if b'"' in residue:
        residue = _STRINGS.sub(b"", residue)
    for _ in range(MAX_SKIP_DEPTH):
        shorter = residue.replace(b"{}", b"").replace(b"[]", b"").replace(_OPEN + _CLOSE, b"")
        if len(shorter) == len(residue):
            break
        residue = shorter
    marks = residue.count(_MARK)
    return marks + 1 if residue == _MARK * marks else None


class _Skip:
    """Moves the reader over records that cannot match (module docstring); one per file.

    Positions are absolute character offsets (``_Text.dropped`` + index), so they survive the text
    window sliding forward while a record with a hit is read.
    """

    def __init__(self, literals: Literals) -> None:
        self._names = literals.event_names
        self._prefixes = literals.event_name_prefixes
        self._needles = literals.needles
        self._end = -1  # end of the current window (just after its last separator's '}')
        self._hits: list[int] = []  # hits in the window at or after the reader, last one first
        self._doubt = False  # the window is not whole records: parse the rest of it

    def _find_hits(self, s: str, lo: int, hi: int) -> list[int]:
        """Start of every hit lying wholly in ``s[lo:hi]`` (unordered, perhaps repeated)."""
        hits = [m.start() for m in _ESCAPES.finditer(s, lo, hi)] if s.find("\\", lo, hi) >= 0 else []
        for needle in self._needles:
            at = s.find(needle, lo, hi)
            while at >= 0:
                hits.append(at)
                at = s.find(needle, at + 1, hi)
        if self._names or self._prefixes:
            names, prefixes = self._names, self._prefixes
            hits += [
                m.start()
                for m in _EVENT_NAME.finditer(s, lo, hi)
                if m[1] is None or m[1] in names or m[1].startswith(prefixes)
            ]
        return hits

    def advance(self, text: _Text) -> int:
        """At a record start: move ``text.pos`` to the start of the record holding the next hit (or of the
        last record read so far), past whole records without a hit; how many records it moved past."""
        moved = 0
        while True:
            s, pos, dropped = text.s, text.pos, text.dropped
            if dropped + pos >= self._end:  # a new window, up to the last separator in the text
                cut = s.rfind(_SEP, pos)
                if cut < 0:
                    return moved
                self._end, self._doubt = dropped + cut + 1, False
                hits = self._find_hits(s, pos, cut + 1)
                self._hits = sorted({dropped + h for h in hits}, reverse=True)
            while self._hits and self._hits[-1] < dropped + pos:
                self._hits.pop()
            if self._doubt:
                return moved
            # The last separator c before the next hit with c + 2 <= hit (the hit's record starts at
            # c + 2); without a hit, the window's last one (at _end - 1: _end + 1 plays the hit's part).
            stop = (self._hits[-1] if self._hits else self._end + 1) - dropped
            cut = s.rfind(_SEP, pos, stop - 2 + len(_SEP))
            if cut < 0:
                return moved
            records = _whole_records(s[pos : cut + 1])
            if records is None:
                self._doubt = True
                return moved
            text.pos = cut + 2
            moved += records
            if self._hits or not text.more():  # else the next window may be skipped too
                return moved


def iter_records(stream: BinaryIO, stats: FileStats | None = None) -> Iterator[dict]:
    """Every record object of a log (gzip or plain JSON), one at a time."""
    stats = stats if stats is not None else FileStats()
    yield from _general(open_log(stream), stats, None)


def iter_matches(
    stream: BinaryIO, matcher: Matcher, stats: FileStats | None = None, prefilter: bool = True
) -> Iterator[tuple[dict, list[Rule]]]:
    """Records that match at least one rule, with their rules in config order.

    ``prefilter`` False parses every record (the skip's reference in the differential tests).
    """
    stats = stats if stats is not None else FileStats()
    literals = matcher.literals if prefilter else None
    stats.fast_path = literals is not None
    records = _general(open_log(stream), stats, _Skip(literals) if literals is not None else None)
    for record in records:
        rules = matcher.match(record)
        if rules:
            stats.matched += 1
            yield record, rules
