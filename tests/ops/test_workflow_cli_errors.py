"""`durahub workflow`: errors and exit codes (one line on stderr, never a traceback), the API token, and flag
parity with `dapr workflow`."""

from __future__ import annotations

import json
from collections.abc import Callable

import dapr.ext.workflow as wf
import pytest

pytest.importorskip("durahub.cli_workflow", reason="the CLI runs in process where durahub is installed")
import click  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from durahub.cli_workflow import workflow  # noqa: E402
from testsupport.process import free_port  # noqa: E402
from testsupport.sdk import new_id, wait_for_status  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

pytestmark = [pytest.mark.timeout(120)]


def waiting_wf(ctx: wf.DaprWorkflowContext, x: object):
    stop = yield ctx.wait_for_external_event("stop")
    return stop


def quick_wf(ctx: wf.DaprWorkflowContext, x: object) -> object:
    return x


WORKFLOWS = [waiting_wf, quick_wf]

Cli = Callable[..., Result]


def invoke(address: str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(workflow, ["--address", address, *args], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def cli(server: DurahubServer, runtime: wf.WorkflowRuntime) -> Cli:
    return lambda *args, **kw: invoke(server.http_url, *args, **kw)


def one_error_line(result: Result) -> str:
    """The single line a failed command prints on stderr (no traceback)."""
    assert "Traceback" not in result.stdout, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [
    ["history", "{id}"], ["history", "{id}", "--follow"], ["show", "{id}"], ["export", "{id}"], ["wait", "{id}"],
    ["suspend", "{id}"], ["resume", "{id}"], ["terminate", "{id}"], ["raise-event", "{id}/go"],
    ["purge", "{id}"], ["rerun", "{id}"], ["rerun", "{id}", "-e", "1"],
    ["tree", "{id}"], ["tree", "{id}", "--watch"], ["graph", "{id}"],
    ["graph", "{id}", "-o", "svg"], ["graph", "{id}", "--file", "unwritten.svg"],
])
def test_unknown_instance_exits_3(cli: Cli, args: list[str]) -> None:
    missing = new_id("missing")
    result = cli(*[a.replace("{id}", missing) for a in args])
    assert result.exit_code == 3, result.output
    line = one_error_line(result)
    assert line.startswith("Error: ") and missing in line


def test_unreachable_engine_exits_1_with_one_line() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    for args in (["list"], ["show", "x"], ["run", "w"], ["purge", "--all"], ["count"]):
        result = invoke(address, *args)
        assert result.exit_code == 1
        line = one_error_line(result)
        assert line.startswith(f"Error: cannot reach the durahub engine at {address}")
    as_json = invoke(address, "--json", "list")
    assert as_json.exit_code == 1 and as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"].startswith("cannot reach the durahub engine")


def test_actions_the_state_does_not_allow_exit_1(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    done = new_id("done")
    assert cli("run", "quick_wf", "-i", done, "-x", "1", "--wait").exit_code == 0
    active = new_id("active")
    assert cli("run", "waiting_wf", "-i", active).exit_code == 0
    wait_for_status(client, active, wf.WorkflowStatus.RUNNING)

    cases = {
        ("suspend", done): "is COMPLETED: it can no longer be suspended",
        ("resume", done): "is COMPLETED: it can no longer be resumed",
        ("terminate", done): "is COMPLETED: it can no longer be terminated",
        ("raise-event", f"{done}/go"): "is COMPLETED: it can no longer receive events",
        ("run", "waiting_wf", "-i", active): "already exists",
        ("rerun", active, "-e", "1"): "not in a terminal state",
        ("rerun", done): "scheduled no activity, timer or child workflow to re-run from",
        ("purge", active): "has not yet completed",
    }
    for args, message in cases.items():
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in one_error_line(result), args
    as_json = cli("--json", "suspend", done)
    assert as_json.exit_code == 1 and "no longer be suspended" in json.loads(as_json.stderr)["error"]
    assert cli("raise-event", f"{active}/stop").exit_code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["purge"], "one or more workflow instance ID arguments are required"),
    (["purge", "x", "--all"], "no arguments are accepted when using purge all flags"),
    (["purge", "--all", "--all-older-than", "1h"], "cannot be used together"),
    (["purge", "x", "--all-filter-status", "FAILED"], "--all-filter-status can only be used with --all-older-than"),
    (["purge", "--all-older-than", "1h", "--all-filter-status", "SUSPENDED"], "--force is required"),
    (["purge", "--all-older-than", "someday"], "neither a duration"),
    (["run", "w", "-x", "{not json"], "not valid JSON"),
    (["run", "w", "-s", "soon"], "neither a duration"),
    (["raise-event", "no-slash"], "the argument must be in the format '<instance-id>/<event-name>'"),
    (["suspend"], "give the ID of the instance to suspend, or filters"),
    (["terminate", "x", "-w", "wf"], "give instance IDs or filters"),
    (["terminate", "x", "-o", "not json"], "not valid JSON"),
    (["list", "--watch", "-o", "json"], "--watch draws a table"),
    (["history", "x", "--follow", "-o", "yaml"], "--follow draws a table"),
    (["list", "-o", "table"], "Invalid value for '-o' / '--output'"),
    (["wait", "x", "--timeout", "soon"], "is not a duration"),
    (["history"], "Missing argument"),
])
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    # No engine is needed: usage is checked before anything is sent.
    result = invoke(f"http://127.0.0.1:{free_port()}", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_help_documents_the_exit_codes() -> None:
    text = " ".join(CliRunner().invoke(workflow, ["--help"]).stdout.split())
    assert ("Exit codes: 0 ok, 1 error (engine unreachable, token refused, an action the instance's state does not"
            " allow), 2 usage, 3 no such instance, 4 a waited workflow ended FAILED or TERMINATED, 124 a wait timed"
            " out.") in text


def test_kubernetes_mode_is_refused() -> None:
    result = invoke("http://127.0.0.1:1", "-k", "list")
    assert result.exit_code == 1 and "no Kubernetes mode" in one_error_line(result)


def test_api_token(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory(extra_args=["--api-token", "s3cret"])
    for token_args, env in (([], {"DAPR_API_TOKEN": None}), (["--api-token", "wrong"], {})):
        denied = invoke(srv.http_url, *token_args, "list", env=env)
        assert denied.exit_code == 1
        line = one_error_line(denied)
        assert "refused the API token (401)" in line and "--api-token or set DAPR_API_TOKEN" in line
    iid = new_id("tok")
    started = invoke(srv.http_url, "--api-token", "s3cret", "run", "quick_wf", "-i", iid)
    assert started.exit_code == 0, started.output
    listed = invoke(srv.http_url, "list", "-o", "ids", env={"DAPR_API_TOKEN": "s3cret"})
    assert listed.stdout.split() == [iid]
    after = invoke(srv.http_url, "show", iid, "--api-token", "s3cret", "--json")  # after the subcommand too
    assert json.loads(after.stdout)["status"] == "PENDING"  # no worker for this server


# dapr's `workflow` flags (dapr/cli at bc695e97): the persistent flags of cmd/workflow/workflow.go (`-k`, `-n`,
# `-a`), its shared helpers outputFunc (`-o`), filterCmd (`-w`, `-s`, `-m`), connectionCmd (`-c`, `-t`),
# instanceIDCmd (`-i`) and inputCmd (`-x`), and each command's own flags in cmd/workflow/{list,history,run,
# raiseevent,suspend,resume,terminate,purge,rerun}.go.
DAPR_PERSISTENT = [("--kubernetes", "-k"), ("--namespace", "-n"), ("--app-id", "-a")]
DAPR_COMMANDS: dict[str, list[tuple[str, str | None]]] = {
    "list": [("--filter-name", "-w"), ("--filter-status", "-s"), ("--filter-max-age", "-m"), ("--output", "-o"),
             ("--connection-string", "-c"), ("--table-name", "-t")],
    "history": [("--output", "-o")],
    "run": [("--instance-id", "-i"), ("--input", "-x"), ("--start-time", "-s")],
    "raise-event": [("--input", "-x")],
    "suspend": [("--reason", "-r")],
    "resume": [("--reason", "-r")],
    "terminate": [("--output", "-o")],
    "purge": [("--all-older-than", None), ("--all", None), ("--all-filter-status", None), ("--force", None),
              ("--scheduler-namespace", None), ("--connection-string", "-c"), ("--table-name", "-t")],
    "rerun": [("--event-id", "-e"), ("--new-instance-id", None), ("--input", "-x")],
}
DAPR_OUTPUTS = {"list": ["short", "wide", "yaml", "json", "ids"], "history": ["short", "wide", "yaml", "json"]}
DAPR_ALIASES = {"ls": "list"}


def _options(command: click.Command) -> dict[str, list[str]]:
    """Each long option of the command with every spelling it accepts."""
    found: dict[str, list[str]] = {}
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    found[opt] = list(param.opts)
    return found


def test_flag_parity_with_dapr_workflow() -> None:
    ctx = click.Context(workflow)
    assert all(workflow.get_command(ctx, alias) is workflow.get_command(ctx, name)
               for alias, name in DAPR_ALIASES.items())
    for name, flags in DAPR_COMMANDS.items():
        command = workflow.get_command(ctx, name)
        assert command is not None, f"no `{name}` command"
        options = _options(command)
        for long, short in [*flags, *DAPR_PERSISTENT]:
            assert long in options, f"`{name}` has no {long}"
            if short is not None:
                assert short in options[long], f"`{name} {long}` has no short form {short}"
        for long, short in DAPR_PERSISTENT:  # also before the subcommand, as cobra's persistent flags are
            assert short in _options(workflow)[long]
    for name, formats in DAPR_OUTPUTS.items():
        command = workflow.get_command(ctx, name)
        assert command is not None
        output = next(p for p in command.params if p.name == "output")
        assert list(getattr(output.type, "choices", [])) == formats and output.default == "short"
