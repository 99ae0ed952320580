"""The local AWS's item construction (trailwatch.local.dynamodb_items) against moto's own: the same items
accepted, the same refused at the 400 KB limit, the same attributes in the same order; and the attribute
sizes measured once per attribute, where moto measured every attribute again for each one it added."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from trailwatch.local import dynamodb_items, moto_patches

TARGET = "moto.dynamodb.models.dynamo_type:Item.__init__"
IMPLEMENTATIONS = {
    "moto": lambda: moto_patches.original(TARGET),
    "local": lambda: dynamodb_items.item_init,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def build(request: pytest.FixtureRequest) -> Callable[[dict[str, Any]], Item]:
    moto_patches.install()
    init = IMPLEMENTATIONS[request.param]()

    def make(attrs: dict[str, Any]) -> Item:
        item = Item.__new__(Item)
        init(item, DynamoType({"S": "key"}), None, attrs)
        return item

    return make


def _attrs(sizes: list[int]) -> dict[str, Any]:
    return {f"a{i}": {"S": "x" * size} for i, size in enumerate(sizes)}


@pytest.mark.parametrize(
    "sizes",
    [
        [10, 20, 30],
        [404_990],  # name + value just under the limit
        [200_000, 204_900],
        [1, 2],
    ],
)
def test_accepts_what_moto_accepts(build: Callable[[dict[str, Any]], Item], sizes: list[int]) -> None:
    attrs = {**_attrs(sizes), "n": {"N": "12"}, "m": {"M": {"k": {"SS": ["a", "b"]}}}}
    item = build(attrs)
    assert list(item.attrs) == list(attrs)
    assert {k: v.to_regular_json() for k, v in item.attrs.items()} == attrs


@pytest.mark.parametrize("sizes", [[405_000], [200_000, 205_000], [100_000] * 5])
def test_refuses_what_moto_refuses(build: Callable[[dict[str, Any]], Item], sizes: list[int]) -> None:
    with pytest.raises(ItemSizeTooLarge):
        build(_attrs(sizes))


def test_the_limit_is_moto_s_to_the_byte(build: Callable[[dict[str, Any]], Item]) -> None:
    """name "a0" (2 bytes) + value: 405,000 bytes in all pass, one more is refused."""
    build(_attrs([404_998]))
    with pytest.raises(ItemSizeTooLarge):
        build(_attrs([404_999]))


def test_each_attribute_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's LimitedSizeDict re-measured every attribute set so far before adding the next: 200 attributes
    cost ~20,000 size() calls; here 200."""
    moto_patches.install()
    calls = 0
    size = DynamoType.size

    def counted(self: DynamoType) -> int:
        nonlocal calls
        calls += 1
        return size(self)

    monkeypatch.setattr(DynamoType, "size", counted)
    Item(DynamoType({"S": "key"}), None, _attrs([5] * 200))
    assert calls == 200
