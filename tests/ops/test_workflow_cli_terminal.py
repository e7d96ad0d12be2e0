"""`durahub workflow` as users run it: `python -m durahub workflow ...` in a subprocess (exit codes, stdout and
stderr), and the live views `list --watch`, `history --follow` and `tree --watch` on a real terminal inside tmux,
read back with `capture-pane`.

Nothing here imports durahub, so it also runs in the legacy-SDK venv (the CLI runs on DURAHUB_SERVER_PYTHON).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from testsupport.process import REPO_ROOT, free_port, wait_until
from testsupport.sdk import new_id, wait_for_status
from testsupport.server import SERVER_PYTHON, DurahubServer, server_env

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]


def greet(ctx: wf.WorkflowActivityContext, name: str) -> str:
    return f"hello {name}"


def greet_wf(ctx: wf.DaprWorkflowContext, name: str):
    greeting = yield ctx.call_activity(greet, input=name)
    return greeting


def waiting_wf(ctx: wf.DaprWorkflowContext, x: object):
    stop = yield ctx.wait_for_external_event("stop")
    greeting = yield ctx.call_activity(greet, input=stop)
    return greeting


def failing_wf(ctx: wf.DaprWorkflowContext, x: object):
    raise RuntimeError("no luck")


def parent_wf(ctx: wf.DaprWorkflowContext, x: object):
    greeting = yield ctx.call_child_workflow(waiting_wf, input=x)
    return greeting


WORKFLOWS = [greet_wf, waiting_wf, failing_wf, parent_wf]
ACTIVITIES = [greet]


def durahub_wf(server: DurahubServer, *args: str, env: dict[str, str] | None = None,
               address: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [SERVER_PYTHON, "-m", "durahub", "workflow", *(["--address", server.http_url] if address else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**server_env(), **(env or {})},
                          cwd=str(REPO_ROOT), timeout=60)


def test_commands_in_a_subprocess(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("proc")
    done = durahub_wf(server, "run", "greet_wf", "-i", iid, "-x", '"ada"', "--wait")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"Workflow instance started successfully: {iid}",
                                        f"Workflow '{iid}' is COMPLETED; output: \"hello ada\""]
    # Inside `durahub run` the engine is found through DAPR_HTTP_PORT.
    listed = durahub_wf(server, "ls", "-o", "json", "--prefix", iid, address=False,
                        env={"DAPR_HTTP_PORT": str(server.http_port), "DURAHUB_ADDRESS": ""})
    assert listed.returncode == 0, listed.stderr
    assert [r["instanceID"] for r in json.loads(listed.stdout)] == [iid]

    failed = durahub_wf(server, "run", "failing_wf", "--wait")
    assert failed.returncode == 4 and "is FAILED" in failed.stdout and "no luck" in failed.stdout
    waiting = new_id("proc")
    assert durahub_wf(server, "run", "waiting_wf", "-i", waiting).returncode == 0
    wait_for_status(client, waiting, wf.WorkflowStatus.RUNNING)
    timed_out = durahub_wf(server, "wait", waiting, "--timeout", "0.1")
    assert timed_out.returncode == 124
    assert durahub_wf(server, "terminate", waiting).returncode == 0
    assert durahub_wf(server, "wait", waiting).returncode == 4

    missing = durahub_wf(server, "history", new_id("nope"))
    assert missing.returncode == 3 and missing.stdout == ""
    assert missing.stderr.startswith("Error: workflow instance") and len(missing.stderr.splitlines()) == 1
    unreachable = subprocess.run([SERVER_PYTHON, "-m", "durahub", "wf", "list"], capture_output=True, text=True,
                                 env={**server_env(), "DURAHUB_ADDRESS": f"http://127.0.0.1:{free_port()}"},
                                 cwd=str(REPO_ROOT), timeout=60)
    assert unreachable.returncode == 1 and "cannot reach the durahub engine" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr and len(unreachable.stderr.splitlines()) == 1


# -- live views in tmux ---------------------------------------------------------------------------------


class Terminal:
    """One command running in a tmux pane of a private tmux server (its own socket), read with capture-pane."""

    def __init__(self, command: str) -> None:
        self.socket = f"durahub-test-{uuid.uuid4().hex[:8]}"
        # The pane outlives the command, so that its exit status can be read.
        shell = f"{command}; echo EXIT=$?; sleep 600"
        self.tmux("new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "bash", "-c", shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "main")

    def shows(self, *texts: str) -> str:
        return wait_until(lambda: (lambda s: s if all(t in s for t in texts) else "")(self.screen()),
                          timeout=30, message=lambda: f"{texts} never shown; screen:\n{self.screen()}")

    def interrupt(self) -> None:
        self.tmux("send-keys", "-t", "main", "C-c")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture
def terminal(server: DurahubServer) -> Iterator[Callable[..., Terminal]]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    opened: list[Terminal] = []

    def open_terminal(*args: str, no_color: bool = False) -> Terminal:
        assignments = [f"PYTHONPATH={server_env()['PYTHONPATH']}", "TERM=xterm-256color"]
        assignments += ["NO_COLOR=1"] if no_color else []
        unset = [] if no_color else ["-u", "NO_COLOR"]
        cmd = ["env", *unset, *assignments, SERVER_PYTHON, "-m", "durahub", "wf", "--address", server.http_url,
               *args]
        t = Terminal(shlex.join(cmd))
        opened.append(t)
        return t

    yield open_terminal
    for t in opened:
        t.close()


def test_list_watch_redraws_until_ctrl_c(server: DurahubServer, client: wf.DaprWorkflowClient,
                                        terminal: Callable[..., Terminal]) -> None:
    prefix = new_id("watch")
    first = f"{prefix}-1"
    assert durahub_wf(server, "run", "waiting_wf", "-i", first).returncode == 0
    wait_for_status(client, first, wf.WorkflowStatus.RUNNING)
    term = terminal("list", "--watch", "--prefix", prefix)
    screen = term.shows("Every 1s: durahub workflow list", "NAME", "STATUS", first, "RUNNING")
    assert f"{prefix}-2" not in screen

    second = f"{prefix}-2"
    assert durahub_wf(server, "run", "greet_wf", "-i", second, "-x", '"bo"', "--wait").returncode == 0
    assert durahub_wf(server, "raise-event", f"{first}/stop", "-x", '"cy"').returncode == 0
    screen = term.shows(second)
    wait_until(lambda: term.screen().count("COMPLETED") == 2, timeout=30,
               message=lambda: f"both never COMPLETED on screen:\n{term.screen()}")
    # On a terminal, statuses are coloured (SGR escapes), NO_COLOR being unset.
    assert "\x1b[" in term.screen(escapes=True)

    term.interrupt()
    final = term.shows("EXIT=0")
    assert "Traceback" not in final and "KeyboardInterrupt" not in final


def test_history_follow_shows_new_events_and_honours_no_color(server: DurahubServer, client: wf.DaprWorkflowClient,
                                                             terminal: Callable[..., Terminal]) -> None:
    iid = new_id("follow")
    assert durahub_wf(server, "run", "waiting_wf", "-i", iid).returncode == 0
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    term = terminal("history", iid, "--follow", no_color=True)
    screen = term.shows(f"durahub workflow history {iid}", "ExecutionStarted", "TimerCreated", "waiting_wf")
    assert "EventRaised" not in screen and "ExecutionCompleted" not in screen

    assert durahub_wf(server, "raise-event", iid, "stop", "-x", '"dee"').returncode == 0
    screen = term.shows("EventRaised", "TaskScheduled", "TaskCompleted", "ExecutionCompleted", "COMPLETED")
    assert "\x1b[" not in term.screen(escapes=True)  # NO_COLOR: no colour at all

    term.interrupt()
    term.shows("EXIT=0")


def test_tree_watch_follows_the_children(server: DurahubServer, client: wf.DaprWorkflowClient,
                                         terminal: Callable[..., Terminal], tmp_path: Path) -> None:
    iid = new_id("tree")
    assert durahub_wf(server, "run", "parent_wf", "-i", iid, "-x", '"eve"').returncode == 0
    children = wait_until(lambda: durahub_wf(server, "ls", "--parent", iid, "-o", "ids").stdout.split(), timeout=30,
                          message="the child workflow never started")
    wait_for_status(client, children[0], wf.WorkflowStatus.RUNNING)
    term = terminal("tree", iid, "--watch")
    screen = term.shows(f"Every 1s: durahub workflow tree {iid}", "INSTANCE ID", "DURATION", f"└─ {children[0]}",
                        "so far")
    assert screen.count("RUNNING") == 2 and "COMPLETED" not in screen

    assert durahub_wf(server, "raise-event", f"{children[0]}/stop").returncode == 0
    wait_until(lambda: term.screen().count("COMPLETED") == 2, timeout=30,
               message=lambda: f"both never COMPLETED on screen:\n{term.screen()}")
    term.interrupt()
    assert "Traceback" not in term.shows("EXIT=0")

    # The graph of the same run, saved by a subprocess as users do.
    path = tmp_path / "parent.svg"
    saved = durahub_wf(server, "graph", iid, "--file", str(path))
    assert saved.returncode == 0 and saved.stdout.strip() == f"Wrote the svg graph of '{iid}' to {path}"
    assert path.read_text(encoding="utf-8").startswith("<svg") and "waiting_wf" in path.read_text(encoding="utf-8")
