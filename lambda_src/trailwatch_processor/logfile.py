"""Streaming read of one CloudTrail log object: bounded memory, one record parsed at a time.

The decompressed bytes (log_stream.py) are decoded in 1 MiB reads into a text window; ``{"Records": [...]}``
of any valid layout is parsed one record at a time with ``json.JSONDecoder.raw_decode``. ``iter_matches``
yields the records a matcher matches; when the matcher has ``literals``, records that cannot match are
counted, not parsed (skip.py).

Hostile input is bounded per record and per file:

- A record is never held whole past ``MAX_RECORD_BYTES`` (1 MiB of its raw JSON text). CloudTrail's own
  records are far smaller: EventBridge refuses events over 256 KB and a DynamoDB item holds 400 KB, so
  a 1 MiB record is no record CloudTrail's consumers could carry, and 1 MiB keeps the reader's window at
  a few MiB. Past the cap the first ``MAX_RECORD_BYTES`` are kept, the rest of the record is passed over
  by ``json_skip.skip_value`` (string/escape state and a depth counter over 1 MiB reads, iterative: the
  text before the reader is dropped as it goes, and the skipped part is not checked beyond its brackets
  and quotes), and a ``records.PartialRecord`` of the top-level members recoverable from the kept prefix
  is yielded (matched on what was recovered; the processor stores it with ``raw_truncated``).
- A file is read to at most ``log_stream.MAX_DECOMPRESSED_BYTES`` (1 GiB) of decompressed bytes, then it
  is a ``LogFileError``. Memory does not depend on the file's size (streamed); the cap bounds the time
  one file can take.
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
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from .json_skip import skip_value
from .log_stream import LogFileError, open_log
from .records import PartialRecord, clean_value
from .skip import Skip

if TYPE_CHECKING:
    from .config import Rule
    from .patterns import Matcher

CHUNK_SIZE = 1 << 20
_BOM = codecs.BOM_UTF8
_WS = re.compile(r"[ \t\n\r]*")
# Errors of raw_decode that more data may cure: the value runs to (or within a few bytes of) the end.
_NEAR_END = 16

MAX_RECORD_BYTES = 1 << 20  # module docstring: why 1 MiB
MAX_ISSUES_KEPT = 100  # per file; FileStats.issue_count counts them all
PYTHON_INT_DIGITS = 4300  # sys.get_int_max_str_digits() default: int() refuses longer strings
_BAD_BYTE = re.compile("[\udc80-\udcff]")  # surrogateescape's stand-ins for invalid UTF-8 bytes


def _int_or_digits(text: str) -> int | str:
    """``parse_int`` of the lenient decoder: integers Python will not convert stay as their digits."""
    return int(text) if len(text.lstrip("-")) <= PYTHON_INT_DIGITS else text


_DECODER = json.JSONDecoder()
_LENIENT = json.JSONDecoder(parse_int=_int_or_digits)


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


def _general(stream: BinaryIO, stats: FileStats, skip: Skip | None) -> Iterator[dict]:
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
                skip_value(text, f"top-level value of {key!r}", 0)
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


def _records_array(text: _Text, stats: FileStats, skip: Skip | None) -> Iterator[dict]:
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
    prefix, size = skip_value(text, f"record {index} at byte {offset} ({detail})", MAX_RECORD_BYTES)
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
    records = _general(open_log(stream), stats, Skip(literals) if literals is not None else None)
    for record in records:
        try:  # the matcher takes exact dicts only (type(record) is dict): a PartialRecord as a plain copy
            rules = matcher.match(dict(record) if type(record) is not dict else record)
        except (RecursionError, ValueError, TypeError) as err:  # a record the matcher cannot take
            stats.add_issue("match_error", f"{type(err).__name__}: {err}")
            continue
        if rules:
            stats.matched += 1
            yield record, rules
