"""API-token enforcement (`--api-token` / DAPR_API_TOKEN) on gRPC and HTTP: every call but health needs the
`dapr-api-token` header, and the SDK sends it when DAPR_API_TOKEN is set."""

from __future__ import annotations

import time

import dapr.ext.workflow as wf
import grpc
import httpx
import pytest

from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = pytest.mark.timeout(120)


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
