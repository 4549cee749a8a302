"""Rules (planta.core.rules) and schedules (planta.core.schedule): parsing, evaluation, windows
in a row, catch-up decisions, and errors at planta.toml load time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planta.core.rules import Streak, advance, parse_rule, parse_rules
from planta.core.schedule import backoff_s, decide, next_after, scheduler_config
from planta.core.spec import Task, parse_objective
from planta.errors import ConfigError
from planta.project import Project

OBJECTIVE = parse_objective("recall>=0.80 and precision>=0.50", Task.BINARY)


# -- parsing and evaluation --------------------------------------------------------------------
def test_the_issue_examples_parse_and_evaluate() -> None:
    drift = parse_rule("psi(torque_nm) > 0.2 for 2 windows")
    assert (drift.windows, drift.signals) == (2, ("psi(torque_nm)",))
    assert drift.evaluate({"psi(torque_nm)": 0.21}).result is True
    assert drift.evaluate({"psi(torque_nm)": 0.2}).result is False
    recall = parse_rule("estimated_recall < objective", objective=OBJECTIVE)
    assert recall.condition.threshold == 0.80 and recall.condition.from_objective
    assert recall.evaluate({"estimated_recall": 0.79}).result is True
    rejected = parse_rule("rejected_rate > 5%")
    assert rejected.condition.threshold == pytest.approx(0.05)


def test_and_binds_tighter_than_or_and_parentheses_group() -> None:
    rule = parse_rule("a > 1 or b > 1 and c > 1")
    assert rule.evaluate({"a": 2, "b": 0, "c": 0}).result is True
    assert rule.evaluate({"a": 0, "b": 2, "c": 0}).result is False
    grouped = parse_rule("(a > 1 or b > 1) and c > 1")
    assert grouped.evaluate({"a": 2, "b": 0, "c": 0}).result is False
    assert grouped.evaluate({"a": 2, "b": 0, "c": 2}).result is True


def test_a_missing_signal_is_reported_not_silently_false() -> None:
    rule = parse_rule("psi(torque_nm) > 0.2 and recall < 0.7")
    evaluation = rule.evaluate({"recall": 0.5})
    assert evaluation.result is None
    assert evaluation.message == "cannot be evaluated: no value for psi(torque_nm)"
    # NaN is no value either.
    assert rule.evaluate({"recall": 0.5, "psi(torque_nm)": float("nan")}).result is None
    # A decided part wins (three-valued logic): false and unknown is false, true or unknown
    # is true, and nothing is reported missing then.
    assert rule.evaluate({"recall": 0.9}).result is False
    either = parse_rule("psi(torque_nm) > 0.2 or recall < 0.7")
    assert either.evaluate({"recall": 0.5}).to_dict()["missing"] == []
    assert either.evaluate({"recall": 0.5}).result is True


@pytest.mark.parametrize(("when", "position", "expected"), [
    ("psi(torque_nm) > abc", 18, "a number or 'objective'"),
    ("recall <", 9, "a number or 'objective'"),
    ("(recall < 1", 12, "')' to close the '(' at position 1"),
    ("recall < 1 for 0 windows", 16, "a whole number of windows"),
    ("recall < 1 for 2", 17, "'windows' after the number"),
    ("recall < 1 for 2 windows and x > 1", 26, "the end of the rule ('for N windows' goes once"),
    ("recall ~ 1", 8, "a signal, a comparison"),
    ("> 1", 1, "a signal name"),
    ("psi(torque_nm > 1", 15, "')' after the field name"),
])
def test_a_bad_rule_names_the_rule_the_position_and_what_was_expected(
        when: str, position: int, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rule(when, name="torque drift", usecase="failure")
    message = err.value.message
    assert message.startswith("Rule 'torque drift' of use case 'failure': ")
    assert f"at position {position} of {when!r}" in message
    assert f"expected {expected}" in message


def test_a_space_inside_a_signal_name_gets_a_suggestion() -> None:
    with pytest.raises(ConfigError) as err:
        parse_rule("estimated recall < objective", objective=OBJECTIVE)
    assert "did you mean estimated_recall?" in (err.value.hint or "")


def test_objective_needs_the_metric_in_the_use_cases_objective() -> None:
    with pytest.raises(ConfigError, match=r"needs a target for pr_auc .* 'recall>=0.80 and "):
        parse_rule("estimated_pr_auc < objective", objective=OBJECTIVE)
    assert parse_rule("recall_lower < objective", objective=OBJECTIVE).condition.threshold == 0.8


def test_rule_lists_check_actions_keys_and_duplicate_names() -> None:
    ok = parse_rules("failure", [{"when": "recall < 0.7", "then": ["log", "retrain"]},
                                 {"name": "drift", "when": "drift_share > 0.3", "then": "mqtt",
                                  "resolve_after": 0}], OBJECTIVE)
    assert [r.name for r in ok] == ["recall < 0.7", "drift"]
    assert ok[0].actions == ("log", "retrain") and ok[1].resolve_after == 0
    for entries, match in [
        ([{"when": "recall < 0.7", "then": ["page"]}], "unknown action 'page'"),
        ([{"when": "recall < 0.7", "than": ["log"]}], "unknown key 'than'"),
        ([{"when": "a > 1", "name": "x"}, {"when": "b > 1", "name": "x"}], "two rules called"),
        ([{"when": "a > 1", "resolve_after": -1}], "resolve_after = -1"),
        ({"when": "a > 1"}, "must be a list of tables"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_rules("failure", entries, OBJECTIVE)


def test_a_bad_rule_stops_the_project_from_loading(tmp_path: Path, make_project) -> None:
    make_project(tmp_path / "p", rules=[{"name": "torque", "when": "psi(torque_nm) >> 0.2"}])
    with pytest.raises(ConfigError) as err:
        Project.open(tmp_path / "p")
    assert "Rule 'torque' of use case 'failure': at position 17" in err.value.message
    good = make_project(tmp_path / "q", rules=[{"when": "recall < objective"}])
    assert Project.open(good).rules("failure")[0].condition.threshold == 0.8


# -- windows in a row ---------------------------------------------------------------------------
def test_for_n_windows_needs_n_true_windows_in_a_row_and_unknown_changes_nothing() -> None:
    rule = parse_rule("recall < 0.7 for 3 windows", resolve_after=2)
    streak, decisions = Streak(), []
    active = False
    for result in (True, True, None, False, True, True, True, True, False, None, False):
        streak, what = advance(streak, result, rule, alert_active=active)
        active = (active or what == "open") and what != "resolve"
        decisions.append(what)
    assert decisions == ["none", "none", "unknown", "none", "none", "none", "open", "repeat",
                         "none", "unknown", "resolve"]


def test_resolve_after_zero_leaves_the_alert_to_a_person() -> None:
    rule = parse_rule("recall < 0.7", resolve_after=0)
    streak = Streak()
    for _ in range(10):
        streak, what = advance(streak, False, rule, alert_active=True)
        assert what == "none"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([True, False, None]), max_size=40), st.integers(1, 4),
       st.integers(0, 3))
def test_an_alert_opens_exactly_when_n_known_windows_in_a_row_were_true(
        results: list[bool | None], windows: int, resolve_after: int) -> None:
    rule = parse_rule(f"x > 0 for {windows} windows", resolve_after=resolve_after)
    streak, active, run = Streak(), False, 0
    for result in results:
        streak, what = advance(streak, result, rule, alert_active=active)
        if result is not None:
            run = run + 1 if result else 0
        assert streak.true_windows == run
        assert (what in ("open", "repeat")) == (result is True and run >= windows)
        assert what != "open" or not active
        active = (active or what == "open") and what != "resolve"


# -- schedules ----------------------------------------------------------------------------------
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


def test_a_missed_run_is_caught_up_once_for_the_latest_time() -> None:
    due = decide("*/15 * * * *", last_due=T0, now=T0 + timedelta(days=1, minutes=7))
    assert due.run and due.scheduled_for == T0 + timedelta(days=1)
    assert due.missed == 95  # 96 quarter-hours passed; one run covers them all
    assert due.next_due == T0 + timedelta(days=1, minutes=15)
    not_yet = decide("*/15 * * * *", last_due=T0, now=T0 + timedelta(minutes=14, seconds=59))
    assert not not_yet.run and not_yet.next_due == T0 + timedelta(minutes=15)


def test_cron_times_follow_the_configured_time_zone_across_daylight_saving() -> None:
    cfg = scheduler_config({"scheduler": {"timezone": "Europe/Madrid"}})
    # 06:00 in Madrid is 05:00 UTC in winter and 04:00 UTC after the change of 29 March.
    assert next_after("0 6 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC),
                      cfg.zone) == datetime(2026, 3, 29, 4, tzinfo=UTC)
    assert next_after("0 6 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC),
                      cfg.zone) == datetime(2026, 3, 28, 5, tzinfo=UTC)


def test_scheduler_config_reads_use_case_schedules_and_jobs_and_refuses_typos() -> None:
    cfg = scheduler_config({
        "usecases": {"failure": {"schedule": "*/15 * * * *", "retrain_schedule": "@weekly"}},
        "scheduler": {"jobs": [{"name": "morning", "run": "report", "usecase": "failure",
                                "schedule": "0 6 * * *"}]}})
    assert [(j.name, j.kind, j.usecase) for j in cfg.jobs] == [
        ("monitor:failure", "monitor", "failure"), ("retrain:failure", "retrain", "failure"),
        ("morning", "report", "failure")]
    for config, match in [
        ({"usecases": {"failure": {"schedule": "*/15 * * *"}}}, "'\\*/15 \\* \\* \\*' is not a cron"),
        ({"usecases": {"failure": {"schedule": "61 * * * *"}}}, "not a cron expression"),
        ({"scheduler": {"jobs": [{"name": "x", "run": "dance", "schedule": "@daily"}]}},
         "run = 'dance'"),
        ({"scheduler": {"timezone": "Mars/Olympus"}}, "not a time zone"),
        ({"scheduler": {"enabled": "yes"}}, "not true or false"),
        ({"scheduler": {"jobs": [{"name": "a", "run": "report", "schedule": "@daily"},
                                 {"name": "a", "run": "report", "schedule": "@daily"}]}},
         "Two scheduled jobs"),
    ]:
        with pytest.raises(ConfigError, match=match):
            scheduler_config(config)


def test_a_bad_schedule_stops_the_project_from_loading(tmp_path: Path, make_project
                                                      ) -> None:
    make_project(tmp_path, usecase={"schedule": "every 15 minutes"})
    with pytest.raises(ConfigError, match="Use case 'failure': schedule: 'every 15 minutes'"):
        Project.open(tmp_path)


def test_backoff_doubles_up_to_a_ceiling() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [30.0, 60.0, 120.0, 240.0]
    assert backoff_s(40) == 1800.0


def test_the_readme_example_parses() -> None:
    import re
    import tomllib

    readme = Path(__file__).resolve().parents[2] / "README.md"
    if not readme.exists():
        pytest.skip("README.md not beside the tests (installed without the repository)")
    section = readme.read_text(encoding="utf-8").split("### Alerts and the scheduler", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None
    config = tomllib.loads(block.group(1))
    table = config["usecases"]["failure"]
    objective = parse_objective("recall>=0.60 and precision>=0.50", Task.BINARY)
    rules = parse_rules("failure", table["rules"], objective)
    assert rules[1].evaluate({"estimated_recall": 0.55, "rejected_rate": 0.0}).result is True
    assert [j.name for j in scheduler_config(config).jobs] == [
        "monitor:failure", "report:failure", "retrain:failure"]
