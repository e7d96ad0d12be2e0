"""The wire contract: the Dapr SDK's own generated protobuf modules, imported, never hand-written."""

from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as taskhub_grpc
from dapr.ext.workflow._durabletask.internal import protos as pb

__all__ = ["pb", "taskhub_grpc"]
