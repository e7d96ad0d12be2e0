"""Test Dapr workflows in process, with time skipping: `WorkflowEnvironment` (an engine on free ports with a
temporary store; `start_time_skipping()` or `start_local()`), `run_activity` (an activity with a real
`WorkflowActivityContext`), `replay` (a recorded history against current code), and the pytest fixtures
`durahub_env` / `durahub_local_env` (`durahub.testing.pytest_plugin`, registered by entry point)."""

from durahub.errors import TimeSkippingLimit, WorkflowBlocked
from durahub.testing.activity import activity_context, run_activity
from durahub.testing.environment import WorkflowEnvironment
from durahub.testing.history import load_history
from durahub.testing.replay import ReplayMismatch, ReplayResult, assert_replays, replay

__all__ = [
    "ReplayMismatch", "ReplayResult", "TimeSkippingLimit", "WorkflowBlocked", "WorkflowEnvironment",
    "activity_context", "assert_replays", "load_history", "replay", "run_activity",
]
