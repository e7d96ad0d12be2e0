"""The transaction bodies run directly on a SQLite connection: no threads, no server.

Each test runs twice: with one statement per row (SQLite's way) and with many rows per statement (`multi_row`,
PostgreSQL's way, which SQLite also understands).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from durahub.core.state import COMPLETED, FAILED, PENDING, RUNNING, STALLED, status_name
from durahub.store import queries as q
from durahub.store import transactions as tx
from durahub.store.base import (
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceStalled,
    LeaseLost,
    NewChild,
    NewInstance,
    TurnCommit,
)
from durahub.store.schema import migrate
from durahub.store.sqlite import SQLITE, SqliteConn


class _MultiRowConn(SqliteConn):
    multi_row = True


@pytest.fixture(params=[SqliteConn, _MultiRowConn], ids=["row-by-row", "multi-row"])
def conn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteConn]:
    c = sqlite3.connect(tmp_path / "db", isolation_level=None, factory=request.param)
    migrate(c, SQLITE, "test")
    yield c
    c.close()


def _new(iid: str, parent: str | None = None, start: bytes = b"start") -> NewInstance:
    return NewInstance(instance_id=iid, name="wf", created_us=1, input=None, start_event=start,
                       parent_instance_id=parent, parent_task_id=0 if parent else None)


def _set_status(c: SqliteConn, iid: str, status: int) -> None:
    c.execute("UPDATE instances SET status = ? WHERE instance_id = ?", (status_name(status), iid))


def _inbox(c: SqliteConn, iid: str) -> list[tuple[int, int | None, bytes]]:
    return [(r[0], r[1], bytes(r[2])) for r in c.execute(
        "SELECT visible_us, generation, payload FROM inbox WHERE instance_id = ? ORDER BY seq", (iid,))]


def _commit(iid: str, **kw: object) -> TurnCommit:
    fields: dict[str, object] = dict(
        instance_id=iid, status=RUNNING, name="wf", execution_id="x", generation=0, created_us=1, updated_us=2,
        input=None, output=None, failure=None, custom_status=None, parent_instance_id=None, parent_task_id=None,
        history_start=0, events=[b"h0", b"h1"],
    )
    fields.update(kw)
    return TurnCommit(**fields)  # type: ignore[arg-type]


@contextlib.contextmanager
def _rolled_back(c: SqliteConn) -> Iterator[None]:
    """A transaction that is rolled back on the error expected inside it, as the store's runner does."""
    c.execute("BEGIN")
    try:
        yield
    except BaseException:
        c.execute("ROLLBACK")
        raise
    c.execute("COMMIT")


def _child(iid: str, task_id: int = 7) -> NewChild:
    return NewChild(instance_id=iid, name="child", created_us=3, start_event=b"child-start",
                    conflict_event=b"conflict:" + iid.encode(), parent_task_id=task_id)


# -- insert_new -------------------------------------------------------------------------------------------


def test_insert_new_creates_the_instance_with_its_start_event(conn: SqliteConn) -> None:
    assert tx.insert_new(conn, _new("a")) is False
    row = q.get_instance(conn, "a")
    assert row is not None and row.status == PENDING and row.name == "wf"
    assert _inbox(conn, "a") == [(0, None, b"start")]


def test_insert_new_replaces_a_finished_instance(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    tx.commit_turn(conn, _commit("a", status=COMPLETED, output='"done"'))
    assert q.load_history(conn, "a") == [b"h0", b"h1"]
    assert tx.insert_new(conn, _new("a", start=b"again")) is True
    row = q.get_instance(conn, "a")
    assert row is not None and row.status == PENDING and row.output is None and row.history_len == 0
    assert q.load_history(conn, "a") == []
    assert _inbox(conn, "a") == [(0, None, b"again")]


def test_insert_new_refuses_an_active_instance(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    _set_status(conn, "a", RUNNING)
    with pytest.raises(InstanceExists, match="an active workflow with ID 'a' already exists"):
        tx.insert_new(conn, _new("a", start=b"again"))
    assert _inbox(conn, "a") == [(0, None, b"start")]


def test_insert_new_refuses_a_finished_instance_with_an_active_grandchild(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("p"))
    tx.insert_new(conn, _new("c", parent="p"))
    tx.insert_new(conn, _new("g", parent="c"))
    _set_status(conn, "p", COMPLETED)
    _set_status(conn, "c", FAILED)
    _set_status(conn, "g", RUNNING)
    with pytest.raises(InstanceExists, match="child workflow 'c': child workflow 'g' is active"):
        tx.insert_new(conn, _new("p"))
    row = q.get_instance(conn, "p")
    assert row is not None and row.status == COMPLETED
    _set_status(conn, "g", COMPLETED)
    assert tx.insert_new(conn, _new("p")) is True


def test_create_with_history_refuses_even_a_finished_id(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    _set_status(conn, "a", COMPLETED)
    with pytest.raises(InstanceExists):
        tx.create_with_history(conn, _new("a"), RUNNING, [b"e"], [], [], "x", 5)
    seqs = tx.create_with_history(conn, _new("b"), RUNNING, [b"e0", b"e1"], [(0, 1, b"t1", "app"), (0, 2, b"t2", "app")],
                                  [(0, 99, b"timer")], "x", 5)
    assert [t.seq for t in q.pending_tasks(conn)] == seqs and len(seqs) == 2
    assert q.load_history(conn, "b") == [b"e0", b"e1"]
    assert _inbox(conn, "b") == [(0, None, b"start"), (99, 0, b"timer")]


# -- put_in_front -----------------------------------------------------------------------------------------


def test_put_in_front_puts_events_ahead_of_the_queued_rows(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))  # queues b"start"
    conn.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES ('a', 50, 3, x'7431')")
    conn.execute("INSERT INTO inbox (instance_id, visible_us, generation, payload) VALUES ('b', 0, NULL, x'6f')")
    tx.put_in_front(conn, "a", [b"first", b"second"])
    assert _inbox(conn, "a") == [(0, None, b"first"), (0, None, b"second"), (0, None, b"start"), (50, 3, b"t1")]
    assert _inbox(conn, "b") == [(0, None, b"o")]  # other instances' rows stay where they are
    assert [r.payload for r in q.load_inbox(conn, "a", now_us=10, limit=10)] == [b"first", b"second", b"start"]


def test_commit_turn_puts_inbox_front_first_and_wakes_the_instance(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    result = tx.commit_turn(conn, _commit("a", inbox_front=[b"front"]))
    assert [p for _, _, p in _inbox(conn, "a")] == [b"front", b"start"]
    assert result.woken == {"a"}


# -- commit_turn ------------------------------------------------------------------------------------------


def test_commit_turn_appends_history_consumes_and_queues_tasks_and_timers(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    start_seq = q.load_inbox(conn, "a", 0, 10)[0].seq
    result = tx.commit_turn(conn, _commit("a", consumed=[start_seq], tasks=[(0, 2, b"t2", "app"), (0, 1, b"t1", "app")],
                                          timers=[(0, 500, b"timer")]))
    assert q.load_history(conn, "a") == [b"h0", b"h1"]
    assert _inbox(conn, "a") == [(500, 0, b"timer")]
    tasks = {t.seq: (t.task_id, t.payload) for t in q.pending_tasks(conn)}
    assert [tasks[s] for s in result.task_seqs] == [(2, b"t2"), (1, b"t1")]  # seqs in the order of `tasks`
    row = q.get_instance(conn, "a")
    assert row is not None and row.status == RUNNING and row.history_len == 2 and row.completed_us is None


def test_commit_turn_creates_a_new_child(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("p"))
    result = tx.commit_turn(conn, _commit("p", children=[_child("c")]))
    assert result.created == ["c"] and result.woken == {"c"}
    row = q.get_instance(conn, "c")
    assert row is not None and row.parent_instance_id == "p" and row.parent_task_id == 7 and row.status == PENDING
    assert _inbox(conn, "c") == [(0, None, b"child-start")]


def test_commit_turn_skips_a_child_this_parent_already_started(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("p"))
    tx.commit_turn(conn, _commit("p", children=[_child("c")]))
    _set_status(conn, "c", RUNNING)
    result = tx.commit_turn(conn, _commit("p", history_start=2, events=[b"h2"], children=[_child("c")]))
    assert result.created == [] and result.woken == set()
    assert _inbox(conn, "c") == [(0, None, b"child-start")]
    assert b"conflict:c" not in [p for _, _, p in _inbox(conn, "p")]


@pytest.mark.parametrize("owner, task_id", [("other", 7), ("p", 8)], ids=["other-parent", "other-task"])
def test_commit_turn_answers_a_taken_child_id_with_a_conflict(conn: SqliteConn, owner: str, task_id: int) -> None:
    tx.insert_new(conn, _new("p"))
    if owner != "p":
        tx.insert_new(conn, _new(owner))
    tx.commit_turn(conn, _commit(owner, children=[_child("c", task_id=7)]))
    _set_status(conn, "c", RUNNING)
    result = tx.commit_turn(conn, _commit("p", generation=4, history_start=0 if owner != "p" else 2,
                                          events=[b"hx"], children=[_child("c", task_id=task_id)]))
    assert result.created == [] and result.woken == {"p"}
    assert (0, 4, b"conflict:c") in _inbox(conn, "p")
    row = q.get_instance(conn, "c")
    assert row is not None and row.parent_instance_id == owner and row.parent_task_id == 7


def test_commit_turn_replaces_a_finished_child_unless_its_tree_is_still_running(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("p"))
    tx.insert_new(conn, _new("c"))
    tx.insert_new(conn, _new("g", parent="c"))
    _set_status(conn, "c", COMPLETED)
    result = tx.commit_turn(conn, _commit("p", children=[_child("c")]))
    assert result.created == [] and (0, 0, b"conflict:c") in _inbox(conn, "p")  # 'g' still runs
    _set_status(conn, "g", COMPLETED)
    result = tx.commit_turn(conn, _commit("p", history_start=2, events=[b"h2"], children=[_child("c")]))
    assert result.created == ["c"] and "c" in result.woken
    row = q.get_instance(conn, "c")
    assert row is not None and row.status == PENDING and row.parent_instance_id == "p"


def test_commit_turn_messages_reach_active_instances_only(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("p"))
    tx.insert_new(conn, _new("live"))
    tx.insert_new(conn, _new("done"))
    _set_status(conn, "done", COMPLETED)
    result = tx.commit_turn(conn, _commit("p", messages=[("live", b"m"), ("done", b"m"), ("nobody", b"m")]))
    assert result.woken == {"live"}
    assert _inbox(conn, "live")[-1] == (0, None, b"m")
    assert _inbox(conn, "done") == [(0, None, b"start")]


def test_a_terminal_commit_drops_the_instances_tasks_and_inbox(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    tx.commit_turn(conn, _commit("a", tasks=[(0, 1, b"t", "app")], timers=[(0, 9, b"timer")]))
    tx.commit_turn(conn, _commit("a", status=COMPLETED, history_start=2, events=[b"done"], updated_us=77))
    assert q.pending_tasks(conn) == [] and _inbox(conn, "a") == []
    row = q.get_instance(conn, "a")
    assert row is not None and row.completed_us == 77 and row.history_len == 3


def test_commit_turn_under_another_owners_lease_is_refused(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    assert tx.acquire_instance(conn, "me", "a", until_us=100, now_us=0) == (0, 0)
    assert tx.acquire_instance(conn, "other", "a", until_us=100, now_us=50) is None  # held by "me" until 100
    with pytest.raises(LeaseLost), _rolled_back(conn):
        tx.commit_turn(conn, _commit("a", owner="other", lease_until=200))
    assert q.load_history(conn, "a") == []
    tx.commit_turn(conn, _commit("a", owner="me", lease_until=200))
    with pytest.raises(InstanceNotFound), _rolled_back(conn):
        tx.commit_turn(conn, _commit("gone", owner="me", lease_until=200))
    assert tx.acquire_instance(conn, "other", "a", until_us=300, now_us=250) == (2, 0)  # "me" let it expire


def test_claim_tasks_takes_only_unheld_or_expired_tasks(conn: SqliteConn) -> None:
    tx.insert_new(conn, _new("a"))
    seqs = tx.create_with_history(conn, _new("b"), RUNNING, [], [(0, 1, b"t1", "app"), (0, 2, b"t2", "app")], [], "x", 1)
    assert [t.seq for t in tx.claim_tasks(conn, "me", 100, 0, 1, SQLITE.skip_locked, ["app"])] == seqs[:1]
    assert [t.seq for t in tx.claim_tasks(conn, "other", 100, 0, 10, SQLITE.skip_locked, ["app"])] == seqs[1:]
    assert tx.claim_tasks(conn, "other", 100, 50, 10, SQLITE.skip_locked, ["app"]) == []
    assert [t.seq for t in tx.claim_tasks(conn, "other", 300, 150, 10, SQLITE.skip_locked, ["app"])] == seqs


# -- purge ------------------------------------------------------------------------------------------------


def _ids(conn: SqliteConn) -> list[str]:
    return [r[0] for r in conn.execute("SELECT instance_id FROM instances ORDER BY instance_id").fetchall()]


def _tree(conn: SqliteConn) -> None:
    for iid, parent in (("p", None), ("c1", "p"), ("c2", "p"), ("g", "c1")):
        tx.insert_new(conn, _new(iid, parent=parent))
        _set_status(conn, iid, COMPLETED)


def test_purge_recursive_deletes_the_tree_children_first(conn: SqliteConn) -> None:
    _tree(conn)
    tx.insert_new(conn, _new("other"))
    purged = tx.purge(conn, "p", recursive=True, force=False)
    assert sorted(purged) == ["c1", "c2", "g", "p"]
    assert purged.index("g") < purged.index("c1") and purged[-1] == "p"
    assert _ids(conn) == ["other"]
    assert conn.execute("SELECT count(*) FROM inbox").fetchone()[0] == 1


def test_purge_without_recursion_leaves_the_children(conn: SqliteConn) -> None:
    _tree(conn)
    assert tx.purge(conn, "p", recursive=False, force=False) == ["p"]
    assert _ids(conn) == ["c1", "c2", "g"]


def test_purge_refuses_active_instances_unless_forced(conn: SqliteConn) -> None:
    _tree(conn)
    _set_status(conn, "g", RUNNING)
    with pytest.raises(InstanceNotTerminal):
        tx.purge(conn, "p", recursive=True, force=False)
    _set_status(conn, "g", STALLED)
    with pytest.raises(InstanceStalled):
        tx.purge(conn, "g", recursive=False, force=False)
    with pytest.raises(InstanceNotFound):
        tx.purge(conn, "nobody", recursive=False, force=False)
    assert sorted(tx.purge(conn, "p", recursive=True, force=True)) == ["c1", "c2", "g", "p"]


def test_listing_ids_and_claiming_tasks_stay_within_their_apps(conn: SqliteConn) -> None:
    for key in ("a|1", "a|2", "b|1", "a-b|1"):
        tx.insert_new(conn, _new(key))
    assert q.list_instance_ids(conn, "a", None, 10) == ["a|1", "a|2"]
    assert q.list_instance_ids(conn, "a", "a|1", 10) == ["a|2"]
    assert q.list_instance_ids(conn, "b", None, 10) == ["b|1"]
    seqs = tx.create_with_history(conn, _new("a|3"), RUNNING, [], [(0, 1, b"t1", "a"), (0, 2, b"t2", "b")], [],
                                  "x", 1)
    claimed = tx.claim_tasks(conn, "me", 100, 0, 10, SQLITE.skip_locked, ["b"])
    assert [(t.seq, t.app_id) for t in claimed] == [(seqs[1], "b")]
    assert tx.claim_tasks(conn, "me", 100, 0, 10, SQLITE.skip_locked, []) == []
