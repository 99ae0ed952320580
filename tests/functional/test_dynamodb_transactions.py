"""The local AWS's TransactWriteItems (trailwatch.local.dynamodb_transactions) against moto's own, on the
same requests: the same errors, cancellation reasons and table afterwards; and a cost that no longer grows
with the table (moto deep-copies the whole table once per action: 196 s for 100 puts into 12,000 items)."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend
from trailwatch.local import dynamodb_transactions, moto_patches

TARGET = "moto.dynamodb.models:DynamoDBBackend.transact_write_items"
IMPLEMENTATIONS = {
    "moto": lambda: moto_patches.original(TARGET),
    "local": lambda: dynamodb_transactions.transact_write_items,
}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _put(table: str, key: str, condition: str | None = None, **attrs: str) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": {"k": _s(key), **{n: _s(v) for n, v in attrs.items()}}}
    if condition:
        put["ConditionExpression"] = condition
        put["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Put": put}


def _update(table: str, key: str, value: str, condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"k": _s(key)},
        "UpdateExpression": "SET v = :v",
        "ExpressionAttributeValues": {":v": _s(value)},
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def _delete(table: str, key: str) -> dict[str, Any]:
    return {"Delete": {"TableName": table, "Key": {"k": _s(key)}}}


def _check(table: str, key: str, condition: str) -> dict[str, Any]:
    """A condition check; ``:x`` is a value no item has."""
    check: dict[str, Any] = {"TableName": table, "Key": {"k": _s(key)}, "ConditionExpression": condition}
    if ":x" in condition:
        check["ExpressionAttributeValues"] = {":x": _s("nope")}
    return {"ConditionCheck": check}


NEW = "attribute_not_exists(k)"
# name -> the transaction's actions (table "t" holds a = {v: old} and b = {v: old} beforehand)
CASES: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    "all written": lambda t: [_put(t, "c", NEW), _update(t, "a", "new"), _delete(t, "b")],
    "second put finds its item: first put undone": lambda t: [_put(t, "c", NEW), _put(t, "a", NEW)],
    "update then a failing put: update undone": lambda t: [_update(t, "a", "new"), _put(t, "b", NEW)],
    "update creating an item, then a failure": lambda t: [_update(t, "z", "new"), _put(t, "a", NEW)],
    "delete then a failing condition check": lambda t: [_delete(t, "b"), _check(t, "a", "v = :x")],
    "failing condition check first": lambda t: [_check(t, "a", "v = :x"), _put(t, "c", NEW)],
    "passing condition check": lambda t: [_check(t, "a", "attribute_exists(k)"), _put(t, "c", NEW)],
    "conditional update on the claim": lambda t: [
        _update(t, "a", "sent", "attribute_exists(k)"),
        _update(t, "c", "sent", "attribute_exists(k)"),
    ],
    "one item twice": lambda t: [_put(t, "c", NEW), _update(t, "c", "new")],
}  # fmt: skip


def _outcome(ddb: Any, table: str, actions: list[dict[str, Any]]) -> tuple[Any, ...]:
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    )
    for key in ("a", "b"):
        ddb.put_item(TableName=table, Item={"k": _s(key), "v": _s("old")})
    try:
        ddb.transact_write_items(TransactItems=actions)
        error: Any = None
    except ClientError as err:
        reasons = err.response.get("CancellationReasons")
        error = (err.response["Error"]["Code"], [(r.get("Code"), r.get("Item")) for r in reasons or []])
    items = sorted((i["k"]["S"], i.get("v", {}).get("S")) for i in ddb.scan(TableName=table)["Items"])
    return error, items


@pytest.mark.parametrize("case", list(CASES))
def test_same_outcome_as_motos_own(
    aws: None, boto_session: Any, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    ddb = boto_session.client("dynamodb")
    outcomes = {}
    for name, implementation in IMPLEMENTATIONS.items():
        monkeypatch.setattr(DynamoDBBackend, "transact_write_items", implementation())
        outcomes[name] = _outcome(ddb, f"t-{name}", CASES[case](f"t-{name}"))
    assert outcomes["local"] == outcomes["moto"]
    error, items = outcomes["local"]
    if error is not None and error[0] == "TransactionCanceledException":
        assert items == [("a", "old"), ("b", "old")]  # a cancelled transaction leaves nothing behind


@pytest.mark.parametrize(("implementation", "tables_copied"), [("moto", 3), ("local", 0)])
def test_no_copy_of_the_table(
    aws: None,
    boto_session: Any,
    monkeypatch: pytest.MonkeyPatch,
    implementation: str,
    tables_copied: int,
) -> None:
    """moto copies the whole table once per action (the cost grew with the table); the replacement copies
    only the items it writes."""
    ddb = boto_session.client("dynamodb")
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", IMPLEMENTATIONS[implementation]())
    copied: Counter[str] = Counter()
    deepcopy = copy.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        if memo is None:
            copied[type(value).__name__] += 1
        return deepcopy(value, memo)

    monkeypatch.setattr(copy, "deepcopy", counting)
    _outcome(ddb, "t", [_put("t", "c", NEW), _put("t", "d", NEW), _update("t", "a", "new")])
    assert copied["Table"] == tables_copied
