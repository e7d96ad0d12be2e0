"""The harness's own fixtures for these tests, also where the installed durahub predates its pytest11 entry
point (an editable install made before it was added)."""

from __future__ import annotations

try:
    from durahub.testing.pytest_plugin import durahub_env, durahub_local_env  # noqa: F401
except ImportError:  # the legacy-SDK venv has no durahub: tests/unit/conftest.py skips these modules
    pass
