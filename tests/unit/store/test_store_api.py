"""SqliteStore through its public API, in process: owner, shared-ness, and a few round trips."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections import Counter
from pathlib import Path

import pytest

from durahub.core.apps import instance_key
from durahub.core.state import COMPLETED, RUNNING, status_name
from durahub.store.base import (
    InstanceExists,
    InstanceNotFound,
    InstanceQuery,
    NewChild,
    NewInstance,
    SharedStore,
    Store,
    TurnCommit,
)
from durahub.store.postgres import PostgresStore
from durahub.store.sqlite import SqliteStore


def test_owner_is_a_constructor_keyword_and_stays_assignable(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "db"), owner="host-1-abc")
    assert store.owner == "host-1-abc"
    store.owner = "other"
    assert store.owner == "other"
    assert SqliteStore(str(tmp_path / "db2")).owner == ""
    assert PostgresStore("postgresql://nobody@127.0.0.1:1/x", owner="me").owner == "me"  # connects only on open


def test_only_the_postgres_store_is_shared() -> None:
    assert not issubclass(SqliteStore, SharedStore)
    assert issubclass(PostgresStore, SharedStore)
    assert PostgresStore("postgresql://x@127.0.0.1:1/x").shared is True
    assert SqliteStore(":memory:").shared is False
    leases = {"acquire_instance", "renew_leases", "release_leases", "claim_tasks", "sweep_ready", "listen"}
    assert leases <= SharedStore.__abstractmethods__
    assert not leases & set(dir(Store))
    assert not inspect.isabstract(PostgresStore) and not inspect.isabstract(SqliteStore)


def test_a_store_round_trip(tmp_path: Path) -> None:
    async def run() -> None:
        store = SqliteStore(str(tmp_path / "db"), synchronous="normal")
        await store.open()
        try:
            new = NewInstance(instance_id="p", name="wf", created_us=1, input='"in"', start_event=b"start")
            assert await store.create_instance(new) is False
            with pytest.raises(InstanceExists):
                await store.create_instance(new)
            with pytest.raises(InstanceNotFound):
                await store.enqueue("nobody", b"e")
            assert await store.enqueue("p", b"e") is True
            inbox = await store.load_inbox("p", now_us=10, limit=10)
            assert [r.payload for r in inbox] == [b"start", b"e"]
            child = NewChild(instance_id="c", name="child", created_us=2, start_event=b"cs", conflict_event=b"x",
                             parent_task_id=1)
            result = await store.commit_turn(TurnCommit(
                instance_id="p", status=RUNNING, name="wf", execution_id="x", generation=0, created_us=1,
                updated_us=3, input='"in"', output=None, failure=None, custom_status=None, parent_instance_id=None,
                parent_task_id=None, history_start=0, events=[b"h"], consumed=[r.seq for r in inbox],
                tasks=[(0, 5, b"task", "app")], children=[child],
            ))
            assert result.created == ["c"] and result.woken == {"c"}
            assert [t.seq for t in await store.pending_tasks()] == result.task_seqs
            assert await store.complete_task(result.task_seqs[0], "p", 0, b"done") is True
            assert await store.complete_task(result.task_seqs[0], "p", 0, b"done") is False
            assert await store.ready_instances(now_us=10) == ["c", "p"]
            rows = await store.query_instances(InstanceQuery(parent_id="p"))
            assert [r.instance_id for r in rows] == ["c"]
            assert await store.load_history("p") == [b"h"]
            assert await store.instances_with_status(RUNNING) == ["p"]
            # Raw SQL goes through the public runner.
            await store.runner.write(lambda c: c.execute("UPDATE instances SET status = 'COMPLETED'"))
            assert await store.runner.read(lambda c: c.execute("SELECT count(*) FROM instances").fetchone()[0]) == 2
            assert sorted(await store.purge("p", recursive=True, force=False)) == ["c", "p"]
            assert await store.get_instance("p") is None
            assert await store.instances_with_status(COMPLETED) == []
        finally:
            await store.close()

    asyncio.run(run())


class _AnnouncingStore(SqliteStore):
    """Announces like PostgresStore, but records what it would publish."""

    def __init__(self, path: str) -> None:
        super().__init__(path, owner="me")
        self.published: list[list[str]] = []

    def _announce(self, kind: str, instance_id: str) -> None:
        self._announcements.append(f"{kind}:{self.owner}:{instance_id}")

    def _publish(self, conn: object, notes: list[str]) -> None:
        self.published.append(list(notes))


def test_changes_are_announced_once_per_transaction(tmp_path: Path) -> None:
    async def run() -> list[list[str]]:
        store = _AnnouncingStore(str(tmp_path / "db"))
        await store.open()
        try:
            new = NewInstance(instance_id="a", name="wf", created_us=1, input=None, start_event=b"s")
            await store.create_instance(new)
            await store.runner.write(lambda c: c.execute("UPDATE instances SET status = 'COMPLETED'"))
            assert await store.enqueue("a", b"e") is False  # terminal: nothing stored, nothing announced
            await store.create_instance(new)  # replaces the finished one
            with pytest.raises(InstanceExists):
                await store.create_instance(new)  # a failed operation announces nothing
            result = await store.commit_turn(TurnCommit(
                instance_id="a", status=RUNNING, name="wf", execution_id="x", generation=0, created_us=1,
                updated_us=3, input=None, output=None, failure=None, custom_status=None, parent_instance_id=None,
                parent_task_id=None, history_start=0, events=[b"h"],
                children=[NewChild(instance_id="c", name="child", created_us=2, start_event=b"cs",
                                   conflict_event=b"x", parent_task_id=1)],
            ))
            assert result.created == ["c"]
            return store.published
        finally:
            await store.close()

    assert asyncio.run(run()) == [
        ["i:me:a"],
        ["c:me:a", "i:me:a"],
        ["c:me:a", "c:me:c", "i:me:c"],
    ]


def test_counts_match_the_listing(tmp_path: Path) -> None:
    """count_instances counts in the database what query_instances lists, for the same filters."""

    async def run() -> None:
        store = SqliteStore(str(tmp_path / "db"), synchronous="normal")
        await store.open()
        try:
            for i in range(12):
                app = "a" if i < 8 else "b"
                await store.create_instance(NewInstance(instance_id=instance_key(app, f"{'x' if i % 3 else 'y'}{i}"),
                                                        name=f"wf{i % 2}", created_us=i + 1, input=None,
                                                        start_event=b"s"))
            await store.runner.write(lambda c: c.execute(
                "UPDATE instances SET status = 'COMPLETED' WHERE created_us <= 5"))
            queries = [InstanceQuery(), InstanceQuery(app_id="a"), InstanceQuery(name="wf1"),
                       InstanceQuery(app_id="a", id_prefix="x"), InstanceQuery(statuses=[COMPLETED]),
                       InstanceQuery(statuses=[COMPLETED, RUNNING], name="wf0", created_from_us=3),
                       InstanceQuery(after=(6, instance_key("a", "y6")), limit=1)]  # cursor and limit: ignored
            for query in queries:
                listed = await store.query_instances(dataclasses.replace(query, after=None, limit=1000))
                expected = Counter((status_name(r.status), r.name) for r in listed)
                by_name = await store.count_instances(query, by_name=True)
                assert Counter({(status_name(s), n): c for s, n, c in by_name}) == expected, query
                by_status = await store.count_instances(query, by_name=False)
                assert {status_name(s): c for s, n, c in by_status} == dict(
                    Counter(status_name(r.status) for r in listed)), query
                assert all(n == "" for _, n, _ in by_status)
        finally:
            await store.close()

    asyncio.run(run())
