"""Who made a call, for the local CloudTrail: an access key's `userIdentity` from moto's IAM and STS state.

An access key of an IAM user created in the emulator gives an `IAMUser` identity, a key from
`sts:AssumeRole` an `AssumedRole` identity; any other key (moto's default/test credentials such as `test`
or `testing`) is taken as the account's root user: `Root`, arn `arn:aws:iam::<account>:root`.
"""

from __future__ import annotations

from typing import Any


def caller_identity(access_key_id: str, default_account: str) -> tuple[dict[str, Any], str]:
    """The `userIdentity` of a caller and its account id, from moto's IAM and STS state."""
    from moto.iam.models import iam_backends

    for account_id, by_partition in list(dict.items(iam_backends)):
        for backend in list(dict.values(by_partition)):
            key = backend.access_keys.get(access_key_id)
            if key is None:
                continue
            if key.role_arn:
                return _assumed_role_identity(access_key_id, account_id, key.role_arn), account_id
            if key.user_name:
                try:
                    user = backend.get_user(key.user_name)
                except Exception:  # the user was deleted; its key is orphaned
                    continue
                identity = {
                    "type": "IAMUser",
                    "principalId": user.id,
                    "arn": user.arn,
                    "accountId": account_id,
                    "accessKeyId": access_key_id,
                    "userName": user.name,
                }
                return identity, account_id
    identity = {
        "type": "Root",
        "principalId": default_account,
        "arn": f"arn:aws:iam::{default_account}:root",
        "accountId": default_account,
        "accessKeyId": access_key_id,
    }
    return identity, default_account


def _assumed_role_identity(access_key_id: str, account_id: str, role_arn: str) -> dict[str, Any]:
    from moto.sts.models import sts_backends

    identity: dict[str, Any] = {"type": "AssumedRole", "accountId": account_id, "accessKeyId": access_key_id}
    for backend in list(dict.values(dict.get(sts_backends, account_id) or {})):
        role = backend.get_assumed_role_from_access_key(access_key_id)
        if role is not None:
            identity |= {"principalId": role.user_id, "arn": role.arn}
            break
    identity["sessionContext"] = {
        "sessionIssuer": {
            "type": "Role",
            "arn": role_arn,
            "accountId": account_id,
            "userName": role_arn.rsplit("/", 1)[-1],
        }
    }
    return identity
