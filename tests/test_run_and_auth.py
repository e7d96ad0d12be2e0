"""`durahub run` (engine next to an app command) and API-token enforcement on gRPC and HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import dapr.ext.workflow as wf
import grpc
import httpx
import pytest
from helpers import REPO_ROOT, SERVER_PYTHON, DurahubServer, free_port, new_id

pytestmark = pytest.mark.timeout(120)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run(args: list[str], tmp_path, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SERVER_PYTHON, "-m", "durahub", "run", "--db", str(tmp_path / "run.db"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), cwd=str(tmp_path), **kw,
    )


APP = """
import os, sys, urllib.request
import dapr.ext.workflow as wf
port = os.environ["DAPR_GRPC_PORT"]
with urllib.request.urlopen(f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/healthz") as r:
    assert r.status == 204
rt = wf.WorkflowRuntime(host="127.0.0.1", port=port)
@rt.workflow(name="hello")
def hello(ctx, name):
    return f"hello {name} from {os.environ['APP_ID']}"
rt.start()
c = wf.DaprWorkflowClient(host="127.0.0.1", port=port)
iid = c.schedule_new_workflow(hello, input="world")
st = c.wait_for_workflow_completion(iid, timeout_in_seconds=30)
print("RESULT", st.serialized_output, flush=True)
rt.shutdown()
sys.exit(7)
"""


def test_run_starts_engine_exports_ports_and_returns_the_exit_code(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    (tmp_path / "app.py").write_text(APP)
    proc = _run(["--app-id", "shop", "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--",
                 sys.executable, "app.py"], tmp_path)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 7, out
    assert '== APP == RESULT "hello world from shop"' in out
    assert "== durahub == " in out and "event=server_started" in out
    # The engine it started is gone.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


def test_run_attaches_to_a_running_engine_and_leaves_it_running(server: DurahubServer, tmp_path) -> None:
    proc = _run(["--grpc-port", str(server.grpc_port), "--http-port", str(server.http_port), "--",
                 sys.executable, "-c", "import os; print('PORT', os.environ['DAPR_GRPC_PORT'])"], tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "attaching" in out and f"PORT {server.grpc_port}" in out
    assert httpx.get(f"{server.http_url}/v1.0/healthz").status_code == 204


def test_run_forwards_sigterm_and_stops_the_engine(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\nprint('APP-IS-UP', flush=True)\ntime.sleep(60)"
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c", script],
                tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "APP-IS-UP" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 5, out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


def test_ctrl_c_stops_app_and_engine(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    script = ("import time\ntry:\n    print('APP-IS-UP', flush=True)\n    time.sleep(60)\n"
              "except KeyboardInterrupt:\n    print('app: interrupted', flush=True)\n    raise SystemExit(3)")
    # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole process group.
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c", script],
                tmp_path, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "APP-IS-UP" in line:
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert "app: interrupted" in out and "event=server_stopped" in out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


def test_engine_goes_when_run_is_killed(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--",
                 sys.executable, "-c", "print('APP-IS-UP', flush=True); import time; time.sleep(60)"], tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "APP-IS-UP" in line:
            break
    assert httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz").status_code == 204
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)
        except httpx.HTTPError:
            return
        time.sleep(0.2)
    pytest.fail("the engine outlived a killed `durahub run`")


def test_api_token_required_everywhere_but_health(server_factory) -> None:
    srv: DurahubServer = server_factory(extra_args=["--api-token", "s3cret"])
    assert httpx.get(f"{srv.http_url}/v1.0/healthz").status_code == 204
    assert httpx.get(f"{srv.http_url}/v1.0/healthz/outbound").status_code == 204
    denied = httpx.post(f"{srv.http_url}/v1.0/workflows/dapr/wf/start", params={"instanceID": "x1"})
    assert denied.status_code == 401 and denied.json()["errorCode"] == "ERR_UNAUTHORIZED"
    ok = httpx.get(f"{srv.http_url}/v1.0/metadata", headers={"dapr-api-token": "s3cret"})
    assert ok.status_code == 200
    wrong = httpx.get(f"{srv.http_url}/durahub/v1/instances", headers={"dapr-api-token": "nope"})
    assert wrong.status_code == 401

    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from dapr.ext.workflow._durabletask.internal import protos as pb

    channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    stub = stubs.TaskHubSidecarServiceStub(channel)
    iid = new_id("tok")
    req = pb.CreateInstanceRequest(instanceId=iid, name="wf")
    req.scheduledStartTimestamp.FromSeconds(int(time.time()) + 3600)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartInstance(req, timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    meta = [("dapr-api-token", "s3cret")]
    assert not stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), metadata=meta, timeout=10).exists
    stub.StartInstance(req, metadata=meta, timeout=10)
    assert stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), metadata=meta, timeout=10).exists
    channel.close()


def test_sdk_with_token_env_runs_workflows(server_factory, monkeypatch) -> None:
    srv: DurahubServer = server_factory(extra_args=["--api-token", "s3cret"])
    from dapr.conf import settings

    monkeypatch.setattr(settings, "DAPR_API_TOKEN", "s3cret")
    rt = wf.WorkflowRuntime(host="127.0.0.1", port=srv.port)

    def echo(ctx, x):
        return x

    rt.register_workflow(echo, name="echo_tok")
    rt.start()
    try:
        c = wf.DaprWorkflowClient(host="127.0.0.1", port=srv.port)
        iid = c.schedule_new_workflow("echo_tok", input=41)
        st = c.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        assert st.serialized_output == "41"
    finally:
        rt.shutdown()
