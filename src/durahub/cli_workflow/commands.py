"""dapr's `workflow` commands that read or create: `list`, `history`, `run`, `raise-event`, `rerun`, `purge`,
with dapr's names, flags, short flags, defaults, messages and columns (dapr/cli `cmd/workflow/*.go`), plus
durahub's additions (`list --watch`, `history --follow`, `run --wait`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from durahub.cli_workflow.client import EXIT_NOT_FOUND, CliError, EngineClient, Filter
from durahub.cli_workflow.inspection import (
    describe_end,
    end_exit_code,
    is_terminal,
    parse_timeout,
    wait_for_end,
    without_history,
)
from durahub.cli_workflow.live import watch
from durahub.cli_workflow.options import (
    STATUSES,
    TERMINAL,
    build_filter,
    connection_options,
    filter_options,
    json_text,
    make_client,
    output_option,
    settings,
    when,
)
from durahub.cli_workflow.output import colour_enabled, emit, info, table, to_json
from durahub.cli_workflow.rows import (
    HISTORY_OMIT_EMPTY,
    HISTORY_SHORT,
    HISTORY_WIDE,
    LIST_SHORT,
    LIST_WIDE,
    Column,
    Record,
    history_short,
    history_wide,
    list_short,
    list_wide,
    without_empty,
)

RERUNNABLE = ("taskScheduled", "timerCreated", "childWorkflowInstanceCreated")


def _json_mode(ctx: click.Context, fmt: str) -> str:
    """`--json` is `-o json`; either way errors go to stderr as JSON too."""
    if settings(ctx).json:
        return "json"
    if fmt == "json":
        settings(ctx).json = True
    return fmt


# -- list -----------------------------------------------------------------------------------------------


@click.command("list")
@filter_options
@output_option("ids")
@click.option("--prefix", help="Only instances whose ID starts with this.")
@click.option("--parent", help="Only the child workflows of this instance.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many (the oldest first).")
@click.option("--watch", is_flag=True, help="Redraw the table every second until Ctrl-C.")
@click.option("-c", "--connection-string", hidden=True, help="dapr 1.16's; durahub lists through its API.")
@click.option("-t", "--table-name", hidden=True, help="dapr 1.16's; durahub lists through its API.")
@connection_options
@click.pass_context
def list_command(ctx: click.Context, filter_name: str | None, filter_status: tuple[str, ...],
                 filter_max_age: str | None, output: str, prefix: str | None, parent: str | None, limit: int | None,
                 watch: bool, connection_string: str | None, table_name: str | None) -> None:
    """List workflows for the given app ID (alias: ls)."""
    fmt = _json_mode(ctx, output)
    if watch and fmt not in ("short", "wide"):
        raise click.UsageError("--watch draws a table: use it with -o short or -o wide")
    flt = build_filter(filter_name, filter_status, filter_max_age, prefix, parent)
    client = make_client(ctx)
    namespace = settings(ctx).namespace
    owner = settings(ctx).app_id or ""

    def records() -> list[Record]:
        found = [] if flt is None else list(client.instances(flt, limit))
        if fmt == "short":
            now = datetime.now(UTC)
            return [list_short(i, now) for i in found]
        return [list_wide(i, namespace) for i in found]

    if watch:
        columns = LIST_SHORT if fmt == "short" else LIST_WIDE
        _watch_list(client, columns, records)
        return
    if fmt == "ids":
        found = [] if flt is None else [i["instance_id"] for i in client.instances(flt, limit)]
        if not found:
            _none_found(ctx, owner)
        for instance_id in found:
            click.echo(instance_id)
        return
    rows = records()
    if not rows and fmt in ("short", "wide"):
        _none_found(ctx, owner)
        return
    emit(rows, fmt, LIST_SHORT if fmt == "short" else LIST_WIDE)


def _none_found(ctx: click.Context, owner: str) -> None:
    click.echo(f'No workflow found in namespace "{settings(ctx).namespace}" for app ID "{owner}"', err=True)


def _watch_list(client: EngineClient, columns: Sequence[Column], records: Callable[[], list[Record]]) -> None:
    def render() -> str:
        rows = records()
        return table(columns, rows, colour=colour_enabled()) if rows else "No workflow found"

    watch(f"durahub workflow list ({client.address})", render)


# -- history --------------------------------------------------------------------------------------------


@click.command("history")
@click.argument("instance_id")
@output_option()
@click.option("--follow", "-f", is_flag=True, help="Redraw the history every second until Ctrl-C.")
@connection_options
@click.pass_context
def history_command(ctx: click.Context, instance_id: str, output: str, follow: bool) -> None:
    """Get the history of a workflow instance."""
    fmt = _json_mode(ctx, output)
    if follow and fmt not in ("short", "wide"):
        raise click.UsageError("--follow draws a table: use it with -o short or -o wide")
    client = make_client(ctx)
    namespace = settings(ctx).namespace

    def records() -> list[Record]:
        instance = client.instance(instance_id)
        wide = history_wide(instance["history"], namespace, instance.get("app_id", ""), datetime.now(UTC))
        return history_short(wide) if fmt == "short" else wide

    columns = HISTORY_SHORT if fmt == "short" else HISTORY_WIDE
    if follow:
        client.instance(instance_id)  # an unknown id is an error, not an empty screen
        watch(f"durahub workflow history {instance_id}", lambda: table(columns, records(), colour=colour_enabled()))
        return
    rows = records()
    if fmt in ("json", "yaml"):
        rows = [without_empty(r, HISTORY_OMIT_EMPTY) for r in rows]
    emit(rows, fmt, columns)


# -- run ------------------------------------------------------------------------------------------------


@click.command("run")
@click.argument("workflow_name")
@click.option("-i", "--instance-id", help="The target workflow instance ID.")
@click.option("-x", "--input", "input_", metavar="JSON",
              help="Optional input data for the new workflow instance. Accepts a JSON string.")
@click.option("-s", "--start-time", metavar="RFC3339|DURATION",
              help="Optional start time for the workflow in RFC3339 or Go duration string format. If not provided,"
                   " the workflow starts immediately.")
@click.option("--wait", is_flag=True, help="Wait until the instance ends; the exit code tells how (0, 4, 124).")
@click.option("--timeout", metavar="DURATION", help="With --wait: give up after this long (30s, 2m).")
@connection_options
@click.pass_context
def run_command(ctx: click.Context, workflow_name: str, instance_id: str | None, input_: str | None,
                start_time: str | None, wait: bool, timeout: str | None) -> None:
    """Run a workflow instance."""
    start_at = when(start_time, "'-s' / '--start-time'", past=False).isoformat() if start_time else None
    seconds = parse_timeout(timeout)
    input_json = json_text(input_, "'-x' / '--input'")
    client = make_client(ctx)
    new_id = client.start(workflow_name, instance_id, input_json, start_at)
    as_json = settings(ctx).json
    if not wait:
        click.echo(to_json({"instance_id": new_id}) if as_json else
                   f"Workflow instance started successfully: {new_id}")
        return
    if not as_json:
        info(f"Workflow instance started successfully: {new_id}")
    instance, timed_out = wait_for_end(client, new_id, [], seconds)
    if as_json:
        click.echo(to_json({"instance": without_history(instance), "timed_out": timed_out}))
    else:
        click.echo(describe_end(instance, timed_out))
    ctx.exit(end_exit_code(instance["status"], [], timed_out))


# -- raise-event ----------------------------------------------------------------------------------------


@click.command("raise-event")
@click.argument("target")
@click.argument("event_name", required=False)
@click.option("-x", "--input", "input_", metavar="JSON", help="Optional event payload. Accepts a JSON string.")
@connection_options
@click.pass_context
def raise_event_command(ctx: click.Context, target: str, event_name: str | None, input_: str | None) -> None:
    """Raise an event for a workflow waiting for an external event.

    TARGET is '<instance-id>/<event-name>' (dapr's form), or the instance ID followed by EVENT_NAME.
    """
    if event_name is None:
        instance_id, _, event_name = target.rpartition("/")
        if not instance_id or not event_name:
            raise click.UsageError("the argument must be in the format '<instance-id>/<event-name>'")
    else:
        instance_id = target
    payload = json_text(input_, "'-x' / '--input'")
    client = make_client(ctx)
    require_active(client, instance_id, "receive events")
    client.act(instance_id, "raise", {"event_name": event_name, "input": payload})
    _done(ctx, instance_id, f"Workflow '{instance_id}' raised event '{event_name}' successfully")


def require_active(client: EngineClient, instance_id: str, what: str) -> dict[str, Any]:
    """The instance, which must exist and not have ended (the engine drops requests to ended instances)."""
    instance = client.instance(instance_id)
    if is_terminal(instance["status"]):
        raise CliError(f"workflow '{instance_id}' is {instance['status']}: it can no longer {what}")
    return instance


def _done(ctx: click.Context, instance_id: str, message: str) -> None:
    click.echo(to_json({"instance_id": instance_id}) if settings(ctx).json else message)


# -- rerun ----------------------------------------------------------------------------------------------


@click.command("rerun")
@click.argument("instance_id")
@click.option("-e", "--event-id", type=click.IntRange(min=0, max=2**31 - 1),
              help="The event ID from which to re-run the workflow. If not provided, the workflow will re-run from"
                   " the beginning (its first scheduled activity, timer or child workflow).")
@click.option("--new-instance-id",
              help="Optional new ID for the re-run workflow instance. If not provided, a new ID will be generated.")
@click.option("-x", "--input", "input_", metavar="JSON",
              help="Optional input data for the re-run event. Accepts a JSON string.")
@connection_options
@click.pass_context
def rerun_command(ctx: click.Context, instance_id: str, event_id: int | None, new_instance_id: str | None,
                  input_: str | None) -> None:
    """Re-run a workflow instance from the beginning or from a specific event."""
    replacement = json_text(input_, "'-x' / '--input'")
    client = make_client(ctx)
    if event_id is None:
        event_id = first_rerunnable_event(client.instance(instance_id))
    new_id = client.rerun(instance_id, event_id, new_instance_id, replacement)
    click.echo(to_json({"new_instance_id": new_id}) if settings(ctx).json else f"Rerunning workflow instance: {new_id}")


def first_rerunnable_event(instance: dict[str, Any]) -> int:
    ids: list[int] = [e["event_id"] for e in instance["history"] if e["kind"] in RERUNNABLE]
    if not ids:
        raise CliError(f"workflow '{instance['instance_id']}' scheduled no activity, timer or child workflow to"
                       " re-run from")
    return min(ids)


# -- purge ----------------------------------------------------------------------------------------------


@click.command("purge")
@click.argument("instance_ids", nargs=-1)
@click.option("--all-older-than", metavar="DURATION|TIMESTAMP",
              help="Purge workflow instances older than the specified Go duration or timestamp, e.g., '24h' or"
                   " '2023-01-02T15:04:05Z'.")
@click.option("--all", "all_", is_flag=True, help="Purge all workflow instances in a terminal state. Use with caution.")
@click.option("--all-filter-status", type=click.Choice(STATUSES),
              help="Filter purge to only workflow instances with the given runtime status. Must be used with"
                   " --all-older-than.")
@click.option("--force", is_flag=True,
              help="Purge whatever the instances' runtime state, also running ones (their work is dropped).")
@click.option("--scheduler-namespace", default="dapr-system", show_default=True, hidden=True,
              help="dapr's, for Kubernetes; durahub has no separate scheduler.")
@click.option("-c", "--connection-string", hidden=True, help="dapr 1.16's; durahub purges through its API.")
@click.option("-t", "--table-name", hidden=True, help="dapr 1.16's; durahub purges through its API.")
@connection_options
@click.pass_context
def purge_command(ctx: click.Context, instance_ids: tuple[str, ...], all_older_than: str | None, all_: bool,
                  all_filter_status: str | None, force: bool, scheduler_namespace: str,
                  connection_string: str | None, table_name: str | None) -> None:
    """Purge workflow instances with a terminal state.

    Purge one or more workflow instances with a terminal state. Accepts workflow instance ID arguments or flags
    to purge multiple/all terminal instances. Child workflows are purged with their parent.
    """
    _check_purge_flags(instance_ids, all_older_than, all_, all_filter_status, force)
    client = make_client(ctx)
    if instance_ids:
        _purge_each(ctx, client, [(i, None) for i in instance_ids], force)
        return
    flt = Filter(statuses=[all_filter_status] if all_filter_status else [])
    if all_older_than:
        flt.created_to = when(all_older_than, "'--all-older-than'", past=True).isoformat()
    if force and all_filter_status is not None and all_filter_status not in TERMINAL:
        # Active instances: the bulk route purges finished ones only, so each is purged by ID, forced.
        targets = [(i["instance_id"], i.get("app_id")) for i in client.instances(flt)]
        _purge_each(ctx, client, targets, force, skip_missing=True)
        return
    count = client.purge_matching(flt) if all_filter_status not in ("CONTINUED_AS_NEW", "CANCELED") else 0
    click.echo(to_json({"count": count}) if settings(ctx).json else f"Purged {count} workflow instance(s)")


def _check_purge_flags(instance_ids: tuple[str, ...], all_older_than: str | None, all_: bool,
                       all_filter_status: str | None, force: bool) -> None:
    """dapr's rules for combining purge's arguments and flags (cmd/workflow/purge.go)."""
    if all_older_than and all_:
        raise click.UsageError("--all-older-than and --all cannot be used together")
    if all_filter_status and all_:
        raise click.UsageError("--all-filter-status and --all cannot be used together")
    if all_older_than or all_:
        if instance_ids:
            raise click.UsageError("no arguments are accepted when using purge all flags")
    else:
        if all_filter_status:
            raise click.UsageError("--all-filter-status can only be used with --all-older-than")
        if not instance_ids:
            raise click.UsageError("one or more workflow instance ID arguments are required when not using purge"
                                   " all flags")
    if all_filter_status and all_filter_status not in TERMINAL and not force:
        raise click.UsageError("--force is required when using --all-filter-status with a non-terminal status"
                               f" ({all_filter_status})")


def _purge_each(ctx: click.Context, client: EngineClient, targets: list[tuple[str, str | None]], force: bool,
                skip_missing: bool = False) -> None:
    """Purge each (instance ID, its app or None for --app-id's) in turn."""
    as_json = settings(ctx).json
    if not as_json:
        info(f"Purging {len(targets)} workflow instance(s)")
    purged: list[str] = []
    for instance_id, app in targets:
        try:
            client.act(instance_id, "purge", {"force": force}, app=app)
        except CliError as exc:
            if skip_missing and exc.exit_code == EXIT_NOT_FOUND:
                continue  # purged meanwhile, e.g. as the child of one purged before it
            raise CliError(f"{instance_id}: {exc}", exc.exit_code) from None
        purged.append(instance_id)
        if not as_json:
            info(f'Purged workflow instance "{instance_id}"')
    if as_json:
        click.echo(to_json({"count": len(purged), "purged": purged}))
