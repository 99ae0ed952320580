"""The bundled default config (events.json): CIS 4.1-4.15 rules on real and hand-made records."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from trailwatch_processor import config_load
from trailwatch_processor.config import severity_rank
from trailwatch_processor.config_load import load_default_config
from trailwatch_processor.patterns import Matcher, compile_config

CIS_IDS = [
    "cis-4.1-unauthorized-api-calls",
    "cis-4.2-console-signin-without-mfa",
    "cis-4.3-root-account-usage",
    "cis-4.4-iam-policy-changes",
    "cis-4.5-cloudtrail-config-changes",
    "cis-4.6-console-auth-failures",
    "cis-4.7-cmk-disabled-or-scheduled-deletion",
    "cis-4.8-s3-bucket-policy-changes",
    "cis-4.9-aws-config-changes",
    "cis-4.10-security-group-changes",
    "cis-4.11-nacl-changes",
    "cis-4.12-network-gateway-changes",
    "cis-4.13-route-table-changes",
    "cis-4.14-vpc-changes",
    "cis-4.15-organizations-changes",
]
SELF = "trailwatch-self-protection"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return compile_config(load_default_config())


def ids(matcher: Matcher, record: dict) -> list[str]:
    return [r.id for r in matcher.match(record)]


def primary(matcher: Matcher, record: dict) -> str:
    """The item's primary rule as the architecture defines it: highest severity, ties by config order."""
    matched = matcher.match(record)
    order = {r.id: i for i, r in enumerate(matcher.rules)}
    return max(matched, key=lambda r: (severity_rank(r.severity), -order[r.id])).id


def ct(**fields: object) -> dict:
    """A CloudTrail record as AWS writes it; keyword arguments replace top-level fields (None deletes)."""
    record: dict = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": "arn:aws:iam::123456789012:user/alice",
            "accountId": "123456789012",
            "userName": "alice",
        },
        "eventTime": "2026-11-26T12:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "eventID": "00000000-0000-0000-0000-000000000001",
        "eventType": "AwsApiCall",
        "recipientAccountId": "123456789012",
    }
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def calls(service: str, *names: str) -> list[dict]:
    """One record per API name, each from ``service``'s endpoint (``iam`` -> ``iam.amazonaws.com``)."""
    return [ct(eventSource=f"{service}.amazonaws.com", eventName=name) for name in names]


def console_login(
    *, mfa: str | None = "No", result: str = "Success", identity: str = "IAMUser", **extra: object
):
    additional: dict = {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No"}
    if mfa is not None:
        additional["MFAUsed"] = mfa
    record = ct(
        eventSource="signin.amazonaws.com",
        eventName="ConsoleLogin",
        eventType="AwsConsoleSignIn",
        additionalEventData=additional,
        responseElements={"ConsoleLogin": result},
        **extra,
    )
    record["userIdentity"]["type"] = identity
    return record


def with_identity(record: dict, **identity: object) -> dict:
    record = copy.deepcopy(record)
    for key, value in identity.items():
        if value is None:
            record["userIdentity"].pop(key, None)
        else:
            record["userIdentity"][key] = value
    return record


def saml(record: dict) -> dict:
    record = copy.deepcopy(record)
    record["additionalEventData"]["SamlProviderArn"] = "arn:aws:iam::123456789012:saml-provider/Okta"
    return record


ROOT = {"type": "Root", "arn": "arn:aws:iam::123456789012:root", "userName": None}

# rule id -> (records that must match, near-miss records that must not)
VARIANTS: dict[str, tuple[list[dict], list[dict]]] = {
    "cis-4.1-unauthorized-api-calls": (
        [
            ct(errorCode="Client.UnauthorizedOperation"),
            ct(errorCode="AccessDenied"),
            ct(errorCode="AccessDeniedException"),
            ct(errorCode="AccessDenied", eventSource="s3.amazonaws.com", eventName="GetBucketPolicy"),
            ct(errorCode="AccessDenied", sourceIPAddress=None),  # no source address: not excluded
            ct(errorCode="AccessDenied", sourceIPAddress="logs.amazonaws.com"),
        ],
        [
            ct(),
            ct(errorCode="ThrottlingException"),
            ct(errorCode="accessdenied"),
            ct(errorCode="UnauthorizedOperations"),
            # excluded as in the benchmark's filter since v1.5: frequent, benign denials
            ct(errorCode="AccessDenied", eventSource="s3.amazonaws.com", eventName="HeadBucket"),
            ct(
                errorCode="AccessDenied",
                eventSource="s3.amazonaws.com",
                eventName="PutObject",
                sourceIPAddress="delivery.logs.amazonaws.com",
                userAgent="delivery.logs.amazonaws.com",
            ),
        ],
    ),
    "cis-4.2-console-signin-without-mfa": (
        [console_login(), console_login(mfa=None), with_identity(console_login(), **ROOT)],
        [
            console_login(mfa="Yes"),
            console_login(result="Failure", errorMessage="Failed authentication"),
            console_login(identity="AssumedRole"),
            saml(console_login()),
        ],
    ),
    "cis-4.3-root-account-usage": (
        [with_identity(ct(), **ROOT), with_identity(ct(eventName="StopLogging"), **ROOT)],
        [
            ct(),
            with_identity(ct(), **ROOT, invokedBy="support.amazonaws.com"),
            with_identity(ct(eventType="AwsServiceEvent"), **ROOT),
        ],
    ),
    "cis-4.4-iam-policy-changes": (
        calls("iam", "PutRolePolicy", "DetachGroupPolicy"),
        calls("iam", "GetPolicy") + calls("organizations", "CreatePolicy"),
    ),
    "cis-4.5-cloudtrail-config-changes": (
        calls("cloudtrail", "StopLogging", "DeleteTrail"),
        calls("cloudtrail", "LookupEvents") + calls("example", "StopLogging"),
    ),
    "cis-4.6-console-auth-failures": (
        [console_login(result="Failure", errorMessage="Failed authentication")],
        [
            console_login(),
            console_login(result="Failure", errorMessage="No username found in supplied account"),
        ],
    ),
    "cis-4.7-cmk-disabled-or-scheduled-deletion": (
        calls("kms", "DisableKey", "ScheduleKeyDeletion"),
        calls("kms", "EnableKey", "CancelKeyDeletion"),
    ),
    "cis-4.8-s3-bucket-policy-changes": (
        calls("s3", "PutBucketPolicy", "DeleteBucketCors"),
        calls("s3", "GetBucketPolicy") + calls("s3-outposts", "PutBucketPolicy"),
    ),
    "cis-4.9-aws-config-changes": (
        calls("config", "StopConfigurationRecorder"),
        calls("config", "StartConfigurationRecorder"),
    ),
    "cis-4.10-security-group-changes": (
        [ct(eventName="AuthorizeSecurityGroupIngress"), ct(eventName="DeleteSecurityGroup")],
        [ct(eventName="DescribeSecurityGroups"), ct(eventName="ModifySecurityGroupRules")],
    ),
    "cis-4.11-nacl-changes": (
        [ct(eventName="ReplaceNetworkAclEntry")],
        [ct(eventName="DescribeNetworkAcls")],
    ),
    "cis-4.12-network-gateway-changes": (
        [ct(eventName="CreateInternetGateway"), ct(eventName="DeleteCustomerGateway")],
        [ct(eventName="DescribeInternetGateways"), ct(eventName="CreateNatGateway")],
    ),
    "cis-4.13-route-table-changes": (
        [ct(eventName="ReplaceRoute"), ct(eventName="DisassociateRouteTable")],
        [ct(eventName="DescribeRouteTables")],
    ),
    "cis-4.14-vpc-changes": (
        [ct(eventName="CreateVpcPeeringConnection"), ct(eventName="ModifyVpcAttribute")],
        [ct(eventName="DescribeVpcs"), ct(eventName="CreateSubnet")],
    ),
    "cis-4.15-organizations-changes": (
        calls("organizations", "CreateAccount", "LeaveOrganization"),
        calls("organizations", "ListAccounts") + calls("iam", "CreatePolicy"),
    ),
}


def test_default_config_has_monitored_events_and_one_rule_per_cis_control() -> None:
    config = load_default_config()
    assert config.raw["monitored_events"] == ["ConsoleLogin", "CreateUser"]
    assert [r.id for r in config.rules] == ["ConsoleLogin", "CreateUser", *CIS_IDS, SELF]
    for rule in config.rules[2 : 2 + len(CIS_IDS)]:
        control = rule.id.split("-")[1]
        words = rule.description.split()
        assert words[:4] == ["CIS", "AWS", "Foundations", "Benchmark"] and words[4].rstrip(":") == control
        assert rule.title and rule.title != rule.id


def test_packaged_default_is_the_top_level_events_json(repo_root: Path) -> None:
    packaged = Path(config_load.__file__).with_name("default_events.json")
    assert packaged.read_bytes() == (repo_root / "events.json").read_bytes()
    assert load_default_config().source == "default_events.json"


@pytest.mark.parametrize(
    ("rule_id", "severity"),
    [
        ("cis-4.3-root-account-usage", "critical"),
        ("cis-4.5-cloudtrail-config-changes", "high"),
        ("cis-4.2-console-signin-without-mfa", "high"),
        ("cis-4.1-unauthorized-api-calls", "medium"),
    ],
)
def test_severities(matcher: Matcher, rule_id: str, severity: str) -> None:
    assert {r.id: r.severity for r in matcher.rules}[rule_id] == severity


@pytest.mark.parametrize("rule_id", CIS_IDS)
def test_rule_matches_its_variants_and_not_its_near_misses(matcher: Matcher, rule_id: str) -> None:
    hits, misses = VARIANTS[rule_id]
    for record in hits:
        assert rule_id in ids(matcher, record), record
    for record in misses:
        assert rule_id not in ids(matcher, record), record


@pytest.mark.parametrize("rule_id", CIS_IDS)
def test_rule_matches_real_records(matcher: Matcher, shared_records: list, rule_id: str) -> None:
    assert any(rule_id in ids(matcher, r) for r in shared_records if isinstance(r, dict))


# real records selected by their content, with the rules they must (and must not) trigger
REAL = [
    (lambda r: r.get("eventName") == "StopLogging", "cis-4.5-cloudtrail-config-changes"),
    (lambda r: r.get("eventName") == "ScheduleKeyDeletion", "cis-4.7-cmk-disabled-or-scheduled-deletion"),
    (lambda r: r.get("eventName") == "PutBucketPolicy", "cis-4.8-s3-bucket-policy-changes"),
    (lambda r: r.get("eventName") == "StopConfigurationRecorder", "cis-4.9-aws-config-changes"),
    (lambda r: r.get("eventName") == "AttachUserPolicy", "cis-4.4-iam-policy-changes"),
    (lambda r: r.get("eventName") == "CreateUser", "CreateUser"),
    (lambda r: r.get("errorCode") == "Client.UnauthorizedOperation", "cis-4.1-unauthorized-api-calls"),
    (lambda r: r.get("errorMessage") == "Failed authentication", "cis-4.6-console-auth-failures"),
    (
        lambda r: (
            r.get("eventName") == "ConsoleLogin"
            and (r.get("additionalEventData") or {}).get("MFAUsed") == "No"
            and (r.get("responseElements") or {}).get("ConsoleLogin") == "Success"
            and r["userIdentity"]["type"] == "IAMUser"
            and "SamlProviderArn" not in r["additionalEventData"]
        ),
        "cis-4.2-console-signin-without-mfa",
    ),
    (
        lambda r: (
            r.get("eventName") != "ConsoleLogin"
            and isinstance(r.get("userIdentity"), dict)
            and r["userIdentity"].get("type") == "Root"
            and "invokedBy" not in r["userIdentity"]
        ),
        "cis-4.3-root-account-usage",
    ),
]


@pytest.mark.parametrize(("select", "rule_id"), REAL)
def test_selected_real_records_match(matcher: Matcher, shared_records: list, select, rule_id: str) -> None:
    selected = [r for r in shared_records if isinstance(r, dict) and select(r)]
    assert selected, f"no real record selected for {rule_id}"
    for record in selected:
        assert rule_id in ids(matcher, record), record.get("eventID")


@pytest.mark.parametrize(
    ("select", "rule_id"),
    [
        (
            lambda r: (r.get("additionalEventData") or {}).get("MFAUsed") == "Yes",
            "cis-4.2-console-signin-without-mfa",
        ),
        (
            lambda r: (
                r.get("eventName") == "ConsoleLogin"
                and (r.get("userIdentity") or {}).get("type") == "AssumedRole"
            ),
            "cis-4.2-console-signin-without-mfa",
        ),
        (lambda r: "invokedBy" in (r.get("userIdentity") or {}), "cis-4.3-root-account-usage"),
        (
            lambda r: r.get("eventName") == "ConsoleLogin" and "errorMessage" not in r,
            "cis-4.6-console-auth-failures",
        ),
    ],
)
def test_real_near_misses_do_not_match(matcher: Matcher, shared_records: list, select, rule_id: str) -> None:
    selected = [r for r in shared_records if isinstance(r, dict) and select(r)]
    assert selected
    assert not [r.get("eventID") for r in selected if rule_id in ids(matcher, r)]


@pytest.mark.parametrize(
    ("record", "expected_primary"),
    [
        (console_login(), "cis-4.2-console-signin-without-mfa"),
        (console_login(mfa="Yes"), "ConsoleLogin"),
        (
            console_login(result="Failure", errorMessage="Failed authentication"),
            "cis-4.6-console-auth-failures",
        ),
        (with_identity(console_login(), **ROOT), "cis-4.3-root-account-usage"),
        (ct(eventSource="iam.amazonaws.com", eventName="CreateUser"), "CreateUser"),
        (ct(eventSource="iam.amazonaws.com", eventName="CreateUser", errorCode="AccessDenied"), "CreateUser"),
        (
            ct(eventSource="cloudtrail.amazonaws.com", eventName="StopLogging", errorCode="AccessDenied"),
            "cis-4.5-cloudtrail-config-changes",
        ),
    ],
)
def test_primary_rule_is_the_interesting_one(matcher: Matcher, record: dict, expected_primary: str) -> None:
    assert primary(matcher, record) == expected_primary


def test_every_shared_record_goes_through_match(matcher: Matcher, shared_records: list) -> None:
    assert shared_records
    matched = 0
    for record in shared_records:
        result = matcher.match(record)
        matched += bool(result)
        assert [r.id for r in result] == [r.id for r in matcher.rules if r in result]  # config order
    assert matched > 100


def test_default_literals_are_sound_on_real_records(matcher: Matcher, shared_records: list) -> None:
    literals = matcher.literals
    assert literals is not None and "ConsoleLogin" in literals.event_names
    for record in shared_records:
        if isinstance(record, dict) and matcher.match(record):
            raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            name = record.get("eventName")
            found = (
                name in literals.event_names
                or (isinstance(name, str) and name.startswith(literals.event_name_prefixes))
                or any(n in raw for n in literals.needles)
            )
            assert found, record.get("eventID")


# --- self-protection: tampering with the trail's selectors and trailwatch's pipeline ---

SELF_HITS = [
    ("cloudtrail.amazonaws.com", "PutEventSelectors"),
    ("cloudtrail.amazonaws.com", "PutInsightSelectors"),
    ("s3.amazonaws.com", "PutBucketNotification"),  # as CloudTrail logs PutBucketNotificationConfiguration
    ("s3.amazonaws.com", "PutBucketNotificationConfiguration"),  # as the local AWS records it
    ("s3.amazonaws.com", "PutBucketVersioning"),
    *[
        ("lambda.amazonaws.com", name + suffix)
        for name, suffix in [
            ("UpdateFunctionCode", ""),
            ("UpdateFunctionCode", "20150331"),
            ("UpdateFunctionCode", "20150331v2"),
            ("UpdateFunctionConfiguration", "20150331v2"),
            ("DeleteFunction", ""),
            ("DeleteFunction", "20150331"),
            ("UpdateEventSourceMapping", "20150331"),
            ("DeleteEventSourceMapping", "20150331"),
            ("PutFunctionConcurrency", "20171031"),
            ("RemovePermission", ""),
            ("RemovePermission", "20150331v2"),
        ]
    ],
    ("sns.amazonaws.com", "Unsubscribe"),
    ("sns.amazonaws.com", "DeleteTopic"),
    ("sns.amazonaws.com", "SetSubscriptionAttributes"),
    ("sns.amazonaws.com", "SetTopicAttributes"),
    ("sqs.amazonaws.com", "PurgeQueue"),
    ("sqs.amazonaws.com", "DeleteQueue"),
    ("sqs.amazonaws.com", "SetQueueAttributes"),
    ("dynamodb.amazonaws.com", "DeleteTable"),
    ("dynamodb.amazonaws.com", "UpdateTable"),
    ("dynamodb.amazonaws.com", "UpdateTimeToLive"),
    ("monitoring.amazonaws.com", "DeleteAlarms"),
    ("monitoring.amazonaws.com", "DisableAlarmActions"),
    ("kms.amazonaws.com", "PutKeyPolicy"),
]

# Every call the processor's role may make (main.yaml's ProcessorRole): none may match.
PROCESSOR_ROLE_CALLS = [
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "ListBucket"),
    ("dynamodb.amazonaws.com", "PutItem"),
    ("dynamodb.amazonaws.com", "UpdateItem"),
    ("dynamodb.amazonaws.com", "GetItem"),
    ("dynamodb.amazonaws.com", "Query"),
    ("sns.amazonaws.com", "Publish"),
    ("sqs.amazonaws.com", "ReceiveMessage"),
    ("sqs.amazonaws.com", "DeleteMessage"),
    ("sqs.amazonaws.com", "ChangeMessageVisibility"),
    ("sqs.amazonaws.com", "GetQueueAttributes"),
    ("kms.amazonaws.com", "Decrypt"),
    ("kms.amazonaws.com", "GenerateDataKey"),
    ("logs.amazonaws.com", "CreateLogStream"),
    ("logs.amazonaws.com", "PutLogEvents"),
]

SELF_MISSES = [
    *PROCESSOR_ROLE_CALLS,
    # a same-named call of another service
    ("cloudfront.amazonaws.com", "DeleteFunction"),
    ("cloudfront.amazonaws.com", "UpdateFunction"),
    ("ec2.amazonaws.com", "PutBucketVersioning"),
    ("s3.amazonaws.com", "SetQueueAttributes"),
    ("sns.amazonaws.com", "DeleteQueue"),
    ("dynamodb.amazonaws.com", "DeleteAlarms"),
    ("kinesis.amazonaws.com", "UpdateTable"),
    # the same service, harmless or unrelated calls sharing a prefix
    ("lambda.amazonaws.com", "GetFunction20150331v2"),
    ("lambda.amazonaws.com", "ListFunctions20150331"),
    ("lambda.amazonaws.com", "DeleteFunctionConcurrency20171031"),
    ("lambda.amazonaws.com", "DeleteFunctionUrlConfig20221031"),
    ("lambda.amazonaws.com", "UpdateFunctionUrlConfig20221031"),
    ("lambda.amazonaws.com", "AddPermission20150331v2"),
    ("cloudtrail.amazonaws.com", "GetEventSelectors"),
    ("s3.amazonaws.com", "GetBucketNotification"),
    ("sns.amazonaws.com", "Subscribe"),
    ("monitoring.amazonaws.com", "DescribeAlarms"),
    ("dynamodb.amazonaws.com", "DescribeTable"),
]

# Covered by a CIS rule already: self-protection does not repeat them (one rule, one reason).
CIS_COVERED = [
    ("cloudtrail.amazonaws.com", "StopLogging", "cis-4.5-cloudtrail-config-changes"),
    ("cloudtrail.amazonaws.com", "DeleteTrail", "cis-4.5-cloudtrail-config-changes"),
    ("cloudtrail.amazonaws.com", "UpdateTrail", "cis-4.5-cloudtrail-config-changes"),
    ("kms.amazonaws.com", "DisableKey", "cis-4.7-cmk-disabled-or-scheduled-deletion"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion", "cis-4.7-cmk-disabled-or-scheduled-deletion"),
    ("s3.amazonaws.com", "PutBucketPolicy", "cis-4.8-s3-bucket-policy-changes"),
    ("s3.amazonaws.com", "DeleteBucketPolicy", "cis-4.8-s3-bucket-policy-changes"),
    ("s3.amazonaws.com", "PutBucketLifecycle", "cis-4.8-s3-bucket-policy-changes"),
]


def test_self_protection_is_high() -> None:
    assert {r.id: r.severity for r in load_default_config().rules}[SELF] == "high"


@pytest.mark.parametrize(("source", "name"), SELF_HITS)
@pytest.mark.parametrize("error", [None, "AccessDenied"], ids=["done", "attempted"])
def test_self_protection_matches(matcher: Matcher, source: str, name: str, error: str | None) -> None:
    record = ct(eventSource=source, eventName=name, errorCode=error)
    assert SELF in ids(matcher, record)
    assert primary(matcher, record) == SELF  # also over cis-4.1 for a denied attempt


@pytest.mark.parametrize(("source", "name"), SELF_MISSES)
def test_self_protection_does_not_match(matcher: Matcher, source: str, name: str) -> None:
    assert SELF not in ids(matcher, ct(eventSource=source, eventName=name))


@pytest.mark.parametrize(("source", "name"), PROCESSOR_ROLE_CALLS)
def test_the_processors_own_calls_match_no_rule(matcher: Matcher, source: str, name: str) -> None:
    assert ids(matcher, ct(eventSource=source, eventName=name)) == []


@pytest.mark.parametrize(("source", "name", "rule_id"), CIS_COVERED)
def test_self_protection_leaves_the_cis_rules_their_events(
    matcher: Matcher, source: str, name: str, rule_id: str
) -> None:
    assert ids(matcher, ct(eventSource=source, eventName=name)) == [rule_id]


def test_self_protection_on_real_records(matcher: Matcher, shared_records: list) -> None:
    wanted = {(source, name) for source, name in SELF_HITS}
    hits = [
        r
        for r in shared_records
        if isinstance(r, dict) and (r.get("eventSource"), r.get("eventName")) in wanted
    ]
    assert len({(r["eventSource"], r["eventName"]) for r in hits}) >= 8  # Lambda's suffixed names among them
    for record in hits:
        assert SELF in ids(matcher, record), record.get("eventID")
    matched = [r for r in shared_records if isinstance(r, dict) and SELF in ids(matcher, r)]
    assert all((r["eventSource"], r["eventName"]) in wanted for r in matched)


# -- noise control in the pack -----------------------------------------------------------------
NOISE = {
    "cis-4.1-unauthorized-api-calls": ("dedup", ("userIdentity.arn", "eventName"), 60.0),
    "cis-4.6-console-auth-failures": ("threshold", ("sourceIPAddress",), 15.0),
}


def test_noise_control_only_where_the_benchmark_intent_calls_for_it_with_its_reason() -> None:
    """4.1 deduplicated per principal and action, 4.6 a threshold per source IP; every other rule alerts on
    each event (a root call, a trail stopped: each one needs an explanation). The reason is in the rule."""
    config = load_default_config()
    got = {}
    for rule in config.rules:
        control = rule.dedup or rule.threshold
        if control is None:
            assert "Noise control" not in rule.description, rule.id
            continue
        assert "Noise control:" in rule.description, rule.id
        got[rule.id] = ("dedup" if rule.dedup else "threshold", control.group_by, control.window_minutes)
    assert got == NOISE
    threshold = {r.id: r for r in config.rules}["cis-4.6-console-auth-failures"].threshold
    assert threshold is not None and threshold.count == 3
    assert config.suppressions == ()  # the pack hides nothing


def test_the_pack_without_noise_control_keeps_every_rule_as_is() -> None:
    """What the demo and the pipeline/proof harnesses run (trailwatch.noise_free): the same rules, patterns
    and tests, each alerting on every event."""
    from trailwatch.noise_free import bundled_config_without_noise

    pack, plain = load_default_config(), config_load.parse_config(bundled_config_without_noise())
    assert [r.id for r in plain.rules] == [r.id for r in pack.rules]
    for mine, theirs in zip(plain.rules, pack.rules, strict=True):
        assert (mine.pattern, mine.exclude, mine.severity, mine.tests) == (
            theirs.pattern,
            theirs.exclude,
            theirs.severity,
            theirs.tests,
        )
        assert mine.dedup is None and mine.threshold is None
    assert plain.suppressions == ()
