"""The store's read-only statements: synchronous functions of a connection, in portable SQL (`?` placeholders).

They run on the reader thread's connection, or inline on the event loop's for point reads (`TransactionRunner`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from durahub.core.apps import app_of, instance_key, key_range
from durahub.core.state import status_from_name, status_name
from durahub.store.base import STALLED_SAMPLE, InboxRow, InstanceQuery, InstanceRow, StoreGauges, TaskRow
from durahub.store.runner import Conn

ROW_COLUMNS = (
    "instance_id, name, status, execution_id, generation, created_us, updated_us, completed_us, input, output,"
    " custom_status, failure, parent_instance_id, parent_task_id, history_len, incoming_history, tags, started_us"
)


def row_from(r: tuple[Any, ...]) -> InstanceRow:
    """An `InstanceRow` from a row of `ROW_COLUMNS`."""
    return InstanceRow(
        instance_id=r[0], name=r[1], status=status_from_name(r[2]), execution_id=r[3], generation=r[4],
        created_us=r[5], updated_us=r[6], completed_us=r[7], input=r[8], output=r[9], custom_status=r[10],
        failure=bytes(r[11]) if r[11] is not None else None, parent_instance_id=r[12], parent_task_id=r[13],
        history_len=r[14], incoming=bytes(r[15]) if r[15] is not None else None, tags=r[16], started_us=r[17],
    )


def get_instance(c: Conn, instance_id: str) -> InstanceRow | None:
    r = c.execute(f"SELECT {ROW_COLUMNS} FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return row_from(r) if r else None


def load_history(c: Conn, instance_id: str) -> list[bytes]:
    rows = c.execute("SELECT payload FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,))
    return [bytes(r[0]) for r in rows]


def load_inbox(c: Conn, instance_id: str, now_us: int, limit: int) -> list[InboxRow]:
    rows = c.execute(
        "SELECT seq, generation, payload FROM inbox WHERE instance_id = ? AND visible_us <= ?"
        " ORDER BY seq LIMIT ?",
        (instance_id, now_us, limit),
    )
    return [InboxRow(r[0], r[1], bytes(r[2])) for r in rows]


def pending_tasks(c: Conn) -> list[TaskRow]:
    rows = c.execute("SELECT seq, instance_id, generation, task_id, payload, app_id FROM tasks ORDER BY seq")
    return [TaskRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5] or app_of(r[1])) for r in rows]


def ready_instances(c: Conn, now_us: int) -> list[str]:
    rows = c.execute(
        "SELECT instance_id, MIN(seq) AS first FROM inbox WHERE visible_us <= ?"
        " GROUP BY instance_id ORDER BY first",
        (now_us,),
    )
    return [r[0] for r in rows]


def future_wakeups(c: Conn, now_us: int) -> list[tuple[str, int]]:
    rows = c.execute(
        "SELECT instance_id, MIN(visible_us) FROM inbox WHERE visible_us > ? GROUP BY instance_id", (now_us,)
    )
    return [(r[0], r[1]) for r in rows]


def gauges(c: Conn, now_us: int) -> StoreGauges:
    statuses = {r[0]: r[1] for r in c.execute("SELECT status, COUNT(*) FROM instances GROUP BY status")}
    oldest = c.execute(
        "SELECT MIN(i.updated_us) FROM instances i WHERE EXISTS"
        " (SELECT 1 FROM inbox b WHERE b.instance_id = i.instance_id AND b.visible_us <= ?)", (now_us,)
    ).fetchone()
    stalled = c.execute(
        "SELECT h.payload FROM instances i JOIN history h ON h.instance_id = i.instance_id"
        " WHERE i.status = 'STALLED' AND h.seq = (SELECT MAX(seq) FROM history WHERE instance_id = i.instance_id)"
        f" LIMIT {STALLED_SAMPLE}"
    )
    return StoreGauges(statuses, oldest[0] if oldest else None, [bytes(r[0]) for r in stalled])


def instances_with_status(c: Conn, status: int) -> list[str]:
    rows = c.execute("SELECT instance_id FROM instances WHERE status = ?", (status_name(status),))
    return [r[0] for r in rows]


def list_instance_ids(c: Conn, app_id: str, after: str | None, limit: int) -> list[str]:
    low, high = key_range(app_id)
    rows = c.execute(
        "SELECT instance_id FROM instances WHERE instance_id >= ? AND instance_id < ? AND instance_id > ?"
        " ORDER BY instance_id LIMIT ?",
        (low, high, after or "", limit),
    )
    return [r[0] for r in rows]


def apps_clause(column: str, apps: list[str]) -> tuple[str, list[Any]]:
    """SQL restricting an instance-key column to the keys of `apps` (index range scans), with its arguments."""
    if not apps:
        return "1 = 0", []
    ranges = [key_range(app) for app in apps]
    return "(" + " OR ".join(f"({column} >= ? AND {column} < ?)" for _ in ranges) + ")", [
        v for r in ranges for v in r]


def sweep_ready(c: Conn, owner: str, now_us: int, limit: int, apps: list[str]) -> list[tuple[str, str | None]]:
    """Instances of `apps` with visible inbox events and no live lease but `owner`'s (shared stores), with the
    owner of their last lease."""
    in_apps, app_args = apps_clause("i.instance_id", apps)
    rows = c.execute(
        "SELECT DISTINCT i.instance_id, s.lease_owner FROM inbox i JOIN instances s ON s.instance_id = i.instance_id"
        f" WHERE i.visible_us <= ? AND {in_apps}"
        " AND (s.lease_owner IS NULL OR s.lease_owner = ? OR s.lease_until < ?) LIMIT ?",
        (now_us, *app_args, owner, now_us, limit),
    )
    return [(r[0], r[1]) for r in rows]


def query_instances(c: Conn, query: InstanceQuery) -> list[InstanceRow]:
    sql, args = instance_query_sql(query)
    return [row_from(r) for r in c.execute(sql, args)]


def instance_query_sql(q: InstanceQuery) -> tuple[str, list[Any]]:
    """Portable SQL for an instance listing (positional `?` parameters)."""
    where, args = _instance_filter(q)
    sql = f"SELECT {ROW_COLUMNS} FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_us, instance_id LIMIT ?"
    args.append(q.limit)
    return sql, args


def count_instances(c: Conn, q: InstanceQuery, by_name: bool) -> list[tuple[int, str, int]]:
    """(status, workflow name or "", count) of the instances matching `q` (its cursor and limit aside),
    counted by the database rather than by reading every row."""
    where, args = _instance_filter(dataclasses.replace(q, after=None))
    columns = "status, name" if by_name else "status"
    sql = f"SELECT {columns}, COUNT(*) FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" GROUP BY {columns}"
    return [(status_from_name(r[0]), r[1], r[2]) if by_name else (status_from_name(r[0]), "", r[1])
            for r in c.execute(sql, args)]


def _instance_filter(q: InstanceQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if q.statuses:
        where.append(f"status IN ({','.join('?' * len(q.statuses))})")
        args.extend(status_name(s) for s in q.statuses)
    if q.app_id is not None:
        clause, app_args = apps_clause("instance_id", [q.app_id])
        where.append(clause)
        args.extend(app_args)
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
        key_prefix = instance_key(q.app_id or "", q.id_prefix)
        where.append("substr(instance_id, 1, ?) = ?")
        args.extend([len(key_prefix), key_prefix])
    if q.parent_id is not None:
        where.append("parent_instance_id = ?")
        args.append(q.parent_id)
    if q.after is not None:
        where.append("(created_us > ? OR (created_us = ? AND instance_id > ?))")
        args.extend([q.after[0], q.after[0], q.after[1]])
    return where, args


def settings(c: Conn, prefix: str) -> dict[str, str]:
    rows = c.execute("SELECT key, value FROM durahub_meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))
    return {r[0]: r[1] for r in rows}
