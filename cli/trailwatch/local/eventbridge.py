"""CloudTrail to EventBridge for the local AWS: each recorded event on the default bus, as AWS delivers it.

AWS puts every management event (and each data event a trail logs) on the default event bus of the event's
region within seconds, whether or not a trail exists, independently of the trail's log files:

* the envelope: `version` "0", `id`, `detail-type` ("AWS API Call via CloudTrail", "AWS Console Sign In via
  CloudTrail", "AWS Service Event via CloudTrail"), `source` "aws.<service>" (from `eventSource`),
  `account`, `time`, `region`, `resources` [], `detail` = the CloudTrail record;
* read-only management events reach only rules in state `ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS`
  (moto stores that state as given, but sends to every rule of a bus whatever its state: we check it here);
* events over 256 KB are not delivered;
* global-service events (IAM, CloudFront, Route 53, STS on its global endpoint) arrive in us-east-1.

`put_on_bus` is the one path of an event to a bus and its rules' targets, for CloudTrail's events, S3's
(`cross_account`), the PutEvents API (`put_events`, replacing moto's) and the events a rule forwards to a bus
of another region or account.

Rules are matched with the processor's own EventBridge matcher (`trailwatch_processor.patterns`), installed
over moto's `EventPattern.matches_event` by `moto_patches` (moto differs from AWS e.g. on arrays of objects).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from trailwatch.local.cloudtrail_selectors import GLOBAL_EVENT_SOURCES

MAX_EVENT_BYTES = 256 * 1024
ALL_MANAGEMENT_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
GLOBAL_REGION = "us-east-1"
_DETAIL_TYPES = {
    "AwsApiCall": "AWS API Call via CloudTrail",
    "AwsConsoleSignIn": "AWS Console Sign In via CloudTrail",
    "AwsServiceEvent": "AWS Service Event via CloudTrail",
}


def detail_type(record: dict[str, Any]) -> str:
    return _DETAIL_TYPES.get(str(record.get("eventType")), "AWS API Call via CloudTrail")


def delivery_region(record: dict[str, Any]) -> str:
    """The region whose default bus gets the event: us-east-1 for global services' events."""
    source = record.get("eventSource")
    if source in GLOBAL_EVENT_SOURCES and source != "sts.amazonaws.com":
        return GLOBAL_REGION
    return str(record.get("awsRegion") or GLOBAL_REGION)


def envelope(record: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The EventBridge event AWS makes of a CloudTrail record."""
    service = str(record.get("eventSource", "")).split(".", 1)[0]
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type(record),
        "source": f"aws.{service}",
        "account": account_id,
        "time": record.get("eventTime"),
        "region": delivery_region(record),
        "resources": [],
        "detail": record,
    }


def rule_takes(state: str, record: dict[str, Any]) -> bool:
    """Whether a rule in `state` receives the record (read-only management events need the special state)."""
    if state == ALL_MANAGEMENT_STATE:
        return True
    if state != "ENABLED":
        return False
    return not (record.get("readOnly") is True and record.get("managementEvent", True) is not False)


def publish(record: dict[str, Any], account_id: str, log: Callable[[str], None] | None = None) -> int:
    """Put the record on its region's default bus of `account_id`; the number of rules it was sent to."""
    event = envelope(record, account_id)
    if len(json.dumps(event, separators=(",", ":")).encode()) > MAX_EVENT_BYTES:
        if log:
            log(f"eventbridge: {record.get('eventName')} is over 256 KB: not delivered (as in AWS)")
        return 0
    return put_on_bus(event, account_id, event["region"], "default", log=log)


def put_events(self: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replaces moto's `EventsBackend.put_events` (the PutEvents API): each valid entry goes through
    `put_on_bus` (rule states, AWS's envelope on SQS targets, another account's bus only when its policy
    admits the caller); the entries answered, and the request checked, as moto does."""
    from moto.events.exceptions import ValidationException

    if len(entries) > 10:
        raise ValidationException(
            "1 validation error detected: Value '[PutEventsRequestEntry]' at 'entries' failed to satisfy "
            "constraint: Member must have length less than or equal to 10"
        )
    answered = []
    for entry in entries:
        error = _entry_error(entry)
        if error is not None:
            answered.append(error)
            continue
        bus_arn = str(entry.get("EventBusName") or "default")
        parts = bus_arn.split(":") if bus_arn.startswith("arn:") else []
        account, region = (parts[4], parts[3]) if parts else (self.account_id, self.region_name)
        bus_name = bus_arn.split("/")[-1]
        if account == self.account_id:
            self.describe_event_bus(bus_name)  # ResourceNotFoundException, as moto answers
        sent = entry.get("Time")
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.account_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(sent) if sent else None)),
            "region": region,
            "resources": entry.get("Resources", []),
            "detail": json.loads(entry["Detail"]),
        }
        answered.append({"EventId": event["id"]})
        put_on_bus(event, account, region, bus_name, sender=self.account_id)
    return answered


def _entry_error(entry: dict[str, Any]) -> dict[str, str] | None:
    """moto's answer for an entry PutEvents refuses (a required field missing, Detail not JSON)."""
    for field in ("Source", "DetailType", "Detail"):
        if not entry.get(field):
            return {
                "ErrorCode": "InvalidArgument",
                "ErrorMessage": f"Parameter {field} is not valid. Reason: {field} is a required argument.",
            }
    try:
        json.loads(entry["Detail"])
    except ValueError:
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    return None


def put_on_bus(
    event: dict[str, Any],
    account_id: str,
    region: str,
    bus_name: str,
    *,
    sender: str | None = None,
    log: Callable[[str], None] | None = None,
    hops: int = 0,
) -> int:
    """Put `event` on one bus, as PutEvents does, and send it to the targets of the rules it matches; the
    number of rules. The only way an event reaches a bus here: CloudTrail's events (`publish`), S3's
    (`cross_account.send_event_bridge_message`), the PutEvents API (`put_events`) and the events a rule
    forwards to another bus (`_forward`).

    `sender` is the account that puts the event (None: the bus's own account, as CloudTrail and S3 do); a
    bus of another account takes it only when its policy allows the sender ``events:PutEvents``."""
    from moto.events.models import events_backends

    from trailwatch.local.cross_account import bus_admits

    if sender is not None and not bus_admits(account_id, region, bus_name, sender):
        if log:
            log(
                f"eventbridge: bus {bus_name} of {account_id} in {region} does not admit events of {sender}: "
                "not delivered (as in AWS)"
            )
        return 0
    by_region = dict.get(events_backends, account_id) or {}
    backend = dict.get(by_region, region)  # no backend yet: no rules in that region
    if backend is None:
        return 0
    bus = backend.event_buses.get(bus_name)
    if bus is None:
        return 0
    from_cloudtrail = event.get("detail-type") in _DETAIL_TYPES.values() and isinstance(
        event.get("detail"), dict
    )
    record = event["detail"] if from_cloudtrail else {}  # rule states sort CloudTrail's events only
    sent = 0
    for rule in list(bus.rules.values()):
        if rule.scheduled_expression or not rule_takes(rule.state, record):
            continue
        if not rule.event_pattern.matches_event(event):
            continue
        sent += 1
        for target in list(rule.targets):
            try:
                _send(rule, target, event, log, hops)
            except Exception as err:  # best effort, as in AWS: one target's failure does not stop the others
                if log:
                    log(f"eventbridge: rule {rule.name} could not deliver to {target.get('Arn')}: {err!r}")
    return sent


def _send(
    rule: Any, target: dict[str, Any], event: dict[str, Any], log: Callable[[str], None] | None, hops: int
) -> None:
    """An SQS target without input transformation gets the envelope as AWS sends it (moto's SQS path
    rewrites `time` and wants moto's internal `ingestion-time`); an event bus gets the event itself
    (`_forward`); other targets go through moto."""
    from moto.sqs.models import sqs_backends
    from moto.utilities.arns import parse_arn

    arn = parse_arn(target["Arn"])
    if arn.service == "sqs" and not target.get("InputTransformer") and not target.get("Input"):
        group_id = target.get("SqsParameters", {}).get("MessageGroupId")
        sqs_backends[arn.account][arn.region].send_message(
            queue_name=arn.resource_id, message_body=json.dumps(event), group_id=group_id
        )
        return
    if arn.service == "events" and arn.resource_type == "event-bus":
        _forward(rule, target, event, log, hops)
        return
    moto_event = json.loads(json.dumps(event))
    moto_event["time"] = time.time()
    moto_event["ingestion-time"] = time.time()
    original = type(rule)(
        rule.name,
        rule.account_id,
        rule.region_name,
        rule.description,
        None,
        None,
        rule.role_arn,
        rule.event_bus_name,
        rule.state,
        targets=[target],
    )
    original.send_to_targets(moto_event)


def _forward(
    rule: Any, target: dict[str, Any], event: dict[str, Any], log: Callable[[str], None] | None, hops: int
) -> None:
    """A bus target gets the event itself, as AWS forwards it (same `id`, `account`, `region`, `time`,
    `detail`), put there by the rule's account (`put_on_bus` checks that bus's policy): moto would re-put it
    as a new event of the target region through its own matching. A bus of another region needs a role
    (EventBridge assumes it to call PutEvents); without one the rule does not deliver. One hop only, so a
    loop of forwarding rules (region A -> B -> A) cannot spin."""
    from moto.utilities.arns import parse_arn

    arn = parse_arn(target["Arn"])
    if arn.region != rule.region_name and not target.get("RoleArn"):
        if log:
            log(
                f"eventbridge: rule {rule.name} targets {target['Arn']} of another region without RoleArn: "
                "not delivered (as in AWS)"
            )
        return
    if hops >= 1:
        if log:
            log(f"eventbridge: {event.get('id')} already forwarded once: not forwarded again by {rule.name}")
        return
    bus_name = arn.resource_id.split("/")[-1] or "default"
    put_on_bus(event, arn.account, arn.region, bus_name, sender=rule.account_id, log=log, hops=hops + 1)


def matches_event(self: Any, event: dict[str, Any]) -> bool:
    """moto's `EventPattern.matches_event` by the processor's matcher (AWS's semantics) on the whole event.

    A pattern the processor's validator rejects falls back to moto's own matching."""
    pattern = self.get_pattern()
    if not pattern:
        return True
    matcher = _matcher(self)
    if matcher is None:
        from trailwatch.local.moto_patches import original

        return bool(original("moto.events.models:EventPattern.matches_event")(self, event))
    return bool(matcher.match(json.loads(json.dumps(event))))


def _matcher(pattern_obj: Any) -> Any:
    cached = getattr(pattern_obj, "_trailwatch_matcher", False)
    if cached is not False:
        return cached
    from trailwatch_processor.config import ConfigError
    from trailwatch_processor.config_schema import validate_config
    from trailwatch_processor.patterns import compile_config

    try:
        config = validate_config(
            {"rules": [{"id": "eventbridge-rule", "pattern": pattern_obj.get_pattern()}]}
        )
        matcher: Any = compile_config(config)
    except ConfigError:
        matcher = None
    pattern_obj._trailwatch_matcher = matcher
    return matcher
