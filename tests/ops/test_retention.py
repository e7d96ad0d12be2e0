"""Retention (`durahub serve --retention-*`, Dapr's stateRetentionPolicy) against a real server, through the
official SDK: finished instances vanish once their status's time to live is up, each instance on its own
(children too); running ones, those with a longer time to live and those that finished before retention was
set stay; every sweep that purged something says so in the log; bad durations are usage errors; and two
engines on one PostgreSQL database purge each instance exactly once."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from testsupport.databases import BACKEND
from testsupport.process import wait_until
from testsupport.sdk import complete, make_client, new_id, running_runtime, state_of, wait_for_status
from testsupport.server import SERVER_PYTHON, DurahubServer, server_env

pytestmark = [pytest.mark.timeout(180)]

PURGED = re.compile(r"event=retention_purged count=(\d+) status=(\S+)")


def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def done_wf(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity(step, input=x)
    return y


def failing_wf(ctx: wf.DaprWorkflowContext, msg: str):
    yield ctx.call_activity(step, input=0)
    raise ValueError(msg)


def waiting_wf(ctx: wf.DaprWorkflowContext, _):
    value = yield ctx.wait_for_external_event("go")
    return value


def parent_catches_wf(ctx: wf.DaprWorkflowContext, msg: str):
    try:
        yield ctx.call_child_workflow(failing_wf, input=msg, instance_id=f"{ctx.instance_id}-child")
    except wf.TaskFailedError:
        return "child failed"
    return "no error"


RT = {"workflows": [done_wf, failing_wf, waiting_wf, parent_catches_wf], "activities": [step]}


def _gone(client: wf.DaprWorkflowClient, *ids: str) -> Callable[[], bool]:
    return lambda: all(state_of(client, iid) is None for iid in ids)


def _purged_by_status(srv: DurahubServer) -> Counter[str]:
    """What the server's `retention_purged` lines add up to, per status."""
    counts: Counter[str] = Counter()
    for total, statuses in PURGED.findall(srv.log_path.read_text(errors="replace")):
        parts = dict(part.split(":") for part in statuses.split(","))
        assert sum(int(n) for n in parts.values()) == int(total), statuses
        counts.update({status: int(n) for status, n in parts.items()})
    return counts


def test_finished_instances_vanish_after_their_status_ttl_and_the_others_stay(
    server_factory: Callable[..., DurahubServer],
) -> None:
    srv = server_factory(extra_args=["--retention-completed", "1s", "--retention-terminated", "1s",
                                     "--retention-any-terminal", "1h"])
    with running_runtime(srv, **RT):
        client = make_client(srv)
        done, failed, parent = new_id("done"), new_id("failed"), new_id("parent")
        waiting, terminated = new_id("waiting"), new_id("terminated")
        client.schedule_new_workflow(done_wf, input=1, instance_id=done)
        client.schedule_new_workflow(failing_wf, input="boom", instance_id=failed)
        client.schedule_new_workflow(parent_catches_wf, input="child boom", instance_id=parent)
        client.schedule_new_workflow(waiting_wf, instance_id=waiting)
        client.schedule_new_workflow(waiting_wf, instance_id=terminated)
        wait_for_status(client, terminated, wf.WorkflowStatus.RUNNING)
        client.terminate_workflow(terminated)
        assert complete(client, done).runtime_status == wf.WorkflowStatus.COMPLETED
        assert complete(client, failed).runtime_status == wf.WorkflowStatus.FAILED
        assert complete(client, parent).runtime_status == wf.WorkflowStatus.COMPLETED
        assert complete(client, terminated).runtime_status == wf.WorkflowStatus.TERMINATED
        wait_for_status(client, waiting, wf.WorkflowStatus.RUNNING)

        wait_until(_gone(client, done, parent, terminated), timeout=30,
                   message="completed and terminated instances were not purged")
        # FAILED falls under --retention-any-terminal (1h): the failed instance and the parent's failed child
        # stay (retention is per instance, never recursive); the running one stays too.
        assert client.get_workflow_state(failed).runtime_status == wf.WorkflowStatus.FAILED
        assert client.get_workflow_state(f"{parent}-child").runtime_status == wf.WorkflowStatus.FAILED
        assert client.get_workflow_state(waiting).runtime_status == wf.WorkflowStatus.RUNNING

        client.raise_workflow_event(waiting, "go", data="now")
        assert complete(client, waiting).runtime_status == wf.WorkflowStatus.COMPLETED
        wait_until(_gone(client, waiting), timeout=30, message="a late finisher was not purged")
        client.close()

    log = srv.log_path.read_text(errors="replace")
    assert "event=retention_enabled completed=1s failed=1h terminated=1s canceled=1h" in log
    assert _purged_by_status(srv) == {"COMPLETED": 3, "TERMINATED": 1}


def test_instances_finished_before_retention_was_set_are_kept(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    old, new = new_id("old"), new_id("new")
    with running_runtime(srv, **RT):
        client = make_client(srv)
        client.schedule_new_workflow(done_wf, input=1, instance_id=old)
        assert complete(client, old).runtime_status == wf.WorkflowStatus.COMPLETED
        client.close()
    srv.stop()
    srv.extra_args = ["--retention-any-terminal", "0s"]
    srv.start()
    with running_runtime(srv, **RT):
        client = make_client(srv)
        client.schedule_new_workflow(done_wf, input=2, instance_id=new)
        assert complete(client, new).runtime_status == wf.WorkflowStatus.COMPLETED
        wait_until(_gone(client, new), timeout=30, message="an instance finishing under the policy was kept")
        # `old` finished earlier than `new`, so every sweep that took `new` was past `old`'s time too.
        assert client.get_workflow_state(old).runtime_status == wf.WorkflowStatus.COMPLETED
        client.close()
    assert _purged_by_status(srv) == {"COMPLETED": 1}


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--retention-completed", "15x"], {}, "Invalid value for '--retention-completed': '15x' is not a duration"),
    (["--retention-any-terminal", "3d"], {}, "'3d' is not a duration (like 90s, 15m, 24h or 1h30m)"),
    ([], {"DURAHUB_RETENTION_FAILED": "-5m"}, "Invalid value for '--retention-failed': '-5m' is negative"),
])
def test_a_bad_duration_is_a_usage_error(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    out = subprocess.run([SERVER_PYTHON, "-m", "durahub", "serve", "--db", str(tmp_path / "never.db"), *args],
                         env={**server_env(), **env}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Usage: " in out.stderr and message in out.stderr, out.stderr
    assert not (tmp_path / "never.db").exists()


@pytest.mark.skipif(BACKEND != "postgres", reason="engines share a database on PostgreSQL (DURAHUB_TEST_BACKEND)")
def test_two_engines_on_one_postgres_database_purge_each_instance_once(
    server_factory: Callable[..., DurahubServer],
) -> None:
    args = ["--retention-completed", "0s"]
    first = server_factory(extra_args=args)
    second = server_factory(start=False, backend="sqlite", extra_args=args)
    second.db = first.db  # the first one's PostgreSQL database (which it drops when the test ends)
    second.start()
    try:
        ids = [new_id("mp") for _ in range(120)]
        with running_runtime(first, **RT), running_runtime(second, **RT):
            clients = [make_client(first), make_client(second)]
            for i, iid in enumerate(ids):
                clients[i % 2].schedule_new_workflow(done_wf, input=i, instance_id=iid)
            wait_until(_gone(clients[0], *ids), timeout=60, message="not every instance was purged")
            for c in clients:
                c.close()
    finally:
        second.stop()
    # Each instance purged by one engine or the other, never both, and no sweep failed.
    assert _purged_by_status(first) + _purged_by_status(second) == {"COMPLETED": len(ids)}
    for srv in (first, second):
        log = srv.log_path.read_text(errors="replace")
        assert "retention_sweep_failed" not in log and "level=ERROR" not in log, srv.log_tail()
