"""Command line: `durahub serve` (more commands live here as they arrive)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from durahub import __version__
from durahub.cli_workflow import workflow
from durahub.config import Config
from durahub.core.retention import parse_duration
from durahub.errors import DurahubError

if TYPE_CHECKING:  # imported when serving: `durahub workflow` starts without loading the server's stack
    from durahub.server import Server


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """A Go-style duration (`90s`, `15m`, `24h`, `1h30m`), as Dapr's configuration writes them."""
    if value is None:
        return None
    try:
        return timedelta(microseconds=parse_duration(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.group()
@click.version_option(__version__, prog_name="durahub")
def main() -> None:
    """durahub: Dapr workflows without Docker or a sidecar."""


main.add_command(workflow)
main.add_command(workflow, name="wf")


@main.command()
@click.option("--host", envvar="DURAHUB_HOST", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--grpc-port", envvar="DURAHUB_GRPC_PORT", type=int, default=50001, show_default=True)
@click.option("--http-port", envvar="DURAHUB_HTTP_PORT", type=int, default=3500, show_default=True)
@click.option("--db", envvar="DURAHUB_DB", default=".durahub/durahub.db", show_default=True,
              help="SQLite database file, or a postgresql:// URL.")
@click.option("--app-id", envvar="DURAHUB_APP_ID", default="durahub", show_default=True,
              help="The app of workers connecting to these ports (other apps get endpoints of their own).")
@click.option("--max-message-bytes", envvar="DURAHUB_MAX_MESSAGE_BYTES", type=int, default=4 * 1024 * 1024,
              show_default=True, help="Largest gRPC message accepted or sent.")
@click.option("--sqlite-synchronous", envvar="DURAHUB_SQLITE_SYNCHRONOUS", type=click.Choice(["full", "normal"]),
              default="full", show_default=True, help="full survives power loss; normal survives process crashes.")
@click.option("--health-ping-seconds", envvar="DURAHUB_HEALTH_PING_SECONDS", type=float, default=15.0,
              show_default=True, help="Idle time before a health ping to workers that advertise the capability.")
@click.option("--lease-seconds", envvar="DURAHUB_LEASE_SECONDS", type=float, default=10.0, show_default=True,
              help="PostgreSQL with several engines: how soon another process takes over a dead one's work.")
@click.option("--worker-grace-seconds", envvar="DURAHUB_WORKER_GRACE_SECONDS", type=float, default=2.0,
              show_default=True, help="PostgreSQL with several engines: how long an engine without workers keeps its"
              " leases before the others take its work over.")
@click.option("--api-token", envvar="DAPR_API_TOKEN", default=None,
              help="Require this dapr-api-token on every call except health checks.")
@click.option("--retention-any-terminal", envvar="DURAHUB_RETENTION_ANY_TERMINAL", callback=_duration,
              metavar="DURATION", help="Purge finished instances this long after they finish (90s, 15m, 24h,"
              " 1h30m; Dapr's stateRetentionPolicy): those finishing once it is set, each child on its own.")
@click.option("--retention-completed", envvar="DURAHUB_RETENTION_COMPLETED", callback=_duration,
              metavar="DURATION", help="The same for COMPLETED instances; wins over --retention-any-terminal.")
@click.option("--retention-failed", envvar="DURAHUB_RETENTION_FAILED", callback=_duration,
              metavar="DURATION", help="The same for FAILED instances; wins over --retention-any-terminal.")
@click.option("--retention-terminated", envvar="DURAHUB_RETENTION_TERMINATED", callback=_duration,
              metavar="DURATION", help="The same for TERMINATED instances; wins over --retention-any-terminal.")
@click.option("--time-skipping", envvar="DURAHUB_TIME_SKIPPING", is_flag=True, default=False,
              help="Demos and tests: while someone waits for a workflow and the engine is idle, skip to the next"
              " timer (a 24 h timeout fires at once); a wait nothing can end fails, naming what it waits on.")
@click.option("--metrics-port", envvar="DURAHUB_METRICS_PORT", type=int, default=9090, show_default=True,
              help="Serve Prometheus metrics (GET /metrics) on this port too, as daprd does; 0 turns it off.")
@click.option("--otlp-endpoint", envvar="DURAHUB_OTLP_ENDPOINT", default=None, metavar="HOST:PORT|URL",
              help="Export traces to this OpenTelemetry collector (needs durahub[otel]; default: "
                   "OTEL_EXPORTER_OTLP_ENDPOINT, else no tracing).")
@click.option("--zipkin-endpoint", envvar="DURAHUB_ZIPKIN_ENDPOINT", default=None, metavar="URL",
              help="Export traces to Zipkin, e.g. http://localhost:9411/api/v2/spans (needs durahub[otel]).")
@click.option("--no-dashboard", is_flag=True, envvar="DURAHUB_NO_DASHBOARD",
              help="Do not serve the web dashboard (http://HOST:HTTP_PORT/dashboard/).")
@click.option("--log-level", envvar="DURAHUB_LOG_LEVEL", default="info", show_default=True)
def serve(host: str, grpc_port: int, http_port: int, db: str, app_id: str, max_message_bytes: int,
          sqlite_synchronous: str, health_ping_seconds: float, lease_seconds: float, worker_grace_seconds: float,
          api_token: str | None, retention_any_terminal: timedelta | None, retention_completed: timedelta | None,
          retention_failed: timedelta | None, retention_terminated: timedelta | None, time_skipping: bool,
          metrics_port: int, otlp_endpoint: str | None, zipkin_endpoint: str | None, no_dashboard: bool,
          log_level: str) -> None:
    """Run the engine: gRPC (TaskHubSidecarService) and HTTP (Dapr health/metadata)."""
    setup_logging(log_level)
    config = Config(host=host, grpc_port=grpc_port, http_port=http_port, db=db, app_id=app_id,
                    max_message_bytes=max_message_bytes, sqlite_synchronous=sqlite_synchronous,
                    health_ping_seconds=health_ping_seconds, lease_seconds=lease_seconds,
                    worker_grace_seconds=worker_grace_seconds, log_level=log_level,
                    api_token=api_token or None, retention_any_terminal=retention_any_terminal,
                    retention_completed=retention_completed, retention_failed=retention_failed,
                    retention_terminated=retention_terminated, time_skipping=time_skipping, metrics_port=metrics_port,
                    otlp_endpoint=otlp_endpoint, zipkin_endpoint=zipkin_endpoint, dashboard=not no_dashboard)
    from durahub.server import Server

    try:
        asyncio.run(_serve(Server(config)))
    except (RuntimeError, OSError, DurahubError) as exc:
        # Start-up problems (port taken, database newer than this version, an invalid app id, ...) are the
        # operator's to fix.
        logging.getLogger("durahub.server").error("event=start_failed error=%s", exc)
        raise SystemExit(1) from None


async def _serve(server: Server) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--app-id", envvar="APP_ID", default=None,
              help="The app's identity (as `dapr run --app-id`). Default: named after the command's script or module.")
@click.option("--db", envvar="DURAHUB_DB", default=".durahub/durahub.db", show_default=True)
@click.option("--grpc-port", type=int, default=50001, show_default=True)
@click.option("--http-port", type=int, default=3500, show_default=True)
@click.option("--log-level", envvar="DURAHUB_LOG_LEVEL", default="info", show_default=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app_id: str | None, db: str, grpc_port: int, http_port: int, log_level: str, command: tuple[str, ...]) -> None:
    """Run COMMAND next to an engine, like `dapr run -- COMMAND`.

    Starts the engine (or attaches to one already serving on those ports, also one another `durahub run`
    started at the same moment; an app other than the engine's own then gets an endpoint of its own, so its
    workers and calls are that app's), exports DAPR_GRPC_PORT, DAPR_HTTP_PORT and APP_ID to the command, forwards
    SIGINT/SIGTERM (escalating to SIGTERM and SIGKILL if the command does not exit), stops the engine it started
    once the command and every command attached to that engine have exited, and exits with the command's exit
    code.
    """
    from durahub.core.apps import check_app_id
    from durahub.errors import InvalidAppId
    from durahub.launcher import default_app_id, run_with_engine

    app_id = app_id or default_app_id(list(command))
    try:
        check_app_id(app_id)
    except InvalidAppId as exc:
        raise click.BadParameter(str(exc), param_hint="--app-id") from None
    raise SystemExit(run_with_engine(list(command), app_id=app_id, db=db, grpc_port=grpc_port, http_port=http_port,
                                     log_level=log_level))
