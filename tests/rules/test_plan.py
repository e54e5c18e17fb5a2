"""graywsgi.rules.plan: a rollout plan as data -- durations, the plan in a rule file, its errors."""

from __future__ import annotations

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.rules.files import parse_rules
from graywsgi.rules.plan import Plan, parse_duration

RULES_YAML = """
id: plan-test
clusters: {stable: {}, canary: {}}
rules:
  - name: checkout
    split: [{cluster: canary, weight: 0}]
plan:
  rule: checkout
  cluster: canary
  steps:
    - {name: dark-launch, weight: 0}
    - {name: first-slice, weight: 1, pause: 10m}
    - {name: five, weight: 5, pause: 30m, gate: {min_requests: 10, max_error_rate_diff: 0.01}}
    - {name: half, weight: 50, gate: {min_requests: 10, max_latency_ratio: 1.5}}
    - {name: full, weight: 100}
"""


@pytest.mark.parametrize(
    "text, seconds",
    [pytest.param("30s", 30, id="seconds"), pytest.param("10m", 600, id="minutes"), pytest.param("1h", 3600, id="hours"),
     pytest.param("250ms", 0.25, id="milliseconds"), pytest.param(45, 45, id="number")],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5", "10 days", ""])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "plan_yaml, fragment",
    [
        pytest.param("plan: {rule: nope, cluster: canary, steps: [{name: a}]}", "$.plan.rule: no rule named",
                     id="unknown rule"),
        pytest.param("plan: {rule: checkout, cluster: stable, steps: [{name: a}]}", "other than the default",
                     id="default cluster"),
        pytest.param("plan: {rule: checkout, cluster: canary, steps: [{name: a}, {name: a}]}",
                     "$.plan.steps[1].name: duplicate", id="duplicate step"),
        pytest.param("plan: {rule: checkout, cluster: canary, steps: [{name: a, pause: soon}]}",
                     "$.plan.steps[0].pause", id="bad pause"),
        pytest.param("plan: {rule: checkout, cluster: canary, steps: []}", "$.plan.steps", id="no steps"),
    ],
)
def test_plan_errors(plan_yaml: str, fragment: str) -> None:
    base = RULES_YAML.split("plan:")[0]
    with pytest.raises(ConfigurationError) as excinfo:
        parse_rules(base + plan_yaml + "\n", filename="rules.yaml")
    assert fragment in str(excinfo.value)


def test_plan_round_trips() -> None:
    rules = parse_rules(RULES_YAML, filename="rules.yaml")
    plan = rules.ruleset.plan
    assert plan is not None and Plan.from_dict(plan.to_dict()) == plan
