"""Databases for tests: the backend under test, throwaway PostgreSQL databases, an old-schema SQLite file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid

# DURAHUB_TEST_BACKEND=postgres runs every server on a fresh database of the local PostgreSQL.
BACKEND = os.environ.get("DURAHUB_TEST_BACKEND", "sqlite")
PG_ADMIN_DSN = os.environ.get("DURAHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN_DSN, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   capture_output=True, timeout=60)


def create_pg_database() -> str:
    """A throwaway database on the admin server; returns its URL."""
    name = f"durahub_test_{uuid.uuid4().hex[:12]}"
    _psql(f"CREATE DATABASE {name}")
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(subprocess.SubprocessError):
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sqlite_v1_database(path: str) -> None:
    """A SQLite file stamped with durahub's first schema version, holding one COMPLETED instance 'old-1'.
    Needs durahub importable (its current schema is the starting point)."""
    from durahub.store.sql import SCHEMA

    conn = sqlite3.connect(path)
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO durahub_meta (key, value) VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO instances (instance_id, name, status, created_us, updated_us) VALUES"
                 " ('old-1', 'wf', 'COMPLETED', 1, 2)")
    conn.commit()
    conn.close()
