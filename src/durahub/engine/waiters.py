"""Long-polls on an instance's committed state: who waits for what, and waking them after each commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from durahub.store.base import InstanceRow

Predicate = Callable[[InstanceRow], bool]


class Waiters:
    def __init__(self, read: Callable[[str], Awaitable[InstanceRow | None]]) -> None:
        self._read = read
        self._waiting: dict[str, list[tuple[Predicate, asyncio.Future[InstanceRow | None]]]] = {}
        # Told the key of every instance that changed (the dashboard's change feed); only while subscribed.
        self._listeners: list[Callable[[str], None]] = []

    def __contains__(self, instance_id: str) -> bool:
        """Whether anyone wants to hear of the instance's next commit."""
        return instance_id in self._waiting or bool(self._listeners)

    def listen(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(key)` after every change of any instance; returns what unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def announce(self, instance_id: str) -> None:
        """Tell the listeners the instance changed (also: was created or purged)."""
        for listener in self._listeners:
            listener(instance_id)

    def notify(self, instance_id: str, row: InstanceRow | None = None) -> None:
        """Wake the instance's waiters. With the committed row in hand, only those it satisfies (they get the
        row and need not read it back); without, all of them, to read it."""
        self.announce(instance_id)
        waiters = self._waiting.get(instance_id)
        if not waiters:
            return
        keep = []
        for predicate, fut in waiters:
            if fut.done():
                continue
            if row is None:
                fut.set_result(None)
            elif predicate(row):
                fut.set_result(row)
            else:
                keep.append((predicate, fut))
        if keep:
            self._waiting[instance_id] = keep
        else:
            del self._waiting[instance_id]

    def waited(self) -> list[str]:
        """The instances someone waits on now."""
        return list(self._waiting)

    def fail(self, instance_id: str, exc: BaseException) -> None:
        """End every wait on the instance with `exc`."""
        for _, fut in self._waiting.pop(instance_id, []):
            if not fut.done():
                fut.set_exception(exc)

    def fail_all(self, exc: BaseException) -> None:
        for waiters in self._waiting.values():
            for _, fut in waiters:
                if not fut.done():
                    fut.set_exception(exc)
        self._waiting.clear()

    async def wait_for(self, instance_id: str, predicate: Predicate, timeout: float | None = None) -> InstanceRow | None:
        """Long-poll until the instance's committed state satisfies `predicate`. None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Registered before the read, so no commit can slip between the two unseen.
            fut: asyncio.Future[InstanceRow | None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(instance_id, []).append((predicate, fut))
            try:
                row = await self._read(instance_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if row is not None and predicate(row):
                    return row
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    committed = await asyncio.wait_for(fut, timeout=remaining)
                except TimeoutError:
                    return None
                if committed is not None:
                    return committed  # the commit that woke us satisfies the predicate
            finally:
                waiters = self._waiting.get(instance_id)
                if waiters is not None:
                    self._waiting[instance_id] = [w for w in waiters if w[1] is not fut]
                    if not self._waiting[instance_id]:
                        del self._waiting[instance_id]
