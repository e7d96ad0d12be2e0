"""Engine configuration: one typed object passed down from the CLI or the embedding app."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass
class Config:
    host: str = "127.0.0.1"
    grpc_port: int = 50001
    http_port: int = 3500
    db: str = field(default_factory=lambda: str(Path(".durahub") / "durahub.db"))
    app_id: str = "durahub"
    # Largest gRPC message accepted or sent (Dapr's --max-body-size, default 4 MiB).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # "full" fsyncs every commit (survives power loss); "normal" survives process crashes only.
    sqlite_synchronous: str = "full"
    # Idle interval between health pings sent to workers that advertise the capability.
    health_ping_seconds: float = 15.0
    log_level: str = "info"
    # Shared (PostgreSQL) stores: how long a process's hold on an instance or task outlives its last renewal,
    # i.e. how soon another process takes over the work of one that died.
    lease_seconds: float = 10.0
    # Shared stores: how long an engine whose last worker went away keeps its leases before releasing them to
    # the other engines (a worker reconnecting within it keeps its work).
    worker_grace_seconds: float = 2.0
    # When set, every call but the health endpoints must carry it as `dapr-api-token`.
    api_token: str | None = None
    # Retention (Dapr's stateRetentionPolicy): finished instances are purged this long after they finish; a
    # status's own time to live wins over `retention_any_terminal`; None keeps them forever.
    retention_any_terminal: timedelta | None = None
    retention_completed: timedelta | None = None
    retention_failed: timedelta | None = None
    retention_terminated: timedelta | None = None
    # A virtual clock that skips to the next timer while someone waits and the engine is idle (tests, demos).
    time_skipping: bool = False
    # Prometheus metrics on a port of their own (`GET /metrics`; every HTTP port serves them too); 0: none. The
    # CLI's default is daprd's 9090; an embedded server opens no extra port unless asked.
    metrics_port: int = 0
    # Traces: an OTLP collector (gRPC, or HTTP when OTEL_EXPORTER_OTLP_PROTOCOL says so; the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT works too) and/or a Zipkin endpoint. None of them: no tracing.
    otlp_endpoint: str | None = None
    zipkin_endpoint: str | None = None
    # The web dashboard at /dashboard/ on the HTTP port (`--no-dashboard` turns it off).
    dashboard: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> Config:
        cfg = cls(
            host=os.environ.get("DURAHUB_HOST", "127.0.0.1"),
            grpc_port=_env_int("DURAHUB_GRPC_PORT", 50001),
            http_port=_env_int("DURAHUB_HTTP_PORT", 3500),
            db=os.environ.get("DURAHUB_DB", str(Path(".durahub") / "durahub.db")),
            app_id=os.environ.get("DURAHUB_APP_ID", "durahub"),
            max_message_bytes=_env_int("DURAHUB_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES),
            sqlite_synchronous=os.environ.get("DURAHUB_SQLITE_SYNCHRONOUS", "full"),
            api_token=os.environ.get("DAPR_API_TOKEN") or None,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(cfg, key, value)
        return cfg
