"""DURAHUB_TEST_STICKY=1: every SDK worker the suite runs uses the sticky worker accelerator
(src/durahub/sticky): the in-process runtimes of this pytest process, and every process it starts (apps, fault
workers, `durahub run` children), through the accelerator's site directory on PYTHONPATH and
DURAHUB_STICKY_WORKER=1, exactly what `durahub run --sticky-worker` gives an app.

Loaded by file path, not `import durahub.sticky`: the harness also runs where durahub is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any

ENABLED = os.environ.get("DURAHUB_TEST_STICKY", "") not in ("", "0")
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "src" / "durahub" / "sticky"
SITE_DIR = PACKAGE_DIR / "site"
_NAME = "_durahub_sticky"  # the name site/sitecustomize.py loads it under: one copy per process


def package() -> ModuleType:
    """The accelerator's package, loaded once per process."""
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, PACKAGE_DIR / "__init__.py",
                                                      submodule_search_locations=[str(PACKAGE_DIR)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return module


def app_env(env: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add what makes a child process's SDK worker sticky to `env` (when enabled); returns `env`."""
    if ENABLED:
        path = env.get("PYTHONPATH", "")
        if str(SITE_DIR) not in path.split(os.pathsep):
            env["PYTHONPATH"] = str(SITE_DIR) + (os.pathsep + path if path else "")
        env["DURAHUB_STICKY_WORKER"] = "1"
    return env


def stats() -> dict[str, Any] | None:
    """This process's sticky cache counters, None if its SDK is not patched."""
    cache = package().cache()
    return None if cache is None else dict(cache.stats.as_dict())


def enable_for_session() -> None:
    """With DURAHUB_TEST_STICKY=1: patch this process's SDK and export the switch to every child, each of
    which writes its counters to a directory of this run at exit (`summary`)."""
    if ENABLED:
        app_env(os.environ)
        os.environ.setdefault("DURAHUB_STICKY_WORKER_STATS_DIR", tempfile.mkdtemp(prefix="durahub-sticky-stats-"))
        package().install()


def summary() -> str | None:
    """What the sticky workers of this run did: this process and every child that exited normally."""
    if not ENABLED:
        return None
    directory = Path(os.environ["DURAHUB_STICKY_WORKER_STATS_DIR"])
    children = [json.loads(p.read_text()) for p in directory.glob("*.json") if p.stem != str(os.getpid())]
    total: dict[str, int] = dict(stats() or {})
    for counts in children:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return f"sticky worker: this process + {len(children)} child processes with a patched SDK: {total}"
