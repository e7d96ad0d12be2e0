"""The storage interface: the few durable operations the engine needs, with typed errors.

Events travel as serialized `HistoryEvent` bytes, times as integer microseconds since the epoch, and
statuses as `OrchestrationStatus` values. Implementations make each call one transaction.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from durahub.errors import (
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceStalled,
    LeaseLost,
    StorageFailure,
    StoreError,
)

# The storage errors live with the others in durahub.errors; importable from here as before.
__all__ = [
    "InstanceExists", "InstanceNotFound", "InstanceNotTerminal", "InstanceStalled", "LeaseLost", "StorageFailure",
    "StoreError",
]


@dataclass
class InstanceRow:
    """An instance's row. In the store, `instance_id` and `parent_instance_id` are instance keys
    (`core.apps`); the engine hands rows out with the plain ids and the apps filled in (`Engine` facade)."""

    instance_id: str
    name: str
    status: int
    execution_id: str
    generation: int
    created_us: int
    updated_us: int
    completed_us: int | None
    input: str | None
    output: str | None
    custom_status: str | None
    failure: bytes | None
    parent_instance_id: str | None
    parent_task_id: int | None
    history_len: int
    app_id: str = ""
    parent_app_id: str | None = None
    # The instance key, for cursors over listings.
    key: str = ""
    # The serialized PropagatedHistory the instance received, if any.
    incoming: bytes | None = None
    # Its tags as a JSON object, and when its first turn started.
    tags: str | None = None
    started_us: int | None = None


@dataclass
class InboxRow:
    seq: int
    generation: int | None
    payload: bytes


@dataclass
class StoreGauges:
    """What the store holds now, for the metrics page."""

    statuses: dict[str, int]  # instances by status name
    # The least recently updated instance with inbox events ready to run (its age is how long work waits).
    oldest_ready_us: int | None
    # The last history event of each stalled instance (its executionStalled event), at most STALLED_SAMPLE.
    stalled_events: list[bytes]


STALLED_SAMPLE = 1000


@dataclass
class TaskRow:
    seq: int
    instance_id: str
    generation: int
    task_id: int
    payload: bytes
    # The app whose workers run the activity.
    app_id: str = ""


@dataclass
class NewChild:
    instance_id: str
    name: str
    created_us: int
    start_event: bytes
    conflict_event: bytes
    parent_task_id: int
    incoming: bytes | None = None


@dataclass
class TurnCommit:
    """One turn, made durable atomically."""

    instance_id: str
    status: int
    name: str
    execution_id: str
    generation: int
    created_us: int
    updated_us: int
    input: str | None
    output: str | None
    failure: bytes | None
    custom_status: str | None
    parent_instance_id: str | None
    parent_task_id: int | None
    # Position of the first appended event; 0 with replace_history (continue-as-new) rewrites history.
    history_start: int
    events: list[bytes]
    replace_history: bool = False
    consumed: list[int] = field(default_factory=list)
    # (generation, task_id, serialized ActivityRequest, app running it)
    tasks: list[tuple[int, int, bytes, str]] = field(default_factory=list)
    # (generation, fire_at_us, serialized TimerFired event)
    timers: list[tuple[int, int, bytes]] = field(default_factory=list)
    children: list[NewChild] = field(default_factory=list)
    # (target instance, serialized event)
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    # Events put at the front of the instance's own inbox, ahead of what is still queued there.
    inbox_front: list[bytes] = field(default_factory=list)
    # Shared stores: the committing process must still hold the instance's lease; the commit extends it.
    owner: str | None = None
    lease_until: int | None = None
    # With replace_history (a new generation): its incoming history, replacing the last one's.
    incoming: bytes | None = None
    # When the generation's first turn started (None until it has), and the instance's tags (JSON).
    started_us: int | None = None
    tags: str | None = None
    # Shared stores: the apps whose new tasks are written without a lease (no worker of theirs in this engine),
    # for an engine with one to claim; announced so that it does so at once.
    unleased_apps: list[str] = field(default_factory=list)


@dataclass
class CommitResult:
    task_seqs: list[int]
    # Instances whose inbox received events in this commit (including this one, on a child-id conflict).
    woken: set[str]
    # Child ids created by this commit; any that named a finished instance before now name a new one.
    created: list[str] = field(default_factory=list)


@dataclass
class InstanceQuery:
    """Filters for listing instances; results are ordered by (created_us, instance_id)."""

    statuses: list[int] = field(default_factory=list)
    # One app's instances (None: every app's). The id prefix applies within `app_id`, and `parent_id` is a key.
    app_id: str | None = None
    name: str | None = None
    created_from_us: int | None = None
    created_to_us: int | None = None
    id_prefix: str | None = None
    parent_id: str | None = None
    # The parent's app, for `parent_id` (the engine facade's; the store sees parent keys).
    parent_app_id: str | None = None
    # Keyset cursor: the (created_us, instance_id) of the last row of the previous page.
    after: tuple[int, str] | None = None
    limit: int = 100


@dataclass
class NewInstance:
    instance_id: str
    name: str
    created_us: int
    input: str | None
    start_event: bytes
    visible_us: int = 0
    parent_instance_id: str | None = None
    parent_task_id: int | None = None
    # Created already leased to this engine process (shared stores): its first turn needs no lease write.
    lease_owner: str | None = None
    lease_until_us: int | None = None
    # The history propagated to it by its caller (serialized PropagatedHistory).
    incoming: bytes | None = None
    # Its tags, as a JSON object.
    tags: str | None = None


class Store(abc.ABC):
    """Durable state of all instances. Every method is one transaction.

    A store used by one engine process at a time. `SharedStore` is one several processes may use at once.
    """

    #: Identifies this engine process in leases and change announcements (shared stores); stores take it as
    #: their `owner` constructor keyword, and it may be assigned until the store is opened.
    owner: str = ""

    @property
    def shared(self) -> bool:
        """Whether several engine processes may use this store at once (it is a `SharedStore`)."""
        return isinstance(self, SharedStore)

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def create_instance(self, new: NewInstance, replace_terminal: bool = True) -> bool:
        """Create an instance whose start event waits in its inbox. Raises InstanceExists for an active id (or
        a finished one with an active descendant); a finished instance with the same id is replaced (True),
        unless not `replace_terminal` (Dapr's enforceUniqueInstanceId): then it raises InstanceExists too."""

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> InstanceRow | None: ...

    @abc.abstractmethod
    async def load_history(self, instance_id: str) -> list[bytes]: ...

    @abc.abstractmethod
    async def load_inbox(self, instance_id: str, now_us: int, limit: int) -> list[InboxRow]: ...

    @abc.abstractmethod
    async def enqueue(self, instance_id: str, event: bytes, *, reject_stalled: bool = False) -> bool:
        """Append an event to an instance's inbox. Returns False (and stores nothing) when the instance is
        terminal. Raises InstanceNotFound, or InstanceStalled when `reject_stalled`."""

    @abc.abstractmethod
    async def commit_turn(self, commit: TurnCommit) -> CommitResult: ...

    @abc.abstractmethod
    async def commit_stall(self, instance_id: str, history_start: int, events: list[bytes], updated_us: int) -> None: ...

    @abc.abstractmethod
    async def consume_inbox(self, instance_id: str, seqs: list[int]) -> None: ...

    @abc.abstractmethod
    async def complete_task(self, task_seq: int, instance_id: str, generation: int, event: bytes) -> bool:
        """Record an activity result once: delete the task and queue the result. False if already done."""

    @abc.abstractmethod
    async def pending_tasks(self) -> list[TaskRow]: ...

    @abc.abstractmethod
    async def ready_instances(self, now_us: int) -> list[str]: ...

    @abc.abstractmethod
    async def future_wakeups(self, now_us: int) -> list[tuple[str, int]]: ...

    @abc.abstractmethod
    async def instances_with_status(self, status: int) -> list[str]: ...

    @abc.abstractmethod
    async def gauges(self, now_us: int) -> StoreGauges: ...

    @abc.abstractmethod
    async def list_instance_ids(self, app_id: str, after: str | None, limit: int) -> list[str]:
        """Keys of one app's instances after the key `after`, in key order."""

    @abc.abstractmethod
    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]: ...

    @abc.abstractmethod
    async def count_instances(self, query: InstanceQuery, by_name: bool) -> list[tuple[int, str, int]]:
        """(status, workflow name, count) of the instances matching `query` (not its cursor or limit); the name
        is "" unless `by_name`."""

    @abc.abstractmethod
    async def purge(self, instance_id: str, recursive: bool, force: bool) -> list[str]:
        """Delete a terminal instance (and, recursively, its children first). Returns the ids deleted."""

    @abc.abstractmethod
    async def purge_expired(self, status: int, since_us: int, before_us: int, limit: int) -> list[str]:
        """Delete up to `limit` instances with this terminal status that finished in [since_us, before_us),
        the earliest first, each alone (not its children; retention). Returns the ids deleted. Processes
        running it at once delete different instances: one skips those another is deleting."""

    @abc.abstractmethod
    async def setdefault_setting(self, key: str, value: str) -> str:
        """The database's setting `key`, set to `value` first if it has none (the first writer wins)."""

    @abc.abstractmethod
    async def put_setting(self, key: str, value: str) -> None:
        """Set the database's setting `key` (replacing its value)."""

    @abc.abstractmethod
    async def settings(self, prefix: str) -> dict[str, str]:
        """The database's settings whose keys start with `prefix`."""

    @abc.abstractmethod
    async def create_with_history(
        self, new: NewInstance, status: int, history: list[bytes], tasks: list[tuple[int, int, bytes, str]],
        timers: list[tuple[int, int, bytes]], execution_id: str, updated_us: int,
    ) -> list[int]:
        """Create an instance from a ready-made history (rerun). Raises InstanceExists. Returns task seqs."""


class SharedStore(Store):
    """A store several engine processes use at once (PostgreSQL). They coordinate through leases: an instance's
    turns and each activity task are held by one process (`owner`) until a time, renewed while in hand and
    taken over by another process once expired; and each hears about the others' changes through `listen`."""

    @abc.abstractmethod
    async def acquire_instance(self, instance_id: str, until_us: int, now_us: int) -> tuple[int, int] | None:
        """Take (or extend) the instance's lease until `until_us` unless another owner holds it past `now_us`.
        Returns the committed (history length, generation), or None when another owner holds it."""

    @abc.abstractmethod
    async def renew_leases(self, instance_ids: list[str], task_seqs: list[int], until_us: int) -> None:
        """Extend this owner's leases on the instances and tasks to `until_us` (those it still holds)."""

    @abc.abstractmethod
    async def claim_tasks(self, until_us: int, now_us: int, limit: int, apps: list[str]) -> list[TaskRow]:
        """Lease activity tasks of `apps` (the apps with workers here) nobody holds (or whose holder stopped
        renewing) until `until_us`, at most `limit`, in seq order."""

    @abc.abstractmethod
    async def release_leases(self) -> tuple[int, int]:
        """End every lease this owner holds, at once, so that other processes take the work over (an engine
        whose workers are gone). Returns how many instance and task leases ended."""

    @abc.abstractmethod
    async def sweep_ready(self, now_us: int, limit: int, apps: list[str]) -> list[tuple[str, str | None]]:
        """Instances of `apps` with visible inbox events that no other process holds a live lease on: work
        another process left behind; each with the owner of its last lease (None if it never had one)."""

    @abc.abstractmethod
    def listen(self, callback: Callable[[str, str, str], object]) -> None:
        """Call `callback(kind, owner, instance_id)` (from another thread) for the changes processes announce,
        including this one's: kind "i" = the instance's inbox gained events, "c" = its committed state changed,
        "t" = unleased activity tasks were written for an app (the third argument is then the app id).
        Listening stops when the store is closed."""
