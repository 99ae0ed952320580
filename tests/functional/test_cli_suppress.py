"""`trailwatch suppress add|list|remove` on moto with the small stand-in stack, and verify's expiry warnings.

The commands edit the config in force (the bucket's, or the bundled default when there is none) and upload
it through upload-config's path: validation, rule tests, diff, and a question (adding weakens alerting)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from trailwatch import synth, verify
from trailwatch.errors import UsageError
from trailwatch.suppress import build_pattern, expiry_warnings, parse_expires, suppression_id
from trailwatch_processor import config as tw_config
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.config_schema import validate_config

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET

KEY = "config/monitored_events.json"
SCANNER = "arn:aws:iam::123456789012:role/scanner"
TODAY = date(2026, 12, 3)


def _remote() -> dict[str, Any]:
    return json.loads(boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key=KEY)["Body"].read())


def _put(doc: dict[str, Any]) -> None:
    boto3.client("s3").put_object(Bucket=TEST_BUCKET, Key=KEY, Body=json.dumps(doc).encode())


def _add(*extra: str) -> list[str]:
    return [
        "suppress",
        "add",
        "--rule",
        "CreateUser",
        "--principal",
        SCANNER,
        "--reason",
        "provisioning pipeline",
        "--owner",
        "platform@example.com",
        "--expires",
        "30d",
        *extra,
    ]


def _in(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


# deployed once per module, config: CreateUser, StopLogging, PutBucketPolicy
@pytest.mark.usefixtures("shared_stack")
class TestOnTheStack:
    def test_add_is_one_command_and_uploads_a_validated_config(self, cli) -> None:
        before = _remote()
        result = cli(*_add("--yes"))
        assert result.exit_code == 0, result.output
        after = _remote()
        [entry] = after.pop("suppressions")
        assert after == before  # everything else as it was
        assert entry == {
            "id": entry["id"],
            "pattern": {"userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [SCANNER]}}}},
            "reason": "provisioning pipeline",
            "owner": "platform@example.com",
            "expires": _in(30),
            "rules": ["CreateUser"],
        }
        assert entry["id"].startswith("CreateUser-")
        assert f"+ suppression {entry['id']} (added: WEAKENED" in result.output
        assert "adds or changes 1 suppression(s)" in result.output
        validate_config(_remote())  # what the processor will load

    def test_add_without_yes_and_without_a_terminal_uploads_nothing(self, cli) -> None:
        before = _remote()
        result = cli(*_add())
        assert result.exit_code == 2, result.output
        assert "Not uploaded: the config adds or changes 1 suppression(s)." in result.output
        assert _remote() == before

    def test_add_asks_at_a_terminal(self, cli, monkeypatch: pytest.MonkeyPatch) -> None:
        from trailwatch import configcmd

        monkeypatch.setattr(configcmd, "stdin_is_tty", lambda: True)
        assert cli(*_add(), input="n\n").exit_code == 2
        assert "suppressions" not in _remote()
        assert cli(*_add(), input="y\n").exit_code == 0
        assert len(_remote()["suppressions"]) == 1

    def test_an_unknown_rule_is_refused_by_the_validator(self, cli) -> None:
        before = _remote()
        args = _add("--yes")
        args[args.index("CreateUser")] = "NoSuchRule"
        result = cli(*args)
        assert result.exit_code == 2
        assert "suppressions[0].rules[0]: unknown rule 'NoSuchRule'" in result.output
        assert "nothing uploaded" in result.output
        assert _remote() == before

    def test_the_same_suppression_twice_is_a_duplicate(self, cli) -> None:
        assert cli(*_add("--yes")).exit_code == 0
        result = cli(*_add("--yes"))
        assert result.exit_code == 2 and "already exists" in result.output
        assert len(_remote()["suppressions"]) == 1

    def test_list_shows_scope_owner_expiry_days_left_and_expired(self, cli) -> None:
        doc = _remote()
        doc["suppressions"] = [
            {
                "id": "old",
                "pattern": {"eventName": ["X"]},
                "reason": "gone",
                "owner": "a",
                "expires": "2020-01-01",
            },
            {
                "id": "scanner",
                "pattern": {"userIdentity": {"arn": [SCANNER]}},
                "reason": "scanner denied by design",
                "owner": "secops",
                "expires": _in(100),
                "rules": ["CreateUser", "StopLogging"],
            },
            {"id": "soon", "pattern": {"eventName": ["Y"]}, "reason": "r", "owner": "o", "expires": _in(5)},
        ]
        _put(doc)
        result = cli("suppress", "list")
        assert result.exit_code == 0, result.output
        rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
        assert "all rules" in rows["old"] and "expired" in rows["old"]
        assert "CreateUser, StopLogging" in rows["scanner"] and "secops" in rows["scanner"]
        assert _in(100) in rows["scanner"] and " 99 " in rows["scanner"] + " "
        assert "scanner denied by design" in rows["scanner"]
        assert " 4 " in rows["soon"]
        assert "old expired 2020-01-01" in result.output and "soon expires" in result.output
        listed = cli("suppress", "list", "--json")
        assert [json.loads(line)["id"] for line in listed.output.splitlines()] == ["old", "scanner", "soon"]

    def test_remove_uploads_without_the_suppression(self, cli) -> None:
        assert cli(*_add("--yes")).exit_code == 0
        [entry] = _remote()["suppressions"]
        result = cli("suppress", "remove", entry["id"])  # not weakening: no question, no --yes
        assert result.exit_code == 0, result.output
        assert "suppressions" not in _remote()
        assert f"- suppression {entry['id']} (removed)" in result.output

    def test_remove_an_unknown_id_names_the_existing_ones(self, cli) -> None:
        assert cli(*_add("--yes")).exit_code == 0
        result = cli("suppress", "remove", "nope")
        assert result.exit_code == 2
        assert "No suppression nope" in result.output and _remote()["suppressions"][0]["id"] in result.output

    def test_without_a_config_in_the_bucket_the_bundled_default_is_edited(self, cli) -> None:
        boto3.client("s3").delete_object(Bucket=TEST_BUCKET, Key=KEY)
        args = _add("--yes")
        args[args.index("CreateUser")] = "cis-4.1-unauthorized-api-calls"
        result = cli(*args)
        assert result.exit_code == 0, result.output
        uploaded = validate_config(_remote())
        default = load_default_config()
        assert [r.id for r in uploaded.rules] == [r.id for r in default.rules]
        assert [s.rules for s in uploaded.suppressions] == [("cis-4.1-unauthorized-api-calls",)]
        assert "(removed)" not in result.output and "compared with the bundled default" in result.output

    def test_an_invalid_config_in_the_bucket_is_not_edited(self, cli) -> None:
        boto3.client("s3").put_object(Bucket=TEST_BUCKET, Key=KEY, Body=b'{"rules": [{"id": 1}]}')
        result = cli(*_add("--yes"))
        assert result.exit_code == 2 and "is invalid" in result.output
        assert "suppressions edit a valid config" in result.output  # refused before any edit
        assert _remote() == {"rules": [{"id": 1}]}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", "2027-01-02"),
        ("1d", "2026-12-04"),
        ("2027-03-31", "2027-03-31"),
        ("2027-03-31T12:00:00Z", None),
    ],
)
def test_expires_accepts_days_dates_and_times(text: str, expected: str | None) -> None:
    assert parse_expires(text, TODAY) == (expected or text)


@pytest.mark.parametrize("text", ["0d", "2026-12-03", "2020-01-01", "tomorrow", "31/03/2027", "30"])
def test_expires_refuses_the_past_and_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_expires(text, TODAY)


def test_pattern_from_options_and_json() -> None:
    pattern = build_pattern(
        '{"errorCode": [{"prefix": "AccessDenied"}]}',
        principals=(SCANNER,),
        event_names=("GetObject",),
        source_ips=("10.0.0.0/8", "192.0.2.1"),
        accounts=("111122223333",),
    )
    assert pattern == {
        "errorCode": [{"prefix": "AccessDenied"}],
        "userIdentity": {"sessionContext": {"sessionIssuer": {"arn": [SCANNER]}}},
        "eventName": ["GetObject"],
        "sourceIPAddress": [{"cidr": "10.0.0.0/8"}, "192.0.2.1"],
        "recipientAccountId": ["111122223333"],
    }


@pytest.mark.parametrize(
    ("pattern_json", "options"),
    [
        (None, {}),  # nothing to match
        ("[1]", {}),
        ("{not json", {}),
        ('{"eventName": ["A"]}', {"event_names": ("B",)}),  # a field both ways
        (
            '{"userIdentity": {"type": ["AssumedRole"]}}',
            {"principals": (SCANNER,)},
        ),  # a role and userIdentity
    ],
)
def test_pattern_refusals(pattern_json: str | None, options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        build_pattern(pattern_json, **options)


def test_suppression_id_is_stable_and_names_the_scope() -> None:
    pattern = {"userIdentity": {"arn": [SCANNER]}}
    assert suppression_id(pattern, ("r1",)) == suppression_id(pattern, ("r1",))
    assert suppression_id(pattern, ("r1",)).startswith("r1-")
    assert suppression_id(pattern, ()).startswith("all-")
    assert suppression_id(pattern, ("r1",)) != suppression_id(pattern, ("r2",))


def _config_with(*expiries: str, pattern: dict[str, Any] | None = None) -> tw_config.Config:
    return validate_config(
        {
            "monitored_events": ["CreateUser"],
            "suppressions": [
                {
                    "id": f"s{i}",
                    "pattern": pattern or {"eventName": ["X"]},
                    "reason": "r",
                    "owner": "o",
                    "expires": e,
                }
                for i, e in enumerate(expiries)
            ],
        }
    )


NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_expiry_warnings_name_expired_and_expiring_within_14_days() -> None:
    config = _config_with("2026-12-01", "2026-12-10", "2026-12-17T11:00:00Z", "2026-12-18", "2027-06-01")
    lines = expiry_warnings(config, NOW)
    assert [line.split()[0] for line in lines] == ["s0", "s1", "s2"]
    assert "expired" in lines[0] and "trailwatch suppress remove s0" in lines[0]
    assert "expires 2026-12-10" in lines[1] and "owner o" in lines[1]


@pytest.mark.parametrize(
    ("expiries", "status"),
    [((), "pass"), (("2027-06-01",), "pass"), (("2026-12-10",), "warn"), (("2026-01-01",), "warn")],
)
def test_verify_warns_about_expiring_suppressions(expiries: tuple[str, ...], status: str) -> None:
    ctx = SimpleNamespace(config=_config_with(*expiries))
    got, reason = verify.check_suppressions(ctx, NOW)  # type: ignore[arg-type]
    assert got == status, reason


def test_verify_runs_the_suppressions_check() -> None:
    assert ("suppressions", verify.check_suppressions) in verify.CHECKS


ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.mark.parametrize(
    ("principals", "identity", "hidden"),
    [
        ((SCANNER,), synth.assumed_role("scanner", "any-session"), True),  # a role: every session of it
        ((SCANNER,), synth.assumed_role("other-role", "scanner"), False),
        ((ALICE,), synth.iam_user("alice"), True),
        ((ALICE,), synth.iam_user("bob"), False),
        ((SCANNER, ALICE), synth.assumed_role("scanner"), True),  # both kinds: either one
        ((SCANNER, ALICE), synth.iam_user("alice"), True),
        ((SCANNER, ALICE), synth.iam_user("bob"), False),
    ],
)
def test_a_principal_suppresses_what_the_processor_sees(
    principals: tuple[str, ...], identity: dict[str, Any], hidden: bool
) -> None:
    """The built pattern, through the processor's own validator and suppression matcher."""
    from trailwatch_processor import noise

    pattern = build_pattern(None, principals=principals, event_names=("GetSecretValue",))
    config = _config_with("2099-01-01", pattern=pattern)
    record = synth.make_record("GetSecretValue", identity=identity, error_code="AccessDenied")
    found = noise.suppression_for(record, "CreateUser", config.suppressions, NOW)
    assert (found is not None) is hidden
    other_action = synth.make_record("ListSecrets", identity=identity)
    assert noise.suppression_for(other_action, "CreateUser", config.suppressions, NOW) is None
