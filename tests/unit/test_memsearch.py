"""memsearch.find gives bytes.find's answer, through the C library's memmem and through the fallback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trailwatch_processor import memsearch

TEXT = b'{"Records":[{"type":"Root"},{"type":"Rooted"},{"a":"\x00Root\x00"}]}"Root"'
CASES = [
    (b'"Root"', 0, None),
    (b'"Root"', 20, None),  # past the first occurrence
    (b'"Root"', 19, 25),  # the window ends one byte short of it
    (b'"Root"', 19, 26),  # exactly the occurrence
    (b'"Root"', len(TEXT) - 6, None),  # at the very end
    (b'"Root"', len(TEXT) - 5, None),  # the window is shorter than the needle
    (b'"Root"', -6, None),  # negative bounds count from the end, as in slices
    (b'"Root"', -100, -1),
    (b'"Root"', 5, 2),  # an empty window
    (b'"Root"', 0, 10_000),  # bounds beyond the end are clamped
    (b'"Root"', 10_000, None),
    (b"\x00Root\x00", 0, None),  # NUL bytes are ordinary bytes (lengths are passed, not C strings)
    (b"Root", 0, None),
    (b"}", 0, None),
    (b"", 0, None),  # the empty needle is found at the start of the window
    (b"", 7, 3),
    (b'"absent"', 0, None),
    (TEXT, 0, None),  # the needle is the whole haystack
    (TEXT + b"x", 0, None),
]


@pytest.fixture(params=["memmem", "bytes.find"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "memmem" and not memsearch.FAST:
        pytest.skip("this C library has no memmem")
    if request.param == "bytes.find":
        monkeypatch.setattr(memsearch, "_memmem", None)
    yield request.param


@pytest.mark.parametrize(("needle", "lo", "hi"), CASES)
def test_find_is_bytes_find(mode: str, needle: bytes, lo: int, hi: int | None) -> None:
    assert memsearch.find(TEXT, needle, lo, hi) == TEXT.find(needle, lo, hi)


def test_default_bounds_are_the_whole_buffer(mode: str) -> None:
    assert memsearch.find(TEXT, b'"Rooted"') == TEXT.find(b'"Rooted"')


def test_other_buffer_types_use_bytes_find(mode: str) -> None:
    """Only bytes are read through a raw pointer; a bytearray can move when it grows."""
    assert memsearch.find(bytearray(TEXT), b'"Root"', 3) == TEXT.find(b'"Root"', 3)  # type: ignore[arg-type]
    assert memsearch.find(TEXT, bytearray(b'"Root"'), 3) == TEXT.find(b'"Root"', 3)  # type: ignore[arg-type]


bounds = st.one_of(st.none(), st.integers(-40, 40))
_FOUR = bytes.maketrans(bytes(range(256)), b'ab"R' * 64)  # a small alphabet: many near-misses


@given(
    haystack=st.binary(max_size=32).map(lambda b: b.translate(_FOUR)),
    needle=st.sampled_from([b"a", b"ab", b'"R', b'a"R"', b"", b"aaa", b'"a"']),
    lo=bounds,
    hi=bounds,
)
def test_find_agrees_with_bytes_find_on_generated_input(
    haystack: bytes, needle: bytes, lo: int | None, hi: int | None
) -> None:
    start = 0 if lo is None else lo
    assert memsearch.find(haystack, needle, start, hi) == haystack.find(needle, start, hi)


def test_linux_uses_memmem() -> None:
    """On Linux (the Lambda runtime) the C library has memmem and passes the self-test: the prefilter's
    speed depends on it, so a loader that silently fell back would show here, not only in the bench."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the Lambda runs on Linux")
    assert memsearch.FAST and memsearch._memmem is not None


@pytest.mark.parametrize(
    "broken",
    [
        lambda addr, size, needle, n: None,  # never finds
        lambda addr, size, needle, n: addr,  # always at the start of the window
        lambda addr, size, needle, n: addr + size - n + 1,  # one byte too far
    ],
)
def test_self_test_rejects_a_library_that_disagrees(monkeypatch: pytest.MonkeyPatch, broken: object) -> None:
    monkeypatch.setattr(memsearch, "_memmem", broken)
    assert not memsearch._self_test()


def test_self_test_accepts_the_real_library() -> None:
    if not memsearch.FAST:
        pytest.skip("this C library has no memmem")
    assert memsearch._self_test()


def test_without_ctypes_find_is_bytes_find() -> None:
    """An interpreter without ctypes (no libffi) still imports the processor and searches with bytes.find."""
    code = (
        "import sys; sys.modules['ctypes'] = None\n"
        "from trailwatch_processor import memsearch\n"
        "assert not memsearch.FAST and memsearch._memmem is None\n"
        "assert memsearch.find(b'ab\"Root\"', b'\"Root\"', 1) == 2\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("error", [OSError("no handle"), AttributeError("memmem")])
def test_a_library_without_memmem_is_not_used(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def cdll(name: object) -> object:
        raise error

    monkeypatch.setattr(memsearch.ctypes, "CDLL", cdll)
    assert memsearch._load() is None
