"""The Lambda service's side of an SQS event source mapping: poll, build the event, invoke, delete.

A `Poller` long-polls its queue (``ReceiveMessage`` with all system and message attributes, up to BatchSize
messages gathered during MaximumBatchingWindowInSeconds), builds the Lambda SQS event (`sqs_record`), invokes
the function through its `FunctionHost` and deletes what `messages_to_delete` says: the whole batch on
success, or all but the reported ``batchItemFailures`` with ``ReportBatchItemFailures``. A failed invocation
deletes nothing: the messages come back after the queue's visibility timeout, and moto's SQS moves them to
the DLQ on the receive after ``maxReceiveCount`` receives (moto redrives in ``ReceiveMessage``, as SQS does).

`add_message` replaces moto's ``Queue.add_message`` (a row of `moto_patches.PATCHES`), so that moto's own
SQS -> Lambda path never runs: on every SendMessage to a mapped queue moto would receive the new messages
itself and invoke the function in a Docker container. Without it messages stay in the queue for the pollers,
receive counts stay honest, and the mapping still exists in the Lambda API (``ListEventSourceMappings``).
`is_message_valid_based_on_retention_period` and `send_message` (two more rows) remove quadratic costs of
moto's receive and send (each built every attribute of the queue, a pass over all its messages, per message).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import string
import threading
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from moto.core.utils import unix_time
from moto.moto_api._internal import mock_random
from moto.sqs.exceptions import InvalidParameterValue
from moto.sqs.models import DEDUPLICATION_TIME_IN_SECONDS, MAXIMUM_MESSAGE_DELAY, Message

from trailwatch.local.lambda_host import Outcome

if TYPE_CHECKING:
    from trailwatch.local.lambda_runtime import LambdaRuntime

POLL_WAIT_SECONDS = 1  # ReceiveMessage long poll; bounds how long stop() waits for a poller
MAX_EVENT_BYTES = 6 * 1024 * 1024  # synchronous invocation payload limit
DEFAULT_CONCURRENCY = 1  # a mapping without ScalingConfig: one invocation at a time (AWS scales further)
MAX_LOCAL_CONCURRENCY = 16  # the emulator's ceiling per mapping, whatever MaximumConcurrency says


def add_message(self: Any, message: Any) -> None:
    """moto's ``Queue.add_message`` without its SQS -> Lambda (Docker) path: FIFO deduplication, queueing."""
    if self.fifo_queue and (
        str(self.content_based_deduplication).lower() == "true" or message.deduplication_id
    ):
        for queued in self._messages:
            age = (message.sent_timestamp - queued.sent_timestamp) / 1000
            if queued.deduplication_id == message.deduplication_id and age < DEDUPLICATION_TIME_IN_SECONDS:
                return  # a duplicate within the deduplication interval is not added
    with self._messages_lock:
        self._messages.append(message)
        self._messages_lock.notify_all()


def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
    """moto's retention check without its cost: moto reads MessageRetentionPeriod through
    ``get_queue_attributes``, which builds every attribute of the queue -- three passes over all its
    messages (the Approximate* counts) -- for each message received, so a receive was quadratic in the
    queue's length (a 2,000-file hunt queue spent most of its time there). Same answer, read directly."""
    retention_period = int(self.get_queue(queue_name).message_retention_period)
    return retention_period + message.sent_timestamp / 1000 > unix_time()


def send_message(
    self: Any,
    queue_name: str,
    message_body: str,
    message_attributes: dict[str, Any] | None = None,
    delay_seconds: int | None = None,
    deduplication_id: str | None = None,
    group_id: str | None = None,
    system_attributes: dict[str, Any] | None = None,
    validate_group_id: bool = True,
) -> Any:
    """moto's ``SQSBackend.send_message`` with one line changed: moto tested ContentBasedDeduplication through
    ``queue.attributes``, which builds every attribute of the queue -- three passes over all its messages --
    for each message sent, so sending a hunt's 2,000 messages was quadratic. Read from the queue directly."""
    queue = self.get_queue(queue_name)
    self._validate_message(
        queue,
        message_body=message_body,
        delay_seconds=int(delay_seconds or 0),
        deduplication_id=deduplication_id,
        group_id=group_id,
        validate_group_id=validate_group_id,
    )
    delay_seconds = int(delay_seconds) if delay_seconds is not None else queue.delay_seconds
    message = Message(str(mock_random.uuid4()), message_body, system_attributes)
    # moto: queue.attributes.get("ContentBasedDeduplication") == "true" (FIFO attributes exist on FIFO queues)
    if queue.fifo_queue and str(queue.content_based_deduplication).lower() == "true":
        message.deduplication_id = hashlib.sha256(message_body.encode("utf-8")).hexdigest()
    if deduplication_id is not None:
        message.deduplication_id = deduplication_id
        message.sequence_number = "".join(mock_random.choice(string.digits) for _ in range(20))
    if group_id is not None:
        message.group_id = group_id
    if message_attributes:
        message.message_attributes = message_attributes
    if delay_seconds > MAXIMUM_MESSAGE_DELAY:
        raise InvalidParameterValue(
            f"Value {delay_seconds} for parameter DelaySeconds is invalid. "
            "Reason: DelaySeconds must be >= 0 and <= 900."
        )
    message.mark_sent(delay_seconds=delay_seconds)
    queue.add_message(message)
    return message


# --------------------------------------------------------------------------------------------------------
# the Lambda SQS event, and what an invocation's outcome deletes


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of the Lambda SQS event, from a ``ReceiveMessage`` message."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update(
        md5OfBody=message["MD5OfBody"], eventSource="aws:sqs", eventSourceARN=queue_arn, awsRegion=region
    )
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    out["stringListValues"] = list(value.get("StringListValues", []))
    out["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
    out["dataType"] = value["DataType"]
    return out


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def messages_to_delete(
    records: list[dict[str, Any]], outcome: Outcome, report_batch_item_failures: bool
) -> tuple[list[dict[str, Any]], str]:
    """The records to delete after an invocation, and why the rest stay (empty when all go).

    Rules of the Lambda service: a failed invocation deletes nothing; without ReportBatchItemFailures a
    successful one deletes all; with it, a null/empty response or a null/empty ``batchItemFailures`` deletes
    all, and a response Lambda cannot use (not an object, ``batchItemFailures`` not a list, an item without a
    non-empty string ``itemIdentifier``, or one naming no message of the batch) fails the whole batch.
    """
    if not outcome.ok:
        return [], f"invocation failed: {outcome.error}"
    if not report_batch_item_failures:
        return list(records), ""
    failed, problem = _reported_failures(outcome.payload, {r["messageId"] for r in records})
    if problem:
        return [], f"invalid partial batch response ({problem}): whole batch failed"
    kept = [r for r in records if r["messageId"] not in failed]
    reason = f"{len(failed)} of {len(records)} reported in batchItemFailures" if failed else ""
    return kept, reason


def _reported_failures(payload: Any, message_ids: set[str]) -> tuple[set[str], str]:
    if payload is None or payload == {}:
        return set(), ""
    if not isinstance(payload, dict):
        return set(), f"response is a {type(payload).__name__}, not an object"
    items = payload.get("batchItemFailures")
    if items is None:
        return set(), ""
    if not isinstance(items, list):
        return set(), "batchItemFailures is not a list"
    failed: set[str] = set()
    for index, item in enumerate(items):
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return set(), f"batchItemFailures[{index}] has no itemIdentifier"
        if identifier not in message_ids:
            return set(), f"batchItemFailures[{index}].itemIdentifier {identifier!r} is not in the batch"
        failed.add(identifier)
    return failed, ""


# --------------------------------------------------------------------------------------------------------
# one event source mapping: the poller


@dataclass
class Poller:
    """Polls one SQS queue for one mapping: `concurrency` threads, each receive -> invoke -> delete.

    As the Lambda service scales an SQS mapping out to several concurrent invocations, the poller runs one
    thread per allowed concurrent invocation (`concurrency`: the mapping's
    ``ScalingConfig.MaximumConcurrency`` -- `DEFAULT_CONCURRENCY` without it -- bounded by the function's
    reserved concurrency and by `MAX_LOCAL_CONCURRENCY`).
    Threads are started as the limit grows; above a lowered limit they idle.
    """

    runtime: LambdaRuntime
    mapping: dict[str, Any]
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    _queue_url: str | None = None
    _last_problem: str = ""
    _threads_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def queue_arn(self) -> str:
        return self.mapping["EventSourceArn"]

    def concurrency(self, reserved: int | None = None) -> int:
        """How many invocations of this mapping may run at once."""
        scaling = self.mapping.get("ScalingConfig") or {}
        wanted = int(scaling.get("MaximumConcurrency") or DEFAULT_CONCURRENCY)
        if reserved:
            wanted = min(wanted, reserved)
        return max(1, min(wanted, MAX_LOCAL_CONCURRENCY))

    def start(self) -> None:
        self.scale()

    def scale(self) -> None:
        """Start polling threads up to the mapping's current concurrency (called on every discovery round)."""
        with self._threads_lock:
            while len(self.threads) < self.concurrency() and not self._should_stop():
                index = len(self.threads)
                thread = threading.Thread(
                    target=self._run,
                    args=(index,),
                    name=f"sqs-poller-{self.mapping['UUID']}-{index}",
                    daemon=True,
                )
                self.threads.append(thread)
                thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self, index: int = 0) -> None:
        sqs = self.runtime.client("sqs")
        while not self.stop_event.is_set() and not self.runtime.stopping.is_set():
            try:
                self._poll_once(sqs, index)
                self._last_problem = ""
            except (ClientError, BotoCoreError, OSError) as err:
                self._problem(f"polling {self.queue_arn}: {err}")
                self._queue_url = None
                self.stop_event.wait(self.runtime.refresh_interval)
            except Exception as err:  # a bug of ours must not silently end the poller
                self._problem(f"polling {self.queue_arn}: {type(err).__name__}: {err}")
                self.runtime.log("".join(traceback.format_exception(err)).rstrip())
                self.stop_event.wait(self.runtime.refresh_interval)

    def _problem(self, text: str) -> None:
        if text != self._last_problem:  # log a persistent problem once, not every second
            self.runtime.log(f"[lambda-runtime] {text}")
        self._last_problem = text

    def _poll_once(self, sqs: Any, index: int = 0) -> None:
        mapping = self.mapping
        host = self.runtime.host(mapping["FunctionArn"])
        try:
            config = host.current_config()
        except (ClientError, BotoCoreError) as err:
            self._problem(f"function {mapping['FunctionArn']}: {err}")
            self.stop_event.wait(self.runtime.refresh_interval)
            return
        if config.reserved_concurrency == 0:
            self._problem(
                f"function {config.name}: ReservedConcurrentExecutions is 0 (throttled); not polling"
            )
            self.stop_event.wait(self.runtime.refresh_interval)
            return
        if index >= self.concurrency(config.reserved_concurrency):  # above the current limit: idle
            self.stop_event.wait(self.runtime.refresh_interval)
            return
        messages = self._gather(sqs, int(mapping.get("BatchSize") or 10), mapping)
        if not messages:
            return
        if self._should_stop():  # received but not invoked: hand them back at once
            self._release(sqs, messages)
            return
        records = [sqs_record(m, self.queue_arn, self.runtime.region) for m in messages]
        outcome = host.invoke({"Records": records})
        report = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
        delete, reason = messages_to_delete(records, outcome, report)
        if reason:
            self.runtime.log(
                f"[lambda:{config.name}] batch of {len(records)} from {self.queue_arn}: {reason}"
            )
        self._delete(sqs, delete)

    def _should_stop(self) -> bool:
        return self.stop_event.is_set() or self.runtime.stopping.is_set()

    def _url(self, sqs: Any) -> str:
        if self._queue_url is None:
            _, _, _, _, account, name = self.queue_arn.split(":", 5)
            self._queue_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._queue_url

    def _receive(self, sqs: Any, count: int, wait: int) -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=self._url(sqs),
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _gather(self, sqs: Any, batch_size: int, mapping: dict[str, Any]) -> list[dict[str, Any]]:
        """Up to BatchSize messages: the first long poll, then more until the batching window closes.

        A window longer than the queue's visibility timeout lets a gathered message come back and be received
        again (or be moved to the DLQ by moto) before the invocation -- as on AWS, which is why AWS asks for a
        visibility timeout well above the window. A message received twice is kept once, newest receipt.
        """
        first = self._receive(sqs, batch_size, POLL_WAIT_SECONDS)
        if not first:
            return []
        messages = {m["MessageId"]: m for m in first}
        window_end = time.monotonic() + float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
        size = sum(len(m["Body"].encode()) for m in first)
        while len(messages) < batch_size and size < MAX_EVENT_BYTES // 2 and not self._should_stop():
            remaining = window_end - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(sqs, batch_size - len(messages), min(POLL_WAIT_SECONDS, int(remaining)))
            if not more and remaining < 1:
                time.sleep(min(remaining, 0.05))
            for message in more:
                if message["MessageId"] not in messages:
                    size += len(message["Body"].encode())
                messages[message["MessageId"]] = message
        return list(messages.values())

    def _release(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
            for i, m in enumerate(messages)
        ]
        for chunk in _chunks(entries, 10):
            with contextlib.suppress(ClientError, BotoCoreError):
                sqs.change_message_visibility_batch(QueueUrl=self._url(sqs), Entries=chunk)

    def _delete(self, sqs: Any, records: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records)]
        for chunk in _chunks(entries, 10):
            failed = sqs.delete_message_batch(QueueUrl=self._url(sqs), Entries=chunk).get("Failed", [])
            for failure in failed:
                self.runtime.log(f"[lambda-runtime] delete from {self.queue_arn} failed: {failure}")


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
