"""Schema set-up and migrations on SQLite files, without a server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from durahub.store.postgres import POSTGRES
from durahub.store.schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, migrate, schema_statements
from durahub.store.sqlite import SQLITE, SqliteConn


def _connect(path: Path) -> SqliteConn:
    return sqlite3.connect(path, isolation_level=None, factory=SqliteConn)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM durahub_meta WHERE key = 'schema_version'").fetchone()[0])


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def test_a_fresh_database_gets_the_current_schema_version(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "db")
    migrate(conn, SQLITE, "test")
    assert _version(conn) == SCHEMA_VERSION == max(MIGRATIONS)
    assert {"lease_owner", "lease_until"} <= _columns(conn, "instances")
    assert {"lease_owner", "lease_until"} <= _columns(conn, "tasks")
    migrate(conn, SQLITE, "test")  # again: nothing to do
    assert _version(conn) == SCHEMA_VERSION
    assert not conn.in_transaction


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "db")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO durahub_meta (key, value) VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO instances (instance_id, status, created_us, updated_us) VALUES ('a', 'COMPLETED', 1, 1)")
    assert "lease_owner" not in _columns(conn, "instances")
    migrate(conn, SQLITE, "test")
    assert _version(conn) == SCHEMA_VERSION
    assert conn.execute("SELECT instance_id, lease_owner FROM instances").fetchall() == [("durahub|a", None)]


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "db")
    migrate(conn, SQLITE, "test")
    conn.execute("UPDATE durahub_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.execute("DROP TABLE history")
    with pytest.raises(RuntimeError, match=f"database my.db has schema version {SCHEMA_VERSION + 1}, newer"):
        migrate(conn, SQLITE, "my.db")
    assert not conn.in_transaction
    assert "history" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_the_schema_lock_runs_first_inside_the_transaction(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "db")
    seen: list[bool] = []

    def lock(c: object) -> None:
        seen.append(conn.in_transaction)
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        seen.append(tables == 0)

    migrate(conn, SQLITE, "test", lock)
    assert seen == [True, True]


def test_the_schema_is_spelled_per_dialect() -> None:
    sqlite = schema_statements(SQLITE)
    assert sqlite == [s for s in SCHEMA.split(";") if s.strip()]  # `SCHEMA` is SQLite's spelling
    postgres = "\n".join(schema_statements(POSTGRES))
    assert "BLOB" not in postgres and "AUTOINCREMENT" not in postgres
    assert postgres.count("BYTEA") == 4 and postgres.count("seq BIGSERIAL PRIMARY KEY") == 2
    assert "{" not in postgres and "{" not in "".join(sqlite)
