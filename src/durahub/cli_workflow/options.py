"""Options every `durahub workflow` command shares, and turning them into a client and a filter.

dapr's persistent flags (`-a/--app-id`, `-n/--namespace`, `-k/--kubernetes`) and durahub's connection options
(`--address`, `--api-token`, `--json`) are accepted both before and after the subcommand, as cobra's
persistent flags are: each occurrence is stored in the context's shared `meta`, the later one winning.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from durahub.cli_workflow.client import CliError, EngineClient, Filter, resolve_address
from durahub.cli_workflow.timefmt import parse_when

F = TypeVar("F", bound=Callable[..., Any])

# dapr's runtime statuses (pkg/workflow/list.go RuntimeStatuses), plus durahub's STALLED.
STATUSES = ("RUNNING", "COMPLETED", "CONTINUED_AS_NEW", "FAILED", "CANCELED", "TERMINATED", "PENDING", "SUSPENDED",
            "STALLED")
TERMINAL = ("COMPLETED", "FAILED", "TERMINATED", "CANCELED", "CONTINUED_AS_NEW")
# Statuses a durahub instance never has at rest (continue-as-new restarts in place; nothing cancels).
NEVER_STORED = ("CONTINUED_AS_NEW", "CANCELED")

_SETTINGS_KEY = "durahub.workflow.settings"


class StatusChoice(click.Choice):  # type: ignore[type-arg]
    """Runtime status names: any case accepted, upper case shown in help and passed on."""

    def __init__(self, choices: tuple[str, ...] = STATUSES) -> None:
        super().__init__(choices)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(value.upper() if isinstance(value, str) else value, param, ctx)


@dataclass
class Settings:
    address: str | None = None
    api_token: str | None = None
    app_id: str | None = None
    namespace: str = "default"
    kubernetes: bool = False
    json: bool = False


def settings(ctx: click.Context) -> Settings:
    found = ctx.meta.get(_SETTINGS_KEY)
    if not isinstance(found, Settings):
        found = ctx.meta[_SETTINGS_KEY] = Settings()
    return found


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and value is not False and param.name is not None:
        setattr(settings(ctx), param.name, value)


def connection_options(fn: F) -> F:
    """The shared options, on the group and on each command."""
    options = [
        click.option("--address", metavar="URL", expose_value=False, callback=_store,
                     help="The engine's HTTP address. Default: $DURAHUB_ADDRESS, else http://127.0.0.1:$DAPR_HTTP_PORT"
                          " when DAPR_HTTP_PORT is set (inside `durahub run`), else http://127.0.0.1:3500."),
        click.option("--api-token", metavar="TOKEN", expose_value=False, callback=_store,
                     help="Sent as the dapr-api-token header. Default: $DAPR_API_TOKEN."),
        click.option("-a", "--app-id", expose_value=False, callback=_store,
                     help="The app ID owner of the workflow instances: the app whose instance a command names"
                          " (default: the engine's own) and the one app a listing covers (default: every app)."),
        click.option("-n", "--namespace", expose_value=False, callback=_store,
                     help="Namespace shown in wide output (dapr's; durahub has one).  [default: default]"),
        click.option("-k", "--kubernetes", is_flag=True, expose_value=False, callback=_store,
                     help="dapr's Kubernetes mode: not available in durahub (use --address)."),
        click.option("--json", "json", is_flag=True, expose_value=False, callback=_store,
                     help="Print only JSON on stdout (errors as JSON on stderr)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_client(ctx: click.Context) -> EngineClient:
    s = settings(ctx)
    if s.kubernetes:
        raise CliError("durahub has no Kubernetes mode; point --address (or DURAHUB_ADDRESS) at the engine instead")
    return EngineClient(resolve_address(s.address), s.api_token or os.environ.get("DAPR_API_TOKEN") or None,
                        s.app_id)


def output_option(*extra: str) -> Callable[[F], F]:
    formats = ("short", "wide", "yaml", "json", *extra)
    return click.option("-o", "--output", "output", type=click.Choice(formats), default="short", show_default=True,
                        help=f"Output format. One of {', '.join(formats)}.")


def filter_options(fn: F) -> F:
    """dapr's list filters (`-w`, `-s`, `-m`); `-s` may be repeated to match any of several statuses."""
    options = [
        click.option("-w", "--filter-name", help="Filter only the workflows with the given name."),
        click.option("-s", "--filter-status", multiple=True, type=StatusChoice(),
                     help="Filter only the workflows with the given runtime status (repeatable)."),
        click.option("-m", "--filter-max-age", metavar="DURATION|TIMESTAMP",
                     help="Filter only the workflows started within the given duration or since the timestamp."
                          " Examples: 300ms, 1.5h or 2h45m, 2023-01-02T15:04:05 or 2023-01-02."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def when(text: str, flag: str, *, past: bool) -> datetime:
    try:
        return parse_when(text, datetime.now(UTC), past=past)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=flag) from None


def build_filter(name: str | None, statuses: tuple[str, ...], max_age: str | None, prefix: str | None = None,
                 parent: str | None = None) -> Filter | None:
    """The filter to send, or None when the statuses asked for are ones no durahub instance has."""
    wanted = [s.upper() for s in statuses]
    stored = [s for s in wanted if s not in NEVER_STORED]
    if wanted and not stored:
        return None
    created_from = when(max_age, "'-m' / '--filter-max-age'", past=True).isoformat() if max_age else None
    return Filter(statuses=stored, workflow_name=name, created_from=created_from, instance_id_prefix=prefix,
                  parent_instance_id=parent)


def has_filter(name: str | None, statuses: tuple[str, ...], max_age: str | None) -> bool:
    return bool(name or statuses or max_age)


def json_text(text: str | None, flag: str) -> str | None:
    """dapr's `-x/--input` and `terminate -o/--output`: a JSON string, checked and passed on as it is."""
    if text is None:
        return None
    try:
        json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=flag) from None
    return text
