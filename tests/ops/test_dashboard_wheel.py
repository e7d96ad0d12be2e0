"""The dashboard's static files ship inside the wheel (package data): `pip install durahub` serves it with no
build step and nothing fetched at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from testsupport.process import REPO_ROOT

STATIC = REPO_ROOT / "src" / "durahub" / "dashboard" / "static"


def test_wheel_contains_every_dashboard_file(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO_ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list(tmp_path.glob("durahub-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    expected = {f"durahub/dashboard/static/{p.relative_to(STATIC).as_posix()}" for p in STATIC.rglob("*") if p.is_file()}
    assert {"durahub/dashboard/static/index.html", "durahub/dashboard/static/js/app.js"} <= expected
    assert expected <= names, sorted(expected - names)
    assert "durahub/dashboard/__init__.py" in names
