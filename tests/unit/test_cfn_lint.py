"""cfn-lint on main.yaml: the acceptance command itself, and a patched template it must reject.

In-process (one import of cfn-lint and its schemas for both tests, not a new interpreter per run)."""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

import pytest

from tests.unit.template_helpers import TEMPLATE_PATH, load_template, props, statement_by_sid


def test_cfn_lint_prints_nothing_and_exits_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The `cfn-lint` console script's entry point on main.yaml (`cfn-lint main.yaml`: pre-commit, CI)."""
    from cfnlint.runner import main  # here, not at collection: its import costs every worker ~1.5 s

    monkeypatch.setattr(sys, "argv", ["cfn-lint", str(TEMPLATE_PATH)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert (exited.value.code, *capsys.readouterr()) == (0, "", "")


def test_cfn_lint_catches_a_bucket_topic_policy_cycle() -> None:
    """The linter really checks dependencies: naming the bucket by GetAtt in the topic policy is a cycle."""
    from cfnlint.api import lint

    template: dict[str, Any] = copy.deepcopy(load_template())
    stmt = statement_by_sid(
        props(template, "LogDeliveryTopicPolicy")["PolicyDocument"], "TrailBucketPublishes"
    )
    stmt["Condition"]["ArnLike"]["aws:SourceArn"] = {"Fn::GetAtt": ["TrailBucket", "Arn"]}
    assert "E3004" in {m.rule.id for m in lint(json.dumps(template))}
