"""Streaming read of one CloudTrail log object with bounded memory and a provably safe literal prefilter.

Two readers produce the same matches for every valid JSON log:

* the general path parses ``{"Records": [...]}`` of any valid layout one record at a time
  (``json.JSONDecoder.raw_decode`` on a buffer that grows only while a record is incomplete);
* the fast path handles CloudTrail's compact layout ``{"Records":[{"eventVersion":...},...]}``.
  It splits the decompressed bytes at ``},{"eventVersion":`` and ``json.loads`` only the pieces
  that contain a needle of the matcher (or a ``\\u``/``\\/`` escape that could hide one). With
  ``Matcher.prefilter_index``, rules with a required top-level leaf on eventName, errorCode and the
  other keys beginning with ``e`` are found by looking at the values after each ``"key"`` instead of
  searching needles (proof at ``_Prefilter``); a window without any hit costs one regex pass for
  those keys (which also counts its records) and one substring search per remaining needle
  (``memsearch.find``: the C library's memmem where there is one).

Why the fast path is safe (for valid JSON): ``},{"eventVersion":`` can never lie inside a JSON
string (its ``"`` would have to be escaped), so every occurrence is structural. It may still be
*nested* (an array of objects inside a record whose second element has the key ``eventVersion``);
then a piece could parse as an object although it is not a record. Before any piece of a window is
used, the structure of the window (and of the windows without a hit before it that no check has
covered yet, ``_Unproven``) is checked in C-speed passes (``_structure_ok``): strings are
removed, separators become marker bytes, and matched bracket pairs are cancelled. Only when nothing
but markers remains is every separator at the depth of the Records array, so every piece is a
sequence of complete records. Any doubt (layout, nesting, a candidate that does not parse, 16 MiB
without a separator) sends the rest of the file, from the last record start the check proved, to the
general path. Needles are those of ``rules.Matcher.needles``: literals of the raw text as
``json.dumps(ensure_ascii=False)`` spells it; ``\\u`` and ``\\/`` are the only other spellings.

On the fast path ``FileStats.records`` counts the pieces between separators: exact when every record
starts with ``eventVersion`` (as CloudTrail writes them) and no separator is nested (else exact only
where the structure check ran, see ``_Unproven``); pieces that are parsed are counted record by
record. ``skipped_non_objects`` counts only what was parsed. Syntax errors (and nesting too deep for
``json``) inside records that contain no needle are not detected there (they are never parsed); gzip
integrity (CRC, length) is still checked.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from . import memsearch
from .rules import KeyTest

if TYPE_CHECKING:
    from .rules import Rule

CHUNK_SIZE = 1 << 20
_GZ_INPUT = 1 << 18  # compressed bytes per read of the source
GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8
_HEAD = b'{"Records":['
_REC_START = b'{"eventVersion":'
_SEP = b'},{"eventVersion":'
_MARK = b"\x01"
_SEP_MARKED = b"}" + _MARK + b'{"eventVersion":'
_KEEP = b'"{}[]' + _MARK
_DELETE = bytes(b for b in range(256) if b not in _KEEP)
_STRINGS = re.compile(rb'"[^"]*"')
_MAX_DEPTH = 64
MAX_PIECE = 16 << 20  # bytes the fast path holds while looking for a separator before giving up
_WS = re.compile(r"[ \t\n\r]*")
_WS_BYTES = b" \t\n\r"
# Errors of raw_decode that more data may cure: the value runs to (or within a few bytes of) the end.
_NEAR_END = 16


class LogFileError(Exception):
    """The object is not a CloudTrail log: not gzip/JSON, truncated, or no ``Records`` list."""


@dataclass
class FileStats:
    records: int = 0
    parsed: int = 0
    matched: int = 0
    skipped_non_objects: int = 0
    fast_path: bool = False


class _Matcher(Protocol):
    needles: tuple[bytes, ...] | None

    def match(self, record: dict) -> list[Rule]: ...


class _Prefixed(io.RawIOBase):
    """``raw`` with the bytes already sniffed put back in front; counts bytes handed out."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

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

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


class _LogStream(io.RawIOBase):
    """Decompressed bytes of a log object; gzip format errors become ``LogFileError``."""

    def __init__(self, inner: BinaryIO, source: _Prefixed, compressed: bool) -> None:
        self._inner = inner
        self._source = source
        self.compressed = compressed
        self.offset = 0

    def readable(self) -> bool:
        return True

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

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


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


# ---------------------------------------------------------------------------------------------------------
# General path: any valid JSON layout, one record at a time.


class _Text:
    """Decoded text window over the stream: ``pos`` indexes ``s``; ``base`` is the byte offset of s[0]."""

    def __init__(self, stream: BinaryIO, initial: bytes, base: int) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.s = ""
        self.pos = 0
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


def _general(
    stream: BinaryIO, initial: bytes, base: int, stats: FileStats, in_records: bool
) -> Iterator[dict]:
    """Records of ``{"Records": [...]}`` in any layout. ``in_records``: ``initial`` starts at a record."""
    text = _Text(stream, initial, base)
    decoder = json.JSONDecoder()
    seen_records = in_records
    if in_records:
        yield from _records_array(text, decoder, stats, opened=True)
        closed = _after_member(text)
    else:
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
            yield from _records_array(text, decoder, stats, opened=False)
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


def _records_array(text: _Text, decoder: json.JSONDecoder, stats: FileStats, opened: bool) -> Iterator[dict]:
    if not opened:
        char = text.skip_ws()
        if char != "[":
            kind = "missing" if char == "" else f"not a list (starts with {char!r})"
            raise LogFileError(f"'Records' is {kind} at byte {text.offset()}")
        text.pos += 1
        if text.skip_ws() == "]":
            text.pos += 1
            return
    while True:
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


# ---------------------------------------------------------------------------------------------------------
# Fast path: compact CloudTrail layout, literal prefilter.


def _structure_ok(window: bytes) -> int | None:
    """Number of separators when every separator in ``window`` is at record level, else None.

    ``window`` runs from the start of a record to the ``}`` closing the last piece (valid JSON assumed).
    All passes are C loops over the window or over its much smaller residue:

    1. every separator ``},{"eventVersion":`` becomes ``}\x01{"eventVersion":`` (same length): a raw
       control byte cannot occur in valid JSON, so the ``\x01`` bytes are exactly the separators;
    2. drop escaped backslashes and escaped quotes, so every remaining ``"`` delimits a string;
    3. keep only ``"{}[]`` and the markers. What lies between two markers is the *shape* of a stretch
       between separators; every separator is at record level exactly when every shape is balanced
       (``_balanced``). Records of one kind share their shape, so each distinct shape is checked once
       (and remembered in ``_SHAPES``), all unknown ones together.
    """
    text = window.replace(_SEP, _SEP_MARKED)
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    shapes = text.translate(None, _DELETE).split(_MARK)
    unknown = [shape for shape in set(shapes) if shape not in _SHAPES]
    if unknown:
        if not _balanced(unknown):
            return None
        if len(_SHAPES) + len(unknown) > _SHAPES_MAX:
            _SHAPES.clear()
        _SHAPES.update(shape for shape in unknown if len(shape) <= _SHAPE_CACHED_MAX)
    return len(shapes) - 1


_SHAPES: set[bytes] = set()  # shapes found balanced (a pure function of the bytes: safe to remember)
_SHAPES_MAX = 4096
_SHAPE_CACHED_MAX = 2048  # bytes; bounds the memory the remembered shapes take (about 8 MiB at most)


def _balanced(shapes: list[bytes]) -> bool:
    """Whether each shape, once its strings are removed, is a sequence of balanced ``{}``/``[]`` pairs.

    The shapes are joined by markers and reduced together, in C loops: strings go (adjacent quote pairs
    first: those enclose no structure; the rest by a regex), then ``{}`` and ``[]`` pairs cancel until
    nothing changes. A marker inside a bracket pair blocks it and a string that would span a marker
    swallows it, so exactly the markers remain only when every shape reduced to nothing on its own.
    """
    residue = _MARK.join(shapes).replace(b'""', b"")
    if b'"' in residue:
        residue = _STRINGS.sub(b"", residue)
        if b'"' in residue:
            return False
    for _ in range(_MAX_DEPTH):
        shorter = residue.replace(b"{}", b"").replace(b"[]", b"")
        if len(shorter) == len(residue):
            break
        residue = shorter
    return residue == _MARK * (len(shapes) - 1)


def _trie_pattern(words: Iterable[bytes], tails: Mapping[bytes, bytes] | None = None) -> bytes:
    """A regex alternation of ``words`` factored into a trie (sre tries alternatives one by one), each
    word followed by its regex in ``tails`` (nothing by default)."""
    tree: dict = {}
    for word in words:
        node = tree
        for byte in word:
            node = node.setdefault(byte, {})
        node[None] = tails.get(word, b"") if tails else b""

    def emit(node: dict) -> bytes:
        branches = [
            re.escape(bytes([b])) + emit(sub)
            for b, sub in sorted((i for i in node.items() if i[0] is not None), key=lambda i: i[0])
        ]
        end = node.get(None)  # None: no word ends here; else the tail of the word that does
        if not branches:
            return end or b""
        if end:  # the longer words first, then this word's tail
            return b"(?:" + b"|".join([*branches, end]) + b")"
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return body if end is None else b"(?:" + body + b")?"

    return emit(tree)


_ESCAPES = re.compile(rb"\\[u/]")
# How many needles are searched one by one (one substring search or regex each) before one trie regex for
# all of them is cheaper. Measured on 5.4 MB CloudTrail files, quoted needles: memmem 0.5 ms per needle,
# a trie regex 4-10 ms; sre's byte-by-byte search of one needle 1.7-1.9 ms.
_FEW_MEMMEM = 12
_FEW_SRE = 3
_LONG = 10  # no memmem: bytes.find beats sre on a needle this long (it skips ahead); sre wins on short ones


def _literal(needle: bytes) -> bytes:
    """Regex of one needle's occurrences (each found one byte in when it starts with a quote).

    sre scans for a literal prefix byte by byte, stopping at each byte equal to its first: '"' is
    the most frequent byte of JSON, so a leading quote is checked by a lookbehind instead.
    """
    if needle.startswith(b'"') and len(needle) > 2:
        return re.escape(needle[1:]) + b"(?<=" + re.escape(needle) + b")"
    return re.escape(needle)


def _tries(literals: list[bytes]) -> list[re.Pattern[bytes]]:
    """At most two regexes whose matches are exactly the occurrences of ``literals`` (none empty)."""
    quoted = [n[1:] for n in literals if n.startswith(b'"') and len(n) > 1]
    other = [n for n in literals if not n.startswith(b'"') or len(n) == 1]
    # sre finds a literal prefix quickly: needles starting with '"' share one.
    out = [re.compile(b'"' + _trie_pattern(quoted))] if quoted else []
    return out + ([re.compile(_trie_pattern(other))] if other else [])


def _scanned_key(key: str) -> bool:
    """Top-level keys whose values the prefilter looks at in one regex pass with ``eventName``.

    sre finds a literal prefix quickly; keys beginning with ``e`` (eventName, eventSource, eventType,
    errorCode, errorMessage, ...) share the prefix ``"e``, so they cost the pass little more. Other
    keys would need a pass of their own, no cheaper than searching their rules' needles.
    """
    return key.startswith("e")


def _hit_condition(test: KeyTest) -> bytes:
    """Regex (at the end of ``"key"``) true unless the key is followed by ``:"v"``, ``v`` a raw string
    value free of ``"`` and backslashes that passes none of ``test``'s spellings."""
    alternatives = [rb'(?!:"[^"\\]*")']
    if test.exact:
        alternatives.append(b':"' + _trie_pattern(sorted(e + b'"' for e in test.exact)))
    if test.prefixes:
        alternatives.append(b':"' + _trie_pattern(sorted(test.prefixes)))
    if test.suffixes:
        alternatives.append(rb':"[^"\\]*' + _trie_pattern(sorted(s + b'"' for s in test.suffixes)))
    return b"(?=" + b"|".join(alternatives) + b")"


class _Prefilter:
    """Finds the pieces of a window whose text contains a needle or an escape that could hide one.

    With ``keys`` (``Matcher.prefilter_index``), the rules covered by a top-level key are not searched
    by needles: every occurrence of ``"key"`` is looked at instead, and is a hit unless it is followed
    by exactly ``:"v"`` with ``v`` free of ``"`` and backslashes and passing none of the key's
    ``KeyTest`` spellings. Safe: a matching record's value of that key is a string passing one of the
    filters, or an array. The key is spelled ``"key"`` in the raw text (pattern keys are plain ASCII;
    the only other spellings have a ``\\u`` escape, always a hit), so one of the looked-at occurrences
    is that member (also when the key is duplicated: every occurrence is looked at). A string value
    free of backslashes is its raw text between the quotes (a backslash-free value starting after the
    ``:"`` ends at the first quote), and that raw text passes an exact/prefix/suffix filter exactly
    when its characters do, since JSON spells such text one way only (UTF-8 keeps prefixes and
    suffixes of code points); any other layout (whitespace, an array, null, an escape) is a hit.
    Nested occurrences are looked at too, which can only add hits. The other rules' needles are
    searched as literals.

    ``quiet`` answers the common question first (does the window hold no hit at all?) in the pass that
    also counts its separators, so that a window without a hit costs one regex pass over the keys plus
    one search per needle (a few needles) or per needle regex (many); ``pieces`` finds the candidate
    pieces of a window with hits.
    """

    def __init__(self, needles: tuple[bytes, ...], keys: tuple[tuple[str, KeyTest], ...] | None) -> None:
        self._keys: re.Pattern[bytes] | None = None
        self._summary: re.Pattern[bytes] | None = None
        if keys is not None:
            conditions = {key: _hit_condition(test) for key, test in keys}
            # No key at all: no key regex (an empty alternation would flag every quote).
            self._keys = _branches(conditions) if conditions else None
            # quiet's pass: one group, set (':') only at a separator "},{"eventVersion":" that is no
            # hit, unset at a hit; eventVersion shares the prefix.
            count = b'(:)(?<=},\\{"eventVersion":)'
            hit = conditions.get("eventVersion")
            version = count if hit is None else b"(?:" + hit + b"|" + count + b")"
            self._summary = _branches({**conditions, "eventVersion": version})
        literals = sorted({bytes(n) for n in needles} - {b""})
        self._patterns: list[re.Pattern[bytes]] = []  # searched with sre
        self._literals: list[bytes] = []  # searched with memsearch.find (memmem, else bytes.find)
        if memsearch.FAST and len(literals) <= _FEW_MEMMEM:
            self._literals = literals
        elif not memsearch.FAST and len(literals) <= _FEW_SRE:
            self._patterns = [re.compile(_literal(n)) for n in literals if len(n) < _LONG]
            self._literals = [n for n in literals if len(n) >= _LONG]
        else:
            self._patterns = _tries(literals)

    def quiet(self, buf: bytes, lo: int, hi: int) -> int | None:
        """Number of records of ``buf[lo:hi]`` when nothing in it is a hit, else None.

        ``lo`` is the start of a record; records are counted by the separators of the window.
        """
        if buf.find(b"\\", lo, hi) >= 0 and _ESCAPES.search(buf, lo, hi):
            return None
        # The cheap searches first: a window with a needle then costs no key scan.
        for needle in self._literals:
            if memsearch.find(buf, needle, lo, hi) >= 0:
                return None
        for rx in self._patterns:
            if rx.search(buf, lo, hi):
                return None
        if self._summary is None:
            return buf.count(_SEP, lo, hi) + 1
        found = self._summary.findall(buf, lo, hi)
        # A hit leaves the group unset (b""). Counting the one-byte b":" is an identity test per item.
        if found.count(b":") != len(found):
            return None
        # One more record than separators; a separator just before lo ends the previous window.
        return len(found) + 1 - (buf.startswith(b"},", lo - 2) if lo >= 2 else 0)

    def _hits(self, buf: bytes, lo: int, hi: int) -> list[int]:
        """Positions of hits in ``buf[lo:hi]`` (unordered, perhaps repeated), each inside its record.

        Searches take bounds instead of a slice: no copy of the window. An occurrence must lie wholly
        inside the bounds, as in a slice.
        """
        hits = [m.start() for rx in self._patterns for m in rx.finditer(buf, lo, hi)]
        for needle in self._literals:
            at = memsearch.find(buf, needle, lo, hi)
            while at >= 0:
                hits.append(at)
                at = memsearch.find(buf, needle, at + 1, hi)
        if buf.find(b"\\", lo, hi) >= 0:  # only a backslash starts an escape: one memchr decides
            hits += [m.start() for m in _ESCAPES.finditer(buf, lo, hi)]
        if self._keys is not None:
            hits += [m.start() for m in self._keys.finditer(buf, lo, hi)]
        return hits

    def pieces(self, buf: bytes, lo: int, hi: int) -> list[tuple[int, int]]:
        """(start, end) in ``buf`` of the candidate pieces of the window ``buf[lo:hi]``, in order."""
        out: list[tuple[int, int]] = []
        end = lo
        for hit in sorted(set(self._hits(buf, lo, hi))):
            if hit < end:
                continue  # in the piece already taken
            # The piece runs from after the last separator s with s + 2 <= hit (its '},' stays
            # behind) to the '}' of the next one, s' + 2 > hit; separators wholly inside the window.
            before = buf.rfind(_SEP, lo, min(hit + len(_SEP) - 2, hi))
            after = buf.find(_SEP, max(lo, hit - 1), hi)
            end = after + 1 if after >= 0 else hi
            out.append((before + 2 if before >= 0 else lo, end))
        return out


def _branches(conditions: dict[str, bytes]) -> re.Pattern[bytes]:
    """``"key"`` followed by its condition, for each key, as one regex: the keys are factored into a trie
    (sre moves their common first bytes, ``"e``, into the literal prefix it searches for; the trie
    spares it retrying ``vent`` for every key beginning with ``event``)."""
    words = {key.encode() + b'"': condition for key, condition in conditions.items()}
    return re.compile(b'"' + _trie_pattern(sorted(words), words))


@functools.lru_cache(maxsize=8)
def _prefilter(needles: tuple[bytes, ...], keys: tuple[tuple[str, KeyTest], ...] | None) -> _Prefilter:
    """Compiled once per config, not once per file."""
    return _Prefilter(needles, keys)


def _prefilter_of(matcher: _Matcher) -> _Prefilter:
    """The key-indexed prefilter when the matcher offers ``prefilter_index``, else its needles."""
    index_of = getattr(matcher, "prefilter_index", None)
    index = index_of(_scanned_key) if index_of is not None else None
    if index is not None:
        return _prefilter(index.needles, index.keys)
    return _prefilter(tuple(matcher.needles or ()), None)


def _parse_pieces(buf: bytes, pieces: list[tuple[int, int]], stats: FileStats) -> list[dict] | None:
    """The records of the candidate pieces, or None when one does not parse (doubt)."""
    out: list[dict] = []
    for start, end in pieces:
        try:
            values = json.loads(b"[" + buf[start:end] + b"]")
        except (ValueError, RecursionError):
            return None
        stats.records += len(values) - 1  # the piece was counted as one record
        for value in values:
            if isinstance(value, dict):
                stats.parsed += 1
                out.append(value)
            else:
                stats.skipped_non_objects += 1
    return out


class _Unproven:
    """Windows without a hit whose separators are not yet proven to be at record level.

    They need no proof for themselves (no record in them can match, wherever its boundaries are), but
    the next window's start is only known to be a record start once the structure check has covered
    everything from the last proven point. So the check is deferred: it runs over these windows and
    the next window that has a hit, together, or that would take them past ``UNPROVEN_MAX`` bytes;
    never when the file ends first. So a record without a hit is never parsed (a syntax error or a
    depth bomb in it goes unnoticed, as in any record the fast path skips), and the records of an
    unchecked stretch are counted by separators (one too many per nested separator).
    """

    def __init__(self) -> None:
        self.parts: list[tuple[bytes, int, int]] = []  # buffer, window start, end after its ','
        self.size = 0  # bytes of the buffers held
        self.records = 0
        self.offset = 0  # byte offset of the first window: a proven record start

    def add(self, buf: bytes, start: int, end: int, offset: int, records: int) -> None:
        if not self.parts:
            self.offset = offset
        self.parts.append((buf, start, end))
        self.size += len(buf)
        self.records += records

    def text(self) -> bytes:
        return b"".join(buf[start:end] for buf, start, end in self.parts)

    def clear(self) -> None:
        self.parts, self.size, self.records = [], 0, 0


UNPROVEN_MAX = 8 << 20  # bytes held in windows without a hit before their structure is checked (memory)


def _fast(stream: BinaryIO, first: bytes, base: int, matcher: _Matcher, stats: FileStats) -> Iterator[dict]:
    """Candidate records of a compact log; hands over to the general path on any doubt."""
    prefilter = _prefilter_of(matcher)
    buf = first
    start = len(_HEAD)  # buf[start:] begins with a record; base is the byte offset of buf[0]
    unproven = _Unproven()
    hot = False
    eof = False
    stats.fast_path = True
    while True:
        cut = buf.rfind(_SEP, start)
        if eof:
            tail = buf.rstrip(_WS_BYTES)
            if not tail.endswith(b"}]}") or len(tail) - 2 <= start:
                break
            end = len(tail) - 2
        elif cut < 0:
            if len(buf) - start > MAX_PIECE:
                break  # records that do not start with eventVersion: no bounded window, general path
            more = _read_chunk(stream, max(CHUNK_SIZE, len(buf) - start))
            eof = not more
            buf += more
            continue
        else:
            end = cut + 1
        # After a window with hits the next one likely has hits too: find them directly.
        quiet = None if hot else prefilter.quiet(buf, start, end)
        pieces = [] if quiet is not None else prefilter.pieces(buf, start, end)
        hot = bool(pieces)
        if pieces or unproven.size + len(buf) > UNPROVEN_MAX:
            # On doubt (break) the general path starts at the last proven point: nothing is lost.
            window = buf[start:end]
            separators = _structure_ok(unproven.text() + window if unproven.parts else window)
            if separators is None:
                break
            records = _parse_pieces(buf, pieces, stats)
            if records is None:
                break
            stats.records += separators + 1
            unproven.clear()
            yield from records
        else:
            records = quiet if quiet is not None else buf.count(_SEP, start, end) + 1
            unproven.add(buf, start, end + 1, base + start, records)
        if eof:
            stats.records += unproven.records
            return
        base += end + 1
        buf = buf[end + 1 :]
        start = 0
        more = _read_chunk(stream)
        eof = not more
        buf += more
    stats.fast_path = False
    if unproven.parts:  # the general path starts at the last proven record start
        buf, start, base = unproven.text() + buf[start:], 0, unproven.offset
    yield from _general(stream, buf[start:], base + start, stats, in_records=True)


# ---------------------------------------------------------------------------------------------------------
# Public entry points.


def _first_chunk(stream: BinaryIO) -> tuple[bytes, int]:
    """The first chunk without a UTF-8 byte order mark, and its byte offset."""
    data = _read_chunk(stream)
    return (data[len(_BOM) :], len(_BOM)) if data.startswith(_BOM) else (data, 0)


def iter_records(stream: BinaryIO, stats: FileStats | None = None) -> Iterator[dict]:
    """Every record object of a log (gzip or plain JSON), one at a time."""
    stats = stats if stats is not None else FileStats()
    stream = open_log(stream)
    first, base = _first_chunk(stream)
    yield from _general(stream, first, base, stats, in_records=False)


def iter_matches(
    stream: BinaryIO, matcher: _Matcher, stats: FileStats | None = None, prefilter: bool = True
) -> Iterator[tuple[dict, list[Rule]]]:
    """Records that match at least one rule, with their rules in config order."""
    stats = stats if stats is not None else FileStats()
    stream = open_log(stream)
    first, base = _first_chunk(stream)
    if prefilter and matcher.needles is not None and first.startswith(_HEAD + _REC_START):
        records = _fast(stream, first, base, matcher, stats)
    else:
        records = _general(stream, first, base, stats, in_records=False)
    for record in records:
        rules = matcher.match(record)
        if rules:
            stats.matched += 1
            yield record, rules
