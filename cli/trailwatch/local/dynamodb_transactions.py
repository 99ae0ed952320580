"""DynamoDB TransactWriteItems at a cost that grows with the transaction, not with the table.

moto 5.2.1's ``DynamoDBBackend.transact_write_items`` keeps a rollback copy by deep-copying the whole table
once per *action*: 100 conditional puts into a table of 12,000 events took 196 s (5 s at 1,000 items), so a
function that writes its events 100 per transaction (trailwatch_processor.batch_writes) could not run on
the local AWS. This replacement keeps the same checks, order and errors (one operation per item, each item
once, conditions evaluated in action order, ``CancellationReasons`` with ``ALL_OLD`` items) and journals
only the items the transaction touches: a cancelled transaction restores those, so nothing of it stays
written, as on AWS. Installed through moto_patches' table.

Not modelled, as in moto: the idempotency token (``ClientRequestToken``), the 4 MB aggregate size limit,
conflicts with concurrent transactions, and stream records of a rolled-back write.
"""

from __future__ import annotations

import copy
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_Saved = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _save(backend: Any, table_name: str, key: dict[str, Any]) -> _Saved:
    """The item at ``key`` as it is before the transaction writes it (None: absent)."""
    table = backend.get_table(table_name)
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
    current = table.get_item(hash_value, range_value)
    return table, hash_value, range_value, copy.deepcopy(current)


def _restore(journal: list[_Saved]) -> None:
    """Put every journaled item back as it was, newest first."""
    for table, hash_value, range_value, original in reversed(journal):
        if range_value is None:
            if original is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = original  # type: ignore[assignment]
        elif original is None:
            table.items.get(hash_value, {}).pop(range_value, None)  # type: ignore[union-attr]
        else:
            table.items[hash_value][range_value] = original


def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """Replaces moto.dynamodb.models:DynamoDBBackend.transact_write_items (see the module docstring)."""
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    journal: list[_Saved] = []
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any]] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            return_values_on_condition_check_failure = op.get("ReturnValuesOnConditionCheckFailure")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression, expression_attribute_names, expression_attribute_values
                )
                if not condition_op.expr(current):
                    if return_values_on_condition_check_failure == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                journal.append(_save(self, table_name, key))
            # The condition held just above, on the same item: the write need not parse it again (moto
            # passes it on and parses it a second time; the most expensive part of a write).
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            _restore(journal)
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))  # type: ignore[arg-type]
        except Exception as e:
            errors.append((type(e).__name__, str(e), original_item))  # type: ignore[arg-type]
    if any(code is not None for code, _, _ in errors):
        _restore(journal)
        raise TransactionCanceledException(errors)
