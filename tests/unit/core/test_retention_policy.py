"""The retention policy's pure parts: Go-style durations, and which time to live a finished instance gets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durahub.core.retention import (
    MAX_SWEEP_SECONDS,
    MIN_SWEEP_SECONDS,
    RetentionPolicy,
    format_duration,
    parse_duration,
    since_key,
)
from durahub.core.state import CANCELED, COMPLETED, FAILED, PENDING, RUNNING, STALLED, SUSPENDED, TERMINATED

S = 1_000_000
M = 60 * S
H = 60 * M


@pytest.mark.parametrize(("text", "us"), [
    ("90s", 90 * S), ("15m", 15 * M), ("24h", 24 * H), ("1h30m", 90 * M), ("1h30m15s", 90 * M + 15 * S),
    ("1.5h", 90 * M), (".5s", S // 2), ("1.s", S), ("300ms", 300_000), ("250us", 250), ("250µs", 250),
    ("250μs", 250), ("1500ns", 1), ("999ns", 0), ("0", 0), ("0s", 0), ("+5m", 5 * M), ("2h2h", 4 * H),
    ("168h", 168 * H), (" 1m ", M),
])
def test_parse_duration_reads_go_durations_in_microseconds(text: str, us: int) -> None:
    assert parse_duration(text) == us


@pytest.mark.parametrize("text", ["", "5", "15", "1d", "1w", "s", "h1", "1 h", "1h 30m", "1.2.3s", ".s", "abc",
                                  "1H", "1hh", "0x10s", "1e3s", "\u0661s"])
def test_parse_duration_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_parse_duration_refuses_negative_and_overlong_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration("-1s")
    with pytest.raises(ValueError, match="too long"):
        parse_duration("2562048h")  # just over Go's int64 nanoseconds
    assert parse_duration("2562047h") == 2562047 * H


@pytest.mark.parametrize(("us", "text"), [
    (0, "0s"), (S, "1s"), (90 * M, "1h30m"), (H + 5 * S, "1h5s"), (S // 2, "0.5s"), (250, "0.00025s"),
    (48 * H, "48h"),
])
def test_format_duration_writes_the_short_go_form(us: int, text: str) -> None:
    assert format_duration(us) == text
    assert parse_duration(text) == us


def test_a_status_of_its_own_wins_over_any_terminal() -> None:
    policy = RetentionPolicy(any_terminal=360 * H, completed=M, failed=720 * H)
    assert policy.ttl(COMPLETED) == M
    assert policy.ttl(FAILED) == 720 * H
    assert policy.ttl(TERMINATED) == 360 * H  # not given its own: any_terminal
    assert policy.ttl(CANCELED) == 360 * H


def test_a_zero_time_to_live_is_a_time_to_live() -> None:
    policy = RetentionPolicy(any_terminal=H, completed=0)
    assert policy.ttl(COMPLETED) == 0
    assert policy.cutoffs(1000 * S)[COMPLETED] == 1000 * S


@pytest.mark.parametrize("status", [RUNNING, PENDING, SUSPENDED, STALLED])
def test_active_instances_have_no_time_to_live(status: int) -> None:
    assert RetentionPolicy(any_terminal=0, completed=0, failed=0, terminated=0).ttl(status) is None


def test_only_the_statuses_given_a_time_to_live_are_swept() -> None:
    policy = RetentionPolicy(failed=2 * H)
    assert policy.ttls() == {FAILED: 2 * H}
    assert policy.cutoffs(10 * H) == {FAILED: 8 * H}
    assert policy.enabled
    assert not RetentionPolicy().enabled
    assert RetentionPolicy().ttls() == {}


def test_the_policy_comes_from_timedeltas() -> None:
    policy = RetentionPolicy.of(any_terminal=timedelta(days=1), terminated=timedelta(milliseconds=1500))
    assert policy == RetentionPolicy(any_terminal=24 * H, terminated=1_500_000)
    assert RetentionPolicy.of() == RetentionPolicy()


@pytest.mark.parametrize(("policy", "seconds"), [
    (RetentionPolicy(completed=0), MIN_SWEEP_SECONDS),
    (RetentionPolicy(completed=S), MIN_SWEEP_SECONDS),
    (RetentionPolicy(completed=100 * S, failed=H), 10.0),
    (RetentionPolicy(any_terminal=24 * H), MAX_SWEEP_SECONDS),
])
def test_sweeps_come_a_tenth_of_the_shortest_time_to_live_apart_within_bounds(
    policy: RetentionPolicy, seconds: float
) -> None:
    assert policy.sweep_seconds() == seconds


def test_the_policy_describes_itself_for_the_log() -> None:
    policy = RetentionPolicy(any_terminal=24 * H, completed=90 * S)
    assert policy.describe() == "completed=1m30s failed=24h terminated=24h canceled=24h"


def test_each_status_has_its_own_since_setting() -> None:
    keys = {since_key(s) for s in (COMPLETED, FAILED, TERMINATED, CANCELED)}
    assert keys == {"retention_since_us.COMPLETED", "retention_since_us.FAILED", "retention_since_us.TERMINATED",
                    "retention_since_us.CANCELED"}
