"""Factories for the processor's inputs: CloudTrail records and log files, notifications, SQS batches."""

from __future__ import annotations

import gzip
import itertools
import json
import uuid
from typing import Any
from urllib.parse import quote_plus

ACCOUNT = "123456789012"
REGION = "us-east-1"
_counter = itertools.count(1)


def log_key(
    *, account: str = ACCOUNT, region: str = REGION, prefix: str = "", org: str = "", suffix: str = ".json.gz"
) -> str:
    """A CloudTrail log key, optionally under an S3KeyPrefix and/or an organization id."""
    n = next(_counter)
    org_part = f"{org}/" if org else ""
    pre = f"{prefix}/" if prefix else ""
    name = f"{account}_CloudTrail_{region}_20240115T10{n % 60:02d}Z_{uuid.uuid4().hex[:16]}{suffix}"
    return f"{pre}AWSLogs/{org_part}{account}/CloudTrail/{region}/2024/01/15/{name}"


def record(event_name: str = "DescribeInstances", **overrides: Any) -> dict[str, Any]:
    """A plausible CloudTrail record (IAM user caller); ``overrides`` replace top-level fields."""
    rec: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
            "accountId": ACCOUNT,
            "userName": "alice",
        },
        "eventTime": "2024-01-15T10:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": event_name,
        "awsRegion": REGION,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": None,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }
    rec.update(overrides)
    return rec


def root_login(**overrides: Any) -> dict[str, Any]:
    rec = record(
        "ConsoleLogin",
        eventSource="signin.amazonaws.com",
        eventType="AwsConsoleSignIn",
        userIdentity={
            "type": "Root",
            "principalId": ACCOUNT,
            "arn": f"arn:aws:iam::{ACCOUNT}:root",
            "accountId": ACCOUNT,
        },
        responseElements={"ConsoleLogin": "Success"},
        additionalEventData={"MFAUsed": "No"},
    )
    rec.update(overrides)
    return rec


def log_bytes(records: list[dict], *, compress: bool = True) -> bytes:
    data = json.dumps({"Records": records}, separators=(",", ":")).encode("utf-8")
    return gzip.compress(data) if compress else data


def s3_notification(bucket: str, key: str, *, size: int = 1234, event_name: str = "ObjectCreated:Put") -> str:
    """An S3 event notification body, the key URL-encoded as S3 does."""
    return json.dumps(
        {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": REGION,
                    "eventTime": "2024-01-15T10:05:00.000Z",
                    "eventName": event_name,
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "configurationId": "trailwatch",
                        "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                        "object": {"key": quote_plus(key), "size": size, "eTag": "0123abcd"},
                    },
                }
            ]
        }
    )


SNS_NOTIFICATION = {  # the fields of an SNS envelope that are the same for every message here
    "Type": "Notification",
    "Subject": "Amazon S3 Notification",
    "Timestamp": "2024-01-15T10:05:01.000Z",
    "SignatureVersion": "1",
}


def sns_envelope(message: str, *, topic: str = f"arn:aws:sns:{REGION}:{ACCOUNT}:log-delivery") -> str:
    """The SNS envelope SQS receives when raw message delivery is off."""
    per_message = {"MessageId": str(uuid.uuid4()), "TopicArn": topic, "Message": message}
    return json.dumps({**SNS_NOTIFICATION, **per_message})


def s3_test_event(bucket: str) -> str:
    return json.dumps(
        {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2024-01-15T10:00:00.000Z",
            "Bucket": bucket,
            "RequestId": "EXAMPLE",
            "HostId": "EXAMPLE",
        }
    )


def eventbridge_object_created(bucket: str, key: str, *, detail_type: str = "Object Created") -> str:
    """An EventBridge S3 event (the key is the plain key, not URL-encoded)."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.s3",
            "account": ACCOUNT,
            "time": "2024-01-15T10:05:00Z",
            "region": REGION,
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": bucket},
                "object": {"key": key, "size": 5, "etag": "b1946ac9", "sequencer": "617f08299329d189"},
                "request-id": "N4N7GDK58NMKJ12R",
                "requester": ACCOUNT,
                "source-ip-address": "1.2.3.4",
                "reason": "PutObject",
            },
        }
    )


def sqs_event(*bodies: str, message_ids: list[str] | None = None) -> dict[str, Any]:
    """The Lambda event for an SQS batch."""
    ids = message_ids or [str(uuid.uuid4()) for _ in bodies]
    return {
        "Records": [
            {
                "messageId": mid,
                "receiptHandle": f"handle-{mid}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:log-processing",
                "awsRegion": REGION,
            }
            for mid, body in zip(ids, bodies, strict=True)
        ]
    }


def log_delivery_queue(
    s3: Any, sns: Any, sqs: Any, bucket: str, filter_rules: list[dict[str, str]], *, raw: bool = True
) -> str:
    """S3 -> SNS -> SQS as the stack wires it: `bucket` notifies a new `log-delivery` topic of created objects
    matching `filter_rules`, a new `log-processing` queue subscribes (raw delivery or not). The queue URL."""
    topic = sns.create_topic(Name="log-delivery")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="log-processing")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["QueueArn"],
        Attributes={"RawMessageDelivery": str(raw).lower()},
    )
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "TopicArn": topic,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": filter_rules}},
                }
            ]
        },
    )
    return queue_url


def dlq_depth_alarm(name: str, queue_name: str, actions: list[Any]) -> dict[str, Any]:
    """The properties of an alarm on a dead-letter queue's depth, as main.yaml's (any message: ALARM)."""
    return {
        "AlarmName": name,
        "Namespace": "AWS/SQS",
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Dimensions": [{"Name": "QueueName", "Value": queue_name}],
        "Statistic": "Maximum",
        "Period": 300,
        "EvaluationPeriods": 1,
        "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": actions,
    }
