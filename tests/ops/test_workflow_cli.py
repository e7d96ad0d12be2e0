"""`durahub workflow` (alias `wf`), dapr's `dapr workflow` commands: every command and output format, in
process through Click's CliRunner, against a real server with the official SDK's workers.

Errors, exit codes, the API token and flag parity with dapr are in test_workflow_cli_errors.py; the
subprocess and terminal (tmux) runs in test_workflow_cli_terminal.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import pytest

pytest.importorskip("durahub.cli_workflow", reason="the CLI runs in process where durahub is installed")
yaml = pytest.importorskip("yaml", reason="PyYAML (a test dependency, through schemathesis) reads -o yaml back")
from click.testing import CliRunner, Result  # noqa: E402

from durahub.cli import main  # noqa: E402
from durahub.cli_workflow import workflow  # noqa: E402
from testsupport.sdk import assert_completed, complete, new_id, wait_for_status  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]


def double(ctx: wf.WorkflowActivityContext, x: Any) -> Any:
    return x * 2


def explode(ctx: wf.WorkflowActivityContext, x: Any) -> None:
    raise ValueError(f"boom\n{x}")


def child_wf(ctx: wf.DaprWorkflowContext, x: int) -> int:
    return x + 1


def full_wf(ctx: wf.DaprWorkflowContext, x: int):
    """An activity, a timer, an external event, a child workflow, a custom status and a caught failure."""
    a = yield ctx.call_activity(double, input=x)
    yield ctx.create_timer(timedelta(milliseconds=10))
    event = yield ctx.wait_for_external_event("go")
    c = yield ctx.call_child_workflow(child_wf, input=a)
    ctx.set_custom_status("almost")
    try:
        yield ctx.call_activity(explode, input=1)
    except Exception:  # noqa: BLE001 - the failure is recorded in the history, which is what is checked
        pass
    return {"a": a, "event": event, "child": c}


def failing_wf(ctx: wf.DaprWorkflowContext, x: int):
    yield ctx.call_activity(explode, input=x)


def waiting_wf(ctx: wf.DaprWorkflowContext, x: Any):
    """Runs until it gets a "stop" event; returns its payload."""
    stop = yield ctx.wait_for_external_event("stop")
    return stop


def hello_wf(ctx: wf.DaprWorkflowContext, name: str):
    twice = yield ctx.call_activity(double, input=name)
    return f"hello {twice}"


WORKFLOWS = [full_wf, child_wf, failing_wf, waiting_wf, hello_wf]
ACTIVITIES = [double, explode]

Cli = Callable[..., Result]


@pytest.fixture(scope="module")
def cli(server: DurahubServer) -> Cli:
    """`durahub workflow --address <server> ARGS...`, in process."""

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(workflow, ["--address", server.http_url, *args], input=input, env=env,
                                  catch_exceptions=False)

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def table_rows(text: str) -> list[list[str]]:
    """A table's lines split on runs of two or more spaces (cells never hold two spaces in a row)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def run_full(cli: Cli, client: wf.DaprWorkflowClient, prefix: str) -> str:
    iid = f"{prefix}-full"
    ok(cli("run", "full_wf", "-i", iid, "-x", "3"))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    ok(cli("raise-event", f"{iid}/go", "-x", '{"k": "v"}'))
    assert_completed(complete(client, iid))
    return iid


# -- run, wait ------------------------------------------------------------------------------------------


def test_run_starts_an_instance_and_run_wait_reports_how_it_ended(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("run")
    result = ok(cli("run", "hello_wf", "--instance-id", iid, "--input", '"ab"'))
    assert result.stdout.strip() == f"Workflow instance started successfully: {iid}"
    assert assert_completed(complete(client, iid)) == "hello abab"

    result = ok(cli("run", "hello_wf", "-x", '"x"', "--wait"))
    lines = result.stdout.strip().splitlines()
    new = lines[0].removeprefix("Workflow instance started successfully: ")
    assert lines[1] == f"Workflow '{new}' is COMPLETED; output: \"hello xx\""

    failed = cli("run", "failing_wf", "-x", "7", "--wait")
    assert failed.exit_code == 4
    assert "is FAILED: TaskFailedError" in failed.stdout and "boom 7" in failed.stdout

    as_json = cli("--json", "run", "hello_wf", "-x", '"j"', "--wait")
    assert as_json.exit_code == 0
    body = json.loads(as_json.stdout)
    assert body["timed_out"] is False and body["instance"]["output"] == '"hello jj"'


def test_run_start_time_schedules_the_start(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("later")
    ok(cli("run", "hello_wf", "-i", iid, "-x", '"s"', "-s", "1h"))
    shown = json.loads(ok(cli("show", iid, "--json")).stdout)
    assert shown["status"] == "PENDING"
    started = json.loads(ok(cli("export", iid)).stdout)
    assert started["history"] == []  # nothing ran: the start is an hour away
    ok(cli("terminate", iid))


def test_wait_exit_codes(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("wait")
    ok(cli("run", "waiting_wf", "-i", iid))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    timed_out = cli("wait", iid, "--timeout", "0.2s")
    assert timed_out.exit_code == 124 and "RUNNING (timed out waiting)" in timed_out.stdout
    reached = cli("wait", iid, "--status", "running", "--timeout", "30s")
    assert reached.exit_code == 0 and f"Workflow '{iid}' is RUNNING" in reached.stdout
    ok(cli("raise-event", iid, "stop", "-x", '"done"'))
    done = cli("wait", iid, "--timeout", "30")
    assert done.exit_code == 0 and done.stdout.strip() == f"Workflow '{iid}' is COMPLETED; output: \"done\""
    as_json = json.loads(ok(cli("wait", iid, "--json")).stdout)
    assert as_json["instance"]["status"] == "COMPLETED" and "history" not in as_json["instance"]


# -- list -----------------------------------------------------------------------------------------------


def test_list_formats(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("ls")
    full = run_full(cli, client, prefix)
    assert cli("run", "failing_wf", "-i", f"{prefix}-bad", "-x", "1", "--wait").exit_code == 4

    short = table_rows(ok(cli("list", "--prefix", prefix)).stdout)
    assert short[0] == ["NAME", "ID", "STATUS", "CUSTOM STATUS", "AGE"]
    child = f"{full}:0004"
    assert [r[:3] for r in short[1:]] == [["full_wf", full, "COMPLETED"], ["child_wf", child, "COMPLETED"],
                                          ["failing_wf", f"{prefix}-bad", "FAILED"]]
    assert short[1][3] == "almost"

    assert [r[:4] for r in table_rows(ok(cli("ls", "--prefix", prefix)).stdout)] == [r[:4] for r in short]

    wide = table_rows(ok(cli("list", "--prefix", prefix, "-o", "wide", "-a", "durahub")).stdout)
    assert wide[0] == ["NAMESPACE", "APP ID", "NAME", "INSTANCE ID", "CREATED", "LAST UPDATE", "STATUS",
                       "CUSTOM STATUS", "FAILURE MESSAGE"]
    assert wide[1][:4] == ["default", "durahub", "full_wf", full]  # the instance's app (the engine's own)
    other_app = ok(cli("list", "--prefix", prefix, "--app-id", "shop"))  # -a: one app's instances
    assert other_app.stdout == "" and 'for app ID "shop"' in other_app.stderr
    assert wide[3][-1].endswith("failed: boom1")  # dapr drops the line breaks

    records = json.loads(ok(cli("list", "--prefix", prefix, "-o", "json", "-n", "prod")).stdout)
    assert [r["instanceID"] for r in records] == [full, child, f"{prefix}-bad"]
    assert set(records[0]) == {"namespace", "appID", "name", "instanceID", "created", "lastUpdate", "runtimeStatus",
                               "customStatus", "failureMessage"}
    assert records[0]["namespace"] == "prod" and records[0]["appID"] == "durahub"
    assert records[0]["created"].endswith("Z") and records[2]["runtimeStatus"] == "FAILED"
    assert json.loads(ok(cli("--json", "-n", "prod", "list", "--prefix", prefix)).stdout) == records

    assert yaml.safe_load(ok(cli("list", "--prefix", prefix, "-o", "yaml", "-n", "prod")).stdout) == records
    ids = ok(cli("list", "--prefix", prefix, "-o", "ids")).stdout.split()
    assert ids == [full, child, f"{prefix}-bad"]
    assert ok(cli("list", "--prefix", prefix, "--limit", "1", "-o", "ids")).stdout.split() == [full]
    children = ok(cli("list", "--parent", full, "-o", "ids")).stdout.split()
    assert children == [child]


def test_list_filters_and_nothing_found(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("flt")
    ok(cli("run", "hello_wf", "-i", f"{prefix}-a", "-x", '"a"', "--wait"))
    assert cli("run", "failing_wf", "-i", f"{prefix}-b", "-x", "1", "--wait").exit_code == 4
    ok(cli("run", "waiting_wf", "-i", f"{prefix}-c"))
    wait_for_status(client, f"{prefix}-c", wf.WorkflowStatus.RUNNING)

    def ids(*args: str) -> list[str]:
        return ok(cli("list", "--prefix", prefix, "-o", "ids", *args)).stdout.split()

    assert ids("-w", "hello_wf") == [f"{prefix}-a"]
    assert ids("--filter-name", "failing_wf") == [f"{prefix}-b"]
    assert ids("-s", "FAILED") == [f"{prefix}-b"]
    assert ids("-s", "completed", "-s", "RUNNING") == [f"{prefix}-a", f"{prefix}-c"]
    assert ids("-s", "CANCELED") == []  # a status durahub never stores
    assert ids("-m", "1h") == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert ids("--filter-max-age", "2999-01-01") == []
    assert ids("-m", "2000-01-02T15:04:05Z") == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]

    empty = ok(cli("list", "--prefix", prefix, "-w", "nothing_wf"))
    assert empty.stdout == "" and empty.stderr.strip() == 'No workflow found in namespace "default" for app ID ""'
    assert json.loads(ok(cli("list", "--prefix", prefix, "-w", "nothing_wf", "-o", "json")).stdout) == []
    bad_age = cli("list", "-m", "yesterday")
    assert bad_age.exit_code == 2 and "neither a duration" in bad_age.stderr
    ok(cli("raise-event", f"{prefix}-c/stop"))


# -- history --------------------------------------------------------------------------------------------


def test_history_short_wide_json_yaml(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = run_full(cli, client, new_id("hist"))

    short = table_rows(ok(cli("history", iid)).stdout)
    assert short[0] == ["TYPE", "NAME", "EVENTID", "ELAPSED", "STATUS", "DETAILS"]
    types = [r[0] for r in short[1:]]
    assert types[:3] == ["WorkflowStarted", "ExecutionStarted", "TaskScheduled"]
    assert types[-1] == "ExecutionCompleted"
    for kind in ("TaskCompleted", "TimerCreated", "TimerFired", "EventRaised", "ChildWorkflowCreated",
                 "ChildWorkflowCompleted", "TaskFailed"):
        assert kind in types
    first = short[1]
    assert first[1:3] == ["-", "-"] and first[3].startswith("Age:") and first[-1] == "replay"
    started = short[2]
    assert started[:3] == ["ExecutionStarted", "full_wf", "-"] and started[-1] == "workflowStart"
    failed = next(r for r in short if r[0] == "TaskFailed")
    assert "FAILED" in failed
    assert short[-1][-2:] == ["COMPLETED", short[-1][-1]] and short[-1][-1].startswith("execDuration=")

    wide_text = ok(cli("history", iid, "-o", "wide")).stdout
    wide = table_rows(wide_text)
    assert wide[0] == ["PLAY", "TYPE", "NAME", "EVENTID", "TIMESTAMP", "ELAPSED", "STATUS", "DETAILS",
                       "EXECUTION_ID", "ATTRS"]  # ROUTER is empty in every row, so left out as dapr does
    plays = [int(r[0]) for r in wide[1:]]
    assert plays[0] == 1 and plays == sorted(plays) and plays[-1] == types.count("WorkflowStarted")

    records = json.loads(ok(cli("history", iid, "-o", "json")).stdout)
    assert [r["type"] for r in records] == types
    assert all(r["appID"] == "durahub" and r["namespace"] == "default" for r in records)
    scheduled = next(r for r in records if r["type"] == "TaskScheduled")
    assert scheduled["name"] == "double" and scheduled["eventId"] >= 0 and scheduled["attrs"] == "input=3"
    assert "router" not in scheduled and scheduled["executionId"]
    completed = next(r for r in records if r["type"] == "TaskCompleted")
    assert completed["name"] is None and completed["details"] == f"eventId={scheduled['eventId']}"
    assert completed["attrs"] == f"scheduledId={scheduled['eventId']};output=6"
    timer = next(r for r in records if r["type"] == "TimerCreated")
    assert timer["details"].startswith("fireAt=") and timer["details"].endswith(",origin=createTimer")
    waiting = [r for r in records if r["type"] == "TimerCreated"][1]
    assert waiting["details"].endswith(",origin=externalEvent(go)") and "eventName=go" in waiting["attrs"]
    raised = next(r for r in records if r["type"] == "EventRaised")
    assert raised["details"] == "event=go" and raised["attrs"] == 'eventName=go;payload={"k": "v"}'
    failure = next(r for r in records if r["type"] == "TaskFailed")
    assert failure["status"] == "FAILED" and "errorType=ValueError" in failure["attrs"]
    assert "errorMsg=boom\n1" in failure["attrs"]
    end = records[-1]
    assert end["status"] == "COMPLETED" and end["attrs"].startswith('output={"a": 6')
    assert records[0]["elapsed"].startswith("Age:")

    # The same records in YAML and through --json (all but the first row's age, which grows between calls).
    assert ageless(yaml.safe_load(ok(cli("history", iid, "-o", "yaml")).stdout)) == ageless(records)
    assert ageless(json.loads(ok(cli("--json", "history", iid)).stdout)) == ageless(records)


def ageless(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [records[0] | {"elapsed": "Age:"}, *records[1:]]


# -- raise-event, suspend, resume, terminate ------------------------------------------------------------


def test_raise_event_both_forms(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("raise")
    ok(cli("run", "waiting_wf", "-i", iid))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    result = ok(cli("raise-event", iid, "stop", "--input", '{"n": 1}'))
    assert result.stdout.strip() == f"Workflow '{iid}' raised event 'stop' successfully"
    assert assert_completed(complete(client, iid)) == {"n": 1}

    other = new_id("raise")
    ok(cli("run", "waiting_wf", "-i", other))
    wait_for_status(client, other, wf.WorkflowStatus.RUNNING)
    assert json.loads(ok(cli("--json", "raise-event", f"{other}/stop")).stdout) == {"instance_id": other}
    assert complete(client, other).runtime_status == wf.WorkflowStatus.COMPLETED


def test_suspend_resume_terminate_one(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("ctl")
    ok(cli("run", "waiting_wf", "-i", iid))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    result = ok(cli("suspend", iid, "-r", "coffee break"))
    assert result.stdout.strip() == f"Workflow '{iid}' suspended successfully"
    wait_for_status(client, iid, wf.WorkflowStatus.SUSPENDED)
    assert ok(cli("resume", iid, "--reason", "back")).stdout.strip() == f"Workflow '{iid}' resumed successfully"
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    history = json.loads(ok(cli("export", iid)).stdout)["history"]
    suspended = next(e for e in history if e["kind"] == "executionSuspended")
    resumed = next(e for e in history if e["kind"] == "executionResumed")
    assert suspended["details"]["input"] == "coffee break" and resumed["details"]["input"] == "back"
    statuses = [r["status"] for r in json.loads(ok(cli("history", iid, "-o", "json")).stdout)]
    assert "SUSPENDED" in statuses and "RESUMED" in statuses

    result = ok(cli("terminate", iid, "-o", '{"why": "done"}'))
    assert result.stdout.strip() == f"Workflow '{iid}' terminated successfully"
    state = wait_for_status(client, iid, wf.WorkflowStatus.TERMINATED)
    assert json.loads(state.serialized_output) == {"why": "done"}
    assert cli("wait", iid).exit_code == 4


def test_bulk_suspend_resume_terminate_by_filter(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("bulk")
    ids = [f"{prefix}-{i}" for i in range(3)]
    for iid in ids:
        ok(cli("run", "waiting_wf", "-i", iid))
    ok(cli("run", "hello_wf", "-i", f"{prefix}-other", "-x", '"o"', "--wait"))
    for iid in ids:
        wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)

    # Without -y it asks; "n" leaves everything as it was.
    declined = cli("suspend", "--prefix", prefix, "-m", "1h", input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.stderr
    assert declined.stderr.startswith(f"3 workflow instance(s) match: {', '.join(ids)}")
    assert all(r["runtimeStatus"] == "RUNNING" for r in _listed(cli, prefix, "-w", "waiting_wf"))

    accepted = cli("suspend", "--prefix", prefix, "-w", "waiting_wf", input="y\n")
    assert accepted.exit_code == 0 and accepted.stdout.strip() == "Suspended 3 workflow instance(s)"
    for iid in ids:
        wait_for_status(client, iid, wf.WorkflowStatus.SUSPENDED)
    resumed = json.loads(ok(cli("--json", "resume", "--prefix", prefix, "-y")).stdout)
    assert resumed == {"count": 3, "instances": ids}
    for iid in ids:
        wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    terminated = ok(cli("terminate", "--prefix", prefix, "-s", "RUNNING", "-y", "-o", '"bulk"'))
    assert terminated.stdout.strip() == "Terminated 3 workflow instance(s)"
    for iid in ids:
        assert json.loads(wait_for_status(client, iid, wf.WorkflowStatus.TERMINATED).serialized_output) == "bulk"
    assert _listed(cli, prefix, "-w", "hello_wf")[0]["runtimeStatus"] == "COMPLETED"
    nothing = ok(cli("resume", "--prefix", prefix, "-y"))
    assert nothing.stdout.strip() == "No workflow instance matches; nothing to resume"


def _listed(cli: Cli, prefix: str, *args: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(ok(cli("list", "--prefix", prefix, "-o", "json", *args)).stdout)
    return records


# -- purge, rerun ---------------------------------------------------------------------------------------


def test_purge_by_id_and_by_flags(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("purge")
    for i in range(2):
        ok(cli("run", "hello_wf", "-i", f"{prefix}-{i}", "-x", '"p"', "--wait"))
    result = ok(cli("purge", f"{prefix}-0", f"{prefix}-1"))
    assert result.stdout.splitlines() == ["Purging 2 workflow instance(s)", f'Purged workflow instance "{prefix}-0"',
                                          f'Purged workflow instance "{prefix}-1"']
    assert _listed(cli, prefix) == []

    ok(cli("run", "hello_wf", "-i", f"{prefix}-done", "-x", '"p"', "--wait"))
    ok(cli("run", "waiting_wf", "-i", f"{prefix}-active"))
    wait_for_status(client, f"{prefix}-active", wf.WorkflowStatus.RUNNING)
    # Nothing is older than a day; then every finished instance is, up to now.
    assert ok(cli("purge", "--all-older-than", "24h")).stdout.strip() == "Purged 0 workflow instance(s)"
    assert [r["instanceID"] for r in _listed(cli, prefix)] == [f"{prefix}-done", f"{prefix}-active"]
    assert ok(cli("purge", "--all-older-than", "0s", "--all-filter-status", "COMPLETED")).exit_code == 0
    assert [r["instanceID"] for r in _listed(cli, prefix)] == [f"{prefix}-active"]
    # A running instance goes only with --force (and dapr's rule: a non-terminal status needs it).
    needs_force = cli("purge", "--all-older-than", "0s", "--all-filter-status", "RUNNING")
    assert needs_force.exit_code == 2 and "--force is required" in needs_force.stderr
    forced = json.loads(ok(cli("--json", "purge", "--all-older-than", "0s", "--all-filter-status", "RUNNING",
                               "--force")).stdout)
    assert f"{prefix}-active" in forced["purged"]
    assert _listed(cli, prefix) == []

    ok(cli("run", "hello_wf", "-i", f"{prefix}-last", "-x", '"p"', "--wait"))
    assert ok(cli("purge", "--all")).stdout.startswith("Purged ")
    assert _listed(cli, prefix) == []


def test_rerun_from_the_beginning_from_an_event_and_with_new_input(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("rr")
    ok(cli("run", "hello_wf", "-i", iid, "-x", '"a"', "--wait"))
    result = ok(cli("rerun", iid))
    new = result.stdout.strip().removeprefix("Rerunning workflow instance: ")
    assert new != iid and assert_completed(complete(client, new)) == "hello aa"

    scheduled = next(r for r in json.loads(ok(cli("history", iid, "-o", "json")).stdout) if r["type"] == "TaskScheduled")
    again = f"{iid}-again"
    result = ok(cli("rerun", iid, "-e", str(scheduled["eventId"]), "--new-instance-id", again, "-x", '"zz"'))
    assert result.stdout.strip() == f"Rerunning workflow instance: {again}"
    assert assert_completed(complete(client, again)) == "hello zzzz"


# -- show, count, export, the `wf` alias ----------------------------------------------------------------


def test_show_count_export(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("facts")
    iid = run_full(cli, client, prefix)
    assert cli("run", "failing_wf", "-i", f"{prefix}-bad", "-x", "2", "--wait").exit_code == 4

    lines = dict(line.split(":", 1) for line in ok(cli("show", iid)).stdout.splitlines())
    assert lines["ID"].strip() == iid and lines["Status"].strip() == "COMPLETED"
    assert lines["Name"].strip() == "full_wf" and lines["Custom status"].strip() == "almost"
    assert lines["Input"].strip() == "3" and lines["Output"].strip().startswith('{"a": 6')
    assert lines["History"].strip().endswith("turns")
    bad = dict(line.split(":", 1) for line in ok(cli("show", f"{prefix}-bad")).stdout.splitlines())
    assert bad["Failure"].strip().startswith("TaskFailedError:") and "boom 2" in bad["Failure"]
    shown = json.loads(ok(cli("show", iid, "--json")).stdout)
    assert shown["instance_id"] == iid and "history" not in shown and shown["history_events"] > 10

    assert ok(cli("count", "--prefix", prefix)).stdout.strip() == "3"  # with the child workflow
    assert json.loads(ok(cli("--json", "count", "--prefix", prefix, "-s", "FAILED")).stdout) == {"count": 1}
    grouped = table_rows(ok(cli("count", "--prefix", prefix, "--group-by", "status")).stdout)
    assert grouped == [["STATUS", "COUNT"], ["COMPLETED", "2"], ["FAILED", "1"]]
    by_name = json.loads(ok(cli("count", "--prefix", prefix, "--group-by", "name", "--json")).stdout)
    assert by_name == {"count": 3, "groups": {"child_wf": 1, "failing_wf": 1, "full_wf": 1}}

    exported = json.loads(ok(cli("export", iid)).stdout)
    assert exported["instance_id"] == iid and exported["status"] == "COMPLETED"
    assert exported["history"][1]["kind"] == "executionStarted" and exported["history"][-1]["kind"] == "executionCompleted"


def test_the_wf_alias_and_options_after_the_subcommand(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("alias")
    runner = CliRunner()
    started = runner.invoke(main, ["wf", "run", "hello_wf", "-i", iid, "-x", '"w"', "--wait", "--address",
                                   server.http_url], catch_exceptions=False)
    assert started.exit_code == 0, started.output
    by_env = runner.invoke(main, ["workflow", "ls", "--prefix", iid, "-o", "ids"],
                           env={"DURAHUB_ADDRESS": server.http_url}, catch_exceptions=False)
    assert by_env.stdout.split() == [iid]
    inside_run = runner.invoke(main, ["wf", "show", iid, "--json"],
                               env={"DURAHUB_ADDRESS": None, "DAPR_HTTP_PORT": str(server.http_port)},
                               catch_exceptions=False)
    assert json.loads(inside_run.stdout)["status"] == "COMPLETED"


def test_instances_of_another_app(cli: Cli) -> None:
    """`-a/--app-id` names the app whose instance a command addresses (default: the engine's own) and narrows
    listings to it; bulk actions address each matching instance in its own app."""
    mine, theirs = new_id("app"), new_id("app")
    # Scheduled an hour ahead: both stay PENDING, whoever's workers are connected.
    ok(cli("run", "shop_wf", "-i", mine, "-s", "1h"))
    ok(cli("run", "shop_wf", "-i", theirs, "-s", "1h", "-a", "shop"))
    assert cli("show", theirs).exit_code == 3
    shown = dict(line.split(":", 1) for line in ok(cli("show", theirs, "-a", "shop")).stdout.splitlines())
    assert shown["App"].strip() == "shop"
    assert ok(cli("-a", "shop", "list", "-w", "shop_wf", "-o", "ids")).stdout.split() == [theirs]
    every_app = json.loads(ok(cli("list", "-w", "shop_wf", "-o", "json")).stdout)
    assert {(r["instanceID"], r["appID"]) for r in every_app} == {(mine, "durahub"), (theirs, "shop")}
    assert json.loads(ok(cli("count", "-w", "shop_wf", "--group-by", "app", "--json")).stdout)["groups"] == {
        "durahub": 1, "shop": 1}

    assert ok(cli("terminate", "-w", "shop_wf", "-y")).stdout.strip() == "Terminated 2 workflow instance(s)"
    assert "Purged workflow instance" in ok(cli("purge", theirs, "-a", "shop", "--force")).stdout
    assert cli("show", theirs, "-a", "shop").exit_code == 3
    ok(cli("purge", mine, "--force"))


def test_show_says_what_a_running_instance_waits_on(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("waits")
    ok(cli("run", "waiting_wf", "-i", iid))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    lines = ok(cli("show", iid)).stdout.splitlines()
    assert "Waiting on:     event stop" in lines
    as_json = json.loads(ok(cli("show", iid, "--json")).stdout)
    assert [e["name"] for e in as_json["waiting_on"]["events"]] == ["stop"]
    ok(cli("raise-event", f"{iid}/stop"))
    complete(client, iid)
    assert not any(line.startswith("Waiting on:") for line in ok(cli("show", iid)).stdout.splitlines())
    assert json.loads(ok(cli("show", iid, "--json")).stdout)["waiting_on"] is None
