"""TransactionRunner against a real SQLite file: group commit under partial failure, and where reads run."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from durahub.store.base import InstanceNotFound, StorageFailure
from durahub.store.runner import Conn, TransactionRunner
from durahub.store.sqlite import SQLITE, SqliteConn, connect


class _CountingConn(SqliteConn):
    """Counts the transaction statements it runs; the next COMMIT fails once `fail_commit` is set."""

    statements: Counter[str]
    fail_commit = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            self.statements[sql] += 1
            if sql == "COMMIT" and self.fail_commit:
                self.fail_commit = False
                raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def _connector(path: Path, made: list[_CountingConn]) -> Callable[[], Conn]:
    def connect_() -> Conn:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=_CountingConn)
        conn.statements = Counter()
        made.append(conn)
        return conn

    return connect_


def _prepare(conn: Conn) -> None:
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")


def _keys(path: Path) -> set[str]:
    conn = connect(str(path))
    try:
        return {r[0] for r in conn.execute("SELECT k FROM t")}
    finally:
        conn.close()


def _insert(key: str, calls: Counter[str]) -> Callable[[Conn], str]:
    def run(c: Conn) -> str:
        calls[key] += 1
        c.execute("INSERT INTO t (k) VALUES (?)", (key,))
        return key

    return run


async def _one_batch(runner: TransactionRunner, fns: list[Callable[[Conn], Any]]) -> list[Any]:
    """Run `fns` as one batch: the writer is held in a first write while they are queued behind it."""
    started, gate = threading.Event(), threading.Event()

    def hold(c: Conn) -> None:
        started.set()
        gate.wait(10)

    loop = asyncio.get_running_loop()
    first = asyncio.create_task(runner.write(hold))
    await loop.run_in_executor(None, started.wait, 10)
    tasks = [asyncio.create_task(runner.write(fn)) for fn in fns]
    await asyncio.sleep(0)  # each task queues its write before awaiting it
    gate.set()
    await first
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_a_failing_operation_gets_its_error_and_the_rest_of_its_batch_commits(tmp_path: Path) -> None:
    path = tmp_path / "db"
    made: list[_CountingConn] = []
    calls: Counter[str] = Counter()

    def fails_after_writing(c: Conn) -> None:
        calls["bad"] += 1
        c.execute("INSERT INTO t (k) VALUES ('bad')")
        raise InstanceNotFound("bad")

    def db_error(c: Conn) -> None:
        calls["dup"] += 1
        c.execute("INSERT INTO t (k) VALUES ('a')")  # 'a' is inserted earlier in the same transaction

    async def run() -> list[Any]:
        runner = TransactionRunner(SQLITE, _connector(path, made))
        await runner.open(_prepare)
        try:
            return await _one_batch(runner, [_insert("a", calls), fails_after_writing, _insert("c", calls), db_error])
        finally:
            await runner.close()

    a, bad, c, dup = asyncio.run(run())
    assert (a, c) == ("a", "c")
    assert isinstance(bad, InstanceNotFound)  # store errors reach the caller as they are
    assert isinstance(dup, StorageFailure) and isinstance(dup.cause, sqlite3.IntegrityError)
    assert _keys(path) == {"a", "c"}  # the failed operations' own writes were rolled back
    # One transaction for the four, run again without each failure in turn: a | a, c | a, c.
    writer = made[0]
    assert writer.statements["ROLLBACK"] == 2
    assert calls == Counter({"a": 3, "bad": 1, "c": 2, "dup": 1})
    assert writer.statements["COMMIT"] == 2  # the holding write's batch, and this one


def test_a_failing_transaction_fails_every_operation_of_its_batch(tmp_path: Path) -> None:
    path = tmp_path / "db"
    made: list[_CountingConn] = []
    calls: Counter[str] = Counter()

    def commit_will_fail(c: Conn) -> None:
        made[0].fail_commit = True

    async def run() -> tuple[list[Any], list[Any]]:
        runner = TransactionRunner(SQLITE, _connector(path, made))
        await runner.open(_prepare)
        try:
            failed = await _one_batch(runner, [_insert("a", calls), commit_will_fail, _insert("b", calls)])
            after = [await runner.write(_insert("c", calls))]
            return failed, after
        finally:
            await runner.close()

    failed, after = asyncio.run(run())
    assert all(isinstance(r, StorageFailure) for r in failed), failed
    assert all("disk I/O error" in str(r) for r in failed)
    assert calls["a"] == calls["b"] == 1  # not retried: nothing of the transaction happened
    assert after == ["c"]  # the writer goes on
    assert _keys(path) == {"c"}


def test_a_batch_where_every_operation_fails_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db"
    made: list[_CountingConn] = []

    def boom(c: Conn) -> None:
        c.execute("INSERT INTO t (k) VALUES ('x')")
        raise RuntimeError("boom")

    async def run() -> list[Any]:
        runner = TransactionRunner(SQLITE, _connector(path, made))
        await runner.open(_prepare)
        try:
            return await _one_batch(runner, [boom, boom])
        finally:
            await runner.close()

    results = asyncio.run(run())
    assert [type(r) for r in results] == [StorageFailure, StorageFailure]
    assert _keys(path) == set()


def test_point_reads_run_inline_and_other_reads_on_the_reader_thread(tmp_path: Path) -> None:
    path = tmp_path / "db"

    def thread(c: Conn) -> int:
        return threading.get_ident()

    async def run() -> tuple[int, int, int]:
        runner = TransactionRunner(SQLITE, _connector(path, []))
        await runner.open(_prepare)
        try:
            return threading.get_ident(), await runner.read_point(thread), await runner.read(thread)
        finally:
            await runner.close()

    loop_thread, point, read = asyncio.run(run())
    assert point == loop_thread
    assert read != loop_thread


def test_point_reads_go_to_the_reader_thread_where_the_dialect_says_so(tmp_path: Path) -> None:
    from dataclasses import replace

    path = tmp_path / "db"

    async def run() -> tuple[int, int]:
        runner = TransactionRunner(replace(SQLITE, inline_point_reads=False), _connector(path, []))
        await runner.open(_prepare)
        try:
            return threading.get_ident(), await runner.read_point(lambda c: threading.get_ident())
        finally:
            await runner.close()

    loop_thread, point = asyncio.run(run())
    assert point != loop_thread


def test_a_failed_prepare_closes_the_connection_and_reading_a_closed_runner_fails(tmp_path: Path) -> None:
    made: list[_CountingConn] = []

    def bad_prepare(conn: Conn) -> None:
        raise RuntimeError("newer schema")

    async def run() -> None:
        runner = TransactionRunner(SQLITE, _connector(tmp_path / "db", made))
        with pytest.raises(RuntimeError, match="newer schema"):
            await runner.open(bad_prepare)
        with pytest.raises(StorageFailure, match="closed"):
            await runner.read(lambda c: None)

    asyncio.run(run())
    with pytest.raises(sqlite3.ProgrammingError):
        made[0].execute("SELECT 1")
