"""Every error durahub's engine and store raise on purpose, in one place.

The protocol adapters translate them into their wire's statuses with one table per protocol
(`durahub.api.errors`); nothing here knows about gRPC or HTTP.
"""

from __future__ import annotations


def shown_id(key: str) -> str:
    """The instance id of an instance key ("<app>|<id>", `durahub.core.apps`) as messages show it. The
    instance errors below are raised with keys; `.instance_id` keeps the key."""
    _, sep, instance_id = key.partition("|")
    return instance_id if sep else key


class DurahubError(Exception):
    """Base class of the errors a request can meet; anything else reaching an adapter is a bug."""


class InvalidRequest(DurahubError):
    """A request no store could keep (the same rule for every backend)."""


class InvalidAppId(InvalidRequest):
    def __init__(self, app_id: str) -> None:
        super().__init__(
            f"workflow app ID '{app_id}' is invalid: only alphanumeric, dash and underscore characters are allowed"
        )
        self.app_id = app_id


class EngineStopping(DurahubError):
    def __init__(self, message: str = "durahub is shutting down") -> None:
        super().__init__(message)


class StoreError(DurahubError):
    """Base class of the storage errors."""


class InstanceNotFound(StoreError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no such instance exists: '{shown_id(instance_id)}'")
        self.instance_id = instance_id


class InstanceExists(StoreError):
    def __init__(self, instance_id: str, message: str | None = None) -> None:
        super().__init__(message or f"an active workflow with ID '{shown_id(instance_id)}' already exists")
        self.instance_id = instance_id


class StorageFailure(StoreError):
    """The database itself failed (disk full, locked past the timeout, connection lost): nothing was changed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"storage failure: {cause}")
        self.cause = cause


class LeaseLost(StoreError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"lease on workflow instance '{shown_id(instance_id)}' was lost to another engine process")
        self.instance_id = instance_id


class InstanceStalled(StoreError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"workflow is stalled: '{shown_id(instance_id)}'")
        self.instance_id = instance_id


class InstanceNotTerminal(StoreError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"orchestration has not yet completed: '{shown_id(instance_id)}'")
        self.instance_id = instance_id


class RerunTargetNotFound(DurahubError):
    """The event to rerun from is not in the source instance's history."""


class RerunInvalid(DurahubError):
    """The rerun request itself is wrong (not a rerunnable event, the new id equals the source's)."""


class RerunNotAllowed(DurahubError):
    """The source instance cannot be rerun in its state: still active, or a child workflow."""


class WorkflowBlocked(DurahubError):
    """A wait under time skipping that nothing can end: the engine is idle, no timer is left to skip to, and the
    instance waits on something only the outside world can give (an event, a worker, a resume)."""

    def __init__(self, instance_id: str, message: str) -> None:
        super().__init__(message)
        self.instance_id = instance_id


class TimeSkippingLimit(WorkflowBlocked):
    """A wait under time skipping that skipped its limit of virtual time (or of skips) without ending: most
    likely an eternal loop of timers (a monitor), which a test should stop itself."""
