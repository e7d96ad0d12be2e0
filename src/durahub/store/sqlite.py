"""SQLite: one file in WAL mode (readers never block the writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from durahub.store.sql import Conn, SqlStore


class SqliteStore(SqlStore):
    name = "sqlite"
    begin = "BEGIN IMMEDIATE"
    inline_point_reads = True

    def __init__(self, path: str, synchronous: str = "full") -> None:
        super().__init__()
        self.path = path
        self.synchronous = synchronous.upper()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return self.path

    def _connect(self) -> Conn:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _connect_inline(self) -> Conn:
        conn = self._connect()
        # Used on the event loop: a WAL reader is not blocked by the writer, and must never wait long.
        conn.execute("PRAGMA busy_timeout=1000")
        return conn
