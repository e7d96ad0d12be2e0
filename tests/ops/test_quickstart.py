"""The README's first command, as a new user runs it: a fresh clone, `./scripts/run.sh`, then curl-style
requests against port 8000 complete an order."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import pytest

from testsupport.databases import BACKEND
from testsupport.process import REPO_ROOT, skip_unless_default_ports_are_ours

pytest.importorskip("durahub", reason="runs once, in the main (1.19) pass")
pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(BACKEND != "sqlite", reason="the quickstart uses the default SQLite store"),
]
PORTS = (8000, 50001, 3500)


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_readme_first_command_serves_the_order_service(tmp_path) -> None:
    skip_unless_default_ports_are_ours(*PORTS)
    readme = (REPO_ROOT / "README.md").read_text()
    assert "./scripts/run.sh" in readme.split("```")[1], "the README's first command changed: update this test"
    clone = tmp_path / "durahub"
    subprocess.run(["git", "clone", "-q", "--local", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    log = open(tmp_path / "run.log", "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURAHUB_", "VIRTUAL_ENV", "PYTHONPATH"))}
    proc = subprocess.Popen(["./scripts/run.sh"], cwd=clone, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + 480  # a fresh clone installs its virtualenv first
        while True:
            assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                if httpx.get("http://127.0.0.1:8000/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(1)
        r = httpx.post("http://127.0.0.1:8000/workflow/start",
                       json={"order_id": "QUICK001", "amount": 10, "items": ["pen", "ink"]}, timeout=30)
        assert r.status_code in (200, 202), r.text
        instance_id = r.json()["instance_id"]
        assert instance_id == "order_QUICK001"
        deadline = time.monotonic() + 30
        while True:
            status = httpx.get(f"http://127.0.0.1:8000/workflow/status/{instance_id}", timeout=10).json()
            if status["runtime_status"] == "COMPLETED":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        assert status["output"]["process_result"]["total"] == pytest.approx(11.0)
        dapr_view = httpx.get(f"http://127.0.0.1:3500/v1.0/workflows/dapr/{instance_id}", timeout=10).json()
        assert dapr_view["runtimeStatus"] == "COMPLETED"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert not any(_busy(p) for p in PORTS), "the quickstart left something listening"
