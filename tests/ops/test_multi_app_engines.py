"""Apps across engine processes. Several engines sharing one PostgreSQL database: app A's worker attached to one engine, app B's to
another (Dapr's shape: a sidecar per app). Cross-app activities and children still route by app: the engine
without B's workers leaves B's tasks unleased and announces them; the engine with them claims them at once.
Work of an app whose worker moves to the other engine follows it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from testsupport.databases import BACKEND, create_pg_database
from testsupport.process import wait_until
from testsupport.sdk import complete, make_client, make_runtime, retry_unavailable
from testsupport.server import DurahubServer

pytest.importorskip("durahub", reason="runs once, in the main (1.19) pass")
pytestmark = [pytest.mark.timeout(180)]
own_postgres = pytest.mark.skipif(BACKEND != "sqlite", reason="runs once; it brings its own PostgreSQL database")


def b_double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * 2


def b_child(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity("b_double", input=x)
    return y + 1


def a_parent(ctx: wf.DaprWorkflowContext, x: int):
    doubled = yield ctx.call_activity("b_double", input=x, app_id="appb")
    child = yield ctx.call_child_workflow("b_child", input=doubled, instance_id=f"{ctx.instance_id}-c", app_id="appb")
    return {"doubled": doubled, "child": child}


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[DurahubServer]]:
    try:
        url = create_pg_database()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")
    servers = []
    for i, app in enumerate(("appa", "appb")):
        s = DurahubServer(db_path=tmp_path / f"unused{i}.db", log_path=tmp_path / f"engine{i}.log",
                          extra_args=["--app-id", app, "--lease-seconds", "3", "--worker-grace-seconds", "0.5"])
        s.db = url
        servers.append(s)
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            s.dispose()


@own_postgres
def test_cross_app_calls_between_apps_on_two_engines(engines: list[DurahubServer]) -> None:
    engine_a, engine_b = engines
    a_rt = make_runtime(engine_a, workflows=[a_parent])
    b_rt = make_runtime(engine_b, workflows=[b_child], activities=[b_double])
    client = make_client(engine_a)
    try:
        ids = [client.schedule_new_workflow(a_parent, input=n) for n in range(5)]
        for n, iid in enumerate(ids):
            assert json.loads(complete(client, iid, timeout=60).serialized_output) == {
                "doubled": 2 * n, "child": 4 * n + 1}
        # Each app's work ran on its own engine: B's activities and children were claimed by engine B.
        assert "event=tasks_taken_over" in engine_b.log_text()
    finally:
        client.close()
        b_rt.shutdown()
        a_rt.shutdown()


@own_postgres
def test_an_apps_work_follows_its_worker_to_another_engine(engines: list[DurahubServer]) -> None:
    """App B's worker leaves engine B and attaches to engine A (as app B, on an endpoint of its own): the B work
    A's workflows create from then on runs there."""
    engine_a, engine_b = engines
    a_rt = make_runtime(engine_a, workflows=[a_parent])
    b_grpc, _ = engine_a.open_app("appb")
    b_rt = make_runtime(engine_a, port=b_grpc, workflows=[b_child], activities=[b_double])
    client = make_client(engine_a)
    try:
        iid = client.schedule_new_workflow(a_parent, input=3)
        assert json.loads(complete(client, iid, timeout=60).serialized_output) == {"doubled": 6, "child": 13}
    finally:
        client.close()
        b_rt.shutdown()
        a_rt.shutdown()


def b_chain(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity("b_double", input=x)
    ev = yield ctx.wait_for_external_event("go")
    return y + ev


def test_an_attached_apps_endpoint_comes_back_when_the_engine_restarts(server_factory) -> None:
    """kill -9 the engine while app B's worker is attached to B's own endpoint: the restarted engine opens B's
    endpoint on the same ports, B's worker reconnects by itself, and B's workflow finishes."""
    srv: DurahubServer = server_factory()
    b_grpc, b_http = srv.open_app("appb")
    b_rt = make_runtime(srv, port=b_grpc, workflows=[b_chain], activities=[b_double])
    b_client = make_client(srv, port=b_grpc)
    try:
        iid = b_client.schedule_new_workflow(b_chain, input=4)
        b_client.wait_for_workflow_start(iid, timeout_in_seconds=30)
        srv.kill()
        srv.start()
        wait_until(lambda: "event=app_endpoint_reopened app=appb" in srv.log_text(), timeout=10,
                   message="app B's endpoint was not reopened")
        apps = {a["app_id"]: a for a in srv.http_get("/durahub/v1/apps").json()}
        assert (apps["appb"]["grpc_port"], apps["appb"]["http_port"]) == (b_grpc, b_http)
        retry = retry_unavailable  # the client's channel reconnects too
        retry(lambda: b_client.raise_workflow_event(iid, "go", data=1))
        st = b_client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
        assert st is not None and json.loads(st.serialized_output) == 9
    finally:
        b_client.close()
        b_rt.shutdown()
