"""The Dapr runtime API's workflow methods (`StartWorkflowBeta1` ...), driven by the last python-sdk whose
`DaprClient` still has them (1.16.x, run in its own virtualenv by scripts/test.sh)."""

from __future__ import annotations

import json

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import new_id
from testsupport.server import DurahubServer

DaprClient = pytest.importorskip("dapr.clients").DaprClient
if not hasattr(DaprClient, "start_workflow"):
    pytest.skip("this dapr SDK no longer has DaprClient workflow methods (removed in 1.17)", allow_module_level=True)

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]


def approval_wf(ctx: wf.DaprWorkflowContext, order: dict):
    ctx.set_custom_status("waiting")
    decision = yield ctx.wait_for_external_event("decision")
    return {"order": order, "decision": decision}


WORKFLOWS = [approval_wf]


@pytest.fixture(scope="module")
def dapr_client(server: DurahubServer, monkeypatch_module=None):
    from dapr.conf import settings

    settings.DAPR_GRPC_PORT = server.grpc_port
    settings.DAPR_HTTP_PORT = server.http_port
    with DaprClient(address=f"127.0.0.1:{server.grpc_port}") as client:
        yield client


def _status(client, iid: str) -> str:
    return client.get_workflow(instance_id=iid, workflow_component="dapr").runtime_status


def test_start_get_raise_pause_resume_purge(dapr_client) -> None:
    iid = new_id("rt")
    started = dapr_client.start_workflow(workflow_component="dapr", workflow_name="approval_wf",
                                         input={"item": "pen"}, instance_id=iid)
    assert started.instance_id == iid
    wait_until(lambda: _status(dapr_client, iid).upper() == "RUNNING", timeout=20)
    got = dapr_client.get_workflow(instance_id=iid, workflow_component="dapr")
    assert got.workflow_name == "approval_wf"
    assert json.loads(got.properties["dapr.workflow.input"]) == {"item": "pen"}

    dapr_client.pause_workflow(instance_id=iid, workflow_component="dapr")
    wait_until(lambda: _status(dapr_client, iid).upper() == "SUSPENDED", timeout=20)
    dapr_client.resume_workflow(instance_id=iid, workflow_component="dapr")
    wait_until(lambda: _status(dapr_client, iid).upper() == "RUNNING", timeout=20)
    dapr_client.raise_workflow_event(instance_id=iid, workflow_component="dapr", event_name="decision",
                                     event_data="approved")
    wait_until(lambda: _status(dapr_client, iid).upper() == "COMPLETED", timeout=20)
    out = json.loads(dapr_client.get_workflow(instance_id=iid, workflow_component="dapr")
                     .properties["dapr.workflow.output"])
    assert out == {"order": {"item": "pen"}, "decision": "approved"}
    dapr_client.purge_workflow(instance_id=iid, workflow_component="dapr")
    with pytest.raises(Exception, match="no such instance"):
        dapr_client.get_workflow(instance_id=iid, workflow_component="dapr")


def test_terminate_and_errors(dapr_client) -> None:
    iid = new_id("rt")
    dapr_client.start_workflow(workflow_component="dapr", workflow_name="approval_wf", input={}, instance_id=iid)
    wait_until(lambda: _status(dapr_client, iid).upper() == "RUNNING", timeout=20)
    with pytest.raises(Exception, match="has not yet completed"):
        dapr_client.purge_workflow(instance_id=iid, workflow_component="dapr")
    dapr_client.terminate_workflow(instance_id=iid, workflow_component="dapr")
    wait_until(lambda: _status(dapr_client, iid).upper() == "TERMINATED", timeout=20)
    with pytest.raises(Exception, match="already exists|invalid|64"):
        dapr_client.start_workflow(workflow_component="dapr", workflow_name="approval_wf", instance_id="x" * 65)
    with pytest.raises(Exception, match="unable to find workflow"):
        dapr_client.terminate_workflow(instance_id=new_id("ghost"), workflow_component="dapr")
