"""Work-item streams: which workers are connected, which item each owes an answer for (by completion token),
and what goes back to the queue when a stream closes."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from durahub.engine.cache import StateCache
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.work import PendingTask, Stream, Turn

log = logging.getLogger("durahub.engine")

# How many tokens of dispatches lost with their stream are remembered for late answers.
RETIRED_TOKENS = 10_000

Outstanding = Turn | PendingTask


class Streams:
    def __init__(self, scheduler: Scheduler, tasks: ActivityTable, cache: StateCache,
                 turn_lost: Callable[[Turn], None] | None = None) -> None:
        self._scheduler = scheduler
        # Told of each turn that was out on a stream when it closed (metrics: a recoverable execution).
        self._turn_lost = turn_lost
        self._tasks = tasks
        self._cache = cache
        self._streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._tokens: dict[str, tuple[Stream, Outstanding]] = {}
        # Completion tokens: a random prefix per engine process (a late answer to an earlier process's dispatch
        # matches nothing here) and a counter (cheaper than a UUID per dispatch).
        self._token_prefix = f"{secrets.token_hex(8)}-"
        self._token_numbers = itertools.count(1)
        # Tokens of activity dispatches whose stream died, so their late answers can still be matched.
        self._retired: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, capabilities: list[int], task: asyncio.Task[Any] | None, app_id: str) -> Stream:
        stream = Stream(id=next(self._ids), capabilities=frozenset(capabilities), app_id=app_id, task=task)
        self._streams[stream.id] = stream
        log.info("event=worker_connected stream=%d app=%s capabilities=%s workers=%d", stream.id, app_id,
                 sorted(capabilities), len(self._streams))
        return stream

    def count(self, app_id: str) -> int:
        """Workers of one app connected here."""
        return sum(1 for s in self._streams.values() if s.app_id == app_id)

    def apps(self) -> list[str]:
        """The apps with a worker connected here."""
        return sorted({s.app_id for s in self._streams.values()})

    def all(self) -> list[Stream]:
        return list(self._streams.values())

    def end_all(self) -> None:
        """Shutdown: end every work-item stream now; workers reconnect (to this engine once it is back)."""
        for stream in list(self._streams.values()):
            if stream.task is not None:
                stream.task.cancel()

    def close(self, stream: Stream) -> None:
        """The stream is gone: its turns are scheduled again and its activities go back to the queue."""
        stream.closed = True
        self._streams.pop(stream.id, None)
        requeued = 0
        for token in list(stream.outstanding):
            entry = self._tokens.pop(token, None)
            if entry is None:
                continue
            item = entry[1]
            requeued += 1
            if isinstance(item, Turn):
                if self._turn_lost is not None:
                    self._turn_lost(item)
                self._scheduler.end_turn(item.instance_id, reschedule=True)
            elif self._tasks.get(item.seq) is not None:
                item.token = ""
                self._retired[token] = item.seq
                while len(self._retired) > RETIRED_TOKENS:
                    self._retired.popitem(last=False)
                self._scheduler.dispatch_task(item.seq, item.app_id)
        stream.outstanding.clear()
        self._cache.forget_stream(stream.id)
        log.info("event=worker_disconnected stream=%d app=%s requeued=%d workers=%d", stream.id, stream.app_id,
                 requeued, len(self._streams))

    def issue(self, stream: Stream, item: Outstanding) -> str:
        """A token for an item sent on the stream; its answer must carry it."""
        token = f"{self._token_prefix}{next(self._token_numbers)}"
        self._tokens[token] = (stream, item)
        stream.outstanding.add(token)
        return token

    def take(self, token: str, matches: Callable[[Outstanding], bool]) -> Outstanding | None:
        """Take the outstanding item a completion answers, if the completion really is for it."""
        entry = self._tokens.get(token)
        if entry is None or not matches(entry[1]):
            return None  # unknown, late, or someone else's token: the item stays outstanding
        del self._tokens[token]
        entry[0].outstanding.discard(token)
        return entry[1]

    def retired(self, token: str) -> int | None:
        """The task sequence number a token of a dropped stream was for."""
        return self._retired.get(token)
