"""Storage edges, in process: the schema version (an older file is upgraded in place, a newer one refused)
and a full disk. The server's refusal of a newer file is in tests/ops/test_store_migrations.py."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from durahub.store.sql import SCHEMA_VERSION
from durahub.store.sqlite import SqliteStore
from testsupport.databases import sqlite_v1_database as _v1_database


def test_version_1_file_is_upgraded_and_keeps_its_data(tmp_path) -> None:
    path = str(tmp_path / "v1.db")
    _v1_database(path)

    async def run() -> None:
        store = SqliteStore(path)
        await store.open()
        # Instances from before apps belong to the default app: their ids are now its keys.
        row = await store.get_instance("durahub|old-1")
        assert row is not None and row.name == "wf"
        assert await store.get_instance("old-1") is None
        await store.close()

    asyncio.run(run())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM durahub_meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
    assert {"lease_owner", "lease_until"} <= columns
    conn.close()


def test_newer_file_is_refused_with_a_message_and_left_alone(tmp_path) -> None:
    path = str(tmp_path / "future.db")
    _v1_database(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE durahub_meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    async def run() -> None:
        await SqliteStore(path).open()

    with pytest.raises(RuntimeError, match="schema version 999, newer than this durahub supports"):
        asyncio.run(run())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM durahub_meta").fetchone()[0] == "999"
    assert "lease_owner" not in {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
    conn.close()


def test_disk_full_is_a_clear_error_and_leaves_the_database_intact(tmp_path) -> None:
    from durahub.store.base import NewInstance, StorageFailure

    path = str(tmp_path / "full.db")

    async def run() -> int:
        store = SqliteStore(path)
        await store.open()
        # Cap the file at its current size plus a little: the next big write finds the "disk" full.
        pages = await store._read(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store._write(lambda c: c.execute(f"PRAGMA max_page_count = {pages + 40}"))
        stored = 0
        with pytest.raises(StorageFailure, match="full"):
            for i in range(1000):
                await store.create_instance(NewInstance(instance_id=f"i{i}", name="wf", created_us=1,
                                                        input="x" * 20_000, start_event=b"e"))
                stored += 1
        assert stored > 0
        for i in range(stored):
            row = await store.get_instance(f"i{i}")
            assert row is not None and len(row.input or "") == 20_000
        assert await store.get_instance(f"i{stored}") is None
        await store.close()
        return stored

    stored = asyncio.run(run())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM instances").fetchone()[0] == stored
    conn.close()
