"""Test Dapr workflows in process, with time skipping: `WorkflowEnvironment` (an engine on free ports with a
temporary store; `start_time_skipping()` or `start_local()`), `run_activity` (an activity with a real
`WorkflowActivityContext`), `replay` (a recorded history against current code), and the pytest fixtures
`durahub_env` / `durahub_local_env` (`durahub.testing.pytest_plugin`, registered by entry point)."""

from durahub.errors import TimeSkippingLimit, WorkflowBlocked
from durahub.testing.environment import WorkflowEnvironment
from durahub.testing.history import load_history

__all__ = ["TimeSkippingLimit", "WorkflowBlocked", "WorkflowEnvironment", "load_history"]
