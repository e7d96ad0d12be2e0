"""PostgreSQL: the same schema and SQL as SQLite, through psycopg 3."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from durahub.store.sql import Conn, Cursor, SqlStore

# Any constant works: it only has to be the same for every durahub process sharing the database.
SCHEMA_LOCK_KEY = 0x6475726168756221

_PLACEHOLDER = re.compile(r"\?")


class _PgConn:
    """Adapts a psycopg connection to the store's `?`-placeholder, DB-API-like `Conn`."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(_PLACEHOLDER.sub("%s", sql), tuple(args), prepare=True)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> Any:
        rows = [tuple(a) for a in args]
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(_PLACEHOLDER.sub("%s", sql), rows)

    def close(self) -> None:
        self._conn.close()


class PostgresStore(SqlStore):
    name = "postgres"
    begin = "BEGIN"
    blob_type = "BYTEA"
    serial_pk = "BIGSERIAL PRIMARY KEY"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    def describe(self) -> str:
        return re.sub(r"://[^@/]*@", "://***@", self.dsn)

    def _connect(self) -> Conn:
        import psycopg

        # Autocommit: the store issues BEGIN/COMMIT itself, like with SQLite.
        return _PgConn(psycopg.connect(self.dsn, autocommit=True))

    def _lock_schema(self, conn: Conn) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
