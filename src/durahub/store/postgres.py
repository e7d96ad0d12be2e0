"""PostgreSQL: the same schema and SQL as SQLite, through psycopg 3; a store several engine processes share."""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from durahub.store import queries as q
from durahub.store import transactions as tx
from durahub.store.base import SharedStore, TaskRow
from durahub.store.sql import Conn, Cursor, Dialect, SqlStore

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("durahub.store")

# Any constant works: it only has to be the same for every durahub process sharing the database.
SCHEMA_LOCK_KEY = 0x6475726168756221

POSTGRES = Dialect(
    name="postgres",
    begin="BEGIN",
    blob_type="BYTEA",
    serial_pk="BIGSERIAL PRIMARY KEY",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    inline_point_reads=False,
    multi_row=True,  # every statement is a round trip: the store packs many rows into one
)

_PLACEHOLDER = re.compile(r"\?")


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """The store's `?` placeholders as psycopg's `%s` (cached: the store uses a small set of statements)."""
    return _PLACEHOLDER.sub("%s", sql)


class _PgConn:
    """Adapts a psycopg connection to the store's `?`-placeholder, DB-API-like `Conn`."""

    multi_row = POSTGRES.multi_row

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(_pg_sql(sql), tuple(args), prepare=True)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(a) for a in args]
        if len(rows) == 1:
            self.execute(sql, rows[0])  # a pipeline costs more than it saves for one row
        elif rows:
            with self._conn.cursor() as cur:
                cur.executemany(_pg_sql(sql), rows)

    def close(self) -> None:
        self._conn.close()


CHANNEL = "durahub"


class PostgresStore(SqlStore, SharedStore):
    dialect = POSTGRES

    def __init__(self, dsn: str, *, owner: str = "", app_id: str = "durahub") -> None:
        super().__init__(owner=owner, app_id=app_id)
        self.dsn = dsn
        self._listener: threading.Thread | None = None
        self._stop_listening = threading.Event()

    def _announce(self, kind: str, instance_id: str) -> None:
        self._announcements.append(f"{kind}:{self.owner}:{instance_id}")

    def _publish(self, conn: Conn, notes: list[str]) -> None:
        # One statement for the whole batch; delivered to listeners when (and only if) the transaction commits.
        conn.execute("SELECT pg_notify(?, n) FROM unnest(?::text[]) AS n", (CHANNEL, list(dict.fromkeys(notes))))

    def listen(self, callback: Callable[[str, str, str], object]) -> None:
        def run() -> None:
            import psycopg

            while not self._stop_listening.is_set():
                try:
                    with psycopg.connect(self.dsn, autocommit=True) as conn:
                        conn.execute(f"LISTEN {CHANNEL}")
                        while not self._stop_listening.is_set():
                            for note in conn.notifies(timeout=0.5):
                                kind, _, rest = note.payload.partition(":")
                                owner, _, instance_id = rest.partition(":")
                                callback(kind, owner, instance_id)
                except Exception as exc:  # noqa: BLE001 - reconnect; the engine's sweep covers the gap
                    log.warning("event=listen_failed error=%r", exc)
                    self._stop_listening.wait(1.0)

        self._listener = threading.Thread(target=run, name="durahub-postgres-listen", daemon=True)
        self._listener.start()

    async def close(self) -> None:
        self._stop_listening.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
        await super().close()

    def describe(self) -> str:
        return re.sub(r"://[^@/]*@", "://***@", self.dsn)

    def _connect(self) -> Conn:
        import psycopg

        # Autocommit: the store issues BEGIN/COMMIT itself, like with SQLite.
        return _PgConn(psycopg.connect(self.dsn, autocommit=True))

    def _lock_schema(self, conn: Conn) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))

    # -- leases ---------------------------------------------------------------------------------------

    async def acquire_instance(self, instance_id: str, until_us: int, now_us: int) -> tuple[int, int] | None:
        return await self.runner.write(lambda c: tx.acquire_instance(c, self.owner, instance_id, until_us, now_us))

    async def renew_leases(self, instance_ids: list[str], task_seqs: list[int], until_us: int) -> None:
        await self.runner.write(lambda c: tx.renew_leases(c, self.owner, instance_ids, task_seqs, until_us))

    async def claim_tasks(self, until_us: int, now_us: int, limit: int, apps: list[str]) -> list[TaskRow]:
        skip_locked = self.dialect.skip_locked
        return await self.runner.write(
            lambda c: tx.claim_tasks(c, self.owner, until_us, now_us, limit, skip_locked, apps))

    async def release_leases(self) -> tuple[int, int]:
        return await self.runner.write(lambda c: tx.release_leases(c, self.owner))

    async def sweep_ready(self, now_us: int, limit: int, apps: list[str]) -> list[tuple[str, str | None]]:
        return await self.runner.read(lambda c: q.sweep_ready(c, self.owner, now_us, limit, apps))
