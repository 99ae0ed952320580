"""Teach moto 5.2.1's CloudFormation what `main.yaml` needs, through moto's own extension point.

moto's CloudFormation skips resource types it has no model for (with only a log warning) and ignores
properties its models do not read. The pieces:

- `cfn_new_types`: the types moto lacks (BucketPolicy, QueuePolicy, TopicPolicy, Subscription, Trail, Alarm);
- `cfn_overrides`: moto's own models, completed with the properties they ignore;
- `cfn_engine` and `s3_policy`: replacements of moto functions (the stack engine, the bucket policy check),
  installed from the one table in `moto_patches`, which refuses a moto other than the pinned one.

`register()` makes moto see all this (moto caches its model map with `lru_cache`); it is idempotent.
"""

from __future__ import annotations

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel

from trailwatch.local import moto_patches
from trailwatch.local.cfn_common import LogFn, set_log
from trailwatch.local.cfn_new_types import NEW_MODELS
from trailwatch.local.cfn_overrides import OVERRIDES
from trailwatch.local.cross_account import MODELS as CROSS_ACCOUNT_MODELS


def models() -> tuple[type[CloudFormationModel], ...]:
    """Every model class the local AWS adds to moto or puts in place of moto's."""
    return NEW_MODELS + OVERRIDES + CROSS_ACCOUNT_MODELS


def register(log: LogFn | None = None) -> None:
    """Make moto's CloudFormation use our models and replacements (idempotent). `log` receives warnings
    about declared properties the local AWS does not emulate (default: a module logger). Raises
    `moto_patches.MotoMismatch` when the installed moto is not the pinned one."""
    moto_patches.install()
    if log is not None:
        set_log(log)
    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()
    model_map = parsing.get_model_map()  # the cached dict: our entries must win over moto's originals
    name_map = parsing.get_name_type_map()
    for model in models():
        model_map[model.cloudformation_type()] = model
        name_map[model.cloudformation_type()] = model.cloudformation_name_type()
