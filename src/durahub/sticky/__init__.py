"""The sticky worker: an opt-in accelerator for long histories in the app's SDK worker process.

The official SDK replays a workflow's whole history on every turn, so a workflow of n turns costs O(n^2) in
the worker. With the accelerator, the worker keeps each running workflow's orchestration context (and its
suspended generator) between turns, the way Temporal's sticky cache does, and feeds it only the events it has
not processed yet; whenever the history a turn is sent does not start with what it holds (another worker had
the previous turn, the worker restarted, the entry was evicted, a rerun or continue-as-new) it replays in full,
as the SDK does. Details: `executor.py` (the executor), `cache.py` (the bounded cache, what a match is).

It changes no app: `durahub run --sticky-worker -- python app.py` starts the app with `site/` first on
PYTHONPATH and DURAHUB_STICKY_WORKER=1; `site/sitecustomize.py` (which runs the sitecustomize it shadows, if
any) loads this package by file path and patches the SDK's worker module when the app imports it. In a
process of one's own: `durahub.sticky.install()` before or after importing the SDK.

This package imports nothing from the rest of durahub (app processes need not have durahub installed).
"""

from __future__ import annotations

import atexit
import json
import os
from types import ModuleType
from typing import Any

from .cache import DEFAULT_SIZE, StickyCache
from .executor import make_executor_class
from .hook import after_import

ENV_ON = "DURAHUB_STICKY_WORKER"  # "1": sitecustomize installs the accelerator
ENV_SIZE = "DURAHUB_STICKY_WORKER_SIZE"  # workflows kept (LRU); default DEFAULT_SIZE
# A directory: at exit, the process writes its cache's counters there as <pid>.json (tests and benchmarks
# check that a worker they did not start themselves really ran sticky).
ENV_STATS_DIR = "DURAHUB_STICKY_WORKER_STATS_DIR"
WORKER_MODULE = "dapr.ext.workflow._durabletask.worker"
SITE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
_CACHE_ATTR = "_durahub_sticky_cache"
# What the patch relies on in the SDK's worker module; without any of them it leaves the SDK alone.
_NEEDED = ("_OrchestrationExecutor", "_RuntimeOrchestrationContext", "ExecutionResults",
           "VersionNotRegisteredException", "_get_new_event_summary", "_get_action_summary", "pb", "ph", "task")


def patch(worker: ModuleType, size: int = DEFAULT_SIZE) -> StickyCache | None:
    """Make `worker` (the SDK's worker module) run orchestrations sticky; idempotent. None if the module
    does not look like the SDK versions this was written for."""
    cache: StickyCache | None = getattr(worker, _CACHE_ATTR, None)
    if cache is not None:
        return cache
    if not all(hasattr(worker, name) for name in _NEEDED):
        return None
    cache = StickyCache(size)
    worker._OrchestrationExecutor = make_executor_class(worker, cache)  # type: ignore[attr-defined]
    setattr(worker, _CACHE_ATTR, cache)
    return cache


def unpatch(worker: ModuleType) -> None:
    """Undo `patch` (tests that turn it on for a while in a process of their own)."""
    if getattr(worker, _CACHE_ATTR, None) is None:
        return
    worker._OrchestrationExecutor = worker._OrchestrationExecutor.__bases__[0]  # type: ignore[attr-defined]
    delattr(worker, _CACHE_ATTR)


def install(size: int | None = None) -> None:
    """Patch the SDK's worker module now, or when it is imported."""
    wanted = size if size is not None else size_from_env()

    def patch_it(worker: ModuleType) -> None:
        patch(worker, wanted)

    after_import(WORKER_MODULE, patch_it)
    stats_dir = os.environ.get(ENV_STATS_DIR)
    if stats_dir:
        atexit.register(write_stats, stats_dir)


def write_stats(directory: str) -> None:
    """This process's counters as <directory>/<pid>.json, if its SDK was patched."""
    c = cache()
    if c is not None:
        with open(os.path.join(directory, f"{os.getpid()}.json"), "w") as f:
            json.dump(c.stats.as_dict(), f)


def size_from_env(env: Any = None) -> int:
    try:
        return int((env if env is not None else os.environ).get(ENV_SIZE, "")) or DEFAULT_SIZE
    except ValueError:
        return DEFAULT_SIZE


def cache() -> StickyCache | None:
    """The cache of the patched SDK in this process, if it is patched."""
    import sys

    worker = sys.modules.get(WORKER_MODULE)
    return getattr(worker, _CACHE_ATTR, None) if worker is not None else None


def app_env(env: dict[str, str], size: int | None = None) -> dict[str, str]:
    """`env` for an app process that should run its SDK worker sticky."""
    out = dict(env)
    path = out.get("PYTHONPATH", "")
    out["PYTHONPATH"] = SITE_DIR + (os.pathsep + path if path else "")
    out[ENV_ON] = "1"
    if size is not None:
        out[ENV_SIZE] = str(size)
    return out
