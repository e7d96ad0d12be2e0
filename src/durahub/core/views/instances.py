"""Views over instance rows rather than one history: the tree of an instance's children, and counts by status
or workflow name."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from durahub.core.state import status_name

GroupBy = Literal["status", "workflow_name"]

# The status chips, in the order a list page shows them; others appear only when counted.
CHIP_STATUSES = ("RUNNING", "PENDING", "SUSPENDED", "STALLED", "COMPLETED", "FAILED", "TERMINATED")


class InstanceLike(Protocol):
    """What these views read of an instance (the engine's instance rows have it)."""

    @property
    def instance_id(self) -> str: ...
    @property
    def app_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def created_us(self) -> int: ...
    @property
    def completed_us(self) -> int | None: ...
    @property
    def parent_instance_id(self) -> str | None: ...


@dataclass
class TreeNode:
    instance_id: str
    app_id: str
    workflow_name: str
    status: str
    created_us: int
    completed_us: int | None
    duration_us: int | None
    children: list[TreeNode] = field(default_factory=list)
    # Its children were not looked up (the depth or size limit was reached): a UI offers to expand it.
    truncated: bool = False


def instance_key(row: InstanceLike) -> tuple[str, str]:
    """An instance's identity across apps: (app id, instance id)."""
    return row.app_id, row.instance_id


def tree(root: InstanceLike, children_of: Mapping[tuple[str, str], Sequence[InstanceLike]],
         max_depth: int | None = None) -> TreeNode:
    """`root` and its descendants; `children_of` maps an instance's `instance_key` to its child rows. An instance
    missing from it was not looked up and is marked truncated, as is everything below `max_depth`."""
    seen: set[tuple[str, str]] = set()

    def build(row: InstanceLike, depth: int) -> TreeNode:
        key = instance_key(row)
        seen.add(key)
        node = TreeNode(
            instance_id=row.instance_id, app_id=row.app_id, workflow_name=row.name, status=status_name(row.status),
            created_us=row.created_us, completed_us=row.completed_us,
            duration_us=None if row.completed_us is None else row.completed_us - row.created_us)
        if key not in children_of or (max_depth is not None and depth >= max_depth):
            node.truncated = True
            return node
        for child in children_of[key]:
            if instance_key(child) not in seen:  # a reused id must not make a loop
                node.children.append(build(child, depth + 1))
        return node

    return build(root, 0)


@dataclass
class CountGroup:
    key: str  # a status name or a workflow name
    count: int
    statuses: dict[str, int] = field(default_factory=dict)  # by status, when grouped by workflow name


@dataclass
class Stats:
    group_by: GroupBy
    total: int
    groups: list[CountGroup]


class InstanceCounter:
    """Counts rows as they are paged in, without keeping them."""

    def __init__(self, group_by: GroupBy) -> None:
        self.group_by: GroupBy = group_by
        self.total = 0
        self.by_status: Counter[str] = Counter()
        self.by_name: dict[str, Counter[str]] = {}

    def add(self, rows: Iterable[InstanceLike]) -> None:
        for row in rows:
            status = status_name(row.status)
            self.total += 1
            self.by_status[status] += 1
            if self.group_by == "workflow_name":
                self.by_name.setdefault(row.name, Counter())[status] += 1

    def add_counts(self, counts: Iterable[tuple[int, str, int]]) -> None:
        """(status, workflow name, count) triples, as a store counts them."""
        for status_code, name, count in counts:
            status = status_name(status_code)
            self.total += count
            self.by_status[status] += count
            if self.group_by == "workflow_name":
                self.by_name.setdefault(name, Counter())[status] += count

    def stats(self) -> Stats:
        if self.group_by == "status":
            keys = list(CHIP_STATUSES) + sorted(set(self.by_status) - set(CHIP_STATUSES))
            groups = [CountGroup(key=k, count=self.by_status[k]) for k in keys]
        else:
            groups = [CountGroup(key=name, count=sum(c.values()), statuses=dict(sorted(c.items())))
                      for name, c in sorted(self.by_name.items())]
        return Stats(group_by=self.group_by, total=self.total, groups=groups)


def status_counts(rows: Iterable[InstanceLike], group_by: GroupBy = "status") -> Stats:
    counter = InstanceCounter(group_by)
    counter.add(rows)
    return counter.stats()
