"""The store in portable SQL, shared by SQLite and PostgreSQL: one writer thread with group commit, one
reader thread.

Writes queued while a commit is running are applied together in the next transaction, each inside its
own savepoint, so every call stays atomic on its own while commits (and fsyncs) are shared. Subclasses
only say how to connect and how their dialect spells a few types. SQL uses `?` placeholders.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from durahub.core.state import (
    ACTIVE_STATUSES,
    PENDING,
    STALLED,
    TERMINAL_STATUSES,
    status_from_name,
    status_name,
)
from durahub.store.base import (
    CommitResult,
    InboxRow,
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceQuery,
    InstanceRow,
    InstanceStalled,
    LeaseLost,
    NewChild,
    NewInstance,
    StorageFailure,
    Store,
    StoreError,
    TaskRow,
    TurnCommit,
)

log = logging.getLogger("durahub.store")


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The slice of a DB-API connection the store uses (sqlite3.Connection has it; PostgreSQL is adapted)."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, args: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...

T = TypeVar("T")

MAX_BATCH = 256

SCHEMA = """
CREATE TABLE IF NOT EXISTS durahub_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 0,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    completed_us BIGINT,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    failure BLOB,
    parent_instance_id TEXT,
    parent_task_id INTEGER,
    history_len INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS instances_status ON instances(status);
CREATE INDEX IF NOT EXISTS instances_parent ON instances(parent_instance_id);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_us);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    visible_us BIGINT NOT NULL,
    generation INTEGER,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id, seq);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox(visible_us);
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_instance ON tasks(instance_id);
"""

# Versioned migrations applied in order after the version-1 schema above; the database records the version
# it is at. Each entry is portable SQL (type names are adjusted per dialect like the schema).
MIGRATIONS: dict[int, list[str]] = {
    # 2: leases, so several engine processes can share one database (PostgreSQL).
    2: [
        "ALTER TABLE instances ADD COLUMN lease_owner TEXT",
        "ALTER TABLE instances ADD COLUMN lease_until BIGINT",
        "ALTER TABLE tasks ADD COLUMN lease_owner TEXT",
        "ALTER TABLE tasks ADD COLUMN lease_until BIGINT",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)

_ROW_COLUMNS = (
    "instance_id, name, status, execution_id, generation, created_us, updated_us, completed_us, input, output,"
    " custom_status, failure, parent_instance_id, parent_task_id, history_len"
)
_TERMINAL_NAMES = tuple(status_name(s) for s in TERMINAL_STATUSES)


def _row(r: tuple[Any, ...]) -> InstanceRow:
    return InstanceRow(
        instance_id=r[0], name=r[1], status=status_from_name(r[2]), execution_id=r[3], generation=r[4],
        created_us=r[5], updated_us=r[6], completed_us=r[7], input=r[8], output=r[9], custom_status=r[10],
        failure=bytes(r[11]) if r[11] is not None else None, parent_instance_id=r[12], parent_task_id=r[13],
        history_len=r[14],
    )


def _status(conn: Conn, instance_id: str) -> int | None:
    r = conn.execute("SELECT status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return status_from_name(r[0]) if r else None


def _wipe(conn: Conn, instance_id: str) -> None:
    for table in ("history", "inbox", "tasks", "instances"):
        conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))


def _active_descendant(conn: Conn, instance_id: str, seen: set[str] | None = None) -> list[str] | None:
    """The path to a child (or deeper descendant) of `instance_id` that is still active, if any: a finished id
    is reusable only once its whole tree has finished, or an old descendant could report into the new run."""
    seen = seen if seen is not None else {instance_id}
    rows = conn.execute("SELECT instance_id, status FROM instances WHERE parent_instance_id = ?",
                        (instance_id,)).fetchall()
    for child, status in rows:
        if child in seen:
            continue
        seen.add(child)
        if status_from_name(status) in ACTIVE_STATUSES:
            return [child]
        deeper = _active_descendant(conn, child, seen)
        if deeper:
            return [child, *deeper]
    return None


def _insert_new(conn: Conn, new: NewInstance, status: int = PENDING, execution_id: str = "",
                history_len: int = 0, updated_us: int | None = None, replace_terminal: bool = True) -> bool:
    """Insert a new instance. A finished instance with the same id is replaced (True is returned); an active
    one, or a finished one with an active descendant, raises InstanceExists and nothing is written."""
    existing = _status(conn, new.instance_id)
    if existing is not None:
        if existing in ACTIVE_STATUSES or not replace_terminal:
            raise InstanceExists(new.instance_id)
        path = _active_descendant(conn, new.instance_id)
        if path:
            chain = ": ".join(f"child workflow '{p}'" for p in path)
            raise InstanceExists(
                new.instance_id, f"cannot recreate workflow with ID '{new.instance_id}': {chain} is active"
            )
        _wipe(conn, new.instance_id)
    conn.execute(
        "INSERT INTO instances (instance_id, name, status, execution_id, created_us, updated_us, input,"
        " parent_instance_id, parent_task_id, history_len, lease_owner, lease_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new.instance_id, new.name, status_name(status), execution_id, new.created_us,
         updated_us if updated_us is not None else new.created_us, new.input, new.parent_instance_id,
         new.parent_task_id, history_len, new.lease_owner, new.lease_until_us),
    )
    if new.start_event:
        conn.execute(
            "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, ?, NULL, ?)",
            (new.instance_id, new.visible_us, new.start_event),
        )
    return existing is not None


class SqlStore(Store):
    """Everything but connecting: subclasses provide `_connect`, `BEGIN` and the schema's type names."""

    name = "sql"
    begin = "BEGIN"
    # Row locking for concurrent claimers (PostgreSQL); SQLite serializes writers anyway.
    skip_locked = ""
    blob_type = "BLOB"
    serial_pk = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self) -> None:
        self._writes: queue.SimpleQueue[tuple[Callable[[Conn], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._writer: threading.Thread | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"durahub-{self.name}-read")
        self._read_conn: Conn | None = None
        self._inline_conn: Conn | None = None
        self._announcements: list[str] = []

    #: Run point reads (one instance's row or inbox) on the event loop's own connection instead of the reader
    #: thread. Worth it where a query costs microseconds (embedded SQLite: ~7 us against ~140 us of CPU for
    #: the thread hop); not where every query is a network round trip.
    inline_point_reads = False

    def _connect(self) -> Conn:
        raise NotImplementedError

    def _lock_schema(self, conn: Conn) -> None:
        """Serialize schema set-up between processes starting at once (the transaction lock suffices in SQLite)."""

    def schema_statements(self) -> list[str]:
        text = SCHEMA.replace("BLOB", self.blob_type).replace("INTEGER PRIMARY KEY AUTOINCREMENT", self.serial_pk)
        return [stmt for stmt in text.split(";") if stmt.strip()]

    def describe(self) -> str:
        return self.name

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(None, self._connect)
        try:
            await loop.run_in_executor(None, self._migrate, conn)
        except BaseException:
            conn.close()
            raise
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name=f"durahub-{self.name}-write",
                                        daemon=True)
        self._writer.start()
        self._read_conn = await loop.run_in_executor(self._reader, self._connect)
        if self.inline_point_reads:
            self._inline_conn = self._connect_inline()

    def _connect_inline(self) -> Conn:
        return self._connect()

    def _migrate(self, conn: Conn) -> None:
        conn.execute(self.begin)
        try:
            self._lock_schema(conn)
            for statement in self.schema_statements():
                conn.execute(statement)
            row = conn.execute("SELECT value FROM durahub_meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute("INSERT INTO durahub_meta (key, value) VALUES ('schema_version', '1')")
                version = 1
            else:
                version = int(row[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database {self.describe()} has schema version {version}, newer than this durahub supports"
                    f" ({SCHEMA_VERSION}); upgrade durahub"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    conn.execute(statement)
                conn.execute("UPDATE durahub_meta SET value = ? WHERE key = 'schema_version'", (str(target),))
                log.info("event=schema_migrated database=%s version=%d", self.describe(), target)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    async def close(self) -> None:
        if self._writer is not None:
            self._writes.put(None)
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        if self._inline_conn is not None:
            self._inline_conn.close()
            self._inline_conn = None
        if self._read_conn is not None:
            conn = self._read_conn
            self._reader.submit(conn.close).result()
            self._read_conn = None
        self._reader.shutdown(wait=True)

    # -- plumbing -------------------------------------------------------------------------------------

    def _write_loop(self, conn: Conn) -> None:
        stop = False
        while not stop:
            first = self._writes.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            results = self._commit_batch(conn, batch)
            # One wake-up of the event loop per batch, not per operation.
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
            for entry in results:
                by_loop.setdefault(entry[0].get_loop(), []).append(entry)
            for loop, entries in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, entries)
        conn.close()

    def _commit_batch(
        self, conn: Conn, batch: list[tuple[Callable[[Conn], Any], asyncio.Future[Any]]]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        """Run a batch of operations in one transaction. Optimistic: no savepoint per operation (two round trips
        each on PostgreSQL). When an operation raises, the transaction is rolled back, that operation gets its
        error, and the others run again in a fresh transaction (they are pure functions of the database)."""
        failed: dict[int, Exception] = {}
        values: dict[int, Any] = {}
        notes = self._announcements
        while True:
            notes.clear()
            values.clear()
            current: int | None = None
            try:
                conn.execute(self.begin)
                for i, (fn, _) in enumerate(batch):
                    if i in failed:
                        continue
                    current = i
                    values[i] = fn(conn)
                current = None
                if notes:
                    self._publish(conn, notes)
                conn.execute("COMMIT")
                break
            except Exception as exc:  # noqa: BLE001 - handed to the callers
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection may already be unusable
                    pass
                if current is None:
                    # The transaction itself failed (begin, commit, lost connection): nothing of it happened.
                    log.error("event=commit_failed error=%r batch=%d", exc, len(batch) - len(failed))
                    for i in range(len(batch)):
                        failed.setdefault(i, exc)
                    break
                failed[current] = exc
                if len(failed) == len(batch):
                    break
        return [(fut, False, failed[i]) if i in failed else (fut, True, values[i]) for i, (_, fut) in enumerate(batch)]

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.put((fn, fut))
        try:
            return await fut
        except StoreError:
            raise
        except Exception as exc:  # the transaction was rolled back: report it as what it is
            raise StorageFailure(exc) from exc

    async def _read_point(self, fn: Callable[[Conn], T]) -> T:
        """A short read (an indexed lookup of one instance's rows): inline where that is cheaper."""
        conn = self._inline_conn
        if conn is None:
            return await self._read(fn)
        try:
            return fn(conn)
        except StoreError:
            raise
        except Exception as exc:
            raise StorageFailure(exc) from exc

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        conn = self._read_conn
        if conn is None:
            raise StorageFailure(RuntimeError("the store is closed"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)
        except StoreError:
            raise
        except Exception as exc:
            raise StorageFailure(exc) from exc

    # -- instances ------------------------------------------------------------------------------------

    def _announce(self, conn: Conn, kind: str, instance_id: str) -> None:
        """Tell other engine processes about a change, within the transaction making it (shared stores).
        Collected in `_announcements` (writer thread only) and published once per transaction by `_publish`."""

    def _publish(self, conn: Conn, notes: list[str]) -> None:
        """Send the batch's announcements as part of its transaction (shared stores)."""

    async def create_instance(self, new: NewInstance) -> bool:
        def run(c: Conn) -> bool:
            replaced = _insert_new(c, new)
            if replaced:
                self._announce(c, "c", new.instance_id)  # others drop what they remember of the old one
            self._announce(c, "i", new.instance_id)
            return replaced

        return await self._write(run)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        def run(c: Conn) -> InstanceRow | None:
            r = c.execute(f"SELECT {_ROW_COLUMNS} FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
            return _row(r) if r else None

        return await self._read_point(run)

    async def load_history(self, instance_id: str) -> list[bytes]:
        def run(c: Conn) -> list[bytes]:
            rows = c.execute("SELECT payload FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,))
            return [bytes(r[0]) for r in rows]

        return await self._read(run)

    async def load_inbox(self, instance_id: str, now_us: int, limit: int) -> list[InboxRow]:
        def run(c: Conn) -> list[InboxRow]:
            rows = c.execute(
                "SELECT seq, generation, payload FROM inbox WHERE instance_id = ? AND visible_us <= ?"
                " ORDER BY seq LIMIT ?",
                (instance_id, now_us, limit),
            )
            return [InboxRow(r[0], r[1], bytes(r[2])) for r in rows]

        return await self._read_point(run)

    async def enqueue(self, instance_id: str, event: bytes, *, reject_stalled: bool = False) -> bool:
        def run(c: Conn) -> bool:
            status = _status(c, instance_id)
            if status is None:
                raise InstanceNotFound(instance_id)
            if status in TERMINAL_STATUSES:
                return False
            if reject_stalled and status == STALLED:
                raise InstanceStalled(instance_id)
            c.execute(
                "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, NULL, ?)",
                (instance_id, event),
            )
            self._announce(c, "i", instance_id)
            return True

        return await self._write(run)

    async def commit_turn(self, commit: TurnCommit) -> CommitResult:
        def run(c: Conn) -> CommitResult:
            result = _commit_turn(c, commit)
            self._announce(c, "c", commit.instance_id)
            for created in result.created:
                self._announce(c, "c", created)
            for woken in result.woken:
                self._announce(c, "i", woken)
            return result

        return await self._write(run)

    async def commit_stall(self, instance_id: str, history_start: int, events: list[bytes], updated_us: int) -> None:
        def run(c: Conn) -> None:
            _insert_rows(
                c, "INSERT INTO history (instance_id, seq, payload)",
                [(instance_id, history_start + i, e) for i, e in enumerate(events)],
            )
            c.execute(
                "UPDATE instances SET status = ?, updated_us = ?, history_len = ? WHERE instance_id = ?",
                (status_name(STALLED), updated_us, history_start + len(events), instance_id),
            )
            self._announce(c, "c", instance_id)

        await self._write(run)

    async def consume_inbox(self, instance_id: str, seqs: list[int]) -> None:
        if not seqs:
            return

        def run(c: Conn) -> None:
            _delete_seqs(c, "inbox", seqs)

        await self._write(run)

    async def complete_task(self, task_seq: int, instance_id: str, generation: int, event: bytes) -> bool:
        def run(c: Conn) -> bool:
            if c.execute("DELETE FROM tasks WHERE seq = ?", (task_seq,)).rowcount == 0:
                return False
            c.execute(
                "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, ?, ?)",
                (instance_id, generation, event),
            )
            self._announce(c, "i", instance_id)
            return True

        return await self._write(run)

    async def pending_tasks(self) -> list[TaskRow]:
        def run(c: Conn) -> list[TaskRow]:
            rows = c.execute("SELECT seq, instance_id, generation, task_id, payload FROM tasks ORDER BY seq")
            return [TaskRow(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

        return await self._read(run)

    async def ready_instances(self, now_us: int) -> list[str]:
        def run(c: Conn) -> list[str]:
            rows = c.execute(
                "SELECT instance_id, MIN(seq) AS first FROM inbox WHERE visible_us <= ?"
                " GROUP BY instance_id ORDER BY first",
                (now_us,),
            )
            return [r[0] for r in rows]

        return await self._read(run)

    async def future_wakeups(self, now_us: int) -> list[tuple[str, int]]:
        def run(c: Conn) -> list[tuple[str, int]]:
            rows = c.execute(
                "SELECT instance_id, MIN(visible_us) FROM inbox WHERE visible_us > ? GROUP BY instance_id", (now_us,)
            )
            return [(r[0], r[1]) for r in rows]

        return await self._read(run)

    async def instances_with_status(self, status: int) -> list[str]:
        def run(c: Conn) -> list[str]:
            rows = c.execute("SELECT instance_id FROM instances WHERE status = ?", (status_name(status),))
            return [r[0] for r in rows]

        return await self._read(run)

    async def list_instance_ids(self, after: str | None, limit: int) -> list[str]:
        def run(c: Conn) -> list[str]:
            rows = c.execute(
                "SELECT instance_id FROM instances WHERE instance_id > ? ORDER BY instance_id LIMIT ?",
                (after or "", limit),
            )
            return [r[0] for r in rows]

        return await self._read(run)

    # -- leases (used when several engine processes share the store) ----------------------------------

    async def acquire_instance(self, instance_id: str, until_us: int, now_us: int) -> tuple[int, int] | None:
        def run(c: Conn) -> tuple[int, int] | None:
            row = c.execute(
                "UPDATE instances SET lease_owner = ?, lease_until = ? WHERE instance_id = ?"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?) RETURNING history_len, generation",
                (self.owner, until_us, instance_id, self.owner, now_us),
            ).fetchone()
            return (row[0], row[1]) if row else None

        return await self._write(run)

    async def renew_leases(self, instance_ids: list[str], task_seqs: list[int], until_us: int) -> None:
        def run(c: Conn) -> None:
            c.executemany("UPDATE instances SET lease_until = ? WHERE instance_id = ? AND lease_owner = ?",
                          [(until_us, i, self.owner) for i in instance_ids])
            c.executemany("UPDATE tasks SET lease_until = ? WHERE seq = ? AND lease_owner = ?",
                          [(until_us, s, self.owner) for s in task_seqs])

        await self._write(run)

    async def claim_tasks(self, until_us: int, now_us: int, limit: int) -> list[TaskRow]:
        def run(c: Conn) -> list[TaskRow]:
            rows = c.execute(
                "UPDATE tasks SET lease_owner = ?, lease_until = ? WHERE seq IN ("
                " SELECT seq FROM tasks WHERE lease_owner IS NULL OR lease_until < ? ORDER BY seq LIMIT ?"
                f"{self.skip_locked}) RETURNING seq, instance_id, generation, task_id, payload",
                (self.owner, until_us, now_us, limit),
            ).fetchall()
            return sorted((TaskRow(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows), key=lambda t: t.seq)

        return await self._write(run)

    async def sweep_ready(self, now_us: int, limit: int) -> list[str]:
        def run(c: Conn) -> list[str]:
            rows = c.execute(
                "SELECT DISTINCT i.instance_id FROM inbox i JOIN instances s ON s.instance_id = i.instance_id"
                " WHERE i.visible_us <= ? AND (s.lease_owner IS NULL OR s.lease_owner = ? OR s.lease_until < ?)"
                " LIMIT ?",
                (now_us, self.owner, now_us, limit),
            )
            return [r[0] for r in rows]

        return await self._read(run)

    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]:
        sql, args = instance_query_sql(query)

        def run(c: Conn) -> list[InstanceRow]:
            return [_row(r) for r in c.execute(sql, args)]

        return await self._read(run)

    async def purge(self, instance_id: str, recursive: bool, force: bool) -> list[str]:
        def run(c: Conn) -> list[str]:
            purged: list[str] = []
            _purge(c, instance_id, recursive, force, purged)
            for gone in purged:
                self._announce(c, "c", gone)
            return purged

        return await self._write(run)

    async def create_with_history(
        self, new: NewInstance, status: int, history: list[bytes], tasks: list[tuple[int, int, bytes]],
        timers: list[tuple[int, int, bytes]], execution_id: str, updated_us: int,
    ) -> list[int]:
        def run(c: Conn) -> list[int]:
            _insert_new(c, new, status=status, execution_id=execution_id, history_len=len(history),
                        updated_us=updated_us, replace_terminal=False)
            _insert_rows(
                c, "INSERT INTO history (instance_id, seq, payload)",
                [(new.instance_id, i, e) for i, e in enumerate(history)],
            )
            self._announce(c, "c", new.instance_id)
            for gen, fire_us, ev in timers:
                c.execute(
                    "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, ?, ?, ?)",
                    (new.instance_id, fire_us, gen, ev),
                )
            return [
                c.execute(
                    "INSERT INTO tasks (instance_id, generation, task_id, payload) VALUES (?, ?, ?, ?) RETURNING seq",
                    (new.instance_id, gen, task_id, payload),
                ).fetchone()[0]
                for gen, task_id, payload in tasks
            ]

        return await self._write(run)


def instance_query_sql(q: InstanceQuery) -> tuple[str, list[Any]]:
    """Portable SQL for an instance listing (positional `?` parameters)."""
    where: list[str] = []
    args: list[Any] = []
    if q.statuses:
        where.append(f"status IN ({','.join('?' * len(q.statuses))})")
        args.extend(status_name(s) for s in q.statuses)
    if q.name is not None:
        where.append("name = ?")
        args.append(q.name)
    if q.created_from_us is not None:
        where.append("created_us >= ?")
        args.append(q.created_from_us)
    if q.created_to_us is not None:
        where.append("created_us < ?")
        args.append(q.created_to_us)
    if q.id_prefix:
        where.append("substr(instance_id, 1, ?) = ?")
        args.extend([len(q.id_prefix), q.id_prefix])
    if q.parent_id is not None:
        where.append("parent_instance_id = ?")
        args.append(q.parent_id)
    if q.after is not None:
        where.append("(created_us > ? OR (created_us = ? AND instance_id > ?))")
        args.extend([q.after[0], q.after[0], q.after[1]])
    sql = f"SELECT {_ROW_COLUMNS} FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_us, instance_id LIMIT ?"
    args.append(q.limit)
    return sql, args


ROWS_PER_STATEMENT = 200


def _insert_rows(c: Conn, head: str, rows: Sequence[Sequence[Any]], returning: str = "") -> list[Any]:
    """Insert rows with `head VALUES ...`. Over a network (`c.multi_row`) or when rows come back (`returning`),
    many rows per statement: one round trip instead of one per row; embedded, one prepared statement run per
    row is cheaper."""
    if not rows:
        return []
    if not returning and not getattr(c, "multi_row", False):
        c.executemany(f"{head} VALUES ({', '.join('?' * len(rows[0]))})", rows)
        return []
    back: list[Any] = []
    for i in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[i:i + ROWS_PER_STATEMENT]
        row = "(" + ", ".join("?" * len(chunk[0])) + ")"
        cur = c.execute(f"{head} VALUES {', '.join([row] * len(chunk))}{returning}", [v for r in chunk for v in r])
        if returning:
            back.extend(cur.fetchall())
    return back


def _insert_tasks(c: Conn, t: TurnCommit) -> list[int]:
    """Insert the turn's activity tasks; their seqs in the order of `t.tasks`."""
    lease_until = t.lease_until if t.owner else None
    back = _insert_rows(
        c, "INSERT INTO tasks (instance_id, generation, task_id, payload, lease_owner, lease_until)",
        [(t.instance_id, gen, task_id, payload, t.owner, lease_until) for gen, task_id, payload in t.tasks],
        returning=" RETURNING seq, generation, task_id",
    )
    # RETURNING's row order is unspecified: match by (generation, task id), unique within a turn.
    seq_of = {(gen, task_id): seq for seq, gen, task_id in back}
    return [seq_of[(gen, task_id)] for gen, task_id, _ in t.tasks]


def _delete_seqs(c: Conn, table: str, seqs: Sequence[int]) -> None:
    if not getattr(c, "multi_row", False):
        c.executemany(f"DELETE FROM {table} WHERE seq = ?", [(s,) for s in seqs])
        return
    for i in range(0, len(seqs), ROWS_PER_STATEMENT):
        chunk = seqs[i:i + ROWS_PER_STATEMENT]
        c.execute(f"DELETE FROM {table} WHERE seq IN ({', '.join('?' * len(chunk))})", list(chunk))


def _settle_all(entries: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in entries:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _purge(c: Conn, instance_id: str, recursive: bool, force: bool, purged: list[str]) -> None:
    status = _status(c, instance_id)
    if status is None:
        raise InstanceNotFound(instance_id)
    if not force:
        if status == STALLED and not recursive:
            raise InstanceStalled(instance_id)
        if status not in TERMINAL_STATUSES:
            raise InstanceNotTerminal(instance_id)
    if recursive:
        children = c.execute("SELECT instance_id FROM instances WHERE parent_instance_id = ?", (instance_id,)).fetchall()
        for (child,) in children:
            _purge(c, child, True, force, purged)
    _wipe(c, instance_id)
    purged.append(instance_id)


def _commit_turn(c: Conn, t: TurnCommit) -> CommitResult:
    terminal = t.status in TERMINAL_STATUSES
    if t.replace_history:
        c.execute("DELETE FROM history WHERE instance_id = ?", (t.instance_id,))
        c.execute("DELETE FROM tasks WHERE instance_id = ? AND generation < ?", (t.instance_id, t.generation))
        c.execute(
            "DELETE FROM inbox WHERE instance_id = ? AND generation IS NOT NULL AND generation < ?",
            (t.instance_id, t.generation),
        )
    _insert_rows(
        c, "INSERT INTO history (instance_id, seq, payload)",
        [(t.instance_id, t.history_start + i, e) for i, e in enumerate(t.events)],
    )
    if t.consumed:
        _delete_seqs(c, "inbox", t.consumed)
    updated = c.execute(
        "UPDATE instances SET name = ?, status = ?, execution_id = ?, generation = ?, created_us = ?, updated_us = ?,"
        " completed_us = ?, input = ?, output = ?, custom_status = ?, failure = ?, parent_instance_id = ?,"
        " parent_task_id = ?, history_len = ?, lease_until = ? WHERE instance_id = ?"
        + (" AND lease_owner = ?" if t.owner else ""),
        (t.name, status_name(t.status), t.execution_id, t.generation, t.created_us, t.updated_us,
         t.updated_us if terminal else None, t.input, t.output, t.custom_status, t.failure, t.parent_instance_id,
         t.parent_task_id, t.history_start + len(t.events), t.lease_until, t.instance_id,
         *((t.owner,) if t.owner else ())),
    )
    if updated.rowcount == 0:
        # Nothing written stays: the store rolls the transaction back on any error.
        if _status(c, t.instance_id) is None:
            raise InstanceNotFound(t.instance_id)  # purged while the turn ran
        raise LeaseLost(t.instance_id)
    woken: set[str] = set()
    created: list[str] = []
    task_seqs: list[int] = []
    if terminal:
        # Nothing of a finished instance runs any more: pending activities, timers and queued events go.
        c.execute("DELETE FROM tasks WHERE instance_id = ?", (t.instance_id,))
        c.execute("DELETE FROM inbox WHERE instance_id = ?", (t.instance_id,))
    else:
        if t.inbox_front:
            _put_in_front(c, t.instance_id, t.inbox_front)
            woken.add(t.instance_id)
        task_seqs = _insert_tasks(c, t)
        _insert_rows(
            c, "INSERT INTO inbox (instance_id, visible_us, generation, payload)",
            [(t.instance_id, fire_us, gen, ev) for gen, fire_us, ev in t.timers],
        )
        for child in t.children:
            existing = c.execute(
                "SELECT status, parent_instance_id, parent_task_id FROM instances WHERE instance_id = ?",
                (child.instance_id,),
            ).fetchone()
            if existing and status_from_name(existing[0]) in ACTIVE_STATUSES:
                if existing[1] == t.instance_id and existing[2] == child.parent_task_id:
                    continue  # this parent's creation of this child, already running (like daprd: a no-op)
                _insert_conflict(c, t, child)
                woken.add(t.instance_id)
                continue
            try:
                # A finished instance with this id (an earlier attempt or generation, or any finished
                # workflow) is replaced and runs again.
                _insert_new(
                    c,
                    NewInstance(
                        instance_id=child.instance_id, name=child.name, created_us=child.created_us, input=None,
                        start_event=child.start_event, parent_instance_id=t.instance_id,
                        parent_task_id=child.parent_task_id,
                    ),
                )
            except InstanceExists:
                _insert_conflict(c, t, child)  # its old tree is still running
                woken.add(t.instance_id)
                continue
            created.append(child.instance_id)
            woken.add(child.instance_id)
    for target, event in t.messages:
        status = _status(c, target)
        if status is None or status in TERMINAL_STATUSES:
            continue
        c.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, NULL, ?)",
                  (target, event))
        woken.add(target)
    return CommitResult(task_seqs=task_seqs, woken=woken, created=created)


def _put_in_front(c: Conn, instance_id: str, events: list[bytes]) -> None:
    """Queue `events` ahead of the instance's inbox: its rows are queued again behind them (sequence numbers
    only grow, so moving the rest back is the way to put something first)."""
    rest = c.execute("SELECT visible_us, generation, payload FROM inbox WHERE instance_id = ? ORDER BY seq",
                     (instance_id,)).fetchall()
    if rest:
        c.execute("DELETE FROM inbox WHERE instance_id = ?", (instance_id,))
    _insert_rows(
        c, "INSERT INTO inbox (instance_id, visible_us, generation, payload)",
        [(instance_id, 0, None, e) for e in events] + [(instance_id, r[0], r[1], bytes(r[2])) for r in rest],
    )


def _insert_conflict(c: Conn, t: TurnCommit, child: NewChild) -> None:
    """The child's id is taken: the parent gets the creation's failure instead."""
    c.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, ?, ?)",
              (t.instance_id, t.generation, child.conflict_event))
