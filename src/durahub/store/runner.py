"""Running the store's transactions: one writer thread with group commit, one reader thread, inline point reads.

Concurrency model. The engine runs on one asyncio event loop and never touches a database connection itself:
every store call hands a synchronous function of a connection (a transaction body, see `transactions.py`) to
this runner and awaits its result. Writes go to one writer thread, which owns the only writing connection:
it takes every write queued while its previous commit ran and applies them together in one transaction
(group commit), then settles their futures with one wake-up of the loop per batch. Reads that may scan go to
one reader thread with its own connection, so they never wait behind a commit (SQLite's WAL and PostgreSQL's
MVCC both let a reader see the last committed state). Point reads (one instance's row or inbox) run inline
on the loop's own connection where a query costs microseconds (embedded SQLite), because the hop to a thread
would cost more than the query. A shared PostgreSQL store adds one more thread, its LISTEN connection
(`postgres.py`), which hands other processes' announcements to the loop with `call_soon_threadsafe`; its
NOTIFYs are sent by the writer thread inside the transaction that makes the change.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from durahub.store.base import StorageFailure, StoreError

log = logging.getLogger("durahub.store")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The slice of a DB-API connection the store uses (a `sqlite3.Connection` subclass has it; PostgreSQL is
    adapted). SQL uses `?` placeholders."""

    @property
    def multi_row(self) -> bool:
        """Whether to pack many rows into one statement: yes where every statement is a network round trip,
        no where one prepared statement run per row is cheaper (embedded)."""
        ...

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, args: Iterable[Sequence[Any]], /) -> object: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Dialect:
    """What differs between the databases the store runs on, besides connecting."""

    name: str
    # Starts a write transaction (SQLite: take the write lock at once, not at the first write).
    begin: str
    # The schema's type for byte strings, and for an auto-incrementing integer primary key.
    blob_type: str
    serial_pk: str
    # Appended to the subquery that picks rows to claim: row locking for concurrent claimers (PostgreSQL);
    # SQLite serializes writers anyway.
    skip_locked: str = ""
    #: Run point reads (one instance's row or inbox) on the event loop's own connection instead of the reader
    #: thread. Worth it where a query costs microseconds (embedded SQLite: ~7 us against ~140 us of CPU for
    #: the thread hop); not where every query is a network round trip.
    inline_point_reads: bool = False
    # The value of its connections' `Conn.multi_row`.
    multi_row: bool = False


T = TypeVar("T")

MAX_BATCH = 256

_Write = tuple[Callable[[Conn], Any], asyncio.Future[Any]]
_Outcome = tuple[asyncio.Future[Any], bool, Any]


class TransactionRunner:
    """Runs synchronous functions of a connection as transactions, off the event loop.

    `write(fn)` runs `fn` in the writer thread, in a transaction it may share with other writes; `read(fn)` in
    the reader thread; `read_point(fn)` inline where the dialect says so. Errors the functions raise that are
    `StoreError`s reach the caller as they are; any other error becomes `StorageFailure` (nothing was changed).
    """

    def __init__(
        self,
        dialect: Dialect,
        connect: Callable[[], Conn],
        *,
        connect_inline: Callable[[], Conn] | None = None,
        publish: Callable[[Conn, list[str]], None] | None = None,
    ) -> None:
        self.dialect = dialect
        self._begin = dialect.begin
        self._connect = connect
        self._connect_inline = connect_inline or connect
        self._publish = publish
        #: Announcements of the transaction being run (writer thread only): write functions append to it, and
        #: `publish(conn, announcements)` sends them inside the transaction, just before it commits.
        self.announcements: list[str] = []
        self._writes: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"durahub-{dialect.name}-read")
        self._read_conn: Conn | None = None
        self._inline_conn: Conn | None = None

    async def open(self, prepare: Callable[[Conn], None]) -> None:
        """Connect, run `prepare` (the migrations) on the writer's connection, and start the threads."""
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(None, self._connect)
        try:
            await loop.run_in_executor(None, prepare, conn)
        except BaseException:
            conn.close()
            raise
        self._writer = threading.Thread(target=self._write_loop, args=(conn,),
                                        name=f"durahub-{self.dialect.name}-write", daemon=True)
        self._writer.start()
        self._read_conn = await loop.run_in_executor(self._reader, self._connect)
        if self.dialect.inline_point_reads:
            self._inline_conn = self._connect_inline()

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

    async def write(self, fn: Callable[[Conn], T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._writes.put((fn, fut))
        try:
            return await fut
        except StoreError:
            raise
        except Exception as exc:  # the transaction was rolled back: report it as what it is
            raise StorageFailure(exc) from exc

    async def read_point(self, fn: Callable[[Conn], T]) -> T:
        """A short read (an indexed lookup of one instance's rows): inline where that is cheaper."""
        conn = self._inline_conn
        if conn is None:
            return await self.read(fn)
        try:
            return fn(conn)
        except StoreError:
            raise
        except Exception as exc:
            raise StorageFailure(exc) from exc

    async def read(self, fn: Callable[[Conn], T]) -> T:
        conn = self._read_conn
        if conn is None:
            raise StorageFailure(RuntimeError("the store is closed"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)
        except StoreError:
            raise
        except Exception as exc:
            raise StorageFailure(exc) from exc

    # -- the writer thread ----------------------------------------------------------------------------

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
            by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            for entry in results:
                by_loop.setdefault(entry[0].get_loop(), []).append(entry)
            for loop, entries in by_loop.items():
                loop.call_soon_threadsafe(_settle_all, entries)
        conn.close()

    def _commit_batch(self, conn: Conn, batch: list[_Write]) -> list[_Outcome]:
        """Run a batch of operations in one transaction. Optimistic: no savepoint per operation (two round trips
        each on PostgreSQL). When an operation raises, the transaction is rolled back, that operation gets its
        error, and the others run again in a fresh transaction (they are pure functions of the database)."""
        failed: dict[int, Exception] = {}
        values: dict[int, Any] = {}
        notes = self.announcements
        while True:
            notes.clear()
            values.clear()
            current: int | None = None
            try:
                conn.execute(self._begin)
                for i, (fn, _) in enumerate(batch):
                    if i in failed:
                        continue
                    current = i
                    values[i] = fn(conn)
                current = None
                if notes and self._publish is not None:
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


def _settle_all(entries: list[_Outcome]) -> None:
    for fut, ok, value in entries:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
