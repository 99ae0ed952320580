"""A DynamoDB item's 400 KB check at a cost that grows with the item, not with its square.

moto 5.2.1 builds an item (``Item.__init__``) by setting its attributes one by one into a ``LimitedSizeDict``
whose ``__setitem__`` re-measures every attribute already set (each string encoded again) before it adds
the next. A SecurityEvents item has ~28 attributes, one of them the raw record, so each PutItem measured the
record ~28 times: storing 12,000 matches of one file spent more time there than in everything else the
processor does. This replacement builds the same attributes in the same order with the same check: the
running total of the attribute names' and values' sizes, raising ``ItemSizeTooLarge`` at the first attribute
that takes it past moto's limit (405,000 bytes, between AWS's measured 409 and 410 KB), so every item moto
accepts or refuses is accepted or refused here alike. Installed through moto_patches' table.
"""

from __future__ import annotations

from typing import Any

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize

ITEM_SIZE_LIMIT = 405_000  # moto's LimitedSizeDict limit, kept as it is


def item_init(self: Any, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """``moto.dynamodb.models.dynamo_type.Item.__init__`` with the size counted once per attribute."""
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    total = 0
    for key, value in attrs.items():
        typed = DynamoType(value)
        total += bytesize(key) + typed.size()
        if total > ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        dict.__setitem__(self.attrs, key, typed)  # checked above: LimitedSizeDict's own check re-measures
