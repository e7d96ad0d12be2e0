"""The official SDK's side of the test environment: pointing what the SDK builds at the environment's engine.

A `WorkflowRuntime` fixes its address when it is built, usually at import time (`wfr = WorkflowRuntime()` at
module level, default address), and a stopped one cannot be started again. So the environment never starts
the user's runtime itself: it starts a twin, a fresh runtime connected to the environment that shares the
user's registrations (workflows, activities, versions), and stops it with the environment. The user's runtime
is left as it was. Clients and runtimes built while an environment is open find it through the `DAPR_*`
settings it exports (the SDK reads them when it builds them).

Sharing registrations reads two names the SDK does not document, present in 1.18.3 and 1.19 alike: the
runtime's `__worker` and the worker's `_registry`; if a future SDK renames them, `twin_of` says so.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import dapr.ext.workflow as wf

# What `dapr run` / `durahub run` export to an app and the SDK reads when it builds a client or runtime.
SDK_SETTINGS = ("DAPR_GRPC_PORT", "DAPR_HTTP_PORT", "DAPR_RUNTIME_HOST", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_ENDPOINT")


class SdkSettings:
    """Exports the engine's address as the SDK's settings (environment and `dapr.conf.settings`) until
    `restore()`: a `DaprWorkflowClient()` or `WorkflowRuntime()` built meanwhile connects to it."""

    def __init__(self, host: str, grpc_port: int, http_port: int) -> None:
        self._values: dict[str, str | None] = {
            "DAPR_GRPC_PORT": str(grpc_port), "DAPR_HTTP_PORT": str(http_port), "DAPR_RUNTIME_HOST": host,
            # An endpoint wins over host and port in the SDK: none while the environment is open.
            "DAPR_GRPC_ENDPOINT": None, "DAPR_HTTP_ENDPOINT": None,
        }
        self._saved_env: dict[str, str | None] = {}
        self._saved_attrs: dict[str, Any] = {}

    def apply(self) -> None:
        from dapr.conf import settings

        assigned = vars(settings)  # values set on the object win over the environment
        for name, value in self._values.items():
            self._saved_env[name] = os.environ.get(name)
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
            if name in assigned:
                self._saved_attrs[name] = assigned[name]
                setattr(settings, name, value if value is None or name.endswith("HOST") else type(
                    assigned[name] or "")(value))

    def restore(self) -> None:
        from dapr.conf import settings

        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, attr in self._saved_attrs.items():
            setattr(settings, name, attr)
        self._saved_env.clear()
        self._saved_attrs.clear()


def _registry(runtime: wf.WorkflowRuntime) -> Any:
    worker = getattr(runtime, "_WorkflowRuntime__worker", None)
    registry = getattr(worker, "_registry", None)
    if registry is None:
        raise TypeError(
            "cannot read this WorkflowRuntime's registrations (the SDK's internals changed): build the runtime "
            "inside the test, after the environment is open, and register your workflows on it")
    return registry


def twin_of(runtime: wf.WorkflowRuntime, host: str, grpc_port: int, **options: Any) -> wf.WorkflowRuntime:
    """A runtime connected to `host:grpc_port` that runs what `runtime` registers (not started). `options`
    are `WorkflowRuntime` arguments; those this SDK does not know are left out."""
    registry = _registry(runtime)
    known = inspect.signature(wf.WorkflowRuntime).parameters
    twin = wf.WorkflowRuntime(host=host, port=str(grpc_port), **{k: v for k, v in options.items() if k in known})
    # Shared: registering on either registers on both.
    twin_worker = getattr(twin, "_WorkflowRuntime__worker")  # noqa: B009 - a mangled name
    twin_worker._registry = registry
    return twin
