"""The views routes of /durahub/v1 over real HTTP against a real server with SDK workers: stats, an instance's
summary, timeline, graph (JSON, Mermaid, DOT, SVG), tree, all of them at once (overview), and a workflow's
map; errors in the API's JSON shape."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.process import wait_until
from testsupport.sdk import assert_completed, complete, new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]
API = "/durahub/v1"
HOSTILE = "<img src=x onerror=alert(1)>"


def check(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x


def even_step(ctx: wf.WorkflowActivityContext, x: int) -> str:
    return "even"


def odd_step(ctx: wf.WorkflowActivityContext, x: int) -> str:
    return "odd"


def hostile_activity(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x


def branch_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(check, input=x)
    result = yield ctx.call_activity(even_step if y % 2 == 0 else odd_step, input=y)
    return result


def leaf_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(check, input=x)
    return y


def mid_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_child_workflow(leaf_wf, input=x, instance_id=f"{ctx.instance_id}-leaf")
    return y


def root_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    results = yield wf.when_all([
        ctx.call_child_workflow(mid_wf, input=x, instance_id=f"{ctx.instance_id}-mid"),
        ctx.call_child_workflow(leaf_wf, input=x, instance_id=f"{ctx.instance_id}-leaf"),
    ])
    return results


def waiting_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    decision = yield ctx.wait_for_external_event("approve")
    return decision


def hostile_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(HOSTILE, input=x)
    return y


WORKFLOWS = [branch_wf, leaf_wf, mid_wf, root_wf, waiting_wf, (hostile_wf, HOSTILE)]
ACTIVITIES = [check, even_step, odd_step, (hostile_activity, HOSTILE)]


def run(client: wf.DaprWorkflowClient, workflow: object, value: object, instance_id: str | None = None) -> str:
    iid = instance_id or new_id("vw")
    client.schedule_new_workflow(workflow, input=value, instance_id=iid)  # type: ignore[arg-type]
    assert_completed(complete(client, iid))
    return iid


def get(server: DurahubServer, path: str, **params: object) -> httpx.Response:
    return server.http_get(f"{API}{path}", params=params)


def test_openapi_documents_the_view_routes(server: DurahubServer) -> None:
    spec = get(server, "/openapi.json").json()
    assert set(spec["paths"]) >= {"/stats", "/instances/{instance_id}/summary", "/instances/{instance_id}/timeline",
                                  "/instances/{instance_id}/graph", "/instances/{instance_id}/tree",
                                  "/instances/{instance_id}/overview", "/workflows/{workflow_name}/map"}
    overview = spec["paths"]["/instances/{instance_id}/overview"]["get"]["responses"]["200"]["content"]
    schema = overview["application/json"]["schema"]["$ref"].split("/")[-1]
    assert set(spec["components"]["schemas"][schema]["properties"]) == {
        "instance", "summary", "timeline", "tree", "graph", "layout"}
    graph_200 = spec["paths"]["/instances/{instance_id}/graph"]["get"]["responses"]["200"]["content"]
    assert set(graph_200) == {"application/json", "text/vnd.mermaid", "text/vnd.graphviz", "image/svg+xml"}


def test_unknown_instance_is_404_in_the_api_error_shape(server: DurahubServer) -> None:
    missing = new_id("missing")
    for view in ("summary", "timeline", "graph", "tree", "overview"):
        r = get(server, f"/instances/{missing}/{view}")
        assert r.status_code == 404, (view, r.text)
        assert set(r.json()) == {"detail"} and missing in r.json()["detail"]
    assert get(server, f"/instances/{missing}/graph", format="png").status_code == 422


def test_summary_of_a_waiting_instance(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("wait")
    client.schedule_new_workflow(waiting_wf, input=0, instance_id=iid)

    def awaited() -> list[dict[str, object]]:
        events: list[dict[str, object]] = get(server, f"/instances/{iid}/summary").json()["events"]
        return events

    [event] = wait_until(awaited, message="the summary never showed the awaited event")
    assert event["name"] == "approve" and event["timeout_at_us"] is None
    body = get(server, f"/instances/{iid}/summary").json()
    assert body["status"] == "RUNNING" and body["workflow_name"] == "waiting_wf" and body["stall"] is None
    assert [(t["origin"], t["fire_at_us"]) for t in body["timers"]] == [("externalEvent", None)]
    client.raise_workflow_event(iid, "approve", data="ok")
    assert_completed(complete(client, iid))
    done = get(server, f"/instances/{iid}/summary").json()
    assert done["status"] == "COMPLETED" and done["events"] == [] and done["timers"] == []


def test_timeline_and_graph_in_every_format(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = run(client, branch_wf, 4)
    t = get(server, f"/instances/{iid}/timeline").json()
    assert [(b["kind"], b["name"], b["status"], b["lane"]) for b in t["bars"]] == [
        ("activity", "check", "completed", 0), ("activity", "even_step", "completed", 0)]
    assert t["status"] == "COMPLETED" and len(t["turns"]) == 3 and t["end_us"] >= t["start_us"]
    assert get(server, f"/instances/{iid}/timeline", min_gap_seconds=0).json()["gaps"]

    g = get(server, f"/instances/{iid}/graph").json()
    assert [n["label"] for n in g["nodes"]] == ["branch_wf", "check", "even_step", "completed"]
    app = get(server, f"/instances/{iid}").json()["app_id"]
    assert get(server, f"/instances/{iid}/graph", appID=app).json() == g
    assert get(server, f"/instances/{iid}/graph", appID="another-app").status_code == 404
    assert len(g["edges"]) == 3 and g["instance_id"] == iid

    mermaid = get(server, f"/instances/{iid}/graph", format="mermaid")
    assert mermaid.headers["content-type"].startswith("text/vnd.mermaid")
    assert mermaid.text.startswith("flowchart TD") and mermaid.text.count("-->") == 3
    dot = get(server, f"/instances/{iid}/graph", format="dot")
    assert dot.headers["content-type"].startswith("text/vnd.graphviz") and dot.text.startswith("digraph")
    svg = get(server, f"/instances/{iid}/graph", format="svg")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in svg.headers["content-security-policy"]
    assert ET.fromstring(svg.text).tag == "{http://www.w3.org/2000/svg}svg"


def test_overview_is_every_view_of_the_run_at_once(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = run(client, root_wf, 2)
    o = get(server, f"/instances/{iid}/overview").json()
    instance = get(server, f"/instances/{iid}").json()
    assert o["instance"] == instance and [e["kind"] for e in o["instance"]["history"]][-1] == "executionCompleted"
    for view in ("summary", "timeline", "graph", "tree"):
        alone = get(server, f"/instances/{iid}/{view}").json()
        if view == "summary":  # "now" differs between the two calls
            assert o[view].pop("now_us") <= alone.pop("now_us")
        assert o[view] == alone, view
    # The layout: a box per node, a path per edge, inside the drawing; what the SVG drawing is made of.
    layout, g = o["layout"], o["graph"]
    assert [n["id"] for n in layout["nodes"]] == [n["id"] for n in g["nodes"]]
    assert sorted((e["source"], e["target"]) for e in layout["edges"]) == sorted(
        (e["source"], e["target"]) for e in g["edges"])
    assert all(0 <= n["x"] and n["x"] + n["width"] <= layout["width"] and n["y"] + n["height"] <= layout["height"]
               for n in layout["nodes"])
    assert all(e["d"].startswith("M") for e in layout["edges"])
    svg = get(server, f"/instances/{iid}/graph", format="svg").text
    assert all(f'data-node="{n["id"]}"' in svg and n["title"] in svg for n in layout["nodes"])
    shallow = get(server, f"/instances/{iid}/overview", depth=1).json()["tree"]
    assert all(c["truncated"] for c in shallow["children"])


def test_hostile_names_come_out_as_text(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = run(client, HOSTILE, 1)
    g = get(server, f"/instances/{iid}/graph").json()
    assert [n["label"] for n in g["nodes"]] == [HOSTILE, HOSTILE, "completed"]  # JSON carries the names as data
    svg = get(server, f"/instances/{iid}/graph", format="svg").text
    root = ET.fromstring(svg)
    assert "<img" not in svg and HOSTILE in "".join(e.text or "" for e in root.iter())
    for fmt in ("mermaid", "dot"):
        assert "<img" not in get(server, f"/instances/{iid}/graph", format=fmt).text
    layout = get(server, f"/instances/{iid}/overview").json()["layout"]  # plain text, for text nodes
    assert [n["title"] for n in layout["nodes"]][:2] == [HOSTILE, HOSTILE]


def test_tree_of_children(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = run(client, root_wf, 1)
    t = get(server, f"/instances/{iid}/tree").json()
    assert (t["instance_id"], t["workflow_name"], t["status"]) == (iid, "root_wf", "COMPLETED")
    assert t["app_id"] and all(c["app_id"] == t["app_id"] for c in t["children"])
    kids = {c["instance_id"]: c for c in t["children"]}
    assert set(kids) == {f"{iid}-mid", f"{iid}-leaf"}
    assert [c["instance_id"] for c in kids[f"{iid}-mid"]["children"]] == [f"{iid}-mid-leaf"]
    assert kids[f"{iid}-leaf"]["children"] == [] and not kids[f"{iid}-leaf"]["truncated"]
    shallow = get(server, f"/instances/{iid}/tree", depth=1).json()
    assert all(c["truncated"] and c["children"] == [] for c in shallow["children"])


def test_stats_by_status_and_by_name(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    prefix = new_id("stats")
    later = datetime.now(UTC) + timedelta(hours=1)
    for i in range(2):  # scheduled to start in an hour: pending until then
        client.schedule_new_workflow(leaf_wf, input=i, instance_id=f"{prefix}-p{i}", start_at=later)
    for i in range(3):
        run(client, branch_wf, i, instance_id=f"{prefix}-c{i}")
    by_status = get(server, "/stats", instance_id_prefix=prefix).json()
    counts = {g["key"]: g["count"] for g in by_status["groups"]}
    assert by_status["total"] == 5 and counts["PENDING"] == 2 and counts["COMPLETED"] == 3 and counts["FAILED"] == 0
    by_name = get(server, "/stats", group_by="workflow_name", instance_id_prefix=prefix).json()
    assert [(g["key"], g["count"], g["statuses"]) for g in by_name["groups"]] == [
        ("branch_wf", 3, {"COMPLETED": 3}), ("leaf_wf", 2, {"PENDING": 2})]
    assert get(server, "/stats", group_by="colour").status_code == 422


def test_workflow_map_of_the_last_runs(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    for i in range(4):
        run(client, branch_wf, i)
    m = get(server, "/workflows/branch_wf/map", last=4).json()
    assert m["workflow_name"] == "branch_wf" and m["runs"] == 4
    edges = {(e["source"], e["target"]): e for e in m["edges"]}
    assert edges[("activity:check", "activity:even_step")]["count"] == 2
    assert edges[("activity:check", "activity:odd_step")]["share"] == 0.5
    nodes = {n["id"]: n for n in m["nodes"]}
    assert nodes["activity:check"]["count"] == 4 and nodes["activity:check"]["p50_us"] is not None
    svg = get(server, "/workflows/branch_wf/map", last=4, format="svg")
    assert svg.headers["content-type"] == "image/svg+xml" and "n=4" in svg.text
    empty = get(server, "/workflows/never_ran/map").json()
    assert (empty["runs"], empty["nodes"], empty["edges"]) == (0, [], [])
    assert get(server, "/workflows/branch_wf/map", last=0).status_code == 422
