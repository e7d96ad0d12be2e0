"""A run as a waterfall: one bar per step from its start to its end, retries as segments of one bar, turn
markers, and the idle gaps a UI may compress."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from durahub.core.time import ts_to_us
from durahub.core.views.execution import Execution, Step, read_execution
from durahub.protos import pb

# Stretches with no event longer than this are reported as gaps (a run that waits for days still fits a screen).
DEFAULT_MIN_GAP_US = 60 * 1_000_000


@dataclass
class Segment:
    # attempt: one try of an activity or child; backoff: the wait before its retry; span: a timer's or event's wait
    kind: Literal["attempt", "backoff", "span"]
    start_us: int
    end_us: int | None
    status: str
    event_id: int  # the attempt's scheduling event; the retry timer's id for a backoff
    failure: str | None = None


@dataclass
class Bar:
    key: str
    kind: str  # activity, timer, child, event, send
    name: str
    event_id: int  # first scheduling event (-1 for an event nobody awaited)
    start_us: int
    end_us: int | None  # None while open
    status: str
    attempts: int
    lane: int  # bars in one lane never overlap; open bars keep their lane to the end
    segments: list[Segment] = field(default_factory=list)
    failure: str | None = None
    instance_id: str = ""  # a child's id, a sent event's target
    app_id: str = ""  # the app a step runs in or goes to, when the workflow named one
    task_execution_id: str = ""
    fire_at_us: int | None = None  # timers and event waits; None: never


@dataclass
class TurnMarker:
    index: int
    at_us: int


@dataclass
class Gap:
    start_us: int
    end_us: int


@dataclass
class Timeline:
    instance_id: str
    workflow_name: str
    status: str
    start_us: int | None
    end_us: int | None  # the run's end, else `now` if given, else the newest event
    bars: list[Bar]
    turns: list[TurnMarker]
    gaps: list[Gap]
    lanes: int


def _segments(step: Step) -> list[Segment]:
    if not step.attempts:
        return [Segment("span", step.start_us, step.end_us, step.status, step.event_id)]
    segments: list[Segment] = []
    for number, attempt in enumerate(step.attempts):
        segments.append(Segment("attempt", attempt.start_us, attempt.end_us, attempt.status, attempt.event_id,
                                attempt.failure))
        if attempt.retry_timer_id is not None and attempt.end_us is not None:
            following = step.attempts[number + 1] if number + 1 < len(step.attempts) else None
            segments.append(Segment("backoff", attempt.end_us, following.start_us if following else None,
                                    "completed" if following else step.status, attempt.retry_timer_id))
    return segments


def _assign_lanes(bars: list[Bar]) -> int:
    """Greedy interval packing: each bar takes the lowest lane free at its start."""
    lane_ends: list[int | None] = []  # None: taken by a bar that never ends
    for bar in sorted(bars, key=lambda b: b.start_us):
        free = next((i for i, end in enumerate(lane_ends) if end is not None and end <= bar.start_us), None)
        if free is None:
            free = len(lane_ends)
            lane_ends.append(None)
        lane_ends[free] = bar.end_us
        bar.lane = free
    return len(lane_ends)


def _gaps(instants: list[int], min_gap_us: int) -> list[Gap]:
    points = sorted(set(instants))
    return [Gap(a, b) for a, b in zip(points, points[1:], strict=False) if b - a >= min_gap_us]


def build_timeline(execution: Execution, history: list[pb.HistoryEvent], now_us: int | None = None,
                   min_gap_us: int = DEFAULT_MIN_GAP_US) -> Timeline:
    bars = [
        Bar(key=s.key, kind=s.kind, name=s.name, event_id=s.event_id, start_us=s.start_us, end_us=s.end_us,
            status=s.status, attempts=max(1, len(s.attempts)), lane=0, segments=_segments(s), failure=s.failure,
            instance_id=s.instance_id, app_id=s.app_id, task_execution_id=s.task_execution_id,
            fire_at_us=s.fire_at_us)
        for s in execution.steps
    ]
    lanes = _assign_lanes(bars)
    instants = [ts_to_us(e.timestamp) for e in history]
    end_us = execution.end_us
    if end_us is None:
        end_us = now_us if now_us is not None else execution.last_us
        if now_us is not None:
            instants.append(now_us)
    return Timeline(
        instance_id=execution.instance_id, workflow_name=execution.name, status=execution.status,
        start_us=execution.start_us, end_us=end_us, bars=bars,
        turns=[TurnMarker(t.index, t.start_us) for t in execution.turns],
        gaps=_gaps(instants, min_gap_us), lanes=lanes,
    )


def timeline(history: list[pb.HistoryEvent], now_us: int | None = None,
             min_gap_us: int = DEFAULT_MIN_GAP_US) -> Timeline:
    """The waterfall of one instance; `now_us` extends a running one's axis to the present."""
    return build_timeline(read_execution(history), history, now_us, min_gap_us)
