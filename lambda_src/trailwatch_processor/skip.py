"""The reader's one skip: whole records that contain none of the rules' literals are counted, not parsed.

At a record start (``Skip.advance``), take the window up to its last ``},{"eventVersion":`` and find the
hits in it: the rules' needles, ``"eventName"`` members whose value is one of ``event_names``, starts with
one of ``event_name_prefixes`` or is not a plain string, and ``\\u``/``\\/`` escapes (``literals`` says why
every record a rule matches holds one). The records before the next hit are counted, not parsed, once
``whole_records`` proves them whole records of the Records array; any doubt parses instead. Skipped
records are not checked for syntax errors (the gzip CRC and length still are).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .literals import Literals
    from .logfile import _Text

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


def whole_records(window: str) -> int | None:
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


class Skip:
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
            records = whole_records(s[pos : cut + 1])
            if records is None:
                self._doubt = True
                return moved
            text.pos = cut + 2
            moved += records
            if self._hits or not text.more():  # else the next window may be skipped too
                return moved
