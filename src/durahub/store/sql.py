"""The store in portable SQL, shared by SQLite and PostgreSQL.

Each `Store` method is one transaction body (`transactions.py` for writes, `queries.py` for reads) handed to
the `TransactionRunner` (`runner.py`: one writer thread with group commit, one reader thread, inline point
reads), plus the change announcements a shared store sends to other processes. The tables and their
migrations are in `schema.py`. Subclasses say how to connect and provide their `Dialect`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar, TypeVar

from durahub.store import queries as q
from durahub.store import transactions as tx
from durahub.store.base import (
    CommitResult,
    InboxRow,
    InstanceQuery,
    InstanceRow,
    NewInstance,
    Store,
    StoreGauges,
    TaskRow,
    TurnCommit,
)
from durahub.store.runner import Conn, Cursor, Dialect, TransactionRunner
from durahub.store.schema import SCHEMA, SCHEMA_VERSION, migrate

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Conn", "Cursor", "Dialect", "SqlStore"]

T = TypeVar("T")


class SqlStore(Store):
    """Everything but connecting: subclasses provide `_connect` and their `dialect`."""

    dialect: ClassVar[Dialect]

    def __init__(self, *, owner: str = "", app_id: str = "durahub") -> None:
        self.owner = owner
        # The app that instances of a database from before apps are given (schema migration 3).
        self.default_app = app_id
        self.runner = TransactionRunner(self.dialect, self._connect, connect_inline=self._connect_inline,
                                        publish=self._publish)
        self._announcements = self.runner.announcements

    @abc.abstractmethod
    def _connect(self) -> Conn:
        """A new connection in autocommit mode (the runner issues BEGIN and COMMIT itself)."""

    def _connect_inline(self) -> Conn:
        """The connection for point reads on the event loop (`Dialect.inline_point_reads`)."""
        return self._connect()

    def _lock_schema(self, conn: Conn) -> None:
        """Serialize schema set-up between processes starting at once (the transaction lock suffices in SQLite)."""

    def describe(self) -> str:
        return self.dialect.name

    async def open(self) -> None:
        await self.runner.open(self._migrate)

    def _migrate(self, conn: Conn) -> None:
        migrate(conn, self.dialect, self.describe(), self._lock_schema, self.default_app)

    async def close(self) -> None:
        await self.runner.close()

    # Kept for tests/test_store_migrations.py, which runs raw SQL through them; use `runner` instead.
    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await self.runner.read(fn)

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        return await self.runner.write(fn)

    # -- announcements (shared stores) ----------------------------------------------------------------

    def _announce(self, kind: str, instance_id: str) -> None:
        """Tell other engine processes about a change, within the transaction making it (shared stores).
        Collected in `_announcements` (writer thread only) and published once per transaction by `_publish`."""

    def _publish(self, conn: Conn, notes: list[str]) -> None:
        """Send the batch's announcements as part of its transaction (shared stores)."""

    # -- instances ------------------------------------------------------------------------------------

    async def create_instance(self, new: NewInstance, replace_terminal: bool = True) -> bool:
        def run(c: Conn) -> bool:
            replaced = tx.insert_new(c, new, replace_terminal=replace_terminal)
            if replaced:
                self._announce("c", new.instance_id)  # others drop what they remember of the old one
            self._announce("i", new.instance_id)
            return replaced

        return await self.runner.write(run)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        return await self.runner.read_point(lambda c: q.get_instance(c, instance_id))

    async def load_history(self, instance_id: str) -> list[bytes]:
        return await self.runner.read(lambda c: q.load_history(c, instance_id))

    async def load_inbox(self, instance_id: str, now_us: int, limit: int) -> list[InboxRow]:
        return await self.runner.read_point(lambda c: q.load_inbox(c, instance_id, now_us, limit))

    async def enqueue(self, instance_id: str, event: bytes, *, reject_stalled: bool = False) -> bool:
        def run(c: Conn) -> bool:
            if not tx.enqueue(c, instance_id, event, reject_stalled):
                return False
            self._announce("i", instance_id)
            return True

        return await self.runner.write(run)

    async def commit_turn(self, commit: TurnCommit) -> CommitResult:
        def run(c: Conn) -> CommitResult:
            result = tx.commit_turn(c, commit)
            self._announce("c", commit.instance_id)
            for app in commit.unleased_apps:
                self._announce("t", app)  # tasks for an app whose workers are on another engine
            for created in result.created:
                self._announce("c", created)
            for woken in result.woken:
                self._announce("i", woken)
            return result

        return await self.runner.write(run)

    async def commit_stall(self, instance_id: str, history_start: int, events: list[bytes], updated_us: int) -> None:
        def run(c: Conn) -> None:
            tx.commit_stall(c, instance_id, history_start, events, updated_us)
            self._announce("c", instance_id)

        await self.runner.write(run)

    async def consume_inbox(self, instance_id: str, seqs: list[int]) -> None:
        if not seqs:
            return
        await self.runner.write(lambda c: tx.delete_seqs(c, "inbox", seqs))

    async def complete_task(self, task_seq: int, instance_id: str, generation: int, event: bytes) -> bool:
        def run(c: Conn) -> bool:
            if not tx.complete_task(c, task_seq, instance_id, generation, event):
                return False
            self._announce("i", instance_id)
            return True

        return await self.runner.write(run)

    async def pending_tasks(self) -> list[TaskRow]:
        return await self.runner.read(q.pending_tasks)

    async def ready_instances(self, now_us: int) -> list[str]:
        return await self.runner.read(lambda c: q.ready_instances(c, now_us))

    async def future_wakeups(self, now_us: int) -> list[tuple[str, int]]:
        return await self.runner.read(lambda c: q.future_wakeups(c, now_us))

    async def gauges(self, now_us: int) -> StoreGauges:
        return await self.runner.read(lambda c: q.gauges(c, now_us))

    async def instances_with_status(self, status: int) -> list[str]:
        return await self.runner.read(lambda c: q.instances_with_status(c, status))

    async def list_instance_ids(self, app_id: str, after: str | None, limit: int) -> list[str]:
        return await self.runner.read(lambda c: q.list_instance_ids(c, app_id, after, limit))

    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]:
        return await self.runner.read(lambda c: q.query_instances(c, query))

    async def count_instances(self, query: InstanceQuery, by_name: bool) -> list[tuple[int, str, int]]:
        return await self.runner.read(lambda c: q.count_instances(c, query, by_name))

    async def purge(self, instance_id: str, recursive: bool, force: bool) -> list[str]:
        def run(c: Conn) -> list[str]:
            purged = tx.purge(c, instance_id, recursive, force)
            for gone in purged:
                self._announce("c", gone)
            return purged

        return await self.runner.write(run)

    async def purge_expired(self, status: int, since_us: int, before_us: int, limit: int) -> list[str]:
        skip_locked = self.dialect.skip_locked

        def run(c: Conn) -> list[str]:
            purged = tx.purge_expired(c, status, since_us, before_us, limit, skip_locked)
            for gone in purged:
                self._announce("c", gone)
            return purged

        return await self.runner.write(run)

    async def setdefault_setting(self, key: str, value: str) -> str:
        return await self.runner.write(lambda c: tx.setdefault_setting(c, key, value))

    async def put_setting(self, key: str, value: str) -> None:
        await self.runner.write(lambda c: tx.put_setting(c, key, value))

    async def settings(self, prefix: str) -> dict[str, str]:
        return await self.runner.read(lambda c: q.settings(c, prefix))

    async def create_with_history(
        self, new: NewInstance, status: int, history: list[bytes], tasks: list[tuple[int, int, bytes, str]],
        timers: list[tuple[int, int, bytes]], execution_id: str, updated_us: int,
    ) -> list[int]:
        def run(c: Conn) -> list[int]:
            seqs = tx.create_with_history(c, new, status, history, tasks, timers, execution_id, updated_us)
            self._announce("c", new.instance_id)
            return seqs

        return await self.runner.write(run)
