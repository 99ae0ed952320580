"""`trailwatch rules import-sigma`: the table, the written config, and `upload-config` accepting it."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from trailwatch.main import cli as trailwatch_cli

from tests.functional.cli_conftest import *  # noqa: F403 -- fixtures
from tests.functional.cli_conftest import TEST_BUCKET

SIGMA_RULES = Path(__file__).resolve().parents[1] / "data" / "sigma" / "rules"
KEY = "config/monitored_events.json"


def _run(*args: str):
    return CliRunner().invoke(trailwatch_cli, list(args), catch_exceptions=False)


def test_import_writes_a_valid_config_and_prints_the_table(tmp_path):
    out = tmp_path / "sigma.json"
    result = _run("rules", "import-sigma", str(SIGMA_RULES), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "46 converted, 11 refused" in result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["FILE", "RESULT", "RULE", "REASON"]
    refused = [line for line in lines if "  refused  " in line]
    assert len(refused) == 11
    assert any("aws_update_login_profile.yml" in line and "fieldref" in line for line in refused)
    assert any("aws_root_account_usage.yml" in line and "converted" in line for line in lines)
    from trailwatch_processor.config_load import parse_config

    config = parse_config(out.read_bytes(), source=str(out))
    assert len(config.rules) == 46
    raw = json.loads(out.read_text())
    assert {r["origin"] for r in raw["rules"]} == {"sigma"}


def test_without_output_the_config_goes_to_stdout_and_the_table_to_stderr():
    result = CliRunner().invoke(
        trailwatch_cli,
        ["rules", "import-sigma", str(SIGMA_RULES / "aws_root_account_usage.yml")],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    config = json.loads(result.stdout)
    assert [r["id"] for r in config["rules"]] == ["sigma-8ad1600d-e9dc-4251-b0ee-a65268f29add"]
    assert "1 converted, 0 refused" in result.stderr


def test_nothing_converted_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "none.json"
    result = _run("rules", "import-sigma", str(SIGMA_RULES / "aws_update_login_profile.yml"), "-o", str(out))
    assert result.exit_code == 1
    assert "0 converted, 1 refused" in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("title: [unclosed\n", "not a Sigma rule file"),
        ("- a list\n", "not a Sigma rule file"),
        ("", "no Sigma rule in the file"),
        (
            "title: t\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    a: b\n"
            "  condition: sel and nope\n",
            "pySigma",
        ),
    ],
)
def test_a_broken_file_is_refused_with_the_reason(tmp_path, content, reason):
    bad = tmp_path / "bad.yml"
    bad.write_text(content)
    result = _run("rules", "import-sigma", str(bad), str(SIGMA_RULES / "aws_root_account_usage.yml"))
    assert result.exit_code == 0
    assert "1 converted, 1 refused" in result.stderr
    assert reason in result.stderr


@pytest.mark.usefixtures("moto_env", "small_template")
def test_upload_config_accepts_the_imported_rules(cli, deploy_args, tmp_path):
    assert cli(*deploy_args).exit_code == 0
    out = tmp_path / "sigma.json"
    assert cli("rules", "import-sigma", str(SIGMA_RULES), "-o", str(out)).exit_code == 0
    result = cli("upload-config", str(out), "--yes")
    assert result.exit_code == 0, result.output
    body = boto3.client("s3").get_object(Bucket=TEST_BUCKET, Key=KEY)["Body"].read()
    assert json.loads(body) == json.loads(out.read_text())


def test_the_lambda_package_does_not_carry_pysigma():
    from trailwatch.package import package_files

    names = [name for name, _ in package_files()]
    assert names and not any("sigma" in name.lower() for name in names)


def test_case_sensitive_flag_converts_more_and_marks_the_rules(tmp_path):
    out = tmp_path / "cs.json"
    result = _run("rules", "import-sigma", "--case-sensitive", str(SIGMA_RULES), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "52 converted, 5 refused" in result.output
    assert all(r["sigma"]["case_sensitive"] for r in json.loads(out.read_text())["rules"])
