"""Three durahub processes on one PostgreSQL database, a worker on each, a few hundred mixed workflows;
one engine is killed with SIGKILL mid-run. Everything completes with the right output, no history holds two
results for one task, and the dead process's instances are taken over within the lease time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.databases import BACKEND, create_pg_database, drop_pg_database
from testsupport.process import REPO_ROOT, wait_until
from testsupport.server import DurahubServer

pytest.importorskip("durahub", reason="runs once, in the main (1.19) pass")
pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(BACKEND != "sqlite", reason="runs once; it brings its own PostgreSQL database")]

MP_WORKER = Path(__file__).with_name("mp_worker.py")
LEASE_SECONDS = 3.0
EXPECTED = {"mp_chain": lambda n: n + 3, "mp_fan": lambda n: sum(range(1, n + 1)), "mp_timer": lambda n: n + 1,
            "mp_parent": lambda n: (n + 3) * 10, "mp_event": lambda n: n + 100}


def _query(url: str, sql: str) -> list[str]:
    out = subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, check=True, timeout=30)
    return [line for line in out.stdout.splitlines() if line]


@pytest.fixture
def cluster(tmp_path: Path):
    try:
        url = create_pg_database()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")
    servers = []
    for i in range(3):
        s = DurahubServer(db_path=tmp_path / f"unused{i}.db", log_path=tmp_path / f"engine{i}.log",
                          extra_args=["--lease-seconds", str(LEASE_SECONDS)])
        s.db = url
        servers.append(s)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for s in servers:
            s.start()
        for i, s in enumerate(servers):
            log = open(tmp_path / f"worker{i}.log", "wb")
            workers.append(subprocess.Popen([sys.executable, str(MP_WORKER), s.port],
                                            stdout=log, stderr=subprocess.STDOUT))
        for s in servers:
            wait_until(lambda s=s: s.connected_workers() >= 1, timeout=30, message="worker never connected")
        yield url, servers
    finally:
        for w in workers:
            w.kill()
            w.wait()
        for s in servers:
            s.stop()
        drop_pg_database(url)


def test_three_engines_one_database_survive_a_kill(cluster) -> None:
    url, servers = cluster
    clients = [wf.DaprWorkflowClient(host="127.0.0.1", port=s.port) for s in servers]
    kinds = list(EXPECTED)
    expected: dict[str, tuple[str, int]] = {}
    for i in range(250):
        kind = kinds[i % len(kinds)]
        n = 3 + i % 5
        iid = f"mp-{i:03d}-{kind}"
        clients[i % 3].schedule_new_workflow(kind, input=n, instance_id=iid)
        expected[iid] = (kind, n)

    # Kill engine 0 while it holds work.
    victim = servers[0]
    time.sleep(0.3)
    held_by_victim = _query(url, "SELECT instance_id FROM instances WHERE status IN ('RUNNING','PENDING')"
                                 f" AND lease_owner LIKE '%-{victim.proc.pid}-%'")
    victim.kill()
    killed_at = time.monotonic()

    survivors = clients[1:]
    for iid, (kind, _) in expected.items():
        if kind == "mp_event":
            survivors[hash(iid) % 2].raise_workflow_event(iid, "go", data=100)

    if held_by_victim:
        def taken_over() -> bool:
            quoted = ",".join(f"'{i}'" for i in held_by_victim)
            left = _query(url, f"SELECT instance_id FROM instances WHERE instance_id IN ({quoted})"
                               f" AND lease_owner LIKE '%-{victim.proc.pid}-%' AND status NOT IN"
                               " ('COMPLETED','FAILED','TERMINATED')")
            return not left
        wait_until(taken_over, timeout=LEASE_SECONDS * 4, interval=0.1,
                   message="the dead engine's instances were not taken over")
        takeover = time.monotonic() - killed_at
        print(f"takeover of {len(held_by_victim)} instances after {takeover:.2f}s (lease {LEASE_SECONDS}s)")
        assert takeover <= LEASE_SECONDS + 2.0

    for iid, (kind, n) in expected.items():
        st = survivors[0].wait_for_workflow_completion(iid, timeout_in_seconds=120)
        assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, (iid, st and st.runtime_status)
        assert json.loads(st.serialized_output) == EXPECTED[kind](n), iid

    http = servers[1].http_url
    for iid in expected:
        history = httpx.get(f"{http}/durahub/v1/instances/{iid}", timeout=30).json()["history"]
        results = [e["details"].get("taskScheduledId", 0) for e in history if e["kind"] in ("taskCompleted", "taskFailed")]
        assert len(results) == len(set(results)), f"{iid} recorded a task result twice: {results}"
        fired = [e["details"].get("timerId") for e in history if e["kind"] == "timerFired"]
        assert len(fired) == len(set(fired)), f"{iid} fired a timer twice"
    assert int(_query(url, "SELECT count(*) FROM tasks")[0]) == 0
    for c in clients:
        c.close()


def test_engines_starting_at_once_on_a_fresh_database_migrate_it_once(tmp_path: Path) -> None:
    try:
        url = create_pg_database()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")
    servers = []
    try:
        for i in range(3):
            s = DurahubServer(db_path=tmp_path / f"unused{i}.db", log_path=tmp_path / f"engine{i}.log")
            s.db = url
            servers.append(s)
        for s in servers:  # launch all three before waiting for any
            with open(s.log_path, "ab") as log:
                s.proc = subprocess.Popen(s.command(), stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")})
        for s in servers:
            s.wait_ready()
        from durahub.store.schema import SCHEMA_VERSION

        assert _query(url, "SELECT value FROM durahub_meta WHERE key = 'schema_version'") == [str(SCHEMA_VERSION)]
        migrating = [s for s in servers if "event=schema_migrated" in s.log_text()]
        assert len(migrating) == 1, f"{len(migrating)} engines migrated the schema"
        assert migrating[0].log_text().count("event=schema_migrated") == SCHEMA_VERSION - 1  # each version once
    finally:
        for s in servers:
            s.stop()
        drop_pg_database(url)


def test_an_engine_with_workers_leases_what_it_creates_and_one_without_leaves_it(tmp_path: Path) -> None:
    """The creating transaction takes the instance's lease only where a worker can run it: an instance started
    through an engine without workers must not wait out a lease (30 s here) before another engine runs it."""
    try:
        url = create_pg_database()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no PostgreSQL to test against: {exc}")
    bare = DurahubServer(db_path=tmp_path / "unused0.db", log_path=tmp_path / "bare.log",
                         extra_args=["--lease-seconds", "30"])
    busy = DurahubServer(db_path=tmp_path / "unused1.db", log_path=tmp_path / "busy.log",
                         extra_args=["--lease-seconds", "30"])
    bare.db = busy.db = url
    worker: subprocess.Popen[bytes] | None = None
    clients: list[wf.DaprWorkflowClient] = []
    try:
        bare.start()
        busy.start()
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([sys.executable, str(MP_WORKER), busy.port],
                                      stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: busy.connected_workers() >= 1, timeout=30, message="worker never connected")
        assert bare.connected_workers() == 0
        clients = [wf.DaprWorkflowClient(host="127.0.0.1", port=s.port) for s in (bare, busy)]

        on_busy = clients[1].schedule_new_workflow("mp_chain", input=1, instance_id="lease-busy")
        assert busy.proc is not None
        owner = _query(url, "SELECT lease_owner FROM instances WHERE instance_id = 'durahub|lease-busy'")
        assert owner and f"-{busy.proc.pid}-" in owner[0], owner

        # StartInstance returns once the first turn committed: on a lease held by `bare`, only after 30 s.
        t0 = time.monotonic()
        on_bare = clients[0].schedule_new_workflow("mp_chain", input=2, instance_id="lease-bare")
        for iid, expected in ((on_busy, 4), (on_bare, 5)):
            st = clients[0].wait_for_workflow_completion(iid, timeout_in_seconds=20)
            assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, (iid, st)
            assert json.loads(st.serialized_output) == expected
        assert time.monotonic() - t0 < 15, "the instance waited out a lease taken by an engine without workers"
    finally:
        for c in clients:
            c.close()
        if worker is not None:
            worker.kill()
            worker.wait()
        bare.stop()
        busy.stop()
        drop_pg_database(url)
