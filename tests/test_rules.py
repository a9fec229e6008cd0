"""The Rule enum: one member per recorded rule name, each saying where and when it fires."""

from __future__ import annotations

import json

from pitstop.rules import Rule


def test_every_rule_has_a_stage_and_a_one_line_description() -> None:
    lacking = [rule for rule in Rule if not rule.stage or not rule.description or "\n" in rule.description]
    assert not lacking


def test_rule_names_are_unique() -> None:
    values = [rule.value for rule in Rule]
    assert len(values) == len(set(values))


def test_a_rule_is_its_name_as_text_and_in_json() -> None:
    assert Rule.AB_WIN == "ab.win"
    assert f"{Rule.GUARDRAIL_LATENCY_P99}" == "guardrail.latency_p99"
    assert json.dumps({"rule": Rule.MANUAL_ROLLBACK}) == '{"rule": "manual.rollback"}'


def test_a_stored_rule_name_reads_back_as_its_member() -> None:
    assert Rule("standby.expired") is Rule.STANDBY_EXPIRED
