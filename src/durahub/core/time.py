"""Time as integer microseconds since the Unix epoch, and conversions to protobuf Timestamps."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

# Timers at or beyond this instant never fire: the SDK's indefinite-wait sentinel is 9999-12-31T23:59:59.999999999Z.
NEVER_US = 253402300799 * 1_000_000
# Dapr reports never-set timestamps as 0001-01-01T00:00:00Z.
ZERO_TIME_SECONDS = -62135596800


def ts_to_us(ts: Timestamp) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


def us_to_ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def is_never(us: int) -> bool:
    return us >= NEVER_US
