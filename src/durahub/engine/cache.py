"""What the engine remembers of instances between turns: their committed state, which prefix of their history
a stateful worker holds, and how long the worker's last turn on them took."""

from __future__ import annotations

from collections import OrderedDict

from durahub.core.apps import split_key
from durahub.core.state import InstanceState
from durahub.protos import pb
from durahub.store.base import Store

STATE_CACHE_SIZE = 4096


class StateCache:
    """Keyed by instance key (`core.apps`)."""

    def __init__(self, store: Store, size: int = STATE_CACHE_SIZE) -> None:
        self._store = store
        self._size = size
        self._states: OrderedDict[str, InstanceState] = OrderedDict()
        # instance -> (stream id, generation, events held) for workers with the stateful-history capability.
        self._worker_cache: dict[str, tuple[int, int, int]] = {}
        self.turn_seconds: dict[str, float] = {}

    def get(self, instance_id: str) -> InstanceState | None:
        return self._states.get(instance_id)

    async def load(self, instance_id: str) -> InstanceState | None:
        """The instance's committed state: cached, or read from the store."""
        state = self._states.get(instance_id)
        if state is not None:
            self._states.move_to_end(instance_id)
            return state
        row = await self._store.get_instance(instance_id)
        if row is None:
            return None
        history = [pb.HistoryEvent.FromString(b) for b in await self._store.load_history(instance_id)]
        app_id, plain_id = split_key(instance_id)
        state = InstanceState.from_history(plain_id, row.generation, history, app_id)
        if row.incoming is not None:
            state.incoming = pb.PropagatedHistory.FromString(row.incoming)
        self._worker_cache.pop(instance_id, None)
        self.put(state)
        return state

    def put(self, state: InstanceState) -> None:
        key = state.key
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self._size:
            evicted, _ = self._states.popitem(last=False)
            self._worker_cache.pop(evicted, None)

    def forget(self, instance_id: str) -> None:
        self._states.pop(instance_id, None)
        self._worker_cache.pop(instance_id, None)
        self.turn_seconds.pop(instance_id, None)

    def worker_holds(self, instance_id: str) -> tuple[int, int, int] | None:
        return self._worker_cache.get(instance_id)

    def note_worker_holds(self, instance_id: str, stream_id: int, generation: int, events: int) -> None:
        self._worker_cache[instance_id] = (stream_id, generation, events)

    def forget_stream(self, stream_id: int) -> None:
        for instance_id, (holder, _, _) in list(self._worker_cache.items()):
            if holder == stream_id:
                del self._worker_cache[instance_id]
