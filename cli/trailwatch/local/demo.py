"""`trailwatch demo`: the whole pipeline on the local AWS, with an intrusion story, checked end to end.

The emulator runs in this process; `main.yaml` is deployed through the normal deploy code; a local queue is
subscribed to the alert topic. The story is then either written as CloudTrail log files (`--files`) or
performed as real API calls by a second IAM user (`--live`, recorded by the emulator's CloudTrail). The
demo waits for every expected detection, prints the table's items and the alerts, and exits 0 only when
each expected event is stored with its rule and covered by exactly one alert. The story itself (its steps
and the rule each must fire) is `demo_story.py`.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import click

from trailwatch import events
from trailwatch.local.demo_story import Expected, LiveStory, Pipeline, run_files_story, write_console_logins
from trailwatch.local.server import LocalAWS
from trailwatch.session import Aws, Options
from trailwatch.stats import percentile
from trailwatch.ui import UI

STACK_NAME = "trailwatch-demo"
EMAIL = "demo@example.com"
DEMO_REGION = "us-east-1"
# Live mode: the trail's log files every few seconds (AWS: about 5 minutes), so the demo shows both paths of
# the same events side by side: the fast path (EventBridge, seconds) and the log file.
LIVE_DELIVERY_INTERVAL = 8.0
POLL_WAIT_SECONDS = 1


@dataclass
class Observed:
    """What arrived: alert bodies with their receipt time, items of the table, log object write times."""

    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: dict[str, float] = field(default_factory=dict)
    # Fast path: when the demo first saw the log file named on an item the fast path had stored (the file
    # path reached the event; it sends nothing, the event is alerted already).
    file_seen: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ setup
def demo_aws(endpoint: str, region: str, verbose: int) -> Aws:
    """An `Aws` for the emulator with its test credentials (the account's root user there)."""
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    options = Options(region=region, endpoint_url=endpoint, stack_name=STACK_NAME, verbose=verbose)
    return Aws(options, _session=session)


def deploy(aws: Aws, ui: UI) -> dict[str, str]:
    """`trailwatch deploy --bucket trailwatch-demo-<random> --email demo@example.com --no-verify`."""
    from trailwatch import deploy as deploy_mod
    from trailwatch import noise_free, stack

    bucket = f"trailwatch-demo-{uuid.uuid4().hex[:12]}"
    # The pack without its noise control (trailwatch.noise_free): every step of the story alerts at once.
    with tempfile.TemporaryDirectory() as folder, _without_json_summary(ui):
        code = deploy_mod.run_deploy(
            aws,
            ui,
            bucket=bucket,
            email=EMAIL,
            config_path=noise_free.write_bundled_config_without_noise(Path(folder)),
            params=("FunctionTimeout=30",),  # a hung invocation ends sooner
            dry_run=False,
            run_verify=False,
            verify_timeout=0,
        )
    if code != 0:
        raise click.ClickException(f"deploy failed (exit {code})")
    return stack.stack_outputs(stack.require_stack(aws, STACK_NAME))


@contextlib.contextmanager
def _without_json_summary(ui: UI) -> Iterator[None]:
    """run_deploy prints its own JSON summary in JSON mode: the demo's stdout carries only the demo's."""
    if not ui.json_mode:
        yield
        return
    ui.json = lambda obj: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        del ui.json


def subscribe_queue(aws: Aws, topic_arn: str, name: str) -> str:
    """A local SQS queue subscribed (raw delivery) to `topic_arn`: its URL."""
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    aws.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
        ReturnSubscriptionArn=True,
    )
    return url


# ------------------------------------------------------------------------------------------- wait
def poll(p: Pipeline, seen: Observed, since: timedelta) -> None:
    """Drain both queues once and re-read the table."""
    sqs = p.aws.client("sqs")
    for url, on_body in ((p.alert_queue, _on_alert(seen)), (p.tap_queue, _on_notification(seen))):
        while True:
            messages = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0 if url == p.tap_queue else POLL_WAIT_SECONDS,
            ).get("Messages", [])
            if not messages:
                break
            received = time.time()
            for m in messages:
                on_body(received, m["Body"])
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )
    table = p.outputs["EventsTableName"]
    now = time.time()
    for item in events.query_events(p.aws, table, since=since, rule=None, min_severity=None, limit=100_000):
        seen.items[item["EventId"]] = item
        if item.get("log_key"):
            seen.file_seen.setdefault(item["EventId"], now)


def _on_alert(seen: Observed) -> Callable[[float, str], None]:
    def handle(received: float, body: str) -> None:
        seen.alerts.append((received, json.loads(body)))

    return handle


def _on_notification(seen: Observed) -> Callable[[float, str], None]:
    def handle(received: float, body: str) -> None:
        for record in json.loads(body).get("Records", []):
            key = unquote_plus(record["s3"]["object"]["key"])
            at = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")).timestamp()
            seen.written.setdefault(key, at)

    return handle


def resolve_live_ids(expected: list[Expected], seen: Observed) -> None:
    """Give live steps the eventID of the stored record with their request id."""
    by_request = {}
    for item in seen.items.values():
        request_id = json.loads(item.get("raw") or "{}").get("requestID")
        if request_id:
            by_request[request_id] = item["EventId"]
    for step in expected:
        if step.event_id is None and step.request_id in by_request:
            step.event_id = by_request[step.request_id]


def arrived(expected: list[Expected], seen: Observed) -> int:
    """How many detecting steps have their item and at least one alert."""
    alerted = {i for _, a in seen.alerts for i in a.get("eventIDs", [])}
    return sum(1 for s in expected if s.rule and s.event_id in seen.items and s.event_id in alerted)


def wait(p: Pipeline, ui: UI, expected: list[Expected], timeout: float) -> Observed:
    seen = Observed()
    want = sum(1 for s in expected if s.rule)
    started = time.monotonic()
    last = -1.0
    while True:
        poll(p, seen, timedelta(hours=2))
        resolve_live_ids(expected, seen)
        got = arrived(expected, seen)
        if time.monotonic() - last >= 2 or got == want:
            ui.progress(
                f"{got}/{want} expected detections, {len(seen.alerts)} alerts received", since=started
            )
            last = time.monotonic()
        if (got == want and files_arrived(expected, seen)) or time.monotonic() - started > timeout:
            break
    poll(p, seen, timedelta(hours=2))  # one more drain: a duplicate alert must show
    resolve_live_ids(expected, seen)
    return seen


def files_arrived(expected: list[Expected], seen: Observed) -> bool:
    """Fast path: every detected live step's log file has reached its item too (the side-by-side needs it)."""
    return all(
        s.event_id in seen.file_seen for s in expected if s.rule and s.request_id and s.event_id in seen.items
    )


# ------------------------------------------------------------------------------------------ check
def check(expected: list[Expected], seen: Observed, strict_extras: bool) -> list[str]:
    """Problems: a missing item, a wrong rule, an expected event in no alert or in several, a step without
    a rule that was detected, any event alerted twice; with `strict_extras`, items nobody expected."""
    problems = []
    counts = Counter(i for _, a in seen.alerts for i in a.get("eventIDs", []))
    rule_of_alert = {i: a.get("rule") for _, a in seen.alerts for i in a.get("eventIDs", [])}
    for s in expected:
        item = seen.items.get(s.event_id or "")
        if s.rule is None:
            if item is not None:
                problems.append(
                    f"{s.title}: {s.event_name} detected ({item.get('rule_id')}) but no rule expected"
                )
            continue
        if item is None:
            problems.append(f"{s.title}: {s.event_name} missing from the table")
            continue
        if s.rule not in item.get("rule_ids", []) or item.get("rule_id") != s.rule:
            problems.append(f"{s.title}: primary rule {item.get('rule_id')}, expected {s.rule}")
        if counts[s.event_id] != 1:
            problems.append(f"{s.title}: {s.event_name} in {counts[s.event_id]} alerts, expected exactly 1")
        elif rule_of_alert[s.event_id] != s.rule:
            problems.append(f"{s.title}: alerted under {rule_of_alert[s.event_id]}, expected {s.rule}")
    problems += [f"event {i} alerted {n} times" for i, n in counts.items() if n > 1]
    if strict_extras:
        known = {s.event_id for s in expected}
        problems += [
            f"unexpected detection {i}: {item.get('event_name')} ({item.get('rule_id')})"
            for i, item in seen.items.items()
            if i not in known
        ]
    return sorted(set(problems), key=problems.index)


def _first_alerts(seen: Observed) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each alerted event id -> the first alert naming it, with its receipt time."""
    first: dict[str, tuple[float, dict[str, Any]]] = {}
    for received, alert in seen.alerts:
        for i in alert.get("eventIDs", []):
            first.setdefault(i, (received, alert))
    return first


def latencies(expected: list[Expected], seen: Observed) -> dict[str, list[float]]:
    """Seconds from object written to alert received, and (live) from API call to alert received."""
    first_alert = {event_id: received for event_id, (received, _) in _first_alerts(seen).items()}
    out: dict[str, list[float]] = {"object written -> alert": [], "API call -> alert": []}
    for s in expected:
        if not s.rule or s.event_id not in first_alert:
            continue
        alerted = first_alert[s.event_id]
        key = s.key or str(seen.items.get(s.event_id, {}).get("log_key", ""))
        written = s.at if s.key else seen.written.get(key)
        if written is not None:
            out["object written -> alert"].append(max(0.0, alerted - written))
        if s.request_id:
            out["API call -> alert"].append(max(0.0, alerted - s.at))
    return {k: v for k, v in out.items() if v}


def side_by_side(
    expected: list[Expected], seen: Observed
) -> list[tuple[str, str, str, float | None, float | None]]:
    """Fast path: per detected live step (step, event, path of its alert, API call -> alert through
    EventBridge, API call -> its log file processed). The log file finds the event already alerted and
    sends nothing: its figure is when the file path reached the event (seen by the demo's polling)."""
    first_alert = _first_alerts(seen)
    rows = []
    for s in expected:
        if not (s.rule and s.request_id and s.event_id in first_alert):
            continue
        received, alert = first_alert[s.event_id]
        path = str(alert.get("path") or seen.items.get(s.event_id, {}).get("path") or "s3")
        fast = max(0.0, received - s.at) if path == "eventbridge" else None
        file_at = seen.file_seen.get(s.event_id)
        by_file = max(0.0, file_at - s.at) if file_at is not None else None
        if path != "eventbridge":  # alerted from its file: that alert is the file path's figure
            by_file = max(0.0, received - s.at)
        rows.append((s.title, s.event_name, path, fast, by_file))
    return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


# ------------------------------------------------------------------------------------------ report
def report(ui: UI, expected: list[Expected], seen: Observed, problems: list[str], mode: str) -> None:
    ours = {s.event_id for s in expected}
    items = sorted(seen.items.values(), key=lambda i: (i.get("event_time", ""), i["EventId"]))
    rows = [
        (
            i.get("rule_id"),
            i.get("severity"),
            i.get("event_name"),
            i.get("principal_arn"),
            _step_of(expected, i),
        )
        for i in items
        if i["EventId"] in ours
    ]
    others = [i for i in items if i["EventId"] not in ours]
    lat = latencies(expected, seen)
    paths = side_by_side(expected, seen)
    fast = [row[3] for row in paths if row[3] is not None]
    by_file = [row[4] for row in paths if row[4] is not None]
    if ui.json_mode:
        ui.json(
            {
                "mode": mode,
                "passed": not problems,
                "problems": problems,
                "detections": [
                    dict(zip(("rule", "severity", "event", "principal", "step"), r, strict=True))
                    for r in rows
                ],
                "other_detections": [
                    {"rule": i.get("rule_id"), "event": i.get("event_name")} for i in others
                ],
                "alerts": [
                    {k: a.get(k) for k in ("rule", "severity", "count", "eventIDs")} for _, a in seen.alerts
                ],
                "latency_seconds": {
                    k: {"p50": percentile(v, 50), "p95": percentile(v, 95), "n": len(v)}
                    for k, v in lat.items()
                },
                "paths": [
                    dict(zip(("step", "event", "alerted_by", "eventbridge_s", "log_file_s"), r, strict=True))
                    for r in paths
                ],
            }
        )
    ui.step(f"Detections ({len(rows)} from the story)")
    ui.table(["rule", "severity", "event", "principal", "story step"], rows)
    if others:
        ui.info(f"Also detected: {len(others)} other events (e.g. the demo's own setup calls as root):")
        ui.table(
            ["rule", "event", "principal"],
            [(i.get("rule_id"), i.get("event_name"), i.get("principal_arn")) for i in others],
        )
    ui.step(f"Alerts received ({len(seen.alerts)})")
    ui.table(
        ["rule", "severity", "count", "events"],
        [(a.get("rule"), a.get("severity"), a.get("count"), _names(a)) for _, a in seen.alerts],
    )
    ui.step("Latency")
    for name, values in lat.items():
        ui.info(
            f"  {name}: p50 {percentile(values, 50):.2f}s  p95 {percentile(values, 95):.2f}s"
            f"  (n={len(values)})"
        )
    if paths:
        ui.step("The same events through both paths (API call -> ...)")
        ui.table(
            ["story step", "event", "alerted by", "EventBridge -> alert", "log file processed"],
            [(t, e, p, _seconds(f), _seconds(b)) for t, e, p, f, b in paths],
        )
        for name, values in (("through EventBridge (alert)", fast), ("through the log file", by_file)):
            if values:
                ui.info(f"  {name}: p50 {percentile(values, 50):.2f}s  p95 {percentile(values, 95):.2f}s")
        ui.info(
            f"  (log files here every {LIVE_DELIVERY_INTERVAL:.0f} s; AWS delivers about every 5 minutes)"
        )
    if problems:
        ui.error(f"demo failed: {len(problems)} problem(s)", details=problems)
    else:
        ui.success(
            f"demo passed: all {sum(1 for s in expected if s.rule)} expected detections arrived exactly once"
        )


def _step_of(expected: list[Expected], item: dict[str, Any]) -> str:
    return next((s.title for s in expected if s.event_id == item["EventId"]), "-")


def _names(alert: dict[str, Any]) -> str:
    names = Counter(str(e.get("eventName", "?")) for e in alert.get("events", []) if isinstance(e, dict))
    return ", ".join(f"{n} x{c}" if c > 1 else n for n, c in names.items()) or "-"


# ------------------------------------------------------------------------------------------- main
def run_demo(ui: UI, *, live: bool, timeout: float, files: int = 4, seed: int = 7) -> int:
    mode = "live" if live else "files"
    log = (lambda line: ui.debug(line)) if ui.verbose else (lambda line: None)
    ui.step(f"Starting the local AWS ({mode} mode)")
    # Files mode writes the whole story by hand: no recorder, so nothing but the story reaches the bucket.
    local_aws = LocalAWS(
        port=0, region=DEMO_REGION, cloudtrail=live, delivery_interval=LIVE_DELIVERY_INTERVAL, log=log
    )
    with local_aws as local:
        ui.progress(f"endpoint {local.endpoint}")
        aws = demo_aws(local.endpoint, local.region, ui.verbose)
        outputs = deploy(aws, ui)
        ui.step("Subscribing local queues to the alert and log delivery topics")
        pipeline = Pipeline(
            aws,
            outputs,
            subscribe_queue(aws, outputs["AlertTopicArn"], "trailwatch-demo-alerts"),
            subscribe_queue(aws, outputs["LogDeliveryTopicArn"], "trailwatch-demo-log-objects"),
        )
        if live:
            ui.step("The intrusion, as API calls against the local AWS (recorded by its CloudTrail)")
            expected = write_console_logins(pipeline, ui) + LiveStory(pipeline, ui).run()
        else:
            ui.step("The intrusion, as CloudTrail log files with background traffic")
            expected = run_files_story(pipeline, ui, files, seed)
        ui.step("Waiting for the pipeline")
        seen = wait(pipeline, ui, expected, timeout)
        problems = check(expected, seen, strict_extras=not live)
        report(ui, expected, seen, problems, mode)
    return 1 if problems else 0


@click.command("demo")
@click.option(
    "--live/--files",
    default=True,
    show_default=True,
    help="Perform the intrusion as API calls recorded by the local CloudTrail, or write it as log files.",
)
@click.option("--timeout", default=45.0, show_default=True, help="Seconds to wait for the detections.")
@click.option("--json", "json_mode", is_flag=True, help="Progress on stderr; a JSON result on stdout.")
@click.option("-v", "--verbose", count=True, help="Also show the local AWS's and the function's logs.")
def demo(live: bool, timeout: float, json_mode: bool, verbose: int) -> None:
    """Run the whole pipeline on a local AWS with an intrusion story; exit 0 when every expected
    detection arrived exactly once (no AWS account needed).

    \b
    Example:
      trailwatch demo --files
    """
    ctx = click.get_current_context()
    verbose += getattr(ctx.obj, "verbose", 0) or 0
    raise click.exceptions.Exit(
        run_demo(UI(verbose=verbose, json_mode=json_mode), live=live, timeout=timeout)
    )
