"""Traces (OpenTelemetry, like daprd's), metrics (Prometheus, with Dapr's names) and log correlation for the engine:
`hooks.Observer` is what the engine calls; `tracing` needs the `otel` extra and is skipped without it."""
