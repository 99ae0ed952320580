"""`trailwatch local up` is for its user alone.

The endpoint takes no credentials and its Lambda runtime runs whatever function is created, so a web page
must not be able to call it: no CORS grant for other origins, no request through a non-loopback `Host`
(DNS rebinding), no cross-site form or image request, and a loud warning when `--host` leaves loopback.
Each test here fails on the server without `LoopbackGuard` (moto's flask-cors grants `*` to any origin and
answers any `Host`).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import boto3
import pytest
from trailwatch.local.commands import exposure_warning
from trailwatch.local.server import LocalAWS, LoopbackGuard, is_loopback_name, is_loopback_origin

from tests.local_up import local_up

pytestmark = pytest.mark.e2e
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def local_aws() -> Iterator[LocalAWS]:
    with LocalAWS(port=0, lambda_runtime=False, cloudtrail=False) as aws:
        yield aws


def raw_request(
    aws: LocalAWS, method: str, path: str = "/", headers: dict[str, str] | None = None, body: str = ""
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with exactly these headers (a browser's, or an attacker's Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", aws.port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-")}


def test_preflight_from_another_origin_gets_no_grant(local_aws: LocalAWS) -> None:
    status, headers, body = raw_request(
        local_aws,
        "OPTIONS",
        "/2015-03-31/functions",
        {
            "Origin": EVIL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert status == 403
    assert cors_headers(headers) == {}
    assert b"not a loopback page" in body


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL, "Content-Type": "text/plain"}, id="simple-cross-origin-post"),
        pytest.param({"Origin": "null", "Content-Type": "text/plain"}, id="sandboxed-null-origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, id="form-or-img"),
    ],
)
def test_requests_a_web_page_can_send_without_preflight_are_refused(
    local_aws: LocalAWS, headers: dict[str, str]
) -> None:
    """A "simple" request needs no preflight: refusing the preflight alone would not stop it."""
    body = "Action=CreateQueue&QueueName=planted-by-a-page"
    status, got, _ = raw_request(local_aws, "POST", "/", headers, body)
    assert status == 403
    assert cors_headers(got) == {}
    client = boto3.client(
        "sqs",
        endpoint_url=local_aws.endpoint,
        region_name=local_aws.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert not client.list_queues().get("QueueUrls")


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}", "[::2]"])
def test_non_loopback_host_is_refused(local_aws: LocalAWS, host: str) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, the browser sends that name as Host."""
    status, headers, body = raw_request(local_aws, "GET", "/", {"Host": host.format(port=local_aws.port)})
    assert status == 403
    assert headers["content-type"].startswith("text/plain") and headers["x-content-type-options"] == "nosniff"
    assert b"is not a loopback name" in body and b"DNS rebinding" in body


def test_loopback_origin_gets_its_own_origin_never_a_wildcard_or_credentials(local_aws: LocalAWS) -> None:
    origin = "http://localhost:3000"
    status, headers, _ = raw_request(
        local_aws,
        "OPTIONS",
        "/",
        {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-a"},
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in headers
    status, headers, _ = raw_request(local_aws, "GET", "/moto-api/", {"Origin": origin})
    assert headers.get("access-control-allow-origin") == origin
    assert "access-control-allow-credentials" not in headers


def test_sdk_requests_get_no_cors_headers_at_all(local_aws: LocalAWS) -> None:
    """moto's flask-cors adds `Access-Control-Allow-Origin: *` to every response; none leaves the guard."""
    _, headers, _ = raw_request(local_aws, "GET", "/moto-api/", {"Host": f"localhost:{local_aws.port}"})
    assert cors_headers(headers) == {}


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_boto3_client_works(local_aws: LocalAWS, hostname: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{hostname}:{local_aws.port}",
        region_name=local_aws.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = f"guard-check-{hostname.replace('.', '-')}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


LOOPBACK_NAMES = ["127.0.0.1", "127.9.8.7", "::1", "[::1]", "localhost", "LOCALHOST.", "bucket.localhost"]
OTHER_NAMES = ["0.0.0.0", "128.0.0.1", "192.168.1.5", "localhost.evil.example", "evillocalhost", ""]


@pytest.mark.parametrize(
    ("name", "loopback"), [(n, True) for n in LOOPBACK_NAMES] + [(n, False) for n in OTHER_NAMES]
)
def test_is_loopback_name(name: str, loopback: bool) -> None:
    assert is_loopback_name(name) is loopback


LOOPBACK_ORIGINS = ["http://127.0.0.1:8080", "https://localhost", "http://[::1]:3000"]
OTHER_ORIGINS = [
    "null",
    "http://evil.example",
    "http://127.0.0.1.evil.example",
    "file://",
    "http://[not-an-ip",
]


@pytest.mark.parametrize(
    ("origin", "loopback"), [(o, True) for o in LOOPBACK_ORIGINS] + [(o, False) for o in OTHER_ORIGINS]
)
def test_is_loopback_origin(origin: str, loopback: bool) -> None:
    assert is_loopback_origin(origin) is loopback


# bind address -> (Host headers it allows, Host headers it refuses); an IP literal is never a rebinding
HOSTS_BY_BIND = {
    "127.0.0.1": (["127.0.0.1:4566"], ["192.168.1.5:4566", "127.0.0.1:notaport"]),
    "192.168.1.5": (["192.168.1.5:4566"], ["evil.example:4566"]),
    "0.0.0.0": (["10.1.2.3:4566"], ["evil.example:4566"]),
    "::": (["[fe80::1]:4566"], []),
}


@pytest.mark.parametrize(
    ("bind", "host", "allowed"),
    [
        (bind, host, allowed)
        for bind, (allows, refuses) in HOSTS_BY_BIND.items()
        for allowed, hosts in ((True, allows), (False, refuses))
        for host in hosts
    ],
)
def test_host_allowed_follows_the_bind_address(bind: str, host: str, allowed: bool) -> None:
    assert LoopbackGuard(lambda environ, start: [], bind).host_allowed(host) is allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_no_warning_on_loopback(host: str) -> None:
    assert exposure_warning(host, 4566) is None


def test_local_up_beyond_loopback_warns_and_still_serves_its_user() -> None:
    with local_up("--host", "0.0.0.0", "--port", "0", "--no-cloudtrail", "--no-lambda-runtime") as (_, lines):
        output = "".join(lines)
        assert "WARNING: --host 0.0.0.0 listens beyond loopback" in output
        assert "run code on this machine" in output
        (endpoint,) = [ln.split("=", 1)[1].strip() for ln in lines if "export AWS_ENDPOINT_URL=" in ln]
        sts = boto3.client(
            "sts",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        assert sts.get_caller_identity()["Account"] == "123456789012"
