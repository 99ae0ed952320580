"""main.yaml's noise control block: the processor may send its window-close messages to its own processing
queue, and nothing more; the function knows that queue's URL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.template_helpers import (
    find_cycle,
    iter_policy_documents,
    load_template,
    props,
    statement_by_sid,
    statements,
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_processor_may_send_only_to_its_processing_queue(template: dict[str, Any]) -> None:
    policy = props(template, "NoiseControlPolicy")
    assert policy["Roles"] == [{"Ref": "ProcessorRole"}]
    # Whenever the pipeline exists (the home role): the config can add a dedup window at any time.
    assert template["Resources"]["NoiseControlPolicy"].get("Condition") == "IsHome"
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement == statement_by_sid(policy["PolicyDocument"], "ScheduleWindowClose")
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["LogProcessingQueue", "Arn"]}


def test_no_other_processor_policy_grants_send_message(template: dict[str, Any]) -> None:
    grants = []
    for name, document in iter_policy_documents(template):
        for statement in statements(document):
            if not isinstance(statement, dict):
                continue  # a conditional statement (Fn::If)
            actions = statement.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            principal = statement.get("Principal")
            if "sqs:SendMessage" in actions and principal is None:
                grants.append(name)
    assert grants == ["NoiseControlPolicy.PolicyDocument"]


def test_the_function_gets_the_queue_url_and_the_template_has_no_cycle(template: dict[str, Any]) -> None:
    variables = props(template, "ProcessorFunction")["Environment"]["Variables"]
    assert variables["NOISE_QUEUE_URL"] == {"Ref": "LogProcessingQueue"}
    assert find_cycle(template) is None
