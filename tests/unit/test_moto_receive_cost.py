"""The emulator's per-request costs that made a 2,000-file hunt slow (bench/hunt.py): moto's receive read
every queue attribute (three passes over all messages) per message received, and moto's server listed its
package folder on every request. The replacements give moto's answers without those costs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Queue, SQSBackend, sqs_backends
from trailwatch.local import moto_patches
from trailwatch.local.lambda_sqs import is_message_valid_based_on_retention_period

REGION = "us-east-1"
ACCOUNT = "123456789012"
ORIGINAL_RETENTION = "moto.sqs.models:SQSBackend.is_message_valid_based_on_retention_period"


@pytest.fixture
def queue() -> Iterator[tuple[SQSBackend, str]]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})
        for n in range(3):
            sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName="q")["QueueUrl"], MessageBody=str(n))
        yield sqs_backends[ACCOUNT][REGION], "q"


@pytest.mark.parametrize(("age_s", "valid"), [(0, True), (59, True), (61, False), (3600, False)])
def test_retention_check_answers_as_moto(
    queue: tuple[SQSBackend, str], monkeypatch: pytest.MonkeyPatch, age_s: int, valid: bool
) -> None:
    backend, name = queue
    message = backend.get_queue(name)._messages[0]
    monkeypatch.setattr(message, "sent_timestamp", message.sent_timestamp - age_s * 1000)
    moto_answer = moto_patches.original(ORIGINAL_RETENTION)(backend, name, message)
    assert is_message_valid_based_on_retention_period(backend, name, message) is moto_answer is valid


def test_retention_check_does_not_build_the_queue_attributes(
    queue: tuple[SQSBackend, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's check builds `Queue.attributes` (a pass over every message per Approximate* count)."""
    backend, name = queue
    message = backend.get_queue(name)._messages[0]
    built: list[Any] = []
    real = Queue.attributes.fget
    monkeypatch.setattr(Queue, "attributes", property(lambda q: built.append(q) or real(q)))
    assert is_message_valid_based_on_retention_period(backend, name, message)
    assert built == []
    moto_patches.original(ORIGINAL_RETENTION)(backend, name, message)
    assert built  # moto's own does (the cost replaced)


def test_moto_folder_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    moto_patches.install()
    from moto import backends

    first = list(backends.list_of_moto_modules())
    assert first == list(moto_patches.original("moto.backends:list_of_moto_modules")())
    assert "sqs" in first and "s3" in first

    def refuse(path: str) -> list[str]:
        raise AssertionError(f"listed {path} again")

    monkeypatch.setattr(os, "listdir", refuse)
    assert list(backends.list_of_moto_modules()) == first


@pytest.mark.parametrize(
    ("attributes", "content_dedup"),
    [
        pytest.param({}, False, id="standard"),
        pytest.param({"FifoQueue": "true", "ContentBasedDeduplication": "true"}, True, id="fifo-content"),
        pytest.param({"FifoQueue": "true", "ContentBasedDeduplication": "false"}, False, id="fifo-explicit"),
    ],
)
def test_send_does_not_build_the_queue_attributes_and_deduplicates_as_moto(
    monkeypatch: pytest.MonkeyPatch, attributes: dict[str, str], content_dedup: bool
) -> None:
    moto_patches.install()
    with mock_aws():
        name = "q.fifo" if attributes else "q"
        url = boto3.client("sqs", region_name=REGION).create_queue(QueueName=name, Attributes=attributes)[
            "QueueUrl"
        ]
        backend = sqs_backends[ACCOUNT][REGION]
        built: list[Any] = []
        real = Queue.attributes.fget
        monkeypatch.setattr(Queue, "attributes", property(lambda q: built.append(q) or real(q)))
        group = {"group_id": "g"} if attributes else {}
        dedup = {} if content_dedup or not attributes else {"deduplication_id": "d1"}
        message = backend.send_message(name, "body", **group, **dedup)
        if not attributes:  # a standard queue (as the hunt's); moto's FIFO validation still builds them
            assert built == []
        built.clear()
        expected = moto_patches.original("moto.sqs.models:SQSBackend.send_message")(
            backend, name, "body2", **group, **dedup
        )
        assert built  # moto's own builds them (the cost replaced)
        if content_dedup:
            import hashlib

            assert message.deduplication_id == hashlib.sha256(b"body").hexdigest()
            assert expected.deduplication_id == hashlib.sha256(b"body2").hexdigest()
        else:
            assert message.deduplication_id == expected.deduplication_id
        assert url.endswith(name)
