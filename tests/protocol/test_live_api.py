"""`/durahub/v1/stream` (server-sent events of instance changes) and `/durahub/v1/workers`, the dashboard's
live routes; the browser guard on `/durahub/` and `/dashboard`; the dashboard's static files and their
Content-Security-Policy; `--no-dashboard`; the API token's `?token=` accepted on the stream route only."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.process import wait_until
from testsupport.sdk import make_runtime, wait_for_status
from testsupport.server import DurahubServer

API = "/durahub/v1"


def greet(ctx: wf.WorkflowActivityContext, name: str) -> str:
    return f"hello {name}"


def hello_workflow(ctx: wf.DaprWorkflowContext, name: str):
    greeting = yield ctx.call_activity(greet, input=name)
    return greeting


def waiting_workflow(ctx: wf.DaprWorkflowContext, _: Any):
    value = yield ctx.wait_for_external_event("go")
    return value


WORKFLOWS = [hello_workflow, waiting_workflow]
ACTIVITIES = [greet]


class EventReader:
    """Reads one SSE stream on a thread; `next(kind)` returns the next event of that kind."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.events: queue.Queue[tuple[str, str | None, Any]] = queue.Queue()
        self.comments: list[str] = []
        self.status = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers or {}), daemon=True)
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            self._read(url, headers)
        except httpx.HTTPError as exc:  # the server went away (end of the module)
            self.events.put(("error", None, repr(exc)))

    def _read(self, url: str, headers: dict[str, str]) -> None:
        with httpx.stream("GET", url, headers=headers, timeout=60) as response:
            self.status = response.status_code
            if response.status_code != 200:
                self.events.put(("error", None, response.read().decode()))
                return
            kind, event_id, data = "message", None, ""
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "":
                    if data:
                        self.events.put((kind, event_id, json.loads(data)))
                    kind, event_id, data = "message", None, ""

    def next(self, kind: str, where: Callable[[Any], bool] = lambda _: True, timeout: float = 20) -> tuple[str | None, Any]:
        while True:
            got_kind, event_id, data = self.events.get(timeout=timeout)
            if got_kind == kind and where(data):
                return event_id, data
            if got_kind == "error":
                raise AssertionError(data)

    def close(self) -> None:
        self._stop.set()


@pytest.fixture
def reader(server: DurahubServer) -> Iterator[Callable[..., EventReader]]:
    made: list[EventReader] = []

    def make(query: str = "", headers: dict[str, str] | None = None) -> EventReader:
        r = EventReader(f"{server.http_url}{API}/stream{query}", headers)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_stream_reports_each_change_of_an_instance(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                  client: wf.DaprWorkflowClient, reader: Callable[..., EventReader]) -> None:
    events = reader()
    events.next("ready")
    client.schedule_new_workflow(hello_workflow, input="ann", instance_id="live-1")
    _, done = events.next("instance", lambda d: d["instance_id"] == "live-1" and d["status"] == "COMPLETED")
    assert done["app_id"] == "durahub" and done["workflow_name"] == "hello_workflow"
    assert done["last_updated_at"] and done["created_at"] and done["parent_instance_id"] is None
    server.http_post(f"{API}/instances/live-1/purge", json={})
    _, removed = events.next("removed", lambda d: d["instance_id"] == "live-1")
    assert removed == {"app_id": "durahub", "instance_id": "live-1"}


def test_stream_filters_by_status_name_and_instance(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                   client: wf.DaprWorkflowClient,
                                                   reader: Callable[..., EventReader]) -> None:
    completed_only = reader("?status=COMPLETED")
    waiting_only = reader("?workflow_name=waiting_workflow")
    one = reader("?instance_id=live-f2&appID=durahub")
    for r in (completed_only, waiting_only, one):
        r.next("ready")
    client.schedule_new_workflow(waiting_workflow, instance_id="live-f1")
    client.schedule_new_workflow(hello_workflow, input="bo", instance_id="live-f2")
    _, event = completed_only.next("instance")
    assert (event["instance_id"], event["status"]) == ("live-f2", "COMPLETED")
    _, event = one.next("instance", lambda d: d["status"] == "COMPLETED")
    assert event["instance_id"] == "live-f2"
    client.raise_workflow_event("live-f1", "go", data=1)
    _, event = completed_only.next("instance")
    assert event["instance_id"] == "live-f1"  # only now that it completed
    _, event = waiting_only.next("instance", lambda d: d["status"] == "COMPLETED")
    assert event["instance_id"] == "live-f1"
    while not waiting_only.events.empty():
        assert waiting_only.events.get_nowait()[2]["instance_id"] == "live-f1"
    seen = []
    while not one.events.empty():
        seen.append(one.events.get_nowait()[2]["instance_id"])
    assert set(seen) <= {"live-f2"}


def test_last_event_id_resumes_and_a_foreign_one_resets(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                                       client: wf.DaprWorkflowClient,
                                                       reader: Callable[..., EventReader]) -> None:
    first = reader()
    ready_id, _ = first.next("ready")
    client.schedule_new_workflow(hello_workflow, input="cy", instance_id="live-r1")
    wait_for_status(client, "live-r1", wf.WorkflowStatus.COMPLETED)
    first.close()
    resumed = reader(headers={"Last-Event-ID": ready_id or ""})
    resumed.next("ready")
    _, event = resumed.next("instance", lambda d: d["instance_id"] == "live-r1")
    assert event["status"] == "COMPLETED"  # the change happened while it was not connected
    also = reader(f"?last_event_id={ready_id}")
    also.next("instance", lambda d: d["instance_id"] == "live-r1")
    foreign = reader(headers={"Last-Event-ID": "00000000:5"})
    foreign.next("reset")


def test_heartbeat_comments_keep_the_stream_open(server: DurahubServer, reader: Callable[..., EventReader]) -> None:
    events = reader("?heartbeat_seconds=1")
    events.next("ready")
    wait_until(lambda: ": heartbeat" in events.comments, timeout=20)


def test_workers_lists_connected_streams(server: DurahubServer, runtime: wf.WorkflowRuntime) -> None:
    workers = server.http_get(f"{API}/workers").json()
    assert workers, "the module's runtime is connected"
    w = workers[0]
    assert w["app_id"] == "durahub" and isinstance(w["stream_id"], int) and isinstance(w["outstanding"], int)
    assert w["connected_at"].startswith("20") and isinstance(w["capabilities"], list)
    extra = make_runtime(server, workflows=[], activities=[])
    try:
            wait_until(lambda: len(server.http_get(f"{API}/workers").json()) == len(workers) + 1, timeout=20)
    finally:
        extra.shutdown()


def test_mutations_take_json_from_this_origin_only(server: DurahubServer) -> None:
    start = f"{server.http_url}{API}/instances"
    body = json.dumps({"workflow_name": "hello_workflow", "instance_id": "guard-1"})
    assert httpx.post(start, content=body, headers={"Content-Type": "text/plain"}).status_code == 415
    form = httpx.post(f"{server.http_url}{API}/instances/x/suspend",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert httpx.post(start, content=body, headers={"Content-Type": "application/json",
                                                    "Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(start, content=body, headers={"Content-Type": "application/json",
                                                    "Sec-Fetch-Site": "cross-site"}).status_code == 403
    same = httpx.post(start, content=body, headers={"Content-Type": "application/json",
                                                    "Origin": server.http_url})
    assert same.status_code == 202, same.text
    rebound = httpx.get(f"{server.http_url}{API}/instances", headers={"Host": f"evil.example:{server.http_port}"})
    assert rebound.status_code == 421
    assert httpx.get(f"http://localhost:{server.http_port}{API}/instances").status_code == 200
    # Dapr's own routes keep daprd's rules: raw bodies of any type.
    dapr = httpx.post(f"{server.http_url}/v1.0/workflows/dapr/hello_workflow/start?instanceID=guard-2",
                      content="\"x\"", headers={"Content-Type": "text/plain"})
    assert dapr.status_code == 202, dapr.text


def test_dashboard_files_are_served_with_a_strict_policy(server: DurahubServer) -> None:
    for path in ("/dashboard/", "/dashboard/instances/any?appID=x", "/dashboard/workflows/w"):
        page = server.http_get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'data-auth="none"' in page.text and "/dashboard/static/js/app.js" in page.text
    script = server.http_get("/dashboard/static/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert server.http_get("/dashboard/static/js/none.js").status_code == 404
    assert server.http_get("/dashboard", follow_redirects=True).url.path == "/dashboard/"


def test_no_dashboard_turns_it_off(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory(extra_args=["--no-dashboard"])
    assert srv.http_get("/dashboard/").status_code == 404
    assert srv.http_get(f"{API}/workers").status_code == 200


def test_token_as_query_parameter_on_the_stream_only(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory(extra_args=["--api-token", "s3cret"])
    page = srv.http_get("/dashboard/")
    assert page.status_code == 200 and 'data-auth="token"' in page.text  # the page itself asks for the token
    assert srv.http_get(f"{API}/instances").status_code == 401
    assert srv.http_get(f"{API}/instances", params={"token": "s3cret"}).status_code == 401
    assert srv.http_get(f"{API}/instances", headers={"dapr-api-token": "s3cret"}).status_code == 200
    denied = EventReader(f"{srv.http_url}{API}/stream?token=wrong")
    with pytest.raises(AssertionError):
        denied.next("ready")
    assert denied.status == 401
    events = EventReader(f"{srv.http_url}{API}/stream?token=s3cret")
    try:
        events.next("ready")
    finally:
        events.close()
