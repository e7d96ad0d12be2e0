"""`suspend`, `resume` and `terminate`: dapr's, on one instance (`-r/--reason`, `-o/--output`), and durahub's
bulk form on every instance a filter matches (`-w`, `-s`, `-m`), which prints how many match and asks first
unless `-y`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from durahub.cli_workflow.client import EXIT_NOT_FOUND, CliError, EngineClient
from durahub.cli_workflow.commands import require_active
from durahub.cli_workflow.options import (
    build_filter,
    connection_options,
    filter_options,
    json_text,
    make_client,
    settings,
)
from durahub.cli_workflow.output import info, to_json

SHOWN_IDS = 10  # how many of the matching IDs the confirmation lists


@dataclass(frozen=True)
class Action:
    verb: str  # the route and the command
    past: str  # "suspended"
    what: str  # what an ended instance can no longer do
    statuses: tuple[str, ...]  # what a bulk action covers when no -s is given


SUSPEND = Action("suspend", "suspended", "be suspended", ("RUNNING", "PENDING"))
RESUME = Action("resume", "resumed", "be resumed", ("SUSPENDED",))
TERMINATE = Action("terminate", "terminated", "be terminated", ("RUNNING", "PENDING", "SUSPENDED", "STALLED"))


def _apply(ctx: click.Context, action: Action, instance_ids: tuple[str, ...], filters: dict[str, Any], yes: bool,
           body: dict[str, Any]) -> None:
    if instance_ids and any(filters.values()):
        raise click.UsageError("give instance IDs or filters (-w, -s, -m, --prefix), not both")
    if not instance_ids and not any(filters.values()):
        raise click.UsageError(f"give the ID of the instance to {action.verb}, or filters (-w, -s, -m, --prefix) to"
                               f" {action.verb} every instance they match")
    client = make_client(ctx)
    if instance_ids:
        for instance_id in instance_ids:
            require_active(client, instance_id, action.what)
            client.act(instance_id, action.verb, body)
            _report(ctx, f"Workflow '{instance_id}' {action.past} successfully", instance_id=instance_id)
        return
    _bulk(ctx, client, action, filters, yes, body)


def _bulk(ctx: click.Context, client: EngineClient, action: Action, filters: dict[str, Any], yes: bool,
          body: dict[str, Any]) -> None:
    statuses = filters["filter_status"] or action.statuses
    flt = build_filter(filters["filter_name"], tuple(statuses), filters["filter_max_age"], filters["prefix"])
    found = [] if flt is None else [(i["instance_id"], i.get("app_id")) for i in client.instances(flt)]
    ids = [instance_id for instance_id, _ in found]
    as_json = settings(ctx).json
    if not ids:
        if as_json:
            click.echo(to_json({"count": 0, "instances": []}))
        else:
            info(f"No workflow instance matches; nothing to {action.verb}")
        return
    shown = ", ".join(ids[:SHOWN_IDS]) + (f", ... ({len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else "")
    click.echo(f"{len(ids)} workflow instance(s) match: {shown}", err=True)
    if not yes:
        click.confirm(f"{action.verb.capitalize()} {len(ids)} workflow instance(s)?", abort=True, err=True)
    done: list[str] = []
    for instance_id, app in found:
        try:
            client.act(instance_id, action.verb, body, app=app)
        except CliError as exc:
            if exc.exit_code == EXIT_NOT_FOUND:
                continue  # purged meanwhile
            raise
        done.append(instance_id)
    _report(ctx, f"{action.past.capitalize()} {len(done)} workflow instance(s)", count=len(done), instances=done)


def _report(ctx: click.Context, message: str, **fields: Any) -> None:
    click.echo(to_json(fields) if settings(ctx).json else message)


def _bulk_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("-y", "--yes", is_flag=True, help="With filters: do not ask before acting.")(fn)
    fn = click.option("--prefix", help="Only instances whose ID starts with this.")(fn)
    return filter_options(fn)


@click.command("suspend")
@click.argument("instance_ids", nargs=-1)
@click.option("-r", "--reason", default="", help="Reason for suspending the workflow.")
@_bulk_options
@connection_options
@click.pass_context
def suspend_command(ctx: click.Context, /, instance_ids: tuple[str, ...], reason: str, yes: bool,
                    **filters: Any) -> None:
    """Suspend a workflow in progress (or every one the filters match; default -s RUNNING -s PENDING)."""
    _apply(ctx, SUSPEND, instance_ids, filters, yes, {"reason": reason or None})


@click.command("resume")
@click.argument("instance_ids", nargs=-1)
@click.option("-r", "--reason", default="", help="Reason for resuming the workflow.")
@_bulk_options
@connection_options
@click.pass_context
def resume_command(ctx: click.Context, /, instance_ids: tuple[str, ...], reason: str, yes: bool,
                   **filters: Any) -> None:
    """Resume a workflow that is suspended (or every one the filters match; default -s SUSPENDED)."""
    _apply(ctx, RESUME, instance_ids, filters, yes, {"reason": reason or None})


@click.command("terminate")
@click.argument("instance_ids", nargs=-1)
@click.option("-o", "--output", metavar="JSON", help="Optional output data for the workflow in JSON string format.")
@_bulk_options
@connection_options
@click.pass_context
def terminate_command(ctx: click.Context, /, instance_ids: tuple[str, ...], output: str | None, yes: bool,
                      **filters: Any) -> None:
    """Terminate a workflow in progress (or every one the filters match; default: every active one)."""
    _apply(ctx, TERMINATE, instance_ids, filters, yes, {"output": json_text(output, "'-o' / '--output'")})
