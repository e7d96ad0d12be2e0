"""The sticky cache: per workflow instance, the live orchestration context after its last turn and what
history it has seen. Stdlib only (loaded by file path into app processes that may not have durahub installed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

DEFAULT_SIZE = 1000


@dataclass
class Stats:
    """What the cache did, for tests and measurements (read with `stats()`)."""

    sticky_turns: int = 0  # turns that fed only the events not seen yet to a live generator
    full_replays: int = 0  # turns that replayed the whole history (no entry, or it did not match)
    mismatches: int = 0  # of those, turns whose entry did not match the history sent
    evictions: int = 0  # entries dropped because the cache was full

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Entry:
    """One instance after a turn: its live context and the fingerprint of the history it has seen."""

    registry: Any  # the worker's registry: a cache is only valid for the functions that built it
    ctx: Any  # the SDK's _RuntimeOrchestrationContext, holding the suspended generator
    is_suspended: bool
    suspended_events: list[Any]
    seen: int  # how many history events it has processed (old + new of every turn so far)
    started_at: int  # index of the executionStarted event among them
    started: Any  # that event (a copy): a rerun, continue-as-new or re-created id has another one
    last: Any  # the last event seen (a copy)
    extra: dict[str, Any] = field(default_factory=dict)

    def resume_point(self, registry: Any, old_events: Any) -> int | None:
        """Where the events it has not seen begin in `old_events`, or None if that history is not the one
        it saw (then the turn must replay everything)."""
        n = self.seen
        if registry is not self.registry or len(old_events) < n:
            return None
        if old_events[n - 1] != self.last or old_events[self.started_at] != self.started:
            return None
        return n


class StickyCache:
    """A bounded LRU of entries. A turn takes its instance's entry out while it runs (so two work items for
    one instance never share a generator) and puts a new one back only if the workflow is still running."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = max(1, size)
        self.stats = Stats()
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: str) -> Entry | None:
        with self._lock:
            return self._entries.pop(instance_id, None)

    def put(self, instance_id: str, entry: Entry) -> None:
        with self._lock:
            self._entries[instance_id] = entry
            self._entries.move_to_end(instance_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
                self.stats.evictions += 1

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
