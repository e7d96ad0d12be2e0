"""pytest fixtures for testing Dapr workflows with durahub, registered by entry point (`pytest11`), so
installing durahub is all a project needs:

    def test_order_times_out(durahub_env):
        durahub_env.start(wfr)                 # the app's module-level WorkflowRuntime
        iid = durahub_env.client.schedule_new_workflow(order_workflow, input={...})
        state = durahub_env.client.wait_for_workflow_completion(iid)

`durahub_env` is a time-skipping `WorkflowEnvironment`, `durahub_local_env` one on the wall clock; each test
gets its own engine and store. Importing this module starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from durahub.testing.environment import WorkflowEnvironment


@pytest.fixture
def durahub_env() -> Iterator[WorkflowEnvironment]:
    """A time-skipping in-process engine: timers fire as soon as a test waits and the engine is idle."""
    from durahub.testing.environment import WorkflowEnvironment

    with WorkflowEnvironment.start_time_skipping() as env:
        yield env


@pytest.fixture
def durahub_local_env() -> Iterator[WorkflowEnvironment]:
    """An in-process engine on the wall clock."""
    from durahub.testing.environment import WorkflowEnvironment

    with WorkflowEnvironment.start_local() as env:
        yield env
