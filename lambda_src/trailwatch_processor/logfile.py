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

Hostile input (issue 15) is bounded per record and per file:

- A record is never held whole past ``MAX_RECORD_BYTES`` (1 MiB of its raw JSON text). CloudTrail's own
  records are far smaller: EventBridge refuses events over 256 KB and a DynamoDB item holds 400 KB, so
  a 1 MiB record is no record CloudTrail's consumers could carry, and 1 MiB keeps the reader's window at
  a few MiB. Past the cap the first ``MAX_RECORD_BYTES`` are kept, the rest of the record is passed over
  by ``_skip_value`` (string/escape state and a depth counter over 1 MiB reads, iterative: the text
  before the reader is dropped as it goes, and the skipped part is not checked beyond its brackets and
  quotes), and a ``records.PartialRecord`` of the top-level members recoverable from the kept prefix is
  yielded (matched on what was recovered; the processor stores it with ``raw_truncated``).
- A file is read to at most ``MAX_DECOMPRESSED_BYTES`` (1 GiB) of decompressed bytes, then it is a
  ``LogFileError``. CloudTrail's files are KBs to a few MB of gzip, 10-20 times that decompressed; a gzip
  bomb (deflate reaches ~1000:1, so 1 MB of input gives ~1 GB) could otherwise cost unbounded time. Memory
  does not depend on the file's size (streamed); the cap bounds the time one file can take.
- A record that cannot be parsed is isolated, the rest of the file is read: nesting too deep for the
  parser (RecursionError) and any other parser ValueError give a ``PartialRecord`` like an oversized one;
  an integer over Python's 4,300-digit limit is kept as its digits (a string); invalid UTF-8 is decoded
  with ``surrogateescape`` (byte offsets stay exact) and, in a record that is read, replaced by U+FFFD.
  Each is a ``RecordIssue`` (record index, byte offset in the decompressed text, kind, detail) in
  ``FileStats.issues``. Invalid JSON syntax is still a ``LogFileError`` for the file: such a file is
  not CloudTrail's, and there is no safe place to resume. Records the skip passes over unparsed are
  not checked (they cannot match).
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import json
import operator
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from .records import PartialRecord, clean_value

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

MAX_RECORD_BYTES = 1 << 20  # module docstring: why 1 MiB
MAX_DECOMPRESSED_BYTES = 1 << 30  # module docstring: why 1 GiB
MAX_ISSUES_KEPT = 100  # per file; FileStats.issue_count counts them all
PYTHON_INT_DIGITS = 4300  # sys.get_int_max_str_digits() default: int() refuses longer strings
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for invalid UTF-8 bytes
_SCALAR_CHARS = "0123456789+-.eEtrufalsn"  # what a number, true, false or null is spelled with
_DEPTH_BLOCK = 1 << 16
# Outside strings: a run of whole strings and characters other than brackets and quotes (possessive: no
# backtracking; it stops at a bracket, or at a string the window cuts).
_PLAIN_RUN = re.compile(r'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
_BRACKETS_ONLY = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Per byte outside strings: 2 for an opening bracket, 0 for a closing one, 1 for anything else, so that
# the running sum minus the byte count is the depth change (_depth_zero).
_DEPTH_STEP = bytes(2 if b in b"[{" else 0 if b in b"]}" else 1 for b in range(256))


def _int_or_digits(text: str) -> int | str:
    """``parse_int`` of the lenient decoder: integers Python will not convert stay as their digits."""
    return int(text) if len(text.lstrip("-")) <= PYTHON_INT_DIGITS else text


_DECODER = json.JSONDecoder()
_LENIENT = json.JSONDecoder(parse_int=_int_or_digits)


class LogFileError(Exception):
    """The object is not a CloudTrail log: not gzip/JSON, truncated, or no ``Records`` list."""


class _TooLarge(Exception):
    """The value being read is past its size cap."""


class _Unreadable(Exception):
    """The parser cannot read this value (``kind``: ``too_deep``, ``big_integer``, ``unparsable``)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class RecordIssue:
    """One record that could not be read, stored or matched as it is: where it is and what happened.

    ``kind``: ``oversized``, ``too_deep``, ``unparsable``, ``big_integer``, ``invalid_utf8`` (reader),
    ``match_error`` (matcher), ``store_error`` (processor). ``offset`` is the record's first byte in the
    decompressed text.
    """

    index: int
    offset: int
    kind: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "offset": self.offset, "kind": self.kind, "detail": self.detail}


@dataclass
class FileStats:
    """Per file: ``records`` counted (parsed or skipped), ``parsed`` objects, ``matched`` records;
    ``fast_path`` is True when the skip was on. ``issues`` (the first ``MAX_ISSUES_KEPT``) and
    ``issue_count``: records isolated as poison; ``current``: (index, offset) of the record last yielded."""

    records: int = 0
    parsed: int = 0
    matched: int = 0
    skipped_non_objects: int = 0
    fast_path: bool = False
    issues: list[RecordIssue] = field(default_factory=list)
    issue_count: int = 0
    current: tuple[int, int] = field(default=(0, 0), compare=False)

    def add_issue(self, kind: str, detail: str, index: int | None = None, offset: int | None = None) -> None:
        """Record an issue at (index, offset), by default the record last yielded."""
        at_index, at_offset = self.current
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES_KEPT:
            issue = RecordIssue(
                at_index if index is None else index, at_offset if offset is None else offset, kind, detail
            )
            self.issues.append(issue)


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
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.s = ""
        self.pos = 0
        self.dropped = 0  # characters dropped from the front of ``s``: s[0] is character ``dropped``
        self.base = base
        self.eof = False
        self.bad_bytes = False  # an invalid UTF-8 byte was seen (as a U+DC80..U+DCFF stand-in)
        self._ascii = True  # ``s`` is ASCII: character and byte offsets agree
        self._mark = (0, 0)  # (i, UTF-8 length of s[:i]): offsets of each record start cost its own length
        self._feed(initial, final=False)

    def _feed(self, data: bytes, final: bool) -> None:
        text = self._decoder.decode(data, final)
        self._ascii = self._ascii and text.isascii()
        if not self.bad_bytes and not self._ascii:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a surrogate: only surrogateescape makes them here
                self.bad_bytes = True
        self.s += text

    def more(self, want: int = 0) -> bool:
        """Append at least ``want`` more bytes (less at EOF); False when nothing was left."""
        if self.eof:
            return False
        if self.pos:
            self.base = self.offset()
            self.s = self.s[self.pos :]
            self.dropped += self.pos
            self.pos = 0
            self._ascii, self._mark = self.s.isascii(), (0, 0)
        data = _read_chunk(self._stream, max(want, CHUNK_SIZE))
        if not data:
            self.eof = True
            self._feed(b"", final=True)
            return False
        self._feed(data, final=False)
        return True

    def offset(self, pos: int | None = None) -> int:
        """Byte offset in the decompressed text of character ``pos`` (default: the reader's) of ``s``."""
        at = self.pos if pos is None else pos
        if self._ascii:
            return self.base + at
        index, length = self._mark
        if at < index:
            return self.base + len(self.s[:at].encode("utf-8", "surrogateescape"))
        length += len(self.s[index:at].encode("utf-8", "surrogateescape"))
        self._mark = (at, length)
        return self.base + length

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

    def value(self, decoder: json.JSONDecoder, what: str, limit: int = MAX_RECORD_BYTES) -> object:
        """Decode one JSON value at ``pos``, reading more while it is incomplete, up to ``limit`` bytes
        (``_TooLarge``). ``_Unreadable`` when the parser cannot take it; ``pos`` stays at its start."""
        self.skip_ws()
        while True:
            try:
                obj, end = decoder.raw_decode(self.s, self.pos)
            except RecursionError as err:
                raise _Unreadable("too_deep", "nested too deeply for the parser") from err
            except json.JSONDecodeError as err:
                if self.eof or not self._maybe_incomplete(err):
                    raise LogFileError(
                        f"invalid JSON in {what} at byte {self.offset(err.pos)}: {err.msg}"
                        + (" (the object ends there: truncated?)" if self._at_end(err) else "")
                    ) from err
                self._grow(limit)
                continue
            except ValueError as err:  # int() over its digit limit, and whatever else the parser refuses
                kind = "big_integer" if "digits" in str(err) else "unparsable"
                raise _Unreadable(kind, str(err)) from err
            if end >= len(self.s) and not self.eof:  # a number may continue in the next chunk
                self._grow(limit)
                continue
            if self._over(end - self.pos, limit):  # read whole in one window, but still over the cap
                raise _TooLarge
            self.pos = end
            return obj

    def _over(self, chars: int, limit: int) -> bool:
        """The ``chars`` characters at ``pos`` are more than ``limit`` bytes of UTF-8."""
        if chars > limit:
            return True
        if 4 * chars <= limit:
            return False
        return len(self.s[self.pos : self.pos + chars].encode("utf-8", "surrogateescape")) > limit

    def _grow(self, limit: int) -> None:
        """Read more for the value at ``pos``, unless it already holds ``limit`` bytes."""
        pending = len(self.s) - self.pos
        if self._over(pending, limit):
            raise _TooLarge
        self.more(min(2 * pending, 2 * limit))

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
        try:
            key = text.value(_DECODER, "a top-level key")
        except _TooLarge as err:
            raise LogFileError(
                f"a top-level key over {MAX_RECORD_BYTES} bytes at byte {text.offset()}"
            ) from err
        text.expect(":", f"top-level key {key!r}")
        if key == "Records":
            if seen_records:
                raise LogFileError(f"duplicate 'Records' key at byte {text.offset()}")
            seen_records = True
            yield from _records_array(text, stats, skip)
        else:
            try:
                text.value(_DECODER, f"top-level value of {key!r}")
            except (_TooLarge, _Unreadable):
                _skip_value(text, f"top-level value of {key!r}", 0)
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


def _records_array(text: _Text, stats: FileStats, skip: _Skip | None) -> Iterator[dict]:
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
        text.skip_ws()
        index, offset = stats.records, text.offset()
        record = _read_record(text, stats, index, offset)
        stats.records += 1
        if isinstance(record, dict):
            stats.parsed += 1
            stats.current = (index, offset)
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


def _read_record(text: _Text, stats: FileStats, index: int, offset: int) -> object:
    """The record at ``pos``: parsed, or isolated (module docstring)."""
    what = f"record {index}"
    start = text.dropped + text.pos  # absolute: survives the window moving on
    decoder = _DECODER
    while True:
        try:
            record = text.value(decoder, what)
            break
        except _TooLarge:
            kind, detail = "oversized", f"over the {MAX_RECORD_BYTES}-byte record cap"
        except _Unreadable as err:
            if err.kind == "big_integer" and decoder is _DECODER:
                decoder = _LENIENT
                continue
            kind, detail = err.kind, str(err)
        return _isolate(text, stats, index, offset, kind, detail)
    if decoder is _LENIENT:
        stats.add_issue(
            "big_integer", f"an integer over {PYTHON_INT_DIGITS} digits is kept as its digits", index, offset
        )
    if text.bad_bytes and _BAD_BYTE.search(text.s, max(start - text.dropped, 0), text.pos):
        record = clean_value(record)
        stats.add_issue("invalid_utf8", "invalid UTF-8 bytes replaced by U+FFFD", index, offset)
    return record


def _isolate(text: _Text, stats: FileStats, index: int, offset: int, kind: str, detail: str) -> object:
    """Pass over the record the parser could not take; a ``PartialRecord`` of what its first
    ``MAX_RECORD_BYTES`` hold when it is an object, else None (counted as a non-object)."""
    prefix, size = _skip_value(text, f"record {index} at byte {offset} ({detail})", MAX_RECORD_BYTES)
    recovered = _recover(prefix) if prefix.startswith("{") else None
    found = recovered or {}
    names = ", ".join(f"{k}={found[k]!s:.80}" for k in _NAMED if isinstance(found.get(k), str))
    stats.add_issue(
        kind, f"{detail}; {size} bytes" + (f"; recovered {names}" if names else ""), index, offset
    )
    if recovered is None:
        return None
    partial = PartialRecord(recovered)
    partial.raw_prefix = prefix
    partial.issue = RecordIssue(index, offset, kind, detail)
    return partial


_NAMED = ("eventID", "eventName", "eventSource", "eventTime")


def _skip_value(text: _Text, what: str, keep: int) -> tuple[str, int]:
    """Move ``pos`` past the JSON value starting there with bounded memory: 1 MiB reads, the text behind
    ``pos`` dropped as it goes, one loop (no recursion) keeping the string/escape state and the depth.
    Each step is a C-level search (``str.find``, ``rstrip``, ``count``), never a Python loop over
    characters, except once per value where its depth reaches zero (``_depth_zero``).
    Returns the value's first ``keep`` bytes (decoded, invalid bytes as U+FFFD) and its size in bytes."""
    text.skip_ws()
    start = text.offset()
    head = ""
    depth, in_string, escape = 0, False, False
    first = text.s[text.pos : text.pos + 1]
    scalar = first not in ("{", "[", '"')
    if first == '"':
        in_string = True
    window_start = text.pos
    i = text.pos + (0 if scalar else 1)
    depth = 1 if first in ("{", "[") else 0
    done = False
    while True:
        s, n = text.s, len(text.s)
        while i < n and not done:
            if scalar:
                rest = len(s) - i
                i += rest - len(s[i:].lstrip(_SCALAR_CHARS))
                done = i < n
            elif escape:
                i, escape = i + 1, False
            elif in_string:
                quote = s.find('"', i)
                stretch = s[i:] if quote < 0 else s[i:quote]
                backslashes = len(stretch) - len(stretch.rstrip("\\"))
                if quote < 0:  # a backslash run at the end of the window escapes what comes next
                    i, escape = n, backslashes % 2 == 1
                elif backslashes % 2:  # an escaped quote: still in the string
                    i = quote + 1
                else:
                    i, in_string, done = quote + 1, False, depth == 0
            else:
                i = _PLAIN_RUN.match(s, i).end()  # type: ignore[union-attr]
                if i >= n:
                    break
                quote = s.find('"', i)
                stop = n if quote < 0 else quote
                i, depth, done = _depth_zero(s, i, stop, depth)
                if not done and quote >= 0 and i == quote:
                    i, in_string = quote + 1, True
        text.pos = i
        if len(head) < keep:  # characters: at least as many bytes, cut to ``keep`` bytes below
            head += s[window_start : min(i, window_start + keep - len(head))]
        if done:
            break
        if not text.more():
            if scalar:
                break
            raise LogFileError(f"{what}: the file ends inside it")
        i = window_start = text.pos
    size = text.offset() - start
    kept = head.encode("utf-8", "surrogateescape")[: min(keep, size)].decode("utf-8", "replace")
    return kept, size


def _depth_zero(s: str, i: int, stop: int, depth: int) -> tuple[int, int, bool]:
    """Follow the brackets of ``s[i:stop]`` (no quote in it) from ``depth``: (where the depth reached
    zero, 0, True), or (stop, the depth there, False). Blocks where it cannot reach zero are passed by
    counting (fewer closing brackets than the depth) or by the minimum of the running depth, computed by
    C iterators; only the block where it does is walked character by character."""
    while i < stop:
        end = min(i + _DEPTH_BLOCK, stop)
        block = s[i:end]
        closes = block.count("]") + block.count("}")
        opens = block.count("[") + block.count("{")
        if closes < depth:
            i, depth = end, depth + opens - closes
            continue
        residue = block.encode("utf-8", "surrogateescape").translate(_BRACKETS_ONLY, _NOT_BRACKETS)
        for _ in range(64):  # cancel matched pairs; what stays is "]" * k + "[" * m once none is left
            shorter = residue.replace(b"[]", b"")
            if len(shorter) == len(residue):
                break
            residue = shorter
        if b"[]" not in residue and len(residue) - len(residue.lstrip(b"]")) < depth:
            i, depth = end, depth + opens - closes
            continue
        steps = block.encode("utf-8", "surrogateescape").translate(_DEPTH_STEP)
        lowest = min(map(operator.sub, itertools.accumulate(steps), itertools.count(1)))
        if depth + lowest > 0:
            i, depth = end, depth + opens - closes
            continue
        for at, char in enumerate(block, i):
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return at + 1, 0, True
        i = end  # not reached: the minimum said it does reach zero
    return stop, depth, False


def _recover(prefix: str) -> dict:
    """The top-level members of an object that ``prefix`` holds whole, in order; stops at the first
    member it cannot read (the one cut by the cap, or too deep), and drops a last value that may have
    been cut (a number running to the end of the prefix)."""
    out: dict = {}
    ws = _WS
    pos = ws.match(prefix, 1).end()  # type: ignore[union-attr]
    while prefix[pos : pos + 1] == '"':
        try:
            key, pos = _LENIENT.raw_decode(prefix, pos)
            pos = ws.match(prefix, pos).end()  # type: ignore[union-attr]
            if prefix[pos : pos + 1] != ":":
                break
            value, end = _LENIENT.raw_decode(prefix, ws.match(prefix, pos + 1).end())  # type: ignore[union-attr]
        except (ValueError, RecursionError):
            break
        end = ws.match(prefix, end).end()  # type: ignore[union-attr]
        if end >= len(prefix):
            break
        out[key] = value
        if prefix[end] != ",":
            break
        pos = ws.match(prefix, end + 1).end()  # type: ignore[union-attr]
    return out


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
        try:  # the matcher takes exact dicts only (type(record) is dict): a PartialRecord as a plain copy
            rules = matcher.match(dict(record) if type(record) is not dict else record)
        except (RecursionError, ValueError, TypeError) as err:  # a record the matcher cannot take
            stats.add_issue("match_error", f"{type(err).__name__}: {err}")
            continue
        if rules:
            stats.matched += 1
            yield record, rules
