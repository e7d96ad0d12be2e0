"""HTTP health and metadata endpoints (spec §5.4)."""

from __future__ import annotations

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import make_runtime
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(60)]


def noop_wf(ctx: wf.DaprWorkflowContext, _):
    return "noop"


WORKFLOWS = [noop_wf]


def test_healthz(server: DurahubServer) -> None:
    r = server.http_get("/v1.0/healthz")
    assert r.status_code == 204, r.text
    assert r.content == b""


def test_healthz_outbound(server: DurahubServer) -> None:
    # DaprClient() polls this endpoint at construction and hangs for 60 s without it.
    r = server.http_get("/v1.0/healthz/outbound", headers={"User-Agent": "dapr-sdk-python/test"})
    assert r.status_code == 204, r.text


def test_metadata_shape(server: DurahubServer) -> None:
    r = server.http_get("/v1.0/metadata")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body, dict)


@pytest.mark.usefixtures("runtime")
def test_metadata_counts_connected_workers(server: DurahubServer) -> None:
    n = wait_until(server.connected_workers, timeout=10, message="connectedWorkers never >= 1")
    assert n >= 1
    body = server.metadata()
    assert body["workflows"]["connectedWorkers"] >= 1

    extra = make_runtime(server, workflows=[])
    try:
        wait_until(
            lambda: server.connected_workers() >= n + 1, timeout=10, message="second worker not counted"
        )
    finally:
        extra.shutdown()
    wait_until(lambda: server.connected_workers() == n, timeout=15, message="worker count not decremented")
