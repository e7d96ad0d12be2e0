"""The python-sdk's own history-propagation example (v1.18.3, pinned in examples/sdk_pinned/) run against
durahub as its sidecar, checked for the lines the SDK's example test expects
(python-sdk tests/examples/test_workflow.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testsupport.process import REPO_ROOT
from testsupport.server import DurahubServer

pytestmark = pytest.mark.timeout(120)

EXAMPLE = REPO_ROOT / "examples" / "sdk_pinned" / "history_propagation.py"

EXPECTED = [
    "*** validating merchant merchant-42",
    "*** process_payment received parent context for merchant 'merchant-42'",
    "*** log_summary saw parent on app",
    'validate_merchant -> completed=True output={"merchant_id": "merchant-42", "valid": true}',
    "*** workflow completed: status=COMPLETED",
]


def test_the_sdk_history_propagation_example_sees_its_parents_history(server: DurahubServer) -> None:
    # The app gets the engine's address the way `dapr run` / `durahub run` export it.
    proc = subprocess.run([sys.executable, str(EXAMPLE)], cwd=EXAMPLE.parent,
                          env={**os.environ, **server.sdk_env()}, capture_output=True, text=True, timeout=90)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    missing = [line for line in EXPECTED if line not in output]
    assert not missing, f"missing {missing} in:\n{output}"
