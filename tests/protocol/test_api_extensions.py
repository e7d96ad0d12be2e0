"""durahub's extension HTTP API (/durahub/v1): functional checks, then schemathesis over its OpenAPI schema."""

from __future__ import annotations

import time

import httpx
import pytest

from testsupport.sdk import new_id
from testsupport.server import DurahubServer

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis runs where durahub[test] is installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402

pytestmark = pytest.mark.timeout(180)
API = "/durahub/v1"


def _start(server: DurahubServer, name: str, instance_id: str) -> None:
    r = server.http_post(f"/v1.0/workflows/dapr/{name}/start", params={"instanceID": instance_id}, content=b'"in"')
    assert r.status_code == 202, r.text


def test_list_filters_and_cursor_pagination(server: DurahubServer) -> None:
    prefix = new_id("ext")
    ids = [f"{prefix}-{i}" for i in range(7)]
    for i, iid in enumerate(ids):
        _start(server, "alpha" if i % 2 == 0 else "beta", iid)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"instance_id_prefix": prefix, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = server.http_get(f"{API}/instances", params=params).json()
        assert len(page["instances"]) <= 3
        seen += [i["instance_id"] for i in page["instances"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    alpha = server.http_get(f"{API}/instances", params={"instance_id_prefix": prefix, "workflow_name": "alpha"}).json()
    assert [i["instance_id"] for i in alpha["instances"]] == ids[0::2]
    pending = server.http_get(f"{API}/instances", params={"instance_id_prefix": prefix, "status": ["PENDING"]}).json()
    assert len(pending["instances"]) == 7 and all(i["status"] == "PENDING" for i in pending["instances"])
    running = server.http_get(f"{API}/instances", params={"instance_id_prefix": prefix, "status": "COMPLETED"}).json()
    assert running["instances"] == []
    future = server.http_get(f"{API}/instances", params={"instance_id_prefix": prefix,
                                                         "created_from": "2999-01-01T00:00:00Z"}).json()
    assert future["instances"] == []


def test_get_instance_history_wait_and_bulk_terminate_purge(server: DurahubServer) -> None:
    prefix = new_id("bulk")
    _start(server, "gamma", f"{prefix}-a")
    _start(server, "gamma", f"{prefix}-b")
    body = server.http_get(f"{API}/instances/{prefix}-a").json()
    assert body["status"] == "PENDING" and body["input"] == '"in"' and body["history"] == []
    assert server.http_get(f"{API}/instances/{prefix}-zzz").status_code == 404

    started = time.monotonic()
    waited = server.http_get(f"{API}/instances/{prefix}-a/wait", params={"timeout": 0.5}).json()
    assert waited["timed_out"] is True and time.monotonic() - started >= 0.4

    # Nothing finished yet: purge finds nothing to purge.
    assert server.http_post(f"{API}/purge", json={"instance_id_prefix": prefix}).json() == {"count": 0}
    r = server.http_post(f"{API}/terminate", json={"instance_id_prefix": prefix, "output": '"stop"'})
    assert r.json() == {"count": 2}
    # No worker is connected: termination waits in the inbox; the wait endpoint sees it once applied.
    assert server.http_get(f"{API}/instances/{prefix}-b").json()["status"] == "PENDING"


def test_rerun_errors(server: DurahubServer) -> None:
    iid = new_id("rr")
    _start(server, "delta", iid)
    r = server.http_post(f"{API}/instances/{iid}/rerun", json={"event_id": 1})
    assert r.status_code == 409 and "terminal" in r.json()["detail"]
    assert server.http_post(f"{API}/instances/{new_id()}/rerun", json={"event_id": 1}).status_code == 404
    assert server.http_post(f"{API}/instances/{iid}/rerun", json={"event_id": -3}).status_code == 422


def test_bad_cursor_is_rejected(server: DurahubServer) -> None:
    r = server.http_get(f"{API}/instances", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and "cursor" in r.text


def test_schema_fuzz_no_5xx_and_responses_match_schema(server: DurahubServer) -> None:
    """Every operation of the OpenAPI schema, with generated valid and invalid inputs: never a 5xx, and every
    response (status, headers, body) conforms to the schema."""
    schema = schemathesis.openapi.from_url(f"{server.http_url}{API}/openapi.json")
    # The change stream never ends by itself: it has its own tests (test_live_api.py).
    operations = [op for op in (result.ok() for result in schema.get_all_operations()) if op.path != "/stream"]
    assert len(operations) >= 6
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            if case.query and "timeout" in case.query or case.path.endswith("/wait"):
                # The schema allows waits of minutes, and a wait without one lasts 30 s (the client's own read
                # timeout): an instance the fuzzer created in an app with no worker would never finish.
                case.query = {**(case.query or {}), "timeout": 0.1}
            case.call_and_validate(timeout=30)

        fuzz()


def test_openapi_served_and_documents_every_route(server: DurahubServer) -> None:
    spec = httpx.get(f"{server.http_url}{API}/openapi.json").json()
    assert set(spec["paths"]) >= {"/instances", "/instances/{instance_id}", "/instances/{instance_id}/wait",
                                  "/instances/{instance_id}/rerun", "/purge", "/terminate"}
