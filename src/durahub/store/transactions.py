"""The store's write transaction bodies: synchronous functions of a connection, in portable SQL (`?`
placeholders). The read-only statements are in `queries.py`.

Each runs inside a transaction the caller opened (`TransactionRunner`) and either returns or raises; on any
error the caller rolls back, so a body may write before it finds out it must fail. Bodies may run again in a
fresh transaction (group commit retries a batch without the operation that failed), so they are pure
functions of the database and their arguments. Announcements to other processes are the caller's
(`SqlStore`); these only touch the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durahub.core.state import (
    ACTIVE_STATUSES,
    PENDING,
    STALLED,
    TERMINAL_STATUSES,
    status_from_name,
    status_name,
)
from durahub.errors import shown_id
from durahub.store.base import (
    CommitResult,
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceStalled,
    LeaseLost,
    NewChild,
    NewInstance,
    TaskRow,
    TurnCommit,
)
from durahub.store.runner import Conn

ROWS_PER_STATEMENT = 200


def status_of(conn: Conn, instance_id: str) -> int | None:
    r = conn.execute("SELECT status FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return status_from_name(r[0]) if r else None


# -- rows in bulk -------------------------------------------------------------------------------------


def insert_rows(c: Conn, head: str, rows: Sequence[Sequence[Any]], returning: str = "") -> list[Any]:
    """Insert rows with `head VALUES ...`. Over a network (`c.multi_row`) or when rows come back (`returning`),
    many rows per statement: one round trip instead of one per row; embedded, one prepared statement run per
    row is cheaper."""
    if not rows:
        return []
    if not returning and not c.multi_row:
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


def delete_seqs(c: Conn, table: str, seqs: Sequence[int]) -> None:
    if not c.multi_row:
        c.executemany(f"DELETE FROM {table} WHERE seq = ?", [(s,) for s in seqs])
        return
    for i in range(0, len(seqs), ROWS_PER_STATEMENT):
        chunk = seqs[i:i + ROWS_PER_STATEMENT]
        c.execute(f"DELETE FROM {table} WHERE seq IN ({', '.join('?' * len(chunk))})", list(chunk))


def insert_history(c: Conn, instance_id: str, start: int, events: Sequence[bytes]) -> None:
    insert_rows(
        c, "INSERT INTO history (instance_id, seq, payload)",
        [(instance_id, start + i, e) for i, e in enumerate(events)],
    )


# -- instances ----------------------------------------------------------------------------------------


def wipe(conn: Conn, instance_id: str) -> None:
    for table in ("history", "inbox", "tasks", "instances"):
        conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))


def active_descendant(conn: Conn, instance_id: str, seen: set[str] | None = None) -> list[str] | None:
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
        deeper = active_descendant(conn, child, seen)
        if deeper:
            return [child, *deeper]
    return None


def insert_new(conn: Conn, new: NewInstance, status: int = PENDING, execution_id: str = "",
               history_len: int = 0, updated_us: int | None = None, replace_terminal: bool = True) -> bool:
    """Insert a new instance. A finished instance with the same id is replaced (True is returned); an active
    one, or a finished one with an active descendant, raises InstanceExists and nothing is written."""
    existing = status_of(conn, new.instance_id)
    if existing is not None:
        if existing in ACTIVE_STATUSES or not replace_terminal:
            raise InstanceExists(new.instance_id)
        path = active_descendant(conn, new.instance_id)
        if path:
            chain = ": ".join(f"child workflow '{shown_id(p)}'" for p in path)
            raise InstanceExists(
                new.instance_id, f"cannot recreate workflow with ID '{shown_id(new.instance_id)}': {chain} is active"
            )
        wipe(conn, new.instance_id)
    conn.execute(
        "INSERT INTO instances (instance_id, name, status, execution_id, created_us, updated_us, input,"
        " parent_instance_id, parent_task_id, history_len, lease_owner, lease_until, incoming_history, tags)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new.instance_id, new.name, status_name(status), execution_id, new.created_us,
         updated_us if updated_us is not None else new.created_us, new.input, new.parent_instance_id,
         new.parent_task_id, history_len, new.lease_owner, new.lease_until_us, new.incoming, new.tags),
    )
    if new.start_event:
        conn.execute(
            "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, ?, NULL, ?)",
            (new.instance_id, new.visible_us, new.start_event),
        )
    return existing is not None


def create_with_history(
    c: Conn, new: NewInstance, status: int, history: list[bytes], tasks: list[tuple[int, int, bytes, str]],
    timers: list[tuple[int, int, bytes]], execution_id: str, updated_us: int,
) -> list[int]:
    """Create an instance from a ready-made history (rerun); an existing id, even a finished one, raises
    InstanceExists. Returns the seqs of `tasks`, in order."""
    insert_new(c, new, status=status, execution_id=execution_id, history_len=len(history),
               updated_us=updated_us, replace_terminal=False)
    insert_history(c, new.instance_id, 0, history)
    for gen, fire_us, ev in timers:
        c.execute(
            "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, ?, ?, ?)",
            (new.instance_id, fire_us, gen, ev),
        )
    return [
        c.execute(
            "INSERT INTO tasks (instance_id, generation, task_id, payload, app_id) VALUES (?, ?, ?, ?, ?)"
            " RETURNING seq",
            (new.instance_id, gen, task_id, payload, app),
        ).fetchone()[0]
        for gen, task_id, payload, app in tasks
    ]


def enqueue(c: Conn, instance_id: str, event: bytes, reject_stalled: bool) -> bool:
    """Append an event to the inbox; False (nothing stored) for a terminal instance."""
    status = status_of(c, instance_id)
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
    return True


def complete_task(c: Conn, task_seq: int, instance_id: str, generation: int, event: bytes) -> bool:
    """Delete the task and queue its result; False (nothing stored) if the task is gone already."""
    if c.execute("DELETE FROM tasks WHERE seq = ?", (task_seq,)).rowcount == 0:
        return False
    c.execute(
        "INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, ?, ?)",
        (instance_id, generation, event),
    )
    return True


def commit_stall(c: Conn, instance_id: str, history_start: int, events: list[bytes], updated_us: int) -> None:
    insert_history(c, instance_id, history_start, events)
    c.execute(
        "UPDATE instances SET status = ?, updated_us = ?, history_len = ? WHERE instance_id = ?",
        (status_name(STALLED), updated_us, history_start + len(events), instance_id),
    )


def purge(c: Conn, instance_id: str, recursive: bool, force: bool) -> list[str]:
    """Delete a terminal instance (recursively: its children first). Returns the ids deleted."""
    purged: list[str] = []
    _purge(c, instance_id, recursive, force, purged)
    return purged


def _purge(c: Conn, instance_id: str, recursive: bool, force: bool, purged: list[str]) -> None:
    status = status_of(c, instance_id)
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
    wipe(c, instance_id)
    purged.append(instance_id)


def purge_expired(c: Conn, status: int, since_us: int, before_us: int, limit: int, skip_locked: str) -> list[str]:
    """Delete up to `limit` instances with `status` that finished in [since_us, before_us), the earliest first
    (along the `instances_completed` index), each alone. `skip_locked` (`Dialect.skip_locked`) makes processes
    purging at once pass over each other's rows instead of waiting for them. Returns the ids deleted."""
    rows = c.execute(
        "DELETE FROM instances WHERE instance_id IN ("
        " SELECT instance_id FROM instances WHERE status = ? AND completed_us >= ? AND completed_us < ?"
        f" ORDER BY completed_us LIMIT ?{skip_locked}) RETURNING instance_id",
        (status_name(status), since_us, before_us, limit),
    ).fetchall()
    gone = sorted(r[0] for r in rows)
    for i in range(0, len(gone), ROWS_PER_STATEMENT):
        chunk = gone[i:i + ROWS_PER_STATEMENT]
        marks = ", ".join("?" * len(chunk))
        for table in ("history", "inbox", "tasks"):
            c.execute(f"DELETE FROM {table} WHERE instance_id IN ({marks})", chunk)
    return gone


def put_setting(c: Conn, key: str, value: str) -> None:
    c.execute("INSERT INTO durahub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
              (key, value, value))


def setdefault_setting(c: Conn, key: str, value: str) -> str:
    c.execute("INSERT INTO durahub_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
    return str(c.execute("SELECT value FROM durahub_meta WHERE key = ?", (key,)).fetchone()[0])


# -- turns --------------------------------------------------------------------------------------------


def commit_turn(c: Conn, t: TurnCommit) -> CommitResult:
    terminal = t.status in TERMINAL_STATUSES
    if t.replace_history:
        c.execute("DELETE FROM history WHERE instance_id = ?", (t.instance_id,))
        c.execute("DELETE FROM tasks WHERE instance_id = ? AND generation < ?", (t.instance_id, t.generation))
        c.execute(
            "DELETE FROM inbox WHERE instance_id = ? AND generation IS NOT NULL AND generation < ?",
            (t.instance_id, t.generation),
        )
    insert_history(c, t.instance_id, t.history_start, t.events)
    if t.consumed:
        delete_seqs(c, "inbox", t.consumed)
    updated = c.execute(
        "UPDATE instances SET name = ?, status = ?, execution_id = ?, generation = ?, created_us = ?, updated_us = ?,"
        " completed_us = ?, input = ?, output = ?, custom_status = ?, failure = ?, parent_instance_id = ?,"
        " parent_task_id = ?, history_len = ?, lease_until = ?, started_us = ?, tags = ?"
        + (", incoming_history = ?" if t.replace_history else "")
        + " WHERE instance_id = ?" + (" AND lease_owner = ?" if t.owner else ""),
        (t.name, status_name(t.status), t.execution_id, t.generation, t.created_us, t.updated_us,
         t.updated_us if terminal else None, t.input, t.output, t.custom_status, t.failure, t.parent_instance_id,
         t.parent_task_id, t.history_start + len(t.events), t.lease_until, t.started_us, t.tags,
         *((t.incoming,) if t.replace_history else ()), t.instance_id, *((t.owner,) if t.owner else ())),
    )
    if updated.rowcount == 0:
        # Nothing written stays: the store rolls the transaction back on any error.
        if status_of(c, t.instance_id) is None:
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
            put_in_front(c, t.instance_id, t.inbox_front)
            woken.add(t.instance_id)
        task_seqs = _insert_tasks(c, t)
        insert_rows(
            c, "INSERT INTO inbox (instance_id, visible_us, generation, payload)",
            [(t.instance_id, fire_us, gen, ev) for gen, fire_us, ev in t.timers],
        )
        _create_children(c, t, woken, created)
    for target, event in t.messages:
        status = status_of(c, target)
        if status is None or status in TERMINAL_STATUSES:
            continue
        c.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, NULL, ?)",
                  (target, event))
        woken.add(target)
    return CommitResult(task_seqs=task_seqs, woken=woken, created=created)


def _create_children(c: Conn, t: TurnCommit, woken: set[str], created: list[str]) -> None:
    """Create the turn's child instances; a child id that is taken gets the parent a conflict event instead
    (adds to `woken` and `created`)."""
    for child in t.children:
        existing = c.execute(
            "SELECT status, parent_instance_id, parent_task_id FROM instances WHERE instance_id = ?",
            (child.instance_id,),
        ).fetchone()
        if existing and status_from_name(existing[0]) in ACTIVE_STATUSES:
            if existing[1] == t.instance_id and existing[2] == child.parent_task_id:
                continue  # this parent's creation of this child, already running (like daprd: a no-op)
            insert_conflict(c, t, child)
            woken.add(t.instance_id)
            continue
        try:
            # A finished instance with this id (an earlier attempt or generation, or any finished
            # workflow) is replaced and runs again.
            insert_new(
                c,
                NewInstance(
                    instance_id=child.instance_id, name=child.name, created_us=child.created_us, input=None,
                    start_event=child.start_event, parent_instance_id=t.instance_id,
                    parent_task_id=child.parent_task_id, incoming=child.incoming,
                ),
            )
        except InstanceExists:
            insert_conflict(c, t, child)  # its old tree is still running
            woken.add(t.instance_id)
            continue
        created.append(child.instance_id)
        woken.add(child.instance_id)


def _insert_tasks(c: Conn, t: TurnCommit) -> list[int]:
    """Insert the turn's activity tasks; their seqs in the order of `t.tasks`."""
    lease_until = t.lease_until if t.owner else None
    unleased = set(t.unleased_apps)
    back = insert_rows(
        c, "INSERT INTO tasks (instance_id, generation, task_id, payload, lease_owner, lease_until, app_id)",
        [(t.instance_id, gen, task_id, payload, None if app in unleased else t.owner,
          None if app in unleased else lease_until, app) for gen, task_id, payload, app in t.tasks],
        returning=" RETURNING seq, generation, task_id",
    )
    # RETURNING's row order is unspecified: match by (generation, task id), unique within a turn.
    seq_of = {(gen, task_id): seq for seq, gen, task_id in back}
    return [seq_of[(gen, task_id)] for gen, task_id, _, _ in t.tasks]


def put_in_front(c: Conn, instance_id: str, events: list[bytes]) -> None:
    """Queue `events` ahead of the instance's inbox: its rows are queued again behind them (sequence numbers
    only grow, so moving the rest back is the way to put something first)."""
    rest = c.execute("SELECT visible_us, generation, payload FROM inbox WHERE instance_id = ? ORDER BY seq",
                     (instance_id,)).fetchall()
    if rest:
        c.execute("DELETE FROM inbox WHERE instance_id = ?", (instance_id,))
    insert_rows(
        c, "INSERT INTO inbox (instance_id, visible_us, generation, payload)",
        [(instance_id, 0, None, e) for e in events] + [(instance_id, r[0], r[1], bytes(r[2])) for r in rest],
    )


def insert_conflict(c: Conn, t: TurnCommit, child: NewChild) -> None:
    """The child's id is taken: the parent gets the creation's failure instead."""
    c.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES (?, 0, ?, ?)",
              (t.instance_id, t.generation, child.conflict_event))


# -- leases (shared stores) ---------------------------------------------------------------------------


def acquire_instance(c: Conn, owner: str, instance_id: str, until_us: int, now_us: int) -> tuple[int, int] | None:
    row = c.execute(
        "UPDATE instances SET lease_owner = ?, lease_until = ? WHERE instance_id = ?"
        " AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?) RETURNING history_len, generation",
        (owner, until_us, instance_id, owner, now_us),
    ).fetchone()
    return (row[0], row[1]) if row else None


def renew_leases(c: Conn, owner: str, instance_ids: list[str], task_seqs: list[int], until_us: int) -> None:
    c.executemany("UPDATE instances SET lease_until = ? WHERE instance_id = ? AND lease_owner = ?",
                  [(until_us, i, owner) for i in instance_ids])
    c.executemany("UPDATE tasks SET lease_until = ? WHERE seq = ? AND lease_owner = ?",
                  [(until_us, s, owner) for s in task_seqs])


def release_leases(c: Conn, owner: str) -> tuple[int, int]:
    """End every lease `owner` holds now (they expire; the owner stays recorded, so a takeover can say from
    whom). Returns how many instance and task leases ended."""
    instances = c.execute("UPDATE instances SET lease_until = 0 WHERE lease_owner = ? AND lease_until > 0",
                          (owner,)).rowcount
    tasks = c.execute("UPDATE tasks SET lease_until = 0 WHERE lease_owner = ? AND lease_until > 0",
                      (owner,)).rowcount
    return instances, tasks


def claim_tasks(c: Conn, owner: str, until_us: int, now_us: int, limit: int, skip_locked: str,
                apps: list[str]) -> list[TaskRow]:
    """Lease up to `limit` tasks of `apps` nobody holds (or whose holder stopped renewing); `skip_locked` is
    `Dialect.skip_locked`."""
    if not apps:
        return []
    rows = c.execute(
        "UPDATE tasks SET lease_owner = ?, lease_until = ? WHERE seq IN ("
        f" SELECT seq FROM tasks WHERE app_id IN ({', '.join('?' * len(apps))})"
        " AND (lease_owner IS NULL OR lease_until < ?) ORDER BY seq LIMIT ?"
        f"{skip_locked}) RETURNING seq, instance_id, generation, task_id, payload, app_id",
        (owner, until_us, *apps, now_us, limit),
    ).fetchall()
    return sorted((TaskRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows), key=lambda t: t.seq)
