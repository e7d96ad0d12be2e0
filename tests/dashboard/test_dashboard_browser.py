"""The dashboard in a real headless Chromium against a real server, with the official SDK's worker running the
example workflows (fan-out/fan-in, task chaining with compensation, management API's approval workflow) and a
parent/child pair. Each action taken in the page is checked through the API afterwards (operability.md §1.6)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dapr.ext.workflow as wf
import httpx
import pytest

os.environ.setdefault("MANAGEMENT_GREETING_SECONDS", "0.2")  # the approval workflow's greeting, shortened

from examples.management_api.app import interactive_hello_activity, interactive_hello_workflow  # noqa: E402
from examples.patterns.fan_out_fan_in import (  # noqa: E402
    batch_processing_workflow,
    get_work_batch,
    process_results,
    process_work_item,
)
from examples.patterns.task_chaining import compensate, step1, step2, step3, task_chain_workflow  # noqa: E402
from testsupport.process import wait_until  # noqa: E402
from testsupport.sdk import wait_for_status  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

expect = pytest.importorskip("playwright.sync_api").expect
API = "/durahub/v1"
XSS = "<img src=x onerror=alert(1)>"


def child_workflow(ctx: wf.DaprWorkflowContext, n: int):
    doubled = yield ctx.call_activity(double, input=n)
    return doubled


def parent_workflow(ctx: wf.DaprWorkflowContext, n: int):
    result = yield ctx.call_child_workflow(child_workflow, input=n, instance_id=f"{ctx.instance_id}-child")
    return result


def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n * 2


def unwrapped(fn: Any) -> tuple[Any, str]:
    """An example's function as its own module's runtime decorated it, to register on the test's runtime."""
    return fn.__wrapped__, fn._dapr_alternate_name


WORKFLOWS = [*map(unwrapped, [batch_processing_workflow, task_chain_workflow, interactive_hello_workflow]),
             parent_workflow, child_workflow]
ACTIVITIES = [*map(unwrapped, [get_work_batch, process_work_item, process_results, step1, step2, step3, compensate,
                               interactive_hello_activity]), double]
RUNTIME_KWARGS = {"maximum_thread_pool_workers": 16}


def instance(server: DurahubServer, instance_id: str) -> httpx.Response:
    return server.http_get(f"{API}/instances/{instance_id}")


def status_of(server: DurahubServer, instance_id: str) -> str | None:
    r = instance(server, instance_id)
    return r.json()["status"] if r.status_code == 200 else None


def wait_status(server: DurahubServer, instance_id: str, *statuses: str) -> None:
    wait_until(lambda: status_of(server, instance_id) in statuses, timeout=30)


def fan_out(client: wf.DaprWorkflowClient, instance_id: str, items: int = 5) -> None:
    client.schedule_new_workflow(batch_processing_workflow, input={"items": items, "item_seconds": 0.3},
                                 instance_id=instance_id)
    wait_for_status(client, instance_id, wf.WorkflowStatus.COMPLETED, timeout=60)


def run_page(open_page: Callable[..., Any], server: DurahubServer, instance_id: str) -> Any:
    page, _ = open_page(server.http_url, f"/dashboard/instances/{instance_id}")
    expect(page.locator("main[data-loaded]")).to_be_visible()
    return page


def test_list_counts_filters_in_the_url_and_live_rows(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                     client: wf.DaprWorkflowClient, open_page: Callable[..., Any],
                                                     artifacts: Path) -> None:
    for i in range(3):
        fan_out(client, f"list-{i}", items=2)
    page, _ = open_page(server.http_url, "/dashboard/", viewport={"width": 1000, "height": 260})
    stats = server.http_get(f"{API}/stats").json()
    counts = {g["key"]: g["count"] for g in stats["groups"]}
    for status in ("COMPLETED", "RUNNING", "FAILED"):
        expect(page.locator(f'button.chip[data-status="{status}"]')).to_have_attribute(
            "data-count", str(counts.get(status, 0)))
    expect(page.locator("tbody tr")).to_have_count(sum(counts.values()))

    page.locator('button.chip[data-status="COMPLETED"]').click()
    expect(page).to_have_url(re.compile(r"status=COMPLETED"))
    page.get_by_label("Workflow name").fill("batch_processing_workflow")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"name=batch_processing_workflow"))
    page.reload()
    expect(page.locator('button.chip[data-status="COMPLETED"]')).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Workflow name")).to_have_value("batch_processing_workflow")
    page.get_by_role("button", name="Clear").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    # A run started after the page opened shows up and goes RUNNING -> COMPLETED without a reload, and the
    # scroll position stays where the user left it.
    expect(page.locator("tbody tr")).to_have_count(sum(counts.values()))
    page.evaluate("window.scrollTo(0, 80)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled > 0
    page.evaluate("window.__sameDocument = true")
    client.schedule_new_workflow(batch_processing_workflow, input={"items": 2, "item_seconds": 1.5},
                                 instance_id="list-live")
    row = page.locator('tr[data-instance="list-live"]')
    expect(row.get_by_test_id("status")).to_have_text("RUNNING")
    expect(row.get_by_test_id("status")).to_have_text("COMPLETED", timeout=30_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert page.evaluate("window.scrollY") == scrolled
    page.screenshot(path=str(artifacts / "list.png"), full_page=True)


def test_run_page_draws_the_fan_out_graph_and_timeline(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                      client: wf.DaprWorkflowClient, open_page: Callable[..., Any],
                                                      artifacts: Path) -> None:
    fan_out(client, "fan-5", items=5)
    page = run_page(open_page, server, "fan-5")
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED")
    graph = page.get_by_test_id("graph")
    items = graph.locator('g[data-node^="activity"]', has_text="process_work_item")
    expect(items).to_have_count(5)
    # The five items sit between the batch and the fan-in step: each is caused by get_work_batch and leads to
    # process_results (checked on the graph the page drew, by node ids).
    g = server.http_get(f"{API}/instances/fan-5/graph").json()
    label = {n["id"]: n["label"] for n in g["nodes"]}
    workers = {n["id"] for n in g["nodes"] if n["label"] == "process_work_item"}
    assert {label[e["source"]] for e in g["edges"] if e["target"] in workers} == {"get_work_batch"}
    assert {label[e["target"]] for e in g["edges"] if e["source"] in workers} == {"process_results"}
    for node_id in workers:
        expect(graph.locator(f'g[data-node="{node_id}"]')).to_have_count(1)
    expect(graph.get_by_test_id("graph-edges")).to_have_attribute("data-count", str(len(g["edges"])))
    # Timeline: one bar per step, the five items overlapping in time.
    bars = page.get_by_test_id("timeline-svg").locator("g.bar")
    expect(bars).to_have_count(7)
    tl = server.http_get(f"{API}/instances/fan-5/timeline").json()
    spans = sorted((b["start_us"], b["end_us"]) for b in tl["bars"] if b["name"] == "process_work_item")
    assert max(s for s, _ in spans) < min(e for _, e in spans), "the items ran side by side"
    # Clicking a node shows its details.
    items.first.click()
    expect(page.get_by_test_id("node-detail")).to_contain_text("process_work_item")
    page.screenshot(path=str(artifacts / "run-fan-out.png"), full_page=True)


def test_long_history_is_shown_a_page_at_a_time(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                client: wf.DaprWorkflowClient,
                                                open_page: Callable[..., Any]) -> None:
    fan_out(client, "fan-120", items=120)
    page = run_page(open_page, server, "fan-120")
    history = page.locator("#history")
    rows = history.locator("details.history-group")
    expect(rows).to_have_count(100)  # the first page; the rest on demand
    counted = re.search(r"(\d+) events in (\d+) rows", history.locator(".toolbar").inner_text())
    assert counted, history.inner_text()
    total = int(counted.group(2))
    assert total > 120
    expect(page.get_by_test_id("history-more")).to_contain_text(f"Show {total - 100} more rows")
    page.get_by_test_id("history-more").click()
    expect(rows).to_have_count(total)
    expect(page.get_by_test_id("history-more")).to_have_count(0)
    # An opened row shows its events; newest first keeps every row shown.
    last = rows.last
    last.locator("summary").click()
    expect(last.locator("pre.json")).not_to_have_count(0)
    history.get_by_label("Newest first").check()
    expect(rows).to_have_count(total)
    expect(rows.first).to_contain_text("executionCompleted")
    # A timeline bar picks its step, by click or by keyboard (one listener for all the bars).
    bars = page.get_by_test_id("timeline-svg").locator("g.bar")
    bars.filter(has_text="process_results").locator("rect").first.click()
    expect(page.get_by_test_id("node-detail")).to_contain_text("process_results")
    bars.filter(has_text="get_work_batch").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("node-detail")).to_contain_text("get_work_batch")


def test_the_page_preloads_every_module() -> None:
    """Every script module is named in the page's modulepreload links, so the browser fetches them all at once
    (not one level of imports after another)."""
    static = Path(__file__).parents[2] / "src" / "durahub" / "dashboard" / "static"
    shell = (static / "index.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/dashboard/static/js/([\w-]+\.js)">', shell))
    assert preloaded == {p.name for p in (static / "js").glob("*.js")} - {"app.js"}


def test_failed_step_is_marked_with_its_message(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                               client: wf.DaprWorkflowClient, open_page: Callable[..., Any],
                                               artifacts: Path) -> None:
    client.schedule_new_workflow(task_chain_workflow, input={"value": 3, "fail_at": 2}, instance_id="chain-fail")
    wait_for_status(client, "chain-fail", wf.WorkflowStatus.FAILED, timeout=60)
    page = run_page(open_page, server, "chain-fail")
    expect(page.get_by_test_id("run-status")).to_have_text("FAILED")
    failed = page.get_by_test_id("graph").locator("g[data-node]", has_text="step2")
    expect(failed).to_contain_text("failed")
    failed.click()
    expect(page.get_by_test_id("node-detail")).to_contain_text("step 2 failed on purpose")
    expect(page.get_by_test_id("graph").locator("g[data-node]", has_text="compensate")).not_to_have_count(0)
    expect(page.get_by_test_id("failure")).to_contain_text("step 2 failed on purpose")
    page.screenshot(path=str(artifacts / "run-failed.png"), full_page=True)


def _dialog_submit(page: Any, button: str) -> None:
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(page.locator("dialog[open]")).to_have_count(0)


def test_every_action_from_the_page_is_done(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                            client: wf.DaprWorkflowClient, open_page: Callable[..., Any]) -> None:
    page, watch = open_page(server.http_url, "/dashboard/")
    # Start, from the list.
    page.get_by_role("button", name="Start", exact=True).click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("Workflow name").fill("interactive_hello_workflow")
    dialog.get_by_label("Instance ID (empty: a new UUID)").fill("act-1")
    dialog.get_by_label("Input (JSON)").fill('"Ann"')
    expect(dialog.get_by_test_id("cli-line")).to_have_text(
        "durahub workflow run interactive_hello_workflow -i act-1 -x '\"Ann\"'")
    expect(dialog.get_by_test_id("curl-line")).to_contain_text(f"curl -X POST {server.http_url}{API}/instances")
    _dialog_submit(page, "Start")
    expect(page).to_have_url(re.compile(r"/dashboard/instances/act-1"))
    assert instance(server, "act-1").json()["input"] == '"Ann"'
    wait_status(server, "act-1", "RUNNING")
    expect(page.get_by_test_id("awaited-event")).to_contain_text("approvalEvent", timeout=30_000)

    # Suspend and Resume.
    page.get_by_role("button", name="Suspend", exact=True).click()
    expect(page.get_by_test_id("cli-line")).to_have_text("durahub workflow suspend act-1 -a durahub")
    page.locator("dialog[open]").get_by_label("Reason (optional)").fill("check stock")
    _dialog_submit(page, "Suspend")
    wait_status(server, "act-1", "SUSPENDED")
    expect(page.get_by_test_id("run-status")).to_have_text("SUSPENDED")
    page.get_by_role("button", name="Resume", exact=True).click()
    _dialog_submit(page, "Resume")
    wait_status(server, "act-1", "RUNNING")
    expect(page.get_by_test_id("run-status")).to_have_text("RUNNING")

    # Raise the awaited event from the "waiting on now" panel: the form comes prefilled with its name.
    page.get_by_test_id("awaited-event").get_by_role("button", name="Raise event").click()
    dialog = page.locator("dialog[open]")
    expect(dialog.get_by_label("Event name")).to_have_value("approvalEvent")
    dialog.get_by_label("Payload (JSON, optional)").fill('{"approved": true}')
    expect(dialog.get_by_test_id("cli-line")).to_have_text(
        "durahub workflow raise-event act-1 approvalEvent -x '{\"approved\": true}' -a durahub")
    _dialog_submit(page, "Raise event")
    wait_status(server, "act-1", "COMPLETED")
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED")
    assert json.loads(instance(server, "act-1").json()["output"])["event_data"] == {"approved": True}

    # Rerun from an event clicked in the history: a new instance runs on from there and completes.
    page.locator("#history summary").first.click() if not page.locator("#history[open]").count() else None
    row = page.locator("details.history-group", has_text="interactive_hello_activity")
    row.get_by_role("button", name="Rerun from this event").click()
    dialog = page.locator("dialog[open]")
    dialog.get_by_label("New instance ID (empty: a new UUID)").fill("act-1-rerun")
    expect(dialog.get_by_test_id("cli-line")).to_contain_text("durahub workflow rerun act-1 -e ")
    _dialog_submit(page, "Rerun")
    expect(page).to_have_url(re.compile(r"/dashboard/instances/act-1-rerun"))
    wait_status(server, "act-1-rerun", "RUNNING", "COMPLETED")
    client.raise_workflow_event("act-1-rerun", "approvalEvent", data="again")
    wait_status(server, "act-1-rerun", "COMPLETED")
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED")

    # Purge (destructive: its dialog says so and has to be confirmed): the instance is gone.
    page.goto(f"{server.http_url}/dashboard/instances/act-1")
    page.get_by_role("button", name="Purge", exact=True).click()
    expect(page.locator("dialog[open]")).to_contain_text("deleted for good")
    _dialog_submit(page, "Purge")
    assert instance(server, "act-1").status_code == 404
    expect(page).to_have_url(re.compile(r"/dashboard/$"))

    # Terminate another run.
    client.schedule_new_workflow(interactive_hello_workflow, input="Bo", instance_id="act-2")
    page.goto(f"{server.http_url}/dashboard/instances/act-2")
    page.get_by_role("button", name="Terminate", exact=True).click()
    expect(page.locator("dialog[open]")).to_contain_text("cannot be resumed")
    _dialog_submit(page, "Terminate")
    wait_status(server, "act-2", "TERMINATED")
    expect(page.get_by_test_id("run-status")).to_have_text("TERMINATED")


def test_bulk_action_confirms_the_count(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                        client: wf.DaprWorkflowClient, open_page: Callable[..., Any]) -> None:
    for i in range(3):
        client.schedule_new_workflow(interactive_hello_workflow, input="x", instance_id=f"bulk-{i}")
    for i in range(3):
        wait_status(server, f"bulk-{i}", "RUNNING")
    page, _ = open_page(server.http_url, "/dashboard/?prefix=bulk-")
    expect(page.locator("tbody tr")).to_have_count(3)
    page.get_by_role("button", name="Terminate all matching").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Terminate all 3 instances matching the filter?")
    expect(dialog).to_contain_text("ID starting with bulk-")
    _dialog_submit(page, "Terminate 3")
    for i in range(3):
        wait_status(server, f"bulk-{i}", "TERMINATED")
    page.get_by_label("Select bulk-0").check()
    page.get_by_label("Select bulk-1").check()
    page.get_by_role("button", name="Purge selected").click()
    expect(page.locator("dialog[open]")).to_contain_text("Purge 2 instances?")
    _dialog_submit(page, "Purge 2")
    expect(page.locator("#notice")).to_contain_text("purge: 2 done")
    wait_until(lambda: instance(server, "bulk-0").status_code == 404 and instance(server, "bulk-1").status_code == 404)
    assert status_of(server, "bulk-2") == "TERMINATED"
    expect(page.locator("tbody tr")).to_have_count(1)


def test_children_tree_links_both_ways(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                       client: wf.DaprWorkflowClient, open_page: Callable[..., Any]) -> None:
    client.schedule_new_workflow(parent_workflow, input=21, instance_id="fam")
    wait_for_status(client, "fam", wf.WorkflowStatus.COMPLETED, timeout=60)
    page = run_page(open_page, server, "fam")
    tree = page.get_by_test_id("tree")
    expect(tree).to_contain_text("fam-child")
    tree.get_by_role("link", name="fam-child").click()
    expect(page).to_have_url(re.compile(r"/dashboard/instances/fam-child"))
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED")
    page.get_by_test_id("parent-link").click()
    expect(page).to_have_url(re.compile(r"/dashboard/instances/fam(\?|$)"))
    expect(page.get_by_test_id("output")).to_have_text("42")


def test_workflow_values_are_shown_as_text(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                           open_page: Callable[..., Any]) -> None:
    started = server.http_post(f"{API}/instances", json={
        "workflow_name": XSS, "instance_id": f"x{XSS}", "input": json.dumps(XSS)})
    assert started.status_code == 202, started.text
    page, _ = open_page(server.http_url, "/dashboard/")
    expect(page.locator("tbody")).to_contain_text(f"x{XSS}")
    expect(page.locator("tbody")).to_contain_text(XSS)
    page.goto(f"{server.http_url}/dashboard/instances/{quote('x' + XSS, safe='')}")
    expect(page.get_by_test_id("input")).to_contain_text(XSS)
    expect(page.locator("h1")).to_contain_text(XSS)
    assert page.locator("img").count() == 0  # nothing was parsed as HTML
    page.goto(f"{server.http_url}/dashboard/workflows/{quote(XSS, safe='')}")
    expect(page.locator("h1")).to_contain_text(XSS)
    assert page.locator("img").count() == 0


def test_workflow_map_and_workers(server: DurahubServer, runtime: wf.WorkflowRuntime, client: wf.DaprWorkflowClient,
                                  open_page: Callable[..., Any], artifacts: Path) -> None:
    fan_out(client, "map-a", items=3)
    fan_out(client, "map-b", items=4)
    page, _ = open_page(server.http_url, "/dashboard/workflows/batch_processing_workflow")
    expect(page.get_by_test_id("map-summary")).to_contain_text("Merged from the last")
    steps = page.get_by_test_id("map-steps")
    expect(steps).to_contain_text("process_work_item")
    expect(page.get_by_test_id("map-graph").locator("g[data-node]")).not_to_have_count(0)
    page.screenshot(path=str(artifacts / "map.png"), full_page=True)
    page.get_by_role("link", name="Workers").click()
    expect(page.get_by_test_id("workers")).to_contain_text("durahub")
    expect(page.get_by_test_id("workers")).to_contain_text("HEALTH_PING")


def test_go_to_instance_with_the_slash_key(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                           client: wf.DaprWorkflowClient, open_page: Callable[..., Any]) -> None:
    fan_out(client, "goto-1", items=1)
    page, _ = open_page(server.http_url, "/dashboard/")
    expect(page.locator("tbody tr").first).to_be_visible()
    page.keyboard.press("/")
    page.keyboard.type("goto-1")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/instances/goto-1"))
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED")
    # Keyboard only: Tab reaches the actions and a graph node.
    page.get_by_test_id("graph").locator("g[data-node]").first.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("node-detail")).to_be_visible()


def test_api_token_is_asked_for_and_sent(server_factory: Callable[..., DurahubServer],
                                         open_page: Callable[..., Any]) -> None:
    srv = server_factory(extra_args=["--api-token", "s3cret"])
    started = srv.http_post(f"{API}/instances", json={"workflow_name": "w", "instance_id": "tok-1"},
                            headers={"dapr-api-token": "s3cret"})
    assert started.status_code == 202
    page, watch = open_page(srv.http_url, "/dashboard/")
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("API token")
    dialog.get_by_label("Token").fill("s3cret")
    dialog.get_by_role("button", name="Use token").click()
    expect(page.locator('tr[data-instance="tok-1"]')).to_be_visible()
    page.get_by_role("link", name="tok-1").click()
    expect(page.locator("main[data-loaded]")).to_be_visible()
    page.get_by_role("button", name="Purge", exact=True).click()  # no worker runs "w": it is not finished
    page.locator("dialog[open]").get_by_label("It is not finished: purge it anyway (force)").check()
    expect(page.get_by_test_id("cli-line")).to_have_text("durahub workflow purge tok-1 --force -a durahub")
    expect(page.get_by_test_id("curl-line")).to_contain_text('-H "dapr-api-token: $DAPR_API_TOKEN"')
    _dialog_submit(page, "Purge")
    wait_until(lambda: srv.http_get(f"{API}/instances/tok-1", headers={"dapr-api-token": "s3cret"})
               .status_code == 404, timeout=30)
    api_calls = [r for r in watch.requests if "/durahub/v1/" in r.url]
    assert api_calls and all(r.headers.get("dapr-api-token") == "s3cret" for r in api_calls)
    assert any(r.method == "POST" and "/instances/tok-1/purge" in r.url for r in api_calls)
