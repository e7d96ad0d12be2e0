"""Prometheus metric families and their text exposition (format 0.0.4), written here rather than with
`prometheus_client`: its counters are renamed `x_total`, and Dapr's counters (`..._count`, no `_total`) must
keep their names so dashboards and queries written for daprd work unchanged."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Family:
    """One metric name with its help text, type and label names."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> list[str]:
        return [*self.header(), *self.samples()]


class Counter(Family):
    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in sorted(self.values.items())]


class Gauge(Family):
    """Values set at scrape time (`set_all`), or kept up to date by the code that owns them (`set`)."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[Labels, float] = {}

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def set_all(self, values: Iterable[tuple[Labels, float]]) -> None:
        self.values = dict(values)

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(self.labelnames, k)} {_number(v)}" for k, v in sorted(self.values.items())]


class Histogram(Family):
    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, help, labelnames)
        self.buckets = tuple(sorted(buckets))
        # Per label set, one list: the count in each bucket (not cumulative; the last is +Inf), then the sum.
        # One dict lookup per observation: this is on the engine's path for every turn and activity.
        self.cells: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        cell = self.cells.get(labels)
        if cell is None:
            cell = self.cells[labels] = [0] * (len(self.buckets) + 2)
        cell[bisect.bisect_left(self.buckets, value)] += 1
        cell[-1] += value

    def count(self, labels: Labels) -> int:
        return int(sum(self.cells.get(labels, [0])[:-1]))

    def samples(self) -> list[str]:
        lines: list[str] = []
        for key in sorted(self.cells):
            cell = self.cells[key]
            running = 0
            for bound, n in zip((*self.buckets, math.inf), cell[:-1], strict=True):
                running += int(n)
                le = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(cell[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {running}")
        return lines


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.extend(family.render())
    return "\n".join(lines) + "\n"
