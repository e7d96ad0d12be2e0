"""Retention in process: the store's oldest-first purge of expired instances, the since-settings, and the
purger's selection rule (which instances a sweep at a given time takes) over a real SQLite store."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from durahub.core.retention import RetentionPolicy, since_key
from durahub.core.state import CANCELED, COMPLETED, FAILED, RUNNING, TERMINATED, status_name
from durahub.engine.retention import RetentionPurger
from durahub.store import transactions as tx
from durahub.store.base import NewInstance, TurnCommit
from durahub.store.postgres import PostgresStore
from durahub.store.runner import Conn
from durahub.store.schema import migrate
from durahub.store.sqlite import SQLITE, SqliteConn, SqliteStore
from testsupport.databases import BACKEND, create_pg_database, drop_pg_database

S = 1_000_000
M = 60 * S
H = 60 * M


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[SqliteConn]:
    c = sqlite3.connect(tmp_path / "db", isolation_level=None, factory=SqliteConn)
    migrate(c, SQLITE, "test")
    yield c
    c.close()


def _finished(c: SqliteConn, iid: str, status: int, at_us: int | None, parent: str | None = None) -> None:
    """An instance with a history row, an inbox row and a task row, finished with `status` at `at_us`."""
    tx.insert_new(c, NewInstance(instance_id=iid, name="wf", created_us=1, input=None, start_event=b"s",
                                 parent_instance_id=parent, parent_task_id=0 if parent else None))
    tx.insert_history(c, iid, 0, [b"h"])
    c.execute("INSERT INTO tasks (instance_id, generation, task_id, payload) VALUES (?, 0, 1, x'00')", (iid,))
    c.execute("UPDATE instances SET status = ?, completed_us = ? WHERE instance_id = ?",
              (status_name(status), at_us, iid))


def _all_ids(c: Conn) -> list[str]:
    return [r[0] for r in c.execute("SELECT instance_id FROM instances ORDER BY instance_id")]


def _count(c: SqliteConn, table: str) -> int:
    return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_purge_expired_takes_the_status_in_the_window_oldest_first_and_alone(conn: SqliteConn) -> None:
    _finished(conn, "before-since", COMPLETED, 99)
    for i, at in enumerate((130, 110, 120, 140)):
        _finished(conn, f"done-{i}", COMPLETED, at)
    _finished(conn, "not-yet", COMPLETED, 200)
    _finished(conn, "failed", FAILED, 110)
    _finished(conn, "running", RUNNING, None)
    _finished(conn, "child", COMPLETED, 300, parent="done-1")

    assert tx.purge_expired(conn, COMPLETED, 100, 200, 2, SQLITE.skip_locked) == ["done-1", "done-2"]
    assert tx.purge_expired(conn, COMPLETED, 100, 200, 10, SQLITE.skip_locked) == ["done-0", "done-3"]
    assert tx.purge_expired(conn, COMPLETED, 100, 200, 10, SQLITE.skip_locked) == []
    left = ["before-since", "child", "failed", "not-yet", "running"]
    assert _all_ids(conn) == left
    # Everything of the purged went with them; the child of a purged parent stays, with its parent id.
    for table in ("history", "inbox", "tasks"):
        assert _count(conn, table) == len(left)
    assert conn.execute("SELECT parent_instance_id FROM instances WHERE instance_id = 'child'").fetchone() == ("done-1",)


class _PlanningConn(SqliteConn):
    """Records SQLite's query plan of each statement that deletes from `instances`."""

    plans: list[str] = []

    def execute(self, sql: str, args: Sequence[Any] = (), /) -> sqlite3.Cursor:
        if sql.startswith("DELETE FROM instances"):
            plan = super().execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
            self.plans.append(" | ".join(str(row[-1]) for row in plan))
        return super().execute(sql, args)


def test_purge_expired_walks_the_completion_index(tmp_path: Path) -> None:
    c = sqlite3.connect(tmp_path / "db", isolation_level=None, factory=_PlanningConn)
    migrate(c, SQLITE, "test")
    tx.purge_expired(c, COMPLETED, 0, 1, 10, SQLITE.skip_locked)
    c.close()
    [plan] = _PlanningConn.plans
    # Due instances are found along the index, in completion order (no sort), and deleted by primary key.
    assert "USING INDEX instances_completed (status=? AND completed_us>? AND completed_us<?)" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN" not in plan, plan


def test_the_first_since_setting_written_wins(conn: SqliteConn) -> None:
    assert tx.setdefault_setting(conn, "retention_since_us.FAILED", "5") == "5"
    assert tx.setdefault_setting(conn, "retention_since_us.FAILED", "9") == "5"
    assert tx.setdefault_setting(conn, "retention_since_us.COMPLETED", "9") == "9"


async def _finish(store: SqliteStore | PostgresStore, iid: str, status: int, at_us: int, parent: str | None = None) -> None:
    await store.create_instance(NewInstance(instance_id=iid, name="wf", created_us=1, input=None, start_event=b"s",
                                            parent_instance_id=parent, parent_task_id=0 if parent else None))
    await store.commit_turn(TurnCommit(
        instance_id=iid, status=status, name="wf", execution_id="x", generation=0, created_us=1, updated_us=at_us,
        input=None, output=None, failure=None, custom_status=None, parent_instance_id=parent,
        parent_task_id=0 if parent else None, history_start=0, events=[b"h"],
    ))


async def _ids(store: SqliteStore | PostgresStore) -> list[str]:
    return await store.runner.read(_all_ids)


def test_a_sweep_purges_what_its_status_made_due_and_only_what_finished_under_the_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = RetentionPolicy(any_terminal=H, completed=10 * M)

    async def run() -> None:
        store = SqliteStore(str(tmp_path / "db"), synchronous="normal")
        await store.open()
        await _finish(store, "finished-before", COMPLETED, 1)
        purger = RetentionPurger(policy, store, store.purge_expired, batch=7)
        await purger.start()
        try:
            since = int(await store.setdefault_setting(since_key(COMPLETED), "0"))
            assert since > 1
            for status in (FAILED, TERMINATED, CANCELED):
                assert await store.setdefault_setting(since_key(status), "0") == str(since)
            at = since + S
            for i in range(30):
                await _finish(store, f"done-{i:02}", COMPLETED, at)
            await _finish(store, "failed", FAILED, at)
            await _finish(store, "terminated-late", TERMINATED, at + 40 * M)
            await _finish(store, "parent", COMPLETED, at)
            await _finish(store, "child", FAILED, at, parent="parent")
            await store.create_instance(NewInstance(instance_id="running", name="wf", created_us=1, input=None,
                                                    start_event=b"s"))

            assert await purger.sweep(at + 10 * M - 1) == {}
            with caplog.at_level(logging.INFO, logger="durahub.engine"):
                assert await purger.sweep(at + 30 * M) == {COMPLETED: 31}
            assert await _ids(store) == ["child", "failed", "finished-before", "running", "terminated-late"]
            lines = [r.getMessage() for r in caplog.records if "retention_purged" in r.getMessage()]
            assert lines == ["event=retention_purged count=31 status=COMPLETED:31"]

            assert await purger.sweep(at + 90 * M) == {FAILED: 2}
            assert await purger.sweep(at + 101 * M) == {TERMINATED: 1}
            assert await _ids(store) == ["finished-before", "running"]
        finally:
            await purger.stop()
            await store.close()

    asyncio.run(run())


def test_a_second_purger_on_the_database_keeps_the_first_ones_since(tmp_path: Path) -> None:
    async def run() -> tuple[str, str]:
        store = SqliteStore(str(tmp_path / "db"), synchronous="normal")
        await store.open()
        try:
            first = RetentionPurger(RetentionPolicy(completed=H), store, store.purge_expired)
            await first.start()
            await first.stop()
            since = await store.setdefault_setting(since_key(COMPLETED), "x")
            await asyncio.sleep(0.01)
            second = RetentionPurger(RetentionPolicy(completed=H, failed=H), store, store.purge_expired)
            await second.start()
            await second.stop()
            assert await store.setdefault_setting(since_key(COMPLETED), "x") == since
            return since, await store.setdefault_setting(since_key(FAILED), "x")
        finally:
            await store.close()

    completed_since, failed_since = asyncio.run(run())
    # FAILED came under the policy only with the second: since then, not since the first.
    assert int(failed_since) > int(completed_since)


@pytest.mark.skipif(BACKEND != "postgres", reason="several processes share a database on PostgreSQL only")
def test_stores_purging_one_postgres_database_at_once_each_take_different_instances() -> None:
    url = create_pg_database()

    async def drain(store: PostgresStore) -> list[str]:
        taken: list[str] = []
        while batch := await store.purge_expired(COMPLETED, 0, 10**18, 25):
            taken += batch
            await asyncio.sleep(0)
        return taken

    async def run() -> tuple[list[str], list[list[str]]]:
        stores = [PostgresStore(url, owner=f"engine-{i}") for i in range(3)]
        for store in stores:
            await store.open()
        try:
            ids = [f"i-{i:04}" for i in range(600)]
            await asyncio.gather(*(_finish(stores[0], iid, COMPLETED, 1000 + i) for i, iid in enumerate(ids)))
            taken = await asyncio.gather(*(drain(store) for store in stores))
            assert await _ids(stores[1]) == []
            return ids, list(taken)
        finally:
            for store in stores:
                await store.close()

    try:
        ids, taken = asyncio.run(run())
    finally:
        drop_pg_database(url)
    everything = [iid for batch in taken for iid in batch]
    assert sorted(everything) == ids  # none missed, none deleted twice, none failed
