"""`trailwatch scan s3://...` on the local AWS reports exactly what `scan` reports on the same objects
downloaded (rows, errors, summary, exit code), a corrupt object included. Only S3 is needed: the emulator
runs without its Lambda runtime and CloudTrail."""

from __future__ import annotations

from typing import Any

import pytest
from trailwatch.local.server import LocalAWS

from tests.e2e.conftest import ClientFactory
from tests.functional import scan_corpus
from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import local_env

pytestmark = pytest.mark.e2e
LOCAL_AWS_OPTIONS = {"lambda_runtime": False}


@pytest.fixture(scope="module")
def s3(local_aws: LocalAWS, aws_client: ClientFactory) -> Any:
    client = aws_client("s3")
    scan_corpus.upload(client, scan_corpus.corpus())
    return client


@pytest.mark.parametrize("sub", ["", "AWSLogs/222222222222/"])
def test_scan_s3_on_the_local_aws_reports_what_scan_reports_downloaded(
    cli, s3, local_aws, monkeypatch, tmp_path, sub
):
    local_env(monkeypatch, local_aws)
    out = scan_corpus.assert_same_as_downloaded(cli, s3, tmp_path, sub)
    assert len(out.rows) >= 10
    if sub == "":
        assert out.exit_code == 2 and out.stderr[-1].endswith("; 1 unreadable")
        assert any(scan_corpus.CORRUPT_KEY in line for line in out.stderr)
    else:
        assert out.exit_code == 0 and "unreadable" not in "".join(out.stderr)
