"""Several engines on one PostgreSQL database, and a worker that goes away while its engine stays up (issue 19):
the engine releases its leases after a short grace so that the others take its work over, unless a worker
reconnects within the grace; an engine alone keeps its work for when a worker comes back."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.databases import BACKEND, create_pg_database, drop_pg_database
from testsupport.process import wait_until
from testsupport.server import DurahubServer

pytest.importorskip("durahub", reason="runs once, in the main (1.19) pass")
pytestmark = [pytest.mark.timeout(240),
              pytest.mark.skipif(BACKEND != "sqlite", reason="runs once; it brings its own PostgreSQL database")]

MP_WORKER = Path(__file__).with_name("mp_worker.py")
LEASE_SECONDS = 3.0
GRACE_SECONDS = 1.0
STEP_SECONDS = "0.3"  # each activity takes this long: some are always in flight when a worker dies
EXPECTED = {"mp_chain": lambda n: n + 3, "mp_fan": lambda n: sum(range(1, n + 1)), "mp_timer": lambda n: n + 1}


def _query(url: str, sql: str) -> list[str]:
    out = subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=True, timeout=30)
    return [line for line in out.stdout.splitlines() if line]


class Cluster:
    def __init__(self, tmp_path: Path, url: str, engines: int, grace: float) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.servers = []
        for i in range(engines):
            s = DurahubServer(db_path=tmp_path / f"unused{i}.db", log_path=tmp_path / f"engine{i}.log",
                              extra_args=["--lease-seconds", str(LEASE_SECONDS)])
            s.db = url
            self.servers.append(s)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.worker_logs: list[Path] = []

    def start_worker(self, server: DurahubServer) -> subprocess.Popen[bytes]:
        path = self.tmp_path / f"worker{len(self.workers)}.log"
        with open(path, "wb") as log:
            worker = subprocess.Popen([sys.executable, str(MP_WORKER), server.port, STEP_SECONDS],
                                      stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(worker)
        self.worker_logs.append(path)
        wait_until(lambda: server.connected_workers() >= 1, timeout=30, message="worker never connected")
        return worker

    def executions(self) -> collections.Counter[tuple[str, str]]:
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for path in self.worker_logs:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("STEP "):
                    _, iid, task = line.split()
                    counts[(iid, task)] += 1
        return counts


@pytest.fixture
def cluster_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    made: list[Cluster] = []

    def make(engines: int, grace: float = GRACE_SECONDS) -> Cluster:
        try:
            url = create_pg_database()
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"no PostgreSQL to test against: {exc}")
        cluster = Cluster(tmp_path, url, engines, grace)
        made.append(cluster)
        monkeypatch.setenv("DURAHUB_WORKER_GRACE_SECONDS", str(grace))  # `serve`'s --worker-grace-seconds
        for s in cluster.servers:
            s.start()
        return cluster

    yield make
    for cluster in made:
        for w in cluster.workers:
            w.kill()
            w.wait()
        for s in cluster.servers:
            s.stop()
        drop_pg_database(cluster.url)


def _start_mix(client: wf.DaprWorkflowClient, count: int, prefix: str) -> dict[str, tuple[str, int]]:
    kinds = list(EXPECTED)
    expected = {}
    for i in range(count):
        kind, n = kinds[i % len(kinds)], 3 + i % 3
        iid = f"{prefix}-{i:03d}-{kind}"
        client.schedule_new_workflow(kind, input=n, instance_id=iid)
        expected[iid] = (kind, n)
    return expected


def _assert_all_completed_once(server: DurahubServer, expected: dict[str, tuple[str, int]], timeout: float) -> None:
    client = wf.DaprWorkflowClient(host="127.0.0.1", port=server.port)
    deadline = time.monotonic() + timeout
    for iid, (kind, n) in expected.items():
        st = client.wait_for_workflow_completion(iid, timeout_in_seconds=max(1, int(deadline - time.monotonic())))
        assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, (iid, st and st.runtime_status)
        assert json.loads(st.serialized_output) == EXPECTED[kind](n), iid
        history = httpx.get(f"{server.http_url}/durahub/v1/instances/{iid}", timeout=30).json()["history"]
        results = [e["details"].get("taskScheduledId", 0) for e in history if e["kind"] in ("taskCompleted", "taskFailed")]
        assert len(results) == len(set(results)), f"{iid} recorded a task result twice: {results}"
    client.close()


def test_a_worker_lost_while_its_engine_stays_up_hands_its_work_to_the_other_engine(cluster_factory) -> None:
    cluster = cluster_factory(2)
    a, b = cluster.servers
    lost = cluster.start_worker(a)
    cluster.start_worker(b)
    client_a = wf.DaprWorkflowClient(host="127.0.0.1", port=a.port)
    expected = _start_mix(client_a, 45, "lost")
    client_a.close()
    time.sleep(0.5)
    assert a.proc is not None
    held = int(_query(cluster.url, f"SELECT count(*) FROM tasks WHERE lease_owner LIKE '%-{a.proc.pid}-%'")[0])
    lost.kill()  # kill -9 the worker only: engine A stays up
    killed_at = time.monotonic()
    _assert_all_completed_once(b, expected, timeout=LEASE_SECONDS + GRACE_SECONDS + 30)
    took = time.monotonic() - killed_at
    print(f"all {len(expected)} completed {took:.1f}s after the worker was killed ({held} tasks held by A)")
    # Within lease + grace + a few seconds of work left (3 steps of 0.3 s, a 1 s timer).
    assert took <= LEASE_SECONDS + GRACE_SECONDS + 8
    assert "event=leases_released reason=no_workers" in a.log_text()
    assert "taken_over" in b.log_text()
    repeats = sum(n - 1 for n in cluster.executions().values() if n > 1)
    assert repeats <= held, f"{repeats} activities ran twice; only {held} were out with engine A"
    assert int(_query(cluster.url, "SELECT count(*) FROM tasks")[0]) == 0


def test_a_worker_reconnecting_within_the_grace_keeps_its_work(cluster_factory) -> None:
    cluster = cluster_factory(2, grace=20.0)
    a, b = cluster.servers
    first = cluster.start_worker(a)
    cluster.start_worker(b)
    client_a = wf.DaprWorkflowClient(host="127.0.0.1", port=a.port)
    expected = _start_mix(client_a, 30, "back")
    client_a.close()
    time.sleep(0.5)
    first.kill()
    wait_until(lambda: a.connected_workers() == 0, timeout=10, message="the killed worker stayed connected")
    cluster.start_worker(a)  # back at once: A keeps its leases and its work
    _assert_all_completed_once(a, expected, timeout=60)
    assert "event=leases_released" not in a.log_text()
    assert "taken_over" not in b.log_text()


def test_an_engine_alone_keeps_its_work_until_a_worker_comes_back(cluster_factory) -> None:
    cluster = cluster_factory(1)
    (a,) = cluster.servers
    first = cluster.start_worker(a)
    client = wf.DaprWorkflowClient(host="127.0.0.1", port=a.port)
    expected = _start_mix(client, 15, "alone")
    client.close()
    time.sleep(0.5)
    first.kill()
    wait_until(lambda: a.connected_workers() == 0, timeout=10, message="the killed worker stayed connected")
    time.sleep(LEASE_SECONDS + GRACE_SECONDS + 1)  # past the grace and the leases: nothing else could run them
    cluster.start_worker(a)
    _assert_all_completed_once(a, expected, timeout=60)
