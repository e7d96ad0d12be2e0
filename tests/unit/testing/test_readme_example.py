"""The README's "Testing your workflows" example, copied into a fresh directory and run by pytest as a user
would: every test in it passes, with the fixtures coming from the plugin durahub installs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import durahub

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.timeout(180)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Testing your workflows", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the section has one complete test file"
    return blocks[0]


def test_the_readme_example_passes(tmp_path: Path) -> None:
    (tmp_path / "test_approval.py").write_text(readme_example())
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_approval.py"]
    if not any(ep.value == "durahub.testing.pytest_plugin" for ep in entry_points(group="pytest11")):
        # An editable install made before the entry point existed: name the plugin (what the entry point does).
        args[3:3] = ["-p", "durahub.testing.pytest_plugin"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(durahub.__file__).resolve().parents[1])  # this durahub, not another checkout
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "6 passed" in proc.stdout
