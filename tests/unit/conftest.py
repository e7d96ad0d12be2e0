"""In-process tests: durahub's modules imported and driven directly, no server subprocess.

They run where durahub is installed (the 1.19 venv). In the legacy-SDK venv, which has no durahub, every
module here is reported as skipped (once per module) instead of failing to import; this works whether the
run starts at the repository root or names a directory or file under tests/unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REASON = "in-process tests run where durahub is installed (the 1.19 venv)"


class _NeedsDurahub(pytest.Module):
    def collect(self) -> Any:
        pytest.importorskip("durahub", reason=REASON)
        return super().collect()


def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector) -> pytest.Module:
    return _NeedsDurahub.from_parent(parent, path=module_path)
