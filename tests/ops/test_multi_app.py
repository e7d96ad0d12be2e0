"""Several apps on one engine, as the official SDK's multi-app examples run them: three `durahub run --app-id`
commands started with `&` in one go (the SDK README's commands, `dapr run` replaced by `durahub run`), from the
pinned copies in examples/sdk_pinned/, in the README's three modes. The first launcher starts the engine; the
others attach to it, each as its own app with an endpoint of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.databases import BACKEND, create_pg_database, drop_pg_database
from testsupport.process import REPO_ROOT, free_port, skip_unless_default_ports_are_ours
from testsupport.server import SERVER_PYTHON

pytestmark = pytest.mark.timeout(180)

PINNED = REPO_ROOT / "examples" / "sdk_pinned"

# The SDK README's expected_stdout_lines for each mode (python-sdk v1.18.3 examples/workflow/README.md).
EXPECTED = {
    "normal": [
        "app1 - triggering app1 workflow", "app1 - received workflow call", "app1 - triggering app2 workflow",
        "app2 - received workflow call", "app2 - triggering app3 activity", "app3 - received activity call",
        "app3 - returning activity result", "app2 - received activity result", "app2 - returning workflow result",
        "app1 - received workflow result", "app1 - returning workflow result",
    ],
    "ERROR_ACTIVITY_MODE": [
        "app1 - triggering app1 workflow", "app1 - received workflow call", "app1 - triggering app2 workflow",
        "app2 - received workflow call", "app2 - triggering app3 activity", "app3 - received activity call",
        "app3 - raising error in activity due to error mode being enabled",
        "app2 - received activity error from app3", "app2 - returning workflow result",
        "app1 - received workflow result", "app1 - returning workflow result",
    ],
    "ERROR_WORKFLOW_MODE": [
        "app1 - triggering app1 workflow", "app1 - received workflow call", "app1 - triggering app2 workflow",
        "app2 - received workflow call", "app2 - raising error in workflow due to error mode being enabled",
        "app1 - received workflow error from app2", "app1 - returning workflow result",
    ],
}
# What each mode must not print (a failure that was not retried and reported, or a success that should fail).
UNEXPECTED = {
    "normal": ["received activity error", "received workflow error", "raising error"],
    "ERROR_ACTIVITY_MODE": ["app3 - returning activity result", "received workflow error"],
    "ERROR_WORKFLOW_MODE": ["app1 - received workflow result", "app2 - received activity result"],
}


def _bin(tmp_path: Path) -> Path:
    """`durahub` (the engine's interpreter, this checkout's source) and `python3` (this pass's SDK) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    durahub = bin_dir / "durahub"
    durahub.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT / "src"}" exec "{SERVER_PYTHON}" -m durahub "$@"\n')
    durahub.chmod(0o755)
    python = bin_dir / "python3"  # a script, not a symlink: a venv's interpreter finds its venv by its path
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return bin_dir


def _run_examples(tmp_path: Path, mode: str, ports: tuple[int, int] | None) -> str:
    """The README's three commands in one shell, the last in the foreground; the combined output of all
    three once every launcher has exited."""
    for name in ("multi-app1.py", "multi-app2.py", "multi-app3.py"):
        shutil.copy(PINNED / name, tmp_path / name)
    options = ""
    if ports is not None:
        options += f" --grpc-port {ports[0]} --http-port {ports[1]}"
    database = create_pg_database() if BACKEND == "postgres" else None
    if database is not None:
        options += f" --db {database}"
    script = "\n".join([
        f"durahub run --app-id wfexample3{options} -- python3 multi-app3.py > app3.log 2>&1 &",
        f"durahub run --app-id wfexample2{options} -- python3 multi-app2.py > app2.log 2>&1 &",
        f"durahub run --app-id wfexample1{options} -- python3 multi-app1.py > app1.log 2>&1",
        "echo app1-exit=$?",
        "wait",
    ])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DURAHUB_", "DAPR_", "APP_ID"))}
    env["PATH"] = f"{_bin(tmp_path)}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    if mode != "normal":
        env[mode] = "true"
    try:
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=150)
    finally:
        if database is not None:
            drop_pg_database(database)
    logs = "".join((tmp_path / f"app{i}.log").read_text() for i in (1, 2, 3))
    assert "app1-exit=0" in done.stdout, f"app1 failed:\n{done.stdout}{done.stderr}\n{logs}"
    return logs


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_the_sdk_multi_app_examples_run_on_one_engine(tmp_path: Path, mode: str) -> None:
    logs = _run_examples(tmp_path, mode, (free_port(), free_port()))
    missing = [line for line in EXPECTED[mode] if line not in logs]
    assert not missing, f"missing {missing} in:\n{logs}"
    wrong = [line for line in UNEXPECTED[mode] if line in logs]
    assert not wrong, f"unexpected {wrong} in:\n{logs}"
    # One engine: the first launcher started it, the other two attached as apps of their own.
    assert logs.count("on the app's own endpoint") == 2, logs


def test_the_sdk_multi_app_readme_commands_as_written(tmp_path: Path) -> None:
    """Exactly the README's commands: default ports, no options."""
    if BACKEND != "sqlite":
        pytest.skip("the README's commands use the default SQLite store")
    skip_unless_default_ports_are_ours(50001, 3500)
    logs = _run_examples(tmp_path, "normal", None)
    missing = [line for line in EXPECTED["normal"] if line not in logs]
    assert not missing, f"missing {missing} in:\n{logs}"
