"""The test helper that writes huge gzip files without compressing every copy gives the bytes it claims."""

from __future__ import annotations

import gzip

import pytest

from tests.huge_gzip import WINDOW, gzip_bytes

CASES = {
    "window-long block, then a tail": [(b"a" * WINDOW, 6), (b"end", 1)],
    "short blocks are compressed copy by copy": [(b"x", 3), (b"ab" * 100, 40), (b"y" * (WINDOW + 7), 9)],
    "a varied block": [(bytes(range(256)) * 300, 12), (b"z", 1)],
    "nothing": [(b"", 3)],
}


@pytest.mark.parametrize("parts", CASES.values(), ids=CASES.keys())
def test_the_stream_is_the_gzip_of_the_whole_text(parts: list[tuple[bytes, int]]) -> None:
    assert gzip.decompress(gzip_bytes(parts)) == b"".join(data * times for data, times in parts)


def test_a_gib_of_one_byte_stays_about_a_thousandth_of_its_size() -> None:
    raw = gzip_bytes([(b"y" * (1 << 20), 1024)])
    assert len(raw) < 1_100_000
