"""The pure parts of `durahub workflow`: dapr's duration and age formats, the engine address, tables and YAML."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from durahub.cli_workflow.client import resolve_address
from durahub.cli_workflow.output import table, to_yaml
from durahub.cli_workflow.rows import Column, history_wide, trim
from durahub.cli_workflow.timefmt import human_age, humanize_elapsed, parse_go_duration, parse_when

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("300ms", 0.3), ("1.5h", 5400.0), ("2h45m", 9900.0), ("-2.5s", -2.5), ("0", 0.0), ("1us", 1e-6),
    ("1µs", 1e-6), ("90s", 90.0), (".5m", 30.0),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "h", "1.5", "2023-01-02", "1h 2m"])
def test_not_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


def test_duration_or_timestamp() -> None:
    assert parse_when("1h", NOW, past=True) == NOW - timedelta(hours=1)
    assert parse_when("30s", NOW, past=False) == NOW + timedelta(seconds=30)
    assert parse_when("2023-01-02", NOW, past=True) == datetime(2023, 1, 2, tzinfo=UTC)
    assert parse_when("2023-01-02T15:04:05+02:00", NOW, past=True) == datetime(2023, 1, 2, 13, 4, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a duration"):
        parse_when("yesterday", NOW, past=True)


@pytest.mark.parametrize(("seconds", "age"), [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (312, "5m12s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60 * 5, "3h5m"), (30 * 3600, "30h"),
    (50 * 3600, "2d2h"), (48 * 3600, "2d"), (30 * 86400, "30d"), (800 * 86400, "2y70d"), (3000 * 86400, "8y"),
])
def test_ages_like_kubectl(seconds: float, age: str) -> None:
    assert human_age(seconds) == age


@pytest.mark.parametrize(("seconds", "text"), [
    (0, ""), (5e-7, "500ns"), (8.5e-4, "850.0µs"), (0.0123, "12.3ms"), (1.25, "1.25s"), (-1.25, "1.25s"),
    (180, "3.0m"), (5400, "1.5h"),
])
def test_elapsed_like_dapr(seconds: float, text: str) -> None:
    assert humanize_elapsed(seconds) == text


def test_engine_address() -> None:
    assert resolve_address(None, {}) == "http://127.0.0.1:3500"
    assert resolve_address(None, {"DAPR_HTTP_PORT": "3600"}) == "http://127.0.0.1:3600"
    assert resolve_address(None, {"DAPR_HTTP_PORT": "3600", "DURAHUB_ADDRESS": "http://h:1/"}) == "http://h:1"
    assert resolve_address("h2:7", {"DURAHUB_ADDRESS": "http://h:1"}) == "http://h2:7"


def test_table_leaves_out_empty_columns_and_aligns() -> None:
    columns = (Column("NAME", "n"), Column("EMPTY", "e"), Column("STATUS", "s"))
    text = table(columns, [{"n": "a", "s": "RUNNING"}, {"n": "long name", "e": None, "s": "multi\nline"}])
    assert text.splitlines() == ["NAME       STATUS", "a          RUNNING", "long name  multi line"]


def test_yaml_reads_back() -> None:
    yaml = pytest.importorskip("yaml")
    value = [{"a": "plain", "b": "needs: quoting", "c": None, "d": 3, "e": "true", "f": "", "g": "2026-12-03T12:00:00Z",
              "h": {"x": [1, "two"]}, "i": [], "j": 'q"uo\nte', "k": "ünï"}, {}]
    assert yaml.safe_load(to_yaml(value)) == value
    assert to_yaml([]) == "[]"


def test_history_rows_count_turns_and_time_between_events() -> None:
    def event(kind: str, at: float, event_id: int = -1, **details: object) -> dict[str, object]:
        return {"event_id": event_id, "kind": kind, "timestamp": (NOW + timedelta(seconds=at)).isoformat(),
                "details": details}

    rows = history_wide([
        event("workflowStarted", 0),
        event("executionStarted", 0, name="wf", input='"in"', workflowInstance={"executionId": "e1"}),
        event("taskScheduled", 0.01, 0, name="act", input="1", taskExecutionId="t1"),
        event("workflowStarted", 1.51),
        event("taskFailed", 1.5, taskScheduledId=0, failureDetails={"errorType": "E", "errorMessage": "m",
                                                                   "isNonRetriable": True}),
        event("executionCompleted", 2, 1, workflowStatus="ORCHESTRATION_STATUS_FAILED"),
    ], "default", "app", NOW + timedelta(seconds=62))
    assert [r["play"] for r in rows] == [1, 1, 1, 2, 2, 2]
    assert [r["elapsed"] for r in rows] == ["Age:1.0m", "", "10.0ms", "1.50s", "10.0ms", "500.0ms"]
    assert rows[1]["attrs"] == "input=in" and rows[1]["executionId"] == "e1" and rows[1]["details"] == "workflowStart"
    assert rows[2]["eventId"] == 0 and rows[2]["name"] == "act"  # a first task's id 0 is shown, as dapr does
    assert rows[4]["attrs"] == "scheduledId=0;errorType=E;errorMsg=m;nonRetriable=true"
    assert rows[5]["status"] == "FAILED" and rows[5]["details"] == "execDuration=2.00s"


def test_trim_unquotes_json_strings_and_cuts() -> None:
    assert trim('"text"', 10) == "text"
    assert trim('{"a": 1}', 10) == '{"a": 1}'
    assert trim("x" * 12, 10) == "x" * 10 + "…"
    assert trim(None, 10) is None
