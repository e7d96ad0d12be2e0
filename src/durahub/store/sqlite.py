"""SQLite: one file in WAL mode (readers never block the writer)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from durahub.store.sql import Conn, Dialect, SqlStore

SQLITE = Dialect(
    name="sqlite",
    begin="BEGIN IMMEDIATE",
    blob_type="BLOB",
    serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT",
    inline_point_reads=True,
    multi_row=False,
)


class SqliteConn(sqlite3.Connection):
    """A `sqlite3.Connection` that is a `Conn` (pass as `factory=` to `sqlite3.connect`)."""

    multi_row = SQLITE.multi_row


def connect(path: str, synchronous: str = "FULL", busy_timeout_ms: int = 30000) -> SqliteConn:
    """A connection as the store uses it: autocommit (the store issues BEGIN and COMMIT), usable from any
    thread, WAL mode."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30, factory=SqliteConn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


class SqliteStore(SqlStore):
    dialect = SQLITE

    def __init__(self, path: str, synchronous: str = "full", *, owner: str = "", app_id: str = "durahub") -> None:
        super().__init__(owner=owner, app_id=app_id)
        self.path = path
        self.synchronous = synchronous.upper()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return self.path

    def _connect(self) -> Conn:
        return connect(self.path, self.synchronous)

    def _connect_inline(self) -> Conn:
        conn = self._connect()
        # Used on the event loop: a WAL reader is not blocked by the writer, and must never wait long.
        conn.execute("PRAGMA busy_timeout=1000")
        return conn
