"""Every runtime replacement of a moto function, in one table, and the check that they still fit.

Each row names moto's function ("module:qualname"), our replacement, and the sha256 of the original's
source as moto PINNED_MOTO installs it. `install()` refuses to start (raises `MotoMismatch`, one line) when
the installed moto is another version or a replaced function's source changed, so a moto upgrade cannot
silently run our replacements over code they were not written for. To add a replacement: write the function,
add one `Patch(...)` row below, and take its hash from `python -m trailwatch.local.moto_patches`.
A replacement that wraps moto's function (`parameters`) takes the original when its module is imported, which
is before `install()` can run: this module imports every module of the table.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import moto

from trailwatch.errors import UsageError
from trailwatch.local import (
    cfn_engine,
    cross_account,
    dynamodb_items,
    dynamodb_transactions,
    eventbridge,
    lambda_sqs,
    parameters,
    s3_events,
    s3_policy,
    s3_versions,
    sns_filter,
)

PINNED_MOTO = "5.2.1"  # the same pin as pyproject.toml's moto dependency (a test holds them equal)


class MotoMismatch(UsageError):
    """The installed moto is not the one the replacements were written for (the CLI prints one line)."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, hint=f"Reinstall trailwatch's dependencies (moto=={PINNED_MOTO}): pip install -e ."
        )


@dataclass(frozen=True)
class Patch:
    target: str  # "module:Class.attribute" or "module:function"
    replacement: Any  # a function, or a property for a property
    sha256: str  # of inspect.getsource(original) with moto PINNED_MOTO

    def owner_and_name(self) -> tuple[Any, str]:
        module, qualname = self.target.split(":")
        *path, name = qualname.split(".")
        owner: Any = importlib.import_module(module)
        for part in path:
            owner = getattr(owner, part)
        return owner, name

    def current(self) -> Any:
        owner, name = self.owner_and_name()
        return inspect.getattr_static(owner, name)


_ORIGINALS: dict[str, Any] = {}  # target -> moto's function, kept by install()


@functools.cache
def _moto_module_names() -> tuple[str, ...]:
    return tuple(_ORIGINALS["moto.backends:list_of_moto_modules"]())


def list_of_moto_modules() -> tuple[str, ...]:
    """moto's backend folder names, listed once: moto's server lists its package folder (a listdir and a
    stat per entry) on every request, under the lock that routes all requests."""
    return _moto_module_names()


PATCHES: tuple[Patch, ...] = (
    Patch(
        "moto.cloudformation.parsing:clean_json",
        cfn_engine.clean_json,
        "9fbe5dedab810616dba1c7ee506131dcb3b24945d5a99b2e1363ea23aa4f2856",
    ),
    Patch(
        "moto.cloudformation.models:CloudFormationBackend.execute_change_set",
        cfn_engine.execute_change_set,
        "1090cb5b81abc8ff0422a9c1df9b0ea09192550345fbc198b448e9e9a148a050",
    ),
    Patch(
        "moto.cloudformation.parsing:ResourceMap.build_resource_diff",
        cfn_engine.build_resource_diff,
        "d42fee2851cf6a0dfd0aa2c026aac2a7109643cd602020eefef85a2abffaaac0",
    ),
    Patch(
        "moto.cloudformation.models:ChangeSet.diff",
        cfn_engine.change_set_diff,
        "6970930ee841c1a7247358b1708bd8583e8f525e1c0e3d43d623dfb500f7ee04",
    ),
    Patch(
        "moto.cloudformation.parsing:ResourceMap.update",
        cfn_engine.update,
        "e34b0c357f3c8e357e4e9446843985fd88c0dc52e828d17ef3e08e14dfb88c8a",
    ),
    Patch(
        "moto.cloudformation.models:Stack.stack_resources",
        property(cfn_engine.stack_resources),
        "48081724e7f64b7e8f568aa9afeb71640ffe50c29d56d83c2f74d920a757dbf9",
    ),
    Patch(
        "moto.cloudformation.parsing:parse_and_create_resource",
        cfn_engine.parse_and_create_resource,
        "ea3c10d68d2c03e6abde0de40aa57d2169c2fe7ce5dad71fda0dc5602da13463",
    ),
    Patch(
        "moto.cloudformation.parsing:parse_and_update_resource",
        cfn_engine.parse_and_update_resource,
        "2ef032cfb9ed3c9bac0abc5c07ee0adf20fbe813d829d6d9bf96e5c39026ecd5",
    ),
    Patch(
        "moto.cloudformation.parsing:ResourceMap._delete_resource",
        cfn_engine.delete_resource,
        "b1551ce18f4eedc20294b22c80160e7d8606cdc0daeeb38c6854899046af1144",
    ),
    Patch(
        "moto.cloudformation.models:Stack.create_resources",
        cfn_engine.create_resources,
        "a5f30450448a1d58ba3ffe05b0a545b8efa86633b47cfb0c8c4a2b269d447655",
    ),
    Patch(
        "moto.cloudformation.models:Stack.update",
        cfn_engine.stack_update,
        "fd488c7f43d4b5c8e6d85a255eb1e67a17859a57ffd053cecb44e9893280ce12",
    ),
    Patch(
        "moto.cloudformation.models:Stack.has_parameters",
        cfn_engine.has_parameters,
        "abc7b22ef33173be5b5fd1a2c951d1bcb8d061d13371a98522c05df36f82e5a0",
    ),
    Patch(
        "moto.cloudformation.models:Stack.delete",
        cfn_engine.stack_delete,
        "bf0c199611d254b6c2826d45d91ce44101625ab78696218e6949279eb32c17f9",
    ),
    Patch(
        "moto.s3.models:FakeBucket.get_permission",
        s3_policy.bucket_permission,
        "7571412a3495a0e3e1a2a34b0b8ed3fc0af1a96d35514841b274fbe1eac12b99",
    ),
    Patch(
        "moto.sns.utils:FilterPolicyMatcher.matches",
        sns_filter.matches,
        "c3d46a983382017d75739c8ee1bdc92b0331dd28e0035e666bb7f08a87ab72d9",
    ),
    Patch(
        "moto.cloudformation.models:CloudFormationBackend.create_stack",
        parameters.create_stack,
        "dcb835c34772ed6c3a2785c44571cba7bea8a9edaf80bd4533428b093c3351a6",
    ),
    Patch(
        "moto.cloudformation.models:CloudFormationBackend.update_stack",
        parameters.update_stack,
        "83a62d954ef05565636c254a1fa1910fa7124479cbbf974b4c2a6ebf433cc63b",
    ),
    Patch(
        "moto.cloudformation.models:CloudFormationBackend.create_change_set",
        parameters.create_change_set,
        "4668670ac84b203d05ecdaf6f864b93263fad1faa040137225a3d38a9b3ae7d1",
    ),
    Patch(
        "moto.sqs.models:Queue.add_message",
        lambda_sqs.add_message,
        "f27c9231c1f2043382bc1435c4dfbab7b645389df642f050d9dda477f6535c35",
    ),
    Patch(  # hunt performance: one listing of moto's folder, not one per request
        "moto.backends:list_of_moto_modules",
        list_of_moto_modules,
        "4f741a10b06500e840c3aaa1b4f02706e6f2bfbababc0e8a2a7b9c9d0e8957dc",
    ),
    Patch(  # hunt performance: moto's send read every queue attribute per message (quadratic)
        "moto.sqs.models:SQSBackend.send_message",
        lambda_sqs.send_message,
        "bf161af09a9e6b860e3dd5d8f58ccc802623caa86883fab9b2ffb333f8f70330",
    ),
    Patch(  # hunt performance: moto's receive read every queue attribute per message (quadratic)
        "moto.sqs.models:SQSBackend.is_message_valid_based_on_retention_period",
        lambda_sqs.is_message_valid_based_on_retention_period,
        "cca23b94a5f3af9d9c5af1c09ee5e615017bdf6bd032301cb321c06c7e595d4b",
    ),
    Patch(
        "moto.s3.notifications:_get_s3_event",
        s3_events.get_s3_event,
        "a3d11d269a1198adb992bbe0a120f9711cb921c9a48c1bbc18461822d7ff87c6",
    ),
    Patch(
        "moto.s3.models:S3Backend._set_delete_marker",
        s3_events.set_delete_marker,
        "f95d9e59e39fdc4289ec00ed5f1c9d3b362448c65c68568a198d68e401093541",
    ),
    Patch(
        "moto.events.models:EventPattern.matches_event",
        eventbridge.matches_event,
        "3e71eb7ff5903b5064a34f7e61379b35b5613ac7cf9602ec35d286138dd96c94",
    ),
    Patch(  # the PutEvents API through the one path of an event to a bus (rule states, bus policies)
        "moto.events.models:EventsBackend.put_events",
        eventbridge.put_events,
        "c56f6ac1f932c70d3dbe82d2e85d4a6de2bdc2368dda47d755d3548481e46783",
    ),
    Patch(  # attach mode: S3's EventBridge events as AWS shapes them, across accounts only when admitted
        "moto.s3.notifications:_send_event_bridge_message",
        cross_account.send_event_bridge_message,
        "971cee49c68708d28351cd3ae3c4ef37e33fb2b6b64227d4b1d8f10fa4d439cb",
    ),
    # TransactWriteItems journals the items it touches instead of deep-copying the table per action
    Patch(
        "moto.dynamodb.models:DynamoDBBackend.transact_write_items",
        dynamodb_transactions.transact_write_items,
        "81db2cb7d94e39c90b3a2077e1f4bb41a449c558ef9b1b1e2910fdaa39978ad4",
    ),
    # An item's 400 KB check measures each attribute once, not every attribute again per attribute set
    Patch(
        "moto.dynamodb.models.dynamo_type:Item.__init__",
        dynamodb_items.item_init,
        "d9c12b62cb921831aab9b2eb22ac24fbd600689064a0219ae3ffbe057ae4be74",
    ),
    # ListObjectVersions with a prefix copies the keys under it, not the whole bucket
    Patch(
        "moto.s3.models:S3Backend.list_object_versions",
        s3_versions.list_object_versions,
        "268a5f62e83a572464f0dd13c2048e20e8b1ef39ea09aae8be0248b286dc71b4",
    ),
)


def source_sha256(function: Any) -> str:
    """sha256 of a function's (or a property's getter's) source text."""
    code = function.fget if isinstance(function, property) else function
    return hashlib.sha256(inspect.getsource(code).encode()).hexdigest()


def _check(patches: tuple[Patch, ...]) -> list[Patch]:
    """The patches still to install; raises MotoMismatch before anything is replaced."""
    if moto.__version__ != PINNED_MOTO:
        raise MotoMismatch(
            f"The local AWS needs moto {PINNED_MOTO} (pinned in pyproject.toml), found {moto.__version__}."
        )
    pending = []
    for patch in patches:
        current = patch.current()
        if current is patch.replacement:
            continue
        if source_sha256(current) != patch.sha256:
            raise MotoMismatch(
                f"The local AWS cannot start: moto's {patch.target} is not the code its replacement was "
                f"written for (moto {PINNED_MOTO})."
            )
        pending.append(patch)
    return pending


def install(patches: tuple[Patch, ...] = PATCHES) -> None:
    """Replace moto's functions by ours, all or none (idempotent)."""
    for patch in _check(patches):
        owner, name = patch.owner_and_name()
        _ORIGINALS[patch.target] = patch.current()
        setattr(owner, name, patch.replacement)


def original(target: str) -> Any:
    """moto's own function for a row's target ("module:qualname"), installed or not (to compare with ours)."""
    if target in _ORIGINALS:
        return _ORIGINALS[target]
    (row,) = [p for p in PATCHES if p.target == target]
    return row.current()


if __name__ == "__main__":  # print the hash of each target as installed (before any replacement)
    for row in PATCHES:
        print(row.target, source_sha256(row.current()))
