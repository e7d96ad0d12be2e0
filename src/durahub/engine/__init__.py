"""The engine between the protocol adapters and the store (see `durahub.engine.engine` for its parts)."""

from durahub.core.state import is_finished, is_running_or_finished, is_started, is_suspended_or_finished
from durahub.engine.engine import Engine
from durahub.engine.work import EngineStopping, InvalidRequest, Stream
from durahub.store.base import InstanceExists, InstanceNotFound

__all__ = [
    "Engine",
    "EngineStopping",
    "InvalidRequest",
    "InstanceExists",
    "InstanceNotFound",
    "Stream",
    "is_finished",
    "is_running_or_finished",
    "is_started",
    "is_suspended_or_finished",
]
