"""The newcomer's case: the order service is up under `durahub run --app-id order-service`; then the management
API is started with a plain `durahub run -- uvicorn ...` (no --app-id). It attaches to the running engine as an
app of its own (its id named after its module), and both apps' workflows complete: no turn goes to the other
app's worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from testsupport.databases import BACKEND, create_pg_database, drop_pg_database
from testsupport.process import REPO_ROOT, free_port
from testsupport.server import SERVER_PYTHON

pytestmark = pytest.mark.timeout(180)


def _launch(tmp_path: Path, name: str, engine: tuple[int, int, str], app_args: list[str], port: int,
            extra: list[str]) -> subprocess.Popen[bytes]:
    grpc_port, http_port, db = engine
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURAHUB_", "DAPR_", "APP_ID"))}
    env["ORDER_ACTIVITY_SECONDS_SCALE"] = "0"
    env["MANAGEMENT_GREETING_SECONDS"] = "0.2"
    env["PYTHONPATH"] = str(REPO_ROOT / "src")  # the engine's source; the app finds `examples` from its cwd
    command = [SERVER_PYTHON, "-m", "durahub", "run", *extra, "--grpc-port", str(grpc_port), "--http-port",
               str(http_port), "--db", db, "--", sys.executable, "-m", "uvicorn", *app_args, "--port", str(port)]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=open(tmp_path / f"{name}.log", "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def _until(check, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_order_service_and_management_api_on_one_engine_under_their_own_app_ids(tmp_path: Path) -> None:
    database = create_pg_database() if BACKEND == "postgres" else str(tmp_path / "shared.db")
    grpc_port, http_port = free_port(), free_port()
    orders_port, mgmt_port = free_port(), free_port()
    engine = (grpc_port, http_port, database)
    orders = _launch(tmp_path, "orders", engine, ["examples.order_service.app:app"], orders_port,
                     ["--app-id", "order-service"])
    mgmt: subprocess.Popen[bytes] | None = None
    try:
        _healthy(orders_port, orders, tmp_path / "orders.log")
        mgmt = _launch(tmp_path, "mgmt", engine, ["examples.management_api.app:app"], mgmt_port, [])
        _healthy(mgmt_port, mgmt, tmp_path / "mgmt.log")
        assert "as app 'examples-management_api-app-app', on the app's own endpoint" in \
            (tmp_path / "mgmt.log").read_text()

        for n in range(3):  # several of each, so that a mis-routed turn would show
            r = httpx.post(f"http://127.0.0.1:{orders_port}/workflow/start",
                           json={"order_id": f"NEW{n}", "amount": 5, "items": ["pen"]}, timeout=30)
            assert r.status_code == 200, r.text
            r = httpx.post(f"http://127.0.0.1:{mgmt_port}/workflows/start/n{n}", params={"user_name": "Ada"},
                           timeout=30)
            assert r.status_code == 200, r.text
        for n in range(3):
            _until(lambda n=n: httpx.get(f"http://127.0.0.1:{mgmt_port}/workflows/iwf-n{n}/status", timeout=10)
                   .json().get("custom_status") == "waiting for approvalEvent", "the greeting to wait")
            r = httpx.post(f"http://127.0.0.1:{mgmt_port}/workflows/iwf-n{n}/raise_event/approvalEvent",
                           json={"approved": True}, timeout=10)
            assert r.status_code == 200, r.text
        for n in range(3):
            order = _until(lambda n=n: (s := httpx.get(f"http://127.0.0.1:{orders_port}/workflow/status/order_NEW{n}",
                                                       timeout=10).json())["runtime_status"] == "COMPLETED" and s,
                           "the order to complete")
            assert order["runtime_status"] == "COMPLETED"
            _until(lambda n=n: httpx.get(f"http://127.0.0.1:{mgmt_port}/workflows/iwf-n{n}/status", timeout=10)
                   .json()["runtime_status"] == "COMPLETED", "the management workflow to complete")

        apps = {a["app_id"]: a for a in httpx.get(f"http://127.0.0.1:{http_port}/durahub/v1/apps", timeout=10).json()}
        assert apps["order-service"]["workers"] >= 1 and apps["examples-management_api-app-app"]["workers"] >= 1
        listed = httpx.get(f"http://127.0.0.1:{http_port}/durahub/v1/instances",
                           params={"instance_id_prefix": "iwf-n", "appID": "examples-management_api-app-app"},
                           timeout=10).json()["instances"]
        assert {i["instance_id"] for i in listed} == {"iwf-n0", "iwf-n1", "iwf-n2"}
        for log in ("orders.log", "mgmt.log"):
            assert "NotRegisteredError" not in (tmp_path / log).read_text()
    finally:
        for proc in (mgmt, orders):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (mgmt, orders):
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if BACKEND == "postgres":
            drop_pg_database(database)
