"""Passing over one JSON value with bounded memory (``skip_value``): the reader's way past a record it
cannot or will not hold whole (over the record cap, too deep, unparsable) and past such a top-level value.

One loop, no recursion, over 1 MiB reads; each step is a C-level search, never a Python loop over the
characters, except once per value where its depth reaches zero (``_depth_zero``).
"""

from __future__ import annotations

import itertools
import operator
import re
from typing import TYPE_CHECKING

from .log_stream import LogFileError

if TYPE_CHECKING:
    from .logfile import _Text

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


def skip_value(text: _Text, what: str, keep: int) -> tuple[str, int]:
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
