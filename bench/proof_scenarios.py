"""The proof's scenarios: load, faults and bad input through the whole local pipeline.

`python bench/proof.py` is the command line around them; the end-to-end tests import this module
(`from bench import proof_scenarios`) and run a reduced copy of every scenario.

One LocalAWS in this process (recorder off: every object in the trail bucket is one written here), main.yaml
deployed through the normal deploy code with the real processor package, a queue subscribed to the alert
topic, and a `FaultInjector` in the emulator's middleware chain. Each scenario writes log files (or forged
notifications), waits until every expected event is stored and alerted and the processing queue is empty,
then counts:

- events: the monitored events the scenario wrote, from a hand-written expectation table (`CASES`: record
  factory -> primary rule under events.json), never from the processor's matcher;
- stored / alerted: expected events found in the table / in alert messages; lost: expected events not both
  stored and alerted; duplicated: extra alert deliveries of an event; unexpected: stored or alerted events
  of the scenario's files that the expectation does not name;
- latency: object written -> alert received (per alert message).

`summary` makes the last line of a run: `scenarios=<n> lost=<total> duplicated=<total>`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3
from botocore.config import Config as BotoConfig
from trailwatch import cfn_template, synth
from trailwatch.local.faults import FaultInjector, form_field, label_prefix
from trailwatch.local.lambda_runtime import POLL_WAIT_SECONDS
from trailwatch.local.server import LocalAWS
from trailwatch.noise_free import bundled_config_without_noise, write_bundled_config_without_noise
from trailwatch.resources import template_text
from trailwatch.stats import percentile
from trailwatch_processor import records

try:  # imported as bench.proof_scenarios (tests), or from bench/ on sys.path (`python bench/proof.py`)
    from bench import proof_memory
except ImportError:
    import proof_memory  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
STACK = "tw-proof"
BUCKET = "tw-proof-trail-bucket"
ACCOUNT = synth.ACCOUNT
REGION = synth.REGION
CONFIG_KEY = "config/monitored_events.json"
OPERATIONAL_RULE = "trailwatch-operational"

# Retries quick: the function's timeout, the processing queue's visibility timeout (>= the timeout: a
# message never comes back while its invocation runs) and the age at which an alert claim is stale
# (>= the timeout: only a dead invocation's claim is taken over).
FUNCTION_TIMEOUT = 6
VISIBILITY_TIMEOUT = 8
CLAIM_STALE_SECONDS = 7
MAX_RECEIVE_COUNT = 3
# many-matches runs at FunctionTimeout=30 (the template's minimum), with a visibility timeout above it,
# and with the receives a deployed stack gives a file (main.yaml's MaxReceiveCount default), not the proof's.
MANY_MATCHES_TIMEOUT = 30
MANY_MATCHES_VISIBILITY = 36
CONFIG_TTL = 5.0  # the function's config re-check interval, set through CONFIG_TTL_SECONDS (production: 60 s)
# How long a retuned function takes to reach the poller: the Lambda runtime re-reads the configuration at most
# once a second, before each 1 s ReceiveMessage long poll.
RECONFIGURE_WAIT = 2.0

# Primary rules of events.json (hand-written, see tests/e2e/test_pipeline.py for the full table).
NO_MFA = "cis-4.2-console-signin-without-mfa"
AUTH_FAIL = "cis-4.6-console-auth-failures"
ROOT_USE = "cis-4.3-root-account-usage"
TRAIL = "cis-4.5-cloudtrail-config-changes"
KMS = "cis-4.7-cmk-disabled-or-scheduled-deletion"
SG = "cis-4.10-security-group-changes"
VPC = "cis-4.14-vpc-changes"
UNAUTHORIZED = "cis-4.1-unauthorized-api-calls"
CREATE_USER = "CreateUser"


def template_default(parameter: str) -> int:
    """A numeric parameter's default in main.yaml, as a deployed stack gets it."""
    return int(cfn_template.load(template_text())["Parameters"][parameter]["Default"])


def _user() -> dict:
    return synth.iam_user("mallory")


# record factory -> the primary rule events.json gives it
CASES: tuple[tuple[Callable[[], dict], str], ...] = (
    (lambda: synth.make_record("CreateUser", identity=_user()), CREATE_USER),
    (lambda: synth.console_login("bob", mfa=False), NO_MFA),
    (lambda: synth.console_login("bob", success=False), AUTH_FAIL),
    (lambda: synth.make_record("AttachUserPolicy", identity=synth.root()), ROOT_USE),
    (lambda: synth.make_record("StopLogging", identity=_user()), TRAIL),
    (lambda: synth.make_record("ScheduleKeyDeletion", identity=_user()), KMS),
    (lambda: synth.make_record("AuthorizeSecurityGroupIngress", identity=_user()), SG),
    (lambda: synth.make_record("CreateVpc", identity=_user()), VPC),
    (lambda: synth.make_record("GetSecretValue", identity=_user(), error_code="AccessDenied"), UNAUTHORIZED),
)
QUIET_NAMES = {name for name, _ in synth.BACKGROUND_MIX}


def monitored(n: int, rng: random.Random) -> list[tuple[dict, str]]:
    """`n` fresh monitored records (unique eventIDs) with their expected primary rule."""
    out = []
    for _ in range(n):
        factory, primary = rng.choice(CASES)
        out.append((factory(), primary))
    return out


def background(n: int, rng: random.Random) -> list[dict]:
    """Records events.json does not monitor (checked here, so a change in synth cannot slip by)."""
    records = synth.background_records(n, rng, monitored_fraction=0.0)
    for r in records:
        if r["eventName"] not in QUIET_NAMES or r["userIdentity"].get("type") == "Root":
            raise AssertionError(f"background record is not quiet: {r['eventName']}")
        if r.get("errorCode") not in (None, "NoSuchKey"):
            raise AssertionError(f"background record has error {r['errorCode']}")
    return records


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def s3_notification(bucket: str, key: str, size: int = 0) -> str:
    """The body S3 -> SNS (raw delivery) -> SQS gives the function for one created object."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": datetime.now(UTC).isoformat(),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": size}},
    }
    return json.dumps({"Records": [record]})


@dataclass(frozen=True)
class Timing:
    """The retry clock of the scenarios. The defaults are the proof's (module constants above); the reduced
    run of tests/e2e/test_proof.py shortens what no scenario depends on. Invariants: visibility timeouts >=
    the function timeout (a message never comes back while its invocation runs), claim staleness > the
    timeout (only a dead invocation's claim is taken over)."""

    function_timeout: int = FUNCTION_TIMEOUT
    visibility_timeout: int = VISIBILITY_TIMEOUT
    claim_stale_seconds: int = CLAIM_STALE_SECONDS
    config_ttl: float = CONFIG_TTL
    # dynamodb-throttling: throttled calls back off ~1, 2, 4, 8 s (botocore standard mode) inside the
    # function; its timeout must let one invocation fail and the retry succeed. None: the values above.
    throttling_timeout: int | None = None
    throttling_visibility: int | None = None
    # object-deleted and bad-input, whose failing invocations end at once: the visibility timeout while they
    # wait out MaxReceiveCount receives (queue attribute only, the function is not retuned). None: the above.
    dlq_visibility: int | None = None

    def __post_init__(self) -> None:
        pairs = ((self.function_timeout, self.visibility_timeout), self.throttling, self.dlq)
        if any(visibility < timeout for timeout, visibility in pairs):
            raise ValueError(f"{self}: a visibility timeout below its function timeout")
        if self.claim_stale_seconds <= self.function_timeout:
            raise ValueError(f"{self}: claim staleness not above the function timeout")

    @property
    def throttling(self) -> tuple[int, int]:
        """(function timeout, visibility timeout) of the dynamodb-throttling scenario."""
        return (
            self.throttling_timeout or self.function_timeout,
            self.throttling_visibility or self.visibility_timeout,
        )

    @property
    def dlq(self) -> tuple[int, int]:
        """(function timeout, visibility timeout) of the scenarios that wait for the DLQ."""
        return self.function_timeout, self.dlq_visibility or self.visibility_timeout


# ------------------------------------------------------------------------------------------ results


@dataclass
class Row:
    scenario: str
    files: int = 0
    records: int = 0
    events: int = 0
    stored: int = 0
    alerted: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    dlq: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.failures)

    def percentile(self, p: int) -> float | None:
        return percentile(self.latencies, p) if self.latencies else None


@dataclass
class Outcome:
    """What an input of the bad-input scenario did (documented behaviour vs observed)."""

    name: str
    documented: str
    observed: str = ""

    @property
    def ok(self) -> bool:
        return self.observed == self.documented


# ------------------------------------------------------------------------------------------ harness


class Harness:
    """The local AWS with the deployed stack, and everything that came out of it."""

    def __init__(self, log: Callable[[str], None] | None = None, timing: Timing | None = None) -> None:
        self.timing = timing or Timing()
        self.logs: list[str] = []
        self._echo = log

        def keep(message: str) -> None:
            self.logs.append(message)
            if self._echo is not None:
                self._echo(message)

        self.faults = FaultInjector()
        self.aws = LocalAWS(port=0, cloudtrail=False, log=keep)
        self.aws.middlewares.append(self.faults.wrap)
        self.aws.start()
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=self.aws.region
        )
        config = BotoConfig(retries={"mode": "standard", "total_max_attempts": 3}, max_pool_connections=20)
        self._clients = {
            name: session.client(name, endpoint_url=self.aws.endpoint, config=config)
            for name in ("s3", "sqs", "sns", "dynamodb", "lambda", "cloudwatch")
        }
        self.outputs = self._deploy()
        self.alert_queue = self._subscribe()
        self.written: dict[str, float] = {}
        self.alerts: list[tuple[float, dict]] = []
        self.dlq: list[str] = []
        self.items: dict[str, dict] = {}
        self.outcomes: list[Outcome] = []
        self._writes_from = 0.0  # monotonic time before which no file is written (see `_hold_writes`)
        self.retune()

    def client(self, name: str) -> Any:
        return self._clients[name]

    def close(self) -> None:
        self.aws.stop()

    def _deploy(self) -> dict[str, str]:
        from trailwatch import deploy as deploy_mod
        from trailwatch import stack
        from trailwatch.session import Aws, Options
        from trailwatch.ui import UI

        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        options = Options(region=REGION, endpoint_url=self.aws.endpoint, stack_name=STACK, verbose=0)
        aws = Aws(options, _session=session)
        # The pack without its noise control (trailwatch.noise_free): each expected event alerts at once.
        with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
            code = deploy_mod.run_deploy(
                aws,
                UI(verbose=0),
                bucket=BUCKET,
                email="proof@example.com",
                config_path=write_bundled_config_without_noise(Path(folder)),
                params=("FunctionTimeout=30", f"MaxReceiveCount={MAX_RECEIVE_COUNT}"),
                dry_run=False,
                run_verify=False,
                verify_timeout=0,
            )
        if code != 0:
            raise RuntimeError(f"deploy failed (exit {code})")
        return stack.stack_outputs(stack.require_stack(aws, STACK))

    def _subscribe(self) -> str:
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName="tw-proof-alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.client("sns").subscribe(
            TopicArn=self.outputs["AlertTopicArn"],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        return url

    def retune(self, generation: str = "0") -> None:
        """Back to the timing's function timeout and visibility timeout, and the proof's receives."""
        self.tune(self.timing.function_timeout, self.timing.visibility_timeout, generation, MAX_RECEIVE_COUNT)

    def tune(self, timeout: int, visibility: int, generation: str = "0", receives: int | None = None) -> None:
        """Function timeout and claim staleness, queue visibility, and (`receives`) the processing queue's
        maxReceiveCount with the function's MAX_RECEIVE_COUNT, which the template sets from the same
        parameter. The template only allows >= 30 s; the emulator's Lambda runtime re-reads the function
        configuration (a new worker on change)."""
        lam = self.client("lambda")
        name = self.outputs["ProcessorFunctionName"]
        env = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        stale = max(self.timing.claim_stale_seconds, timeout + 1)
        env |= {
            "CLAIM_STALE_SECONDS": str(stale),
            "CONFIG_TTL_SECONDS": str(self.timing.config_ttl),
            "PROOF_GENERATION": generation,
        }
        if receives is not None:
            env["MAX_RECEIVE_COUNT"] = str(receives)
            self.set_receives(receives)
        lam.update_function_configuration(FunctionName=name, Timeout=timeout, Environment={"Variables": env})
        self.set_visibility(visibility, wait=False)
        # The runtime re-reads the function configuration at most once a second: a file written sooner would
        # still meet the old worker (and its cached config).
        self._hold_writes(RECONFIGURE_WAIT)

    def set_receives(self, receives: int) -> None:
        """The processing queue's maxReceiveCount (its redrive policy, same dead-letter queue)."""
        sqs, url = self.client("sqs"), self.outputs["LogQueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        policy = json.loads(attributes["RedrivePolicy"]) | {"maxReceiveCount": receives}
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(policy)})

    def set_visibility(self, seconds: int, *, wait: bool = True) -> None:
        """The processing queue's visibility timeout. SQS applies it from the next ReceiveMessage: with
        `wait`, no file is written before the runtime's current long poll has ended."""
        self.client("sqs").set_queue_attributes(
            QueueUrl=self.outputs["LogQueueUrl"], Attributes={"VisibilityTimeout": str(seconds)}
        )
        if wait:
            self._hold_writes(POLL_WAIT_SECONDS + 0.25)

    def _hold_writes(self, seconds: float) -> None:
        """No file or message is written for `seconds`. The wait happens in `put`/`send`, so back-to-back
        retunes wait once and a scenario builds its files meanwhile."""
        self._writes_from = max(self._writes_from, time.monotonic() + seconds)

    def await_writes(self) -> None:
        """Until files may be written again (`put` and `send` call it)."""
        delay = self._writes_from - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    # -------------------------------------------------------------- input

    def put(self, key: str, body: bytes) -> None:
        self.await_writes()
        self.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
        self.written[key] = time.time()

    def send(self, body: str) -> None:
        """A message straight onto the processing queue (forged or duplicated notifications)."""
        self.await_writes()
        self.client("sqs").send_message(QueueUrl=self.outputs["LogQueueUrl"], MessageBody=body)

    # -------------------------------------------------------------- output

    def drain(self, wait: int = 1) -> None:
        sqs = self.client("sqs")
        while True:
            got = sqs.receive_message(
                QueueUrl=self.alert_queue, MaxNumberOfMessages=10, WaitTimeSeconds=wait
            ).get("Messages", [])
            now = time.time()
            for m in got:
                self.alerts.append((now, json.loads(m["Body"])))
            if got:
                sqs.delete_message_batch(
                    QueueUrl=self.alert_queue,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
                )
            if len(got) < 10:
                break
            wait = 0
        while got := sqs.receive_message(
            QueueUrl=self.outputs["DeadLetterQueueUrl"], MaxNumberOfMessages=10
        ).get("Messages", []):
            for m in got:
                self.dlq.append(m["Body"])
                sqs.delete_message(
                    QueueUrl=self.outputs["DeadLetterQueueUrl"], ReceiptHandle=m["ReceiptHandle"]
                )

    def scan(self) -> None:
        table = self.outputs["EventsTableName"]
        for page in self.client("dynamodb").get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                self.items[item["EventId"]["S"]] = item

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=url or self.outputs["LogQueueUrl"], AttributeNames=["All"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def dlq_refs(self) -> list[tuple[str, str]]:
        refs = []
        for body in self.dlq:
            try:
                records = json.loads(body).get("Records") or []
                refs += [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in records]
            except (ValueError, AttributeError, KeyError, TypeError):
                refs.append(("", body[:80]))
        return refs

    def alerted_ids(self, keys: set[str] | None = None) -> Counter[str]:
        return Counter(
            i
            for _, a in self.alerts
            if keys is None or a.get("log_key") in keys
            for i in a.get("eventIDs", [])
        )

    def settle(
        self, expected: set[str], dlq_keys: set[str], timeout: float, what: str, quiet: float = 2.0
    ) -> None:
        """Until every expected event is stored and alerted, the expected DLQ keys arrived and the
        processing queue is empty; then a quiet period so that a late duplicate shows."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            alerted = set(self.alerted_ids())
            dlq = {k for _, k in self.dlq_refs()}
            if expected <= alerted and dlq_keys <= dlq and self.queue_depth() == 0:
                self.scan()
                if expected <= set(self.items):
                    break
            if time.monotonic() > deadline:
                self.scan()
                missing = len(expected - alerted), len(expected - set(self.items)), sorted(dlq_keys - dlq)
                raise TimeoutError(
                    f"{what}: not settled after {timeout:.0f} s (unalerted, unstored, dlq): {missing}"
                )
        end = time.monotonic() + quiet
        while time.monotonic() < end:
            self.drain()
        self.scan()

    def count(
        self,
        row: Row,
        expected: dict[str, str],
        keys: set[str],
        dlq_keys: set[str],
        *,
        optional: set[str] | frozenset[str] = frozenset(),
        by_state: bool = False,
    ) -> Row:
        """Fill `row` from what arrived for the scenario's files. `optional`: events that may be stored and
        alerted or not (odd records a processor may report instead), never counted as unexpected.
        `by_state`: an event counts as alerted when its item is `sent` and an alert of its rule for its file
        arrived (files with more matches than one alert lists)."""
        alerted = self.alerted_ids(keys)
        if by_state:
            for e in _sent_by_state(self, expected):
                alerted[e] = max(alerted[e], 1)
        primary_of_alert = {
            i: a["rule"] for _, a in self.alerts if a.get("log_key") in keys for i in a["eventIDs"]
        }
        row.events = len(expected)
        row.stored = sum(1 for e in expected if e in self.items)
        row.alerted = sum(1 for e in expected if alerted[e] >= 1)
        row.lost = sum(1 for e in expected if e not in self.items or alerted[e] == 0)
        row.duplicated = sum(max(0, alerted[e] - 1) for e in expected)
        scenario_items = {e for e, it in self.items.items() if it.get("log_key", {}).get("S") in keys}
        row.unexpected = len((scenario_items | set(alerted)) - set(expected) - set(optional))
        wrong_rule = [
            e for e, rule in expected.items() if e in primary_of_alert and primary_of_alert[e] != rule
        ]
        if wrong_rule:
            row.failures.append(f"{len(wrong_rule)} event(s) alerted under another rule than expected")
        unsent = [e for e in expected if self.items.get(e, {}).get("alert_status", {}).get("S") != "sent"]
        if unsent:
            row.failures.append(f"{len(unsent)} stored event(s) not marked sent")
        dlq_seen = Counter(k for _, k in self.dlq_refs())
        row.dlq = sum(dlq_seen[k] for k in dlq_keys)
        stray = [k for k in keys - dlq_keys if dlq_seen[k]]
        if stray:
            row.failures.append(f"{len(stray)} good file(s) in the DLQ")
        for when, alert in self.alerts:
            key = alert.get("log_key")
            if key in keys and key in self.written and alert.get("eventIDs"):
                row.latencies.append(when - self.written[key])
        return row


# ------------------------------------------------------------------------------------------ scenarios


def _log_file(
    h: Harness, rng: random.Random, n_background: int, n_monitored: int, tag: str
) -> tuple[str, dict]:
    records: list[dict] = background(n_background, rng)
    expected = {}
    for record, primary in monitored(n_monitored, rng):
        records.insert(rng.randrange(len(records) + 1), record)
        expected[record["eventID"]] = primary
    key = synth.log_key(ACCOUNT, REGION, unique=f"{tag}{rng.randrange(16**8):08X}")
    h.put(key, gz(synth.log_json(records)))
    return key, expected


def scenario_load(h: Harness, scale: float = 1.0) -> Row:
    """500 files x ~2,000 records (x scale), written as fast as possible from 4 threads."""
    files = max(2, round(500 * scale))
    per_file = max(50, round(2000 * scale))
    rng = random.Random(7)
    base = background(per_file, rng)
    base_json = [json.dumps(r, separators=(",", ":")) for r in base]
    bodies: list[tuple[str, bytes, dict[str, str]]] = []
    for i in range(files):
        parts = list(base_json)
        expected = {}
        for record, primary in monitored(4, rng):
            parts.insert(rng.randrange(len(parts) + 1), json.dumps(record, separators=(",", ":")))
            expected[record["eventID"]] = primary
        body = gz(('{"Records":[' + ",".join(parts) + "]}").encode())
        bodies.append((synth.log_key(ACCOUNT, REGION, unique=f"LOAD{i:05d}"), body, expected))
    h.tune(30, 36, generation="load")
    h.await_writes()  # not part of the measured time
    started, wall_started = time.monotonic(), time.time()
    chunks = [bodies[i::4] for i in range(4)]
    threads = [threading.Thread(target=lambda c=c: [h.put(k, b) for k, b, _ in c]) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    written = time.monotonic() - started
    expected = {e: p for _, _, exp in bodies for e, p in exp.items()}
    keys = {k for k, _, _ in bodies}
    h.settle(set(expected), set(), timeout=120 + files * 2.0, what="load", quiet=3.0)
    row = Row("load", files=files, records=files * (per_file + 4))
    h.count(row, expected, keys, set())
    last_alert = max((t for t, a in h.alerts if a.get("log_key") in keys), default=time.time())
    row.seconds = last_alert - wall_started
    row.notes.append(
        f"{files / row.seconds:.1f} files/s, {row.records / row.seconds:,.0f} records/s "
        f"(written in {written:.1f} s)"
    )
    h.retune(generation="faults")
    return row


def _fault_scenario(
    h: Harness, name: str, add_fault: Callable[[set[str]], Any], *, files: int = 3, timeout: float = 90.0
) -> Row:
    """Write `files` log files while a fault is active; everything must end stored once, alerted once."""
    rng = random.Random(name)
    tag = "".join(c for c in name.upper() if c.isalnum())[:10]
    started = time.monotonic()
    keys_expected = []
    prefix_keys: set[str] = set()
    fault = add_fault(prefix_keys)
    for _ in range(files):
        key, expected = _log_file(h, rng, 200, 5, tag)
        keys_expected.append((key, expected))
        prefix_keys.add(key)
    expected = {e: p for _, exp in keys_expected for e, p in exp.items()}
    keys = {k for k, _ in keys_expected}
    h.settle(set(expected), set(), timeout=timeout, what=name)
    row = Row(name, files=files, records=files * 205, seconds=time.monotonic() - started)
    h.count(row, expected, keys, set())
    row.notes.append(f"fault answered {fault.hits} request(s)")
    if fault.hits == 0:
        row.failures.append("the fault never fired")
    h.faults.clear()
    return row


def scenario_dynamodb_throttling(h: Harness, scale: float = 1.0) -> Row:
    timing = h.timing
    retuned = timing.throttling != (timing.function_timeout, timing.visibility_timeout)
    if retuned:
        h.tune(*timing.throttling, generation="throttling")
    try:
        return _fault_scenario(
            h,
            "dynamodb-throttling",
            # The events are written 100 per TransactWriteItems (only the events table takes transactions;
            # its TableName is inside each action, so no predicate).
            lambda keys: h.faults.add(
                "dynamodb",
                "TransactWriteItems",
                "ProvisionedThroughputExceededException",
                times=8,  # more than the function's 5 attempts: one invocation fails, the retry succeeds
            ),
        )
    finally:
        if retuned:
            h.retune(generation="after-throttling")


def scenario_sns_failures(h: Harness, scale: float = 1.0) -> Row:
    topic = h.outputs["AlertTopicArn"]
    return _fault_scenario(
        h,
        "sns-publish-failures",
        lambda keys: h.faults.add(
            "sns", "Publish", "InternalError", times=8, predicate=form_field("TopicArn", topic)
        ),
    )


def scenario_s3_get_failures(h: Harness, scale: float = 1.0) -> Row:
    return _fault_scenario(
        h,
        "s3-getobject-failures",
        lambda keys: h.faults.add(
            "s3", "GetObject", "SlowDown", times=None, duration=4.0, predicate=label_prefix("Key", "AWSLogs/")
        ),
    )


def scenario_crash_before_alert(h: Harness, scale: float = 1.0) -> Row:
    """The first Publish is held longer than the function timeout: the runtime kills the worker after
    the events were stored and claimed, before SNS accepted anything. The retry takes the stale claims."""
    topic = h.outputs["AlertTopicArn"]
    logs_before = len(h.logs)
    row = _fault_scenario(
        h,
        "crash-after-store",
        lambda keys: h.faults.add(
            "sns",
            "Publish",
            "InternalError",
            times=1,
            delay=h.timing.function_timeout + 2.0,
            predicate=form_field("TopicArn", topic),
        ),
        files=2,
        timeout=120.0,
    )
    killed = sum(1 for line in h.logs[logs_before:] if "Error: Task timed out" in line)
    row.notes.append(f"invocations killed by the timeout: {killed}")
    if killed == 0:
        row.failures.append("the function was never killed: no crash happened")
    return row


@contextlib.contextmanager
def _dlq_visibility(h: Harness) -> Iterator[None]:
    """The timing's DLQ visibility timeout for the duration of a scenario that waits for the DLQ."""
    seconds = h.timing.dlq[1]
    if seconds == h.timing.visibility_timeout:
        yield
        return
    # Shorter: a long poll already running may still take the longer one, which only slows its message.
    h.set_visibility(seconds, wait=False)
    try:
        yield
    finally:
        h.set_visibility(h.timing.visibility_timeout)  # longer: the next scenario must not get the short one


def scenario_object_deleted(h: Harness, scale: float = 1.0) -> Row:
    """A log file deleted before the function reads it: its notification names its version, which is still
    read (its events stored and alerted), and the delete is one operational tamper alert; a file written
    beside it is processed normally. The first GetObject is held 1.5 s so the delete comes first."""
    with _dlq_visibility(h):
        return _object_deleted(h)


def _object_deleted(h: Harness) -> Row:
    def delete(target: str, rng: random.Random) -> None:
        h.client("s3").delete_object(Bucket=BUCKET, Key=target)

    return _replaced_before_read(h, "deleted", delete, unique="DELETED0001", files=2, records=108)


def scenario_object_overwritten(h: Harness, scale: float = 1.0) -> Row:
    """A log file overwritten with a benign one before the function reads it: each
    notification names its version, so the first version's events are stored and alerted, and the
    overwrite is one operational tamper alert. The first GetObject is held 1.5 s so the overwrite comes
    first."""
    with _dlq_visibility(h):
        return _object_overwritten(h)


def _object_overwritten(h: Harness) -> Row:
    def overwrite(target: str, rng: random.Random) -> None:
        h.put(target, gz(synth.log_json(background(5, rng))))

    return _replaced_before_read(h, "overwritten", overwrite, unique="OVERWRITTEN1", files=3, records=113)


def _replaced_before_read(
    h: Harness,
    what: str,
    replace: Callable[[str, random.Random], None],
    *,
    unique: str,
    files: int,
    records: int,
) -> Row:
    """A log file with 3 monitored records, ``replace``d (deleted or overwritten) while its first GetObject
    is held, and a file of 100 records beside it: both stored and alerted once, one tamper alert."""
    rng = random.Random(what)
    started = time.monotonic()
    target = synth.log_key(ACCOUNT, REGION, unique=unique)
    h.faults.add(
        "s3", "GetObject", "InternalError", times=1, delay=1.5, predicate=label_prefix("Key", target)
    )
    pairs = monitored(3, rng)
    h.put(target, gz(synth.log_json([r for r, _ in pairs])))
    replace(target, rng)
    key, expected = _log_file(h, rng, 100, 5, "BESIDE")
    expected |= {r["eventID"]: primary for r, primary in pairs}  # read by the notified version
    h.settle(set(expected), set(), timeout=90, what=f"object-{what}")
    row = Row(f"object-{what}", files=files, records=records, seconds=time.monotonic() - started)
    h.count(row, expected, {key, target}, set())
    source = f"s3://{BUCKET}/{target}"
    tamper = [a for _, a in h.alerts if a.get("rule") == OPERATIONAL_RULE and a.get("source") == source]
    row.notes.append(
        "deleted file: read by its notified version; the delete is one tamper alert"
        if what == "deleted"
        else "overwritten file: both versions read; the overwrite is one tamper alert"
    )
    if len(tamper) != 1:
        row.failures.append(f"expected one tamper alert for the {what} file, got {len(tamper)}")
    h.faults.clear()
    return row


INVALID_CONFIG = b'{"rules": [{"id": "broken", "pattern": {"eventName": [{"prefx": "Create"}]}}]}'
CANARY_RULE = "proof-canary"


def proof_config() -> bytes:
    """events.json plus a canary rule only this config has: alerts under it prove this config is in use."""
    doc = json.loads(bundled_config_without_noise())
    rules = doc.setdefault("rules", [])
    rules.append(
        {
            "id": CANARY_RULE,
            "title": "proof canary",
            "severity": "low",
            "pattern": {"eventName": ["ProofCanary"]},
        }
    )
    return json.dumps(doc).encode()


def scenario_config_replaced(h: Harness, scale: float = 1.0) -> Row:
    """Config replaced by an invalid one mid-run: the function keeps the previous config (the canary rule
    still alerts) and publishes one operational alert. Waits for the function's config TTL
    (CONFIG_TTL_SECONDS, 5 s here; 60 s in production)."""
    rng = random.Random("config")
    started = time.monotonic()
    s3 = h.client("s3")
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=proof_config())
    h.retune(generation="config")  # a new container reads it now
    canary = lambda: synth.make_record("ProofCanary", identity=_user())  # noqa: E731
    keys, expected = set(), {}
    before = [canary() for _ in range(2)]
    key = synth.log_key(ACCOUNT, REGION, unique="CONFIG0001")
    h.put(key, gz(synth.log_json(before + background(50, rng))))
    keys.add(key)
    expected |= {r["eventID"]: CANARY_RULE for r in before}
    h.settle(set(expected), set(), timeout=60, what="config (before)")
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=INVALID_CONFIG)
    operational_before = _operational(h)
    time.sleep(h.timing.config_ttl + 1)  # the function re-checks the config at most once per TTL
    for i in range(2):
        pairs = monitored(3, rng)
        after = [canary(), *[r for r, _ in pairs]]
        key = synth.log_key(ACCOUNT, REGION, unique=f"CONFIG{i + 2:04d}")
        h.put(key, gz(synth.log_json(after)))
        keys.add(key)
        expected[after[0]["eventID"]] = CANARY_RULE
        expected |= {r["eventID"]: primary for r, primary in pairs}
    h.settle(set(expected), set(), timeout=60, what="config (after)")
    row = Row("config-replaced", files=len(keys), records=56, seconds=time.monotonic() - started)
    h.count(row, expected, keys, set())
    ops = _operational(h) - operational_before
    row.notes.append(f"operational alerts: {ops}")
    if ops != 1:
        row.failures.append(f"expected one operational alert for the invalid config, got {ops}")
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=bundled_config_without_noise())
    h.retune(generation="after-config")
    return row


def _operational(h: Harness) -> int:
    h.drain(wait=0)
    return sum(1 for _, a in h.alerts if a.get("rule") == OPERATIONAL_RULE)


@dataclass
class BadInput:
    """One bad input: how it reaches the function, what it should do, the events it carries."""

    name: str
    documented: str
    key: str | None = None
    body: bytes | None = None
    messages: tuple[str, ...] = ()
    expected: dict[str, str] = field(default_factory=dict)
    bucket: str = BUCKET


def _recovered_id(record: dict, cut: str) -> str:
    """The EventId of a record the reader isolates at member ``cut`` (over 1 MiB or too deep):
    only the members before it are recovered; CloudTrail's eventID comes later, so a content hash."""
    names = list(record)
    return records.event_id({name: record[name] for name in names[: names.index(cut)]})


def _deep_log(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """A monitored record, then one whose requestParameters nest 100,000 arrays deep. The deep one is
    isolated: stored from the members before ``deep`` (no eventID among them: a content-hash
    id), alerted, and reported in an operational alert; the file is processed."""
    (first, primary), (second, second_primary) = monitored(2, rng)
    text = json.dumps({"Records": [first, second]}, separators=(",", ":"))
    at = text.rindex('"requestParameters":')
    text = text[:at] + '"deep":' + "[" * 100_000 + "]" * 100_000 + "," + text[at:]
    return gz(text.encode()), {
        first["eventID"]: primary,
        _recovered_id(second, "requestParameters"): second_primary,
    }


def bad_inputs(rng: random.Random) -> list[BadInput]:
    def key(tag: str) -> str:
        return synth.log_key(ACCOUNT, REGION, unique=f"BAD{tag}{rng.randrange(16**6):06X}")

    def one(factory_index: int = 0, **overrides: Any) -> tuple[dict, str]:
        factory, primary = CASES[factory_index]
        return factory() | overrides, primary

    def processed(
        name: str, tag: str, record: dict, primary: str, body: bytes | None = None, event_id: str = ""
    ) -> BadInput:
        """A file the function processes, storing ``record`` (as ``event_id``, default its eventID)."""
        body = gz(synth.log_json([record])) if body is None else body
        return BadInput(name, "processed", key(tag), body, expected={event_id or record["eventID"]: primary})

    quiet = gz(synth.log_json(background(300, rng)))
    not_objects, p1 = one()
    not_objects_body = json.dumps({"Records": [1, "x", None, [], not_objects]}).encode()
    big, p2 = one()
    big["requestParameters"] = {"userName": "big", "blob": "A" * 10_000_000}
    uni, p3 = one()
    uni["requestParameters"] = {"userName": 'Ünïcødé "quoted" \\ back\u2028sep \U0001f600', "tab": "\t\x00"}
    spaced, p4 = one(4)
    deep_body, deep_expected = _deep_log(rng)
    dup_rec, p5 = one(1)
    dup_key = key("DUP")
    missing = key("MISSING")
    return [
        BadInput("not gzip (plain bytes)", "dlq", key("NOTGZ"), b"this is neither gzip nor JSON\n"),
        BadInput("truncated gzip", "dlq", key("TRUNC"), quiet[: len(quiet) // 2]),
        BadInput("gzip of non-JSON", "dlq", key("NONJSON"), gz(b"hello, world")),
        BadInput("JSON without Records", "dlq", key("NOREC"), gz(b'{"foo": []}')),
        BadInput("Records not a list", "dlq", key("NOTLIST"), gz(b'{"Records": {"a": 1}}')),
        processed("records that are not objects", "NOTOBJ", not_objects, p1, body=gz(not_objects_body)),
        processed("a 10 MB record", "BIG", big, p2, event_id=_recovered_id(big, "requestParameters")),
        BadInput("JSON nested 100,000 deep", "processed", key("DEEP"), deep_body, expected=deep_expected),
        processed("unicode and escapes", "UNI", uni, p3),
        processed("key with spaces, + and unicode", "SP ÄCE+plus é", spaced, p4),
        BadInput("zero-byte object", "dlq", key("ZERO"), b""),
        BadInput("digest file", "skipped", synth.digest_key(ACCOUNT, REGION), synth.digest_body()),
        BadInput(
            "notification naming the config object",
            "skipped",
            CONFIG_KEY,
            None,
            messages=(s3_notification(BUCKET, CONFIG_KEY),),
        ),
        BadInput(
            "s3:TestEvent",
            "acknowledged",
            messages=(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}),),
        ),
        BadInput(
            "duplicate messages (3 extra copies)",
            "processed",
            dup_key,
            gz(synth.log_json([dup_rec])),
            messages=(s3_notification(BUCKET, dup_key),) * 3,
            expected={dup_rec["eventID"]: p5},
        ),
        BadInput(
            "message naming a missing key",
            "dlq",
            missing,
            None,
            messages=(s3_notification(BUCKET, missing),),
        ),
        BadInput(
            "message naming a missing bucket",
            "dlq",
            synth.log_key(ACCOUNT, REGION, unique="BADNOBUCKET"),
            None,
            messages=(
                s3_notification(
                    "tw-proof-no-such-bucket", synth.log_key(ACCOUNT, REGION, unique="BADNOBUCKET")
                ),
            ),
            bucket="tw-proof-no-such-bucket",
        ),
    ]


def scenario_bad_input(h: Harness, scale: float = 1.0) -> Row:
    """Every bad input at once, beside a good file: each does what docs/proof.md says, nothing else lost."""
    with _dlq_visibility(h):
        return _bad_input(h)


def _bad_input(h: Harness) -> Row:
    rng = random.Random("bad")
    started = time.monotonic()
    inputs = bad_inputs(rng)
    good_key, good_expected = _log_file(h, rng, 300, 5, "GOODBESIDE")
    for case in inputs:
        if case.body is not None and case.key is not None:
            h.put(case.key, case.body)
        for message in case.messages:
            h.send(message)
    expected = dict(good_expected)
    for case in inputs:
        expected |= case.expected
    dlq_keys = {c.key for c in inputs if c.documented.endswith("dlq") and c.key}
    h.settle(set(expected), dlq_keys, timeout=120, what="bad input", quiet=3.0)
    keys = {good_key} | {c.key for c in inputs if c.key}
    row = Row("bad-input", files=len(inputs) + 1, seconds=time.monotonic() - started)
    h.count(row, expected, keys, dlq_keys)
    dlq = Counter(k for _, k in h.dlq_refs())
    alerted = h.alerted_ids()
    for case in inputs:
        observed = _observed(case, dlq, alerted, h)
        h.outcomes.append(Outcome(case.name, case.documented, observed))
        if observed != case.documented:
            row.failures.append(f"{case.name}: documented {case.documented!r}, observed {observed!r}")
    test_events = [b for b in h.dlq if "s3:TestEvent" in b]
    if test_events:
        row.failures.append("s3:TestEvent reached the DLQ")
    big = next(e for c in inputs if c.name == "a 10 MB record" for e in c.expected)
    if not h.items.get(big, {}).get("raw_truncated", {}).get("BOOL"):
        row.failures.append("the 10 MB record's item is not marked raw_truncated")
    row.notes.append(f"{sum(1 for o in h.outcomes if o.ok)}/{len(inputs)} inputs as documented")
    return row


def _observed(case: BadInput, dlq: Counter[str], alerted: Counter[str], h: Harness) -> str:
    if case.key is None:
        return "acknowledged"
    stored = [e for e, it in h.items.items() if it.get("log_key", {}).get("S") == case.key]
    events_ok = bool(case.expected) and all(e in h.items and alerted[e] >= 1 for e in case.expected)
    if dlq[case.key]:
        return "stored, then dlq" if events_ok else ("dlq" if not stored else "dlq with stray items")
    if events_ok:
        return "processed"
    return "skipped" if not stored else "stored without expectation"


def dlq_alarm_report(h: Harness) -> str:
    """The stack's alarms as the local AWS evaluated them (trailwatch.local.alarms), and the DLQ depth we
    measured. The processing queue's age alarm must not be in ALARM: the proof never leaves a message
    waiting for its threshold."""
    alarms = h.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{STACK}-")["MetricAlarms"]
    states = ", ".join(f"{a['AlarmName']}={a['StateValue']}" for a in alarms) or "no alarm found"
    return f"DLQ messages received: {len(h.dlq)}; alarm states: {states}"


# ------------------------------------------------------------------------------------------ hostile input
# Hostile input: an attacker who shapes log files (denied calls, long fields) or can write the config must not
# blind the monitor. Each scenario writes such input and expects what the processor must do.


def _mapping(h: Harness) -> str:
    mappings = h.client("lambda").list_event_source_mappings(FunctionName=h.outputs["ProcessorFunctionName"])[
        "EventSourceMappings"
    ]
    (mapping,) = [m for m in mappings if m["EventSourceArn"] == h.outputs["LogQueueArn"]]
    return mapping["UUID"]


@contextlib.contextmanager
def _mapping_paused(h: Harness, messages: int, timeout: float = 30.0) -> Iterator[None]:
    """The event source mapping disabled while the body writes; re-enabled once `messages` messages wait
    in the queue, so the poller takes them together (one batch of up to 10, as the Lambda service does
    with a full queue)."""
    lam, mapping = h.client("lambda"), _mapping(h)
    lam.update_event_source_mapping(UUID=mapping, Enabled=False)
    h._hold_writes(RECONFIGURE_WAIT + POLL_WAIT_SECONDS + 0.5)  # the runtime stops the poller
    try:
        yield
        deadline = time.monotonic() + timeout
        while h.queue_depth() < messages and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        lam.update_event_source_mapping(UUID=mapping, Enabled=True)


def _operational_alerts(h: Harness, since: int) -> list[dict]:
    h.drain(wait=0)
    ops = [a for _, a in h.alerts if a.get("rule") == OPERATIONAL_RULE]
    return ops[since:]


def _operational_count(h: Harness) -> int:
    return len(_operational_alerts(h, 0))


def _names(alert: dict, key: str) -> bool:
    text = " ".join(str(alert.get(f, "")) for f in ("title", "description", "log_key", "source"))
    return key in text or key.rsplit("/", 1)[-1] in text


def _wait_alerted(h: Harness, expected: set[str], timeout: float, what: str) -> None:
    """Until every expected event is stored and alerted, whatever else is still in the queue."""
    deadline = time.monotonic() + timeout
    while True:
        h.drain()
        if expected <= set(h.alerted_ids()):
            h.scan()
            if expected <= set(h.items):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not stored and alerted after {timeout:.0f} s")


def _sent_by_state(h: Harness, expected: dict[str, str]) -> set[str]:
    """Expected events whose item is `sent` and for whose file and rule an alert arrived (an alert lists at
    most the event IDs that fit in one SNS message: 12,000 do not)."""
    messages = {(a.get("log_key"), a.get("rule")) for _, a in h.alerts}
    done = set()
    for e, rule in expected.items():
        item = h.items.get(e, {})
        if (
            item.get("alert_status", {}).get("S") == "sent"
            and (item.get("log_key", {}).get("S"), rule) in messages
        ):
            done.add(e)
    return done


def _settle_by_state(
    h: Harness, expected: dict[str, str], timeout: float, what: str, until: Callable[[], bool] | None = None
) -> str:
    """Until the queue is empty and every expected event is alerted by state ("done"), or the queue is empty
    and `until()` holds ("until"); then a quiet period. TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        h.drain()
        if h.queue_depth() == 0:
            h.scan()
            if set(expected) <= _sent_by_state(h, expected):
                outcome = "done"
                break
            if until is not None and until():
                outcome = "until"
                break
        if time.monotonic() > deadline:
            h.scan()
            missing = len(set(expected) - _sent_by_state(h, expected))
            raise TimeoutError(f"{what}: not settled after {timeout:.0f} s ({missing} event(s) not alerted)")
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        h.drain()
    h.scan()
    return outcome


def _stored_are_sent(h: Harness, events: dict[str, str], row: Row, what: str, counted: set[str]) -> None:
    """A file declared poison: what of it was stored must be alerted all the same ("alerts for
    what was found go out even when the rest of the file fails"); a stored event left unsent is a failure,
    one listed in two alerts a duplicate. Call after `h.count`, whose expected events are `counted`."""
    stored = {e for e in events if e in h.items}
    unsent = stored - _sent_by_state(h, events)
    keys = {it["log_key"]["S"] for e, it in h.items.items() if e in events and "log_key" in it}
    alerted = h.alerted_ids(keys)
    row.duplicated += sum(max(0, alerted[e] - 1) for e in set(events) - counted)
    row.notes.append(f"{what}: {len(stored)} of {len(events)} event(s) stored before it was declared poison")
    if unsent:
        row.failures.append(f"{what}: {len(unsent)} stored event(s) never alerted")


def _denied(n: int) -> list[tuple[dict, str]]:
    return [
        (synth.make_record("GetSecretValue", identity=_user(), error_code="AccessDenied"), UNAUTHORIZED)
        for _ in range(n)
    ]


def scenario_slow_file_in_batch(h: Harness, scale: float = 1.0) -> Row:
    """One file slower than the function timeout (many AccessDenied records) in one SQS batch with
    nine good files. The nine are stored and alerted on time; the slow one resumes from a checkpoint and
    ends stored and alerted, or is declared poison on its own with an operational alert naming it."""
    rng = random.Random("slow")
    started = time.monotonic()
    denied = _denied(max(1000, round(3000 * scale)))
    slow_key = synth.log_key(ACCOUNT, REGION, unique="SLOWFILE0001")
    good: dict[str, dict[str, str]] = {}
    ops_before = _operational_count(h)
    with _mapping_paused(h, messages=10):
        h.put(slow_key, gz(synth.log_json([r for r, _ in denied])))
        for i in range(9):
            key, expected = _log_file(h, rng, 20, 1, f"SLOWBESIDE{i}")
            good[key] = expected
    good_expected = {e: p for exp in good.values() for e, p in exp.items()}
    slow_expected = {r["eventID"]: p for r, p in denied}
    row = Row("slow-file-in-batch", files=10, records=len(denied) + 9 * 21)
    try:
        _wait_alerted(h, set(good_expected), timeout=60, what="slow-file (good files)")
    except TimeoutError as err:
        row.failures.append(f"the nine good files were not all processed: {err}")
    late = max((t for t, a in h.alerts if a.get("log_key") in good), default=None)
    if late is not None:
        row.notes.append(f"good files alerted {late - h.written[slow_key]:.1f} s after the batch was written")
    expected = dict(good_expected)

    def poison_reported() -> bool:
        return any(_names(a, slow_key) for a in _operational_alerts(h, ops_before))

    try:
        outcome = _settle_by_state(
            h, good_expected | slow_expected, timeout=120, what="slow-file", until=poison_reported
        )
    except TimeoutError as err:
        outcome = str(err)
    if outcome == "done":
        expected |= slow_expected
        row.notes.append("slow file resumed and finished")
    elif outcome == "until":
        row.notes.append("slow file declared poison with an operational alert naming it")
    else:
        expected |= slow_expected
        row.failures.append(f"slow file neither finished nor reported as poison ({outcome})")
    row.seconds = time.monotonic() - started
    # The slow file in the DLQ is counted (dlq column), never reported as a good file there.
    h.count(
        row,
        expected,
        set(good) | {slow_key},
        {slow_key},
        optional=set(slow_expected),
        by_state=True,
    )
    if outcome == "until":
        _stored_are_sent(h, slow_expected, row, "slow file", set(expected))
    return row


def scenario_huge_record(h: Harness, scale: float = 1.0) -> Row:
    """A small .json.gz holding one matching record with a huge string (200 MB at scale 1;
    measured 742 MB RSS for it), then a second matching record. The function stays under its MemorySize
    (the local Lambda runtime kills it above, as Lambda does): both are stored (the huge one truncated or
    as reported evidence) and alerted."""
    rng = random.Random("huge")
    started = time.monotonic()
    size = max(20_000_000, round(200_000_000 * scale))
    (huge, p1), (after, p2) = monitored(2, rng)
    huge["requestParameters"] = {"userName": "huge", "blob": "A" * size}
    key = synth.log_key(ACCOUNT, REGION, unique="HUGERECORD01")
    h.put(key, gz(synth.log_json([huge, after])))
    huge["requestParameters"] = None  # free the bench's copy of the string
    # The reader keeps at most 1 MiB of a record: the huge one is stored from the members before the cut
    # (requestParameters); CloudTrail's eventID comes after it, so its EventId is the content hash.
    huge_id = _recovered_id(huge, "requestParameters")
    expected = {huge_id: p1, after["eventID"]: p2}
    h.settle(set(expected), set(), timeout=120, what="huge-record")
    row = Row("huge-record", files=1, records=2, seconds=time.monotonic() - started)
    h.count(row, expected, {key}, set())
    row.notes.append(f"record of {size / 1e6:.0f} MB")
    if not h.items.get(huge_id, {}).get("raw_truncated", {}).get("BOOL"):
        row.failures.append("the huge record is not stored as truncated evidence (raw_truncated)")
    return row


def scenario_many_matches(h: Harness, scale: float = 1.0) -> Row:
    """StopLogging, then 12,000 AccessDenied (x scale, at least 500), then CreateUser in one file.
    StopLogging is alerted by the first invocation, and everything stored is alerted. The file either
    finishes across retries (CreateUser and every denied call stored and alerted), or, when the retries
    allowed (maxReceiveCount) cannot get through it at this machine's DynamoDB speed, is declared poison
    with an operational alert naming it and goes to the DLQ -- "resumes where it stopped, or is
    declared poison on its own". Then the events after its checkpoint are counted in the dlq column."""
    started = time.monotonic()
    ops_before = _operational_count(h)
    first = synth.make_record("StopLogging", identity=_user())
    denied = _denied(max(500, round(12_000 * scale)))
    last = synth.make_record("CreateUser", identity=_user())
    key = synth.log_key(ACCOUNT, REGION, unique="MANYMATCHES1")
    body = gz(synth.log_json([first, *[r for r, _ in denied], last]))
    # FunctionTimeout=30 (the template's minimum), as the load runs.
    receives = template_default("MaxReceiveCount")
    h.tune(MANY_MATCHES_TIMEOUT, MANY_MATCHES_VISIBILITY, generation="many-matches", receives=receives)
    h.put(key, body)
    expected = {first["eventID"]: TRAIL, last["eventID"]: CREATE_USER} | {r["eventID"]: p for r, p in denied}
    row = Row("many-matches", files=1, records=len(denied) + 2)

    def poison_reported() -> bool:
        return any(_names(a, key) for a in _operational_alerts(h, ops_before))

    settle = 30 + receives * MANY_MATCHES_VISIBILITY  # every receive, and the poison alert
    try:
        outcome = _settle_by_state(h, expected, timeout=settle, what="many-matches", until=poison_reported)
    except TimeoutError as err:
        outcome = ""
        row.failures.append(str(err))
    finally:
        h.retune(generation="after-many-matches")
    row.seconds = time.monotonic() - started
    row.notes.append(f"function timeout {MANY_MATCHES_TIMEOUT} s, {receives} receives (template default)")
    if outcome == "until":
        # Declared poison: StopLogging (first) must be in; the rest counts as the DLQ's, each stored one sent.
        row.notes.append("file declared poison with an operational alert naming it")
        head = {first["eventID"]: TRAIL}
        h.count(row, head, {key}, {key}, optional=set(expected) - set(head), by_state=True)
        _stored_are_sent(h, expected, row, "many-matches", set(head))
        names: tuple[tuple[str, str], ...] = (("StopLogging", first["eventID"]),)
    else:
        if outcome == "done":
            row.notes.append("file finished across retries")
        h.count(row, expected, {key}, set(), by_state=True)
        names = (("StopLogging", first["eventID"]), ("CreateUser", last["eventID"]))
    for name, e in names:
        if not h.alerted_ids({key})[e]:
            row.failures.append(f"{name} not listed in an alert")
    return row


def _settled_row(h: Harness, row: Row, expected: dict[str, str], started: float) -> Row:
    """``row`` once ``expected`` is stored and alerted (a timeout is a failure of the row, not an error),
    timed from ``started``."""
    try:
        h.settle(set(expected), set(), timeout=60, what=row.scenario)
    except TimeoutError as err:
        row.failures.append(str(err))
    row.seconds = time.monotonic() - started
    return row


def scenario_overwritten_object(h: Harness, scale: float = 1.0) -> Row:
    """A log file with StopLogging and CreateUser overwritten by a harmless one before the function
    reads it. The notified version is what is read (versionId): both events are stored and alerted, and the
    overwrite of a log object is itself an operational alert naming it."""
    rng = random.Random("overwrite")
    started = time.monotonic()
    hidden = [
        synth.make_record("StopLogging", identity=_user()),
        synth.make_record("CreateUser", identity=_user()),
    ]
    key = synth.log_key(ACCOUNT, REGION, unique="OVERWRITECASE4")
    ops_before = _operational_count(h)
    with _mapping_paused(h, messages=2):
        h.put(key, gz(synth.log_json([*hidden, *background(20, rng)])))
        h.put(key, gz(synth.log_json(background(20, rng))))
    expected = {hidden[0]["eventID"]: TRAIL, hidden[1]["eventID"]: CREATE_USER}
    row = _settled_row(h, Row("overwritten-object", files=1, records=42), expected, started)
    h.count(row, expected, {key}, set())
    if not any(_names(a, key) for a in _operational_alerts(h, ops_before)):
        row.failures.append("no operational alert names the overwritten log object")
    return row


def scenario_config_removes_rules(h: Harness, scale: float = 1.0) -> Row:
    """A valid config that removes every rule (`{"monitored_events": ["NoSuchEvent"]}`), put
    straight into S3. The function announces it with one high operational alert listing the removed rules;
    events written before the change are alerted as usual."""
    rng = random.Random("removes")
    started = time.monotonic()
    s3 = h.client("s3")
    key, expected = _log_file(h, rng, 50, 3, "BEFOREREMOVAL")
    h.settle(set(expected), set(), timeout=60, what="config-removes-rules (before)")
    ops_before = _operational_count(h)
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=b'{"monitored_events": ["NoSuchEvent"]}')
    time.sleep(h.timing.config_ttl + 1)  # the function re-checks the config at most once per TTL
    after = synth.log_key(ACCOUNT, REGION, unique="AFTERREMOVAL")
    h.put(after, gz(synth.log_json([synth.make_record("StopLogging", identity=_user())])))
    deadline = time.monotonic() + 30
    changes: list[dict] = []
    while time.monotonic() < deadline and not changes:
        changes = [a for a in _operational_alerts(h, ops_before) if "removed" in str(a.get("title", ""))]
        time.sleep(0.5)
    row = Row("config-removes-rules", files=2, records=54, seconds=time.monotonic() - started)
    h.count(row, expected, {key, after}, set())
    if len(changes) != 1:
        row.failures.append(f"expected one config-change alert naming removed rules, got {len(changes)}")
    elif changes[0].get("severity") != "high":
        row.failures.append(f"config-change alert severity {changes[0].get('severity')!r}, not 'high'")
    else:
        row.notes.append(f"alert: {changes[0].get('title')}")
    s3.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=bundled_config_without_noise())
    h.retune(generation="after-removal")
    return row


def _odd_log(rng: random.Random) -> tuple[bytes, dict[str, str], set[str]]:
    """Good monitored records around odd-but-valid-JSON ones: a lone surrogate escape, a 5,000-digit
    integer, nesting 1,000 deep, and invalid UTF-8 bytes inside a string."""
    good = monitored(5, rng)
    odd = [r for r, _ in monitored(4, rng)]
    texts = [json.dumps(r, separators=(",", ":")).encode() for r, _ in good]
    oddities = [
        # json.dumps writes the lone surrogate as the escape \udc00. The former
        # `.replace(b"\\udc00", b"\udc00")` was a no-op: a bytes literal has no \u escape.
        json.dumps(odd[0] | {"userAgent": "\udc00"}, separators=(",", ":")).encode(),
        json.dumps(odd[1] | {"requestParameters": {"n": 0}}, separators=(",", ":"))
        .encode()
        .replace(b'"n":0', b'"n":' + b"9" * 5000),
        json.dumps(odd[2] | {"requestParameters": {"d": 0}}, separators=(",", ":"))
        .encode()
        .replace(b'"d":0', b'"d":' + b"[" * 1000 + b"]" * 1000),
        json.dumps(odd[3] | {"userAgent": "UTF8HOLE"}, separators=(",", ":"))
        .encode()
        .replace(b"UTF8HOLE", b"\xff\xfe"),
    ]
    parts = [
        texts[0],
        oddities[0],
        texts[1],
        oddities[1],
        texts[2],
        oddities[2],
        texts[3],
        oddities[3],
        texts[4],
    ]
    body = b'{"Records":[' + b",".join(parts) + b"]}"
    # The reader isolates the deep record at requestParameters and stores it from the members before it:
    # CloudTrail's eventID comes later, so its EventId is the content hash (`_recovered_id`), not eventID.
    deep = _recovered_id(odd[2] | {"requestParameters": {"d": 0}}, "requestParameters")
    return gz(body), {r["eventID"]: p for r, p in good}, {r["eventID"] for r in odd} | {deep}


def scenario_odd_records(h: Harness, scale: float = 1.0) -> Row:
    """Odd records are isolated: every good record of the file around them is stored and alerted,
    and the file is not sent to the DLQ (the odd ones may be stored or reported, once)."""
    rng = random.Random("odd")
    started = time.monotonic()
    body, expected, odd = _odd_log(rng)
    key = synth.log_key(ACCOUNT, REGION, unique="ODDRECORDS01")
    ops_before = _operational_count(h)
    h.put(key, body)
    row = _settled_row(h, Row("odd-records", files=1, records=9), expected, started)
    h.count(row, expected, {key}, set(), optional=odd)
    if any(k == key for _, k in h.dlq_refs()):
        row.failures.append("the file with odd records went to the DLQ")
    # An odd record is either stored and alerted, or reported once (one operational alert for
    # the file's isolated records).
    reports = [a for a in _operational_alerts(h, ops_before) if _names(a, key)]
    alerted = h.alerted_ids({key})
    unaccounted = [e for e in odd if e not in h.items or not alerted[e]]
    if len(reports) > 1:
        row.failures.append(f"{len(reports)} operational alerts name the file with odd records, not one")
    elif unaccounted and not reports:
        row.failures.append(f"{len(unaccounted)} odd record(s) neither stored and alerted nor reported")
    return row


# ------------------------------------------------------------------------------------------ runner

SCENARIOS: dict[str, Callable[[Harness, float], Row]] = {
    "load": scenario_load,
    "dynamodb-throttling": scenario_dynamodb_throttling,
    "sns-publish-failures": scenario_sns_failures,
    "s3-getobject-failures": scenario_s3_get_failures,
    "object-deleted": scenario_object_deleted,
    "object-overwritten": scenario_object_overwritten,
    "crash-after-store": scenario_crash_before_alert,
    "config-replaced": scenario_config_replaced,
    "bad-input": scenario_bad_input,
    # hostile input must not blind the monitor
    "slow-file-in-batch": scenario_slow_file_in_batch,
    "huge-record": scenario_huge_record,
    "many-matches": scenario_many_matches,
    "overwritten-object": scenario_overwritten_object,
    "config-removes-rules": scenario_config_removes_rules,
    "odd-records": scenario_odd_records,
}


def run(
    names: list[str],
    scale: float,
    log: Callable[[str], None] | None = None,
    memory_limit_mb: float | None = proof_memory.DEFAULT_LIMIT_MB,
) -> tuple[list[Row], Harness]:
    """Every scenario on one harness; each row notes the memory of the harness and of the function's workers
    (`proof_memory`). Past `memory_limit_mb` (harness and workers together) the run stops with a failed row
    instead of running the machine out of memory."""
    watch = proof_memory.MemoryWatch(memory_limit_mb).start()
    h = Harness(log)
    rows = []
    try:
        for name in names:
            try:
                rows.append(SCENARIOS[name](h, scale))
            except TimeoutError as err:
                row = Row(name)
                row.failures.append(str(err))
                rows.append(row)
            except KeyboardInterrupt:
                if watch.exceeded is None:
                    raise
                row = Row(name)
                row.failures.append(
                    f"stopped: harness and function workers reached {watch.exceeded:,.0f} MB "
                    f"(limit {memory_limit_mb:,.0f} MB)"
                )
                rows.append(row)
                break
            finally:
                if len(rows) and rows[-1].scenario == name:
                    rows[-1].notes.append(watch.mark().note())
            print(format_row(rows[-1]), file=sys.stderr, flush=True)
        rows[-1].notes.append(dlq_alarm_report(h)) if rows else None
    finally:
        watch.stop()
        h.close()
    return rows, h


HEADER = (
    "scenario",
    "files",
    "records",
    "events",
    "stored",
    "alerted",
    "lost",
    "dup",
    "unexp",
    "dlq",
    "p50 s",
    "p95 s",
    "p99 s",
    "ok",
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cells(row: Row) -> tuple[str, ...]:
    return (
        row.scenario,
        str(row.files),
        str(row.records),
        str(row.events),
        str(row.stored),
        str(row.alerted),
        str(row.lost),
        str(row.duplicated),
        str(row.unexpected),
        str(row.dlq),
        _fmt(row.percentile(50)),
        _fmt(row.percentile(95)),
        _fmt(row.percentile(99)),
        "yes" if row.ok else "NO",
    )


def format_row(row: Row) -> str:
    return " ".join(cells(row)) + (
        "  " + "; ".join(row.notes + row.failures) if row.notes or row.failures else ""
    )


def table(rows: list[Row]) -> str:
    grid = [HEADER, *[cells(r) for r in rows]]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in grid]
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    return (
        f"scenarios={len(rows)} lost={sum(r.lost for r in rows)} duplicated={sum(r.duplicated for r in rows)}"
    )


def markdown(rows: list[Row], outcomes: list[Outcome], command: str, elapsed: float) -> str:
    out = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *["| " + " | ".join(cells(r)) + " |" for r in rows],
        "",
        "Notes:",
        "",
        *[f"- {r.scenario}: {'; '.join(r.notes + r.failures)}" for r in rows if r.notes or r.failures],
        "",
    ]
    if outcomes:
        out += [
            "Bad input (documented -> observed):",
            "",
            "| input | documented | observed |",
            "|---|---|---|",
        ]
        out += [f"| {o.name} | {o.documented} | {o.observed} |" for o in outcomes]
        out.append("")
    out += [f"Command: `{command}` ({elapsed:.0f} s)", "", "```", summary(rows), "```"]
    return "\n".join(out)
