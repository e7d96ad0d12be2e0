"""The activity tasks this engine holds: by sequence number, by (instance, task id), and counted per instance."""

from __future__ import annotations

from collections.abc import Iterator

from durahub.core.apps import id_of
from durahub.engine.work import PendingTask


class ActivityTable:
    def __init__(self) -> None:
        self._tasks: dict[int, PendingTask] = {}
        # The current task with a given id of an instance, by (app running it, plain instance id, task id): what
        # a worker that does not echo completion tokens answers with.
        self._index: dict[tuple[str, str, int], int] = {}
        # Activities still out per instance (result gathering waits while some are).
        self._open: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[PendingTask]:
        return iter(self._tasks.values())

    def seqs(self) -> list[int]:
        return list(self._tasks)

    def get(self, seq: int) -> PendingTask | None:
        return self._tasks.get(seq)

    def find(self, app_id: str, instance_id: str, task_id: int) -> PendingTask | None:
        """The task `task_id` of (plain) instance id `instance_id` that app `app_id`'s workers run."""
        seq = self._index.get((app_id, instance_id, task_id))
        return self._tasks.get(seq) if seq is not None else None

    def has_open(self, instance_id: str) -> bool:
        return instance_id in self._open

    def waiting(self) -> int:
        """Tasks not out with a worker."""
        return sum(1 for t in self._tasks.values() if not t.token)

    def add(self, task: PendingTask) -> None:
        if task.seq not in self._tasks:
            self._open[task.instance_id] = self._open.get(task.instance_id, 0) + 1
        self._tasks[task.seq] = task
        self._index[_index_key(task)] = task.seq

    def drop(self, task: PendingTask) -> None:
        if self._tasks.pop(task.seq, None) is not None:
            left = self._open.get(task.instance_id, 1) - 1
            if left > 0:
                self._open[task.instance_id] = left
            else:
                self._open.pop(task.instance_id, None)
        if self._index.get(_index_key(task)) == task.seq:
            del self._index[_index_key(task)]

    def drop_instance(self, instance_id: str, keep_generation: int | None) -> None:
        """Drop the instance's tasks (all, or all but one generation's)."""
        if instance_id not in self._open:
            return
        for task in [t for t in self._tasks.values() if t.instance_id == instance_id]:
            if keep_generation is None or task.generation != keep_generation:
                self.drop(task)


def _index_key(task: PendingTask) -> tuple[str, str, int]:
    return task.app_id, id_of(task.instance_id), task.task_id
