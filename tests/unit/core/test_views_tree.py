"""Views over instance rows: the children tree (depth limit, rows not looked up, reused ids) and counts by
status or workflow name."""

from __future__ import annotations

from dataclasses import dataclass

from durahub.core.state import COMPLETED, FAILED, RUNNING, status_from_name
from durahub.core.views import status_counts, tree


@dataclass
class Row:
    instance_id: str
    app_id: str = "app"
    name: str = "wf"
    status: int = RUNNING
    created_us: int = 100
    completed_us: int | None = None
    parent_instance_id: str | None = None


def test_tree_nests_children_and_marks_what_was_not_looked_up() -> None:
    root = Row("p", completed_us=400, status=COMPLETED)
    a, b, a1 = Row("p:1", parent_instance_id="p"), Row("p:2", status=FAILED), Row("p:1:1", name="leaf")
    children = {("app", "p"): [a, b], ("app", "p:1"): [a1], ("app", "p:2"): []}
    t = tree(root, children)
    assert (t.instance_id, t.status, t.duration_us, t.truncated) == ("p", "COMPLETED", 300, False)
    assert [c.instance_id for c in t.children] == ["p:1", "p:2"]
    assert [c.instance_id for c in t.children[0].children] == ["p:1:1"]
    assert t.children[0].children[0].truncated  # its children were never looked up
    assert not t.children[1].truncated and t.children[1].status == "FAILED"
    shallow = tree(root, children, max_depth=1)
    assert [c.truncated for c in shallow.children] == [True, True] and shallow.children[0].children == []


def test_a_reused_id_does_not_loop() -> None:
    root = Row("a")
    t = tree(root, {("app", "a"): [Row("b"), Row("a", app_id="other")], ("app", "b"): [Row("a")]})
    assert [(c.app_id, c.instance_id) for c in t.children] == [("app", "b"), ("other", "a")]
    assert t.children[0].children == []  # ("app", "a") is the root itself


def test_counts_by_status_list_every_chip() -> None:
    rows = [Row("1"), Row("2"), Row("3", status=COMPLETED), Row("4", status=status_from_name("CANCELED"))]
    s = status_counts(rows)
    counts = {g.key: g.count for g in s.groups}
    assert s.total == 4 and s.group_by == "status"
    assert counts == {"RUNNING": 2, "PENDING": 0, "SUSPENDED": 0, "STALLED": 0, "COMPLETED": 1, "FAILED": 0,
                      "TERMINATED": 0, "CANCELED": 1}
    assert [g.key for g in s.groups][:7] == ["RUNNING", "PENDING", "SUSPENDED", "STALLED", "COMPLETED", "FAILED",
                                             "TERMINATED"]


def test_counts_by_workflow_name_with_statuses() -> None:
    rows = [Row("1", name="b"), Row("2", name="a", status=FAILED), Row("3", name="a", status=COMPLETED),
            Row("4", name="a", status=COMPLETED)]
    s = status_counts(rows, "workflow_name")
    assert [(g.key, g.count, g.statuses) for g in s.groups] == [
        ("a", 3, {"COMPLETED": 2, "FAILED": 1}), ("b", 1, {"RUNNING": 1})]
