"""Commands beyond dapr's for reading instances: `show`, `wait`, `count`, `export`; and waiting for an
instance to end, which `run --wait` shares."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import click

from durahub.cli_workflow.client import (
    EXIT_ERROR,
    EXIT_TIMED_OUT,
    EXIT_WORKFLOW_FAILED,
    EngineClient,
)
from durahub.cli_workflow.options import (
    TERMINAL,
    StatusChoice,
    build_filter,
    connection_options,
    filter_options,
    make_client,
    settings,
)
from durahub.cli_workflow.output import STATUS_COLOURS, colour_enabled, table, to_json
from durahub.cli_workflow.rows import Column
from durahub.cli_workflow.timefmt import human_age, parse_api_time, parse_go_duration, rfc3339

LONGEST_POLL = 300.0  # the API's limit for one long-poll
LABEL_WIDTH = 16  # `show`: "Custom status:" and two spaces


def parse_timeout(text: str | None) -> float | None:
    """`--timeout`: a Go duration (`30s`, `2m`) or plain seconds; None waits for ever."""
    if text is None:
        return None
    seconds = parse_go_duration(text)
    if seconds is None:
        try:
            seconds = float(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a duration (30s, 2m, 1.5h) or a number of seconds",
                                     param_hint="'--timeout'") from None
    if seconds < 0:
        raise click.BadParameter("must not be negative", param_hint="'--timeout'")
    return seconds


def wait_for_end(client: EngineClient, instance_id: str, statuses: list[str],
                 timeout: float | None) -> tuple[dict[str, Any], bool]:
    """Long-poll until the instance has one of `statuses` or has ended (or `timeout` passes):
    (the instance, whether the wait timed out)."""
    wanted = sorted({s for s in statuses if s not in ("CONTINUED_AS_NEW", "CANCELED")} | {"COMPLETED", "FAILED",
                                                                                         "TERMINATED"})
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = LONGEST_POLL if deadline is None else max(0.0, min(LONGEST_POLL, deadline - time.monotonic()))
        answer = client.wait(instance_id, wanted, left)
        if not answer["timed_out"]:
            return answer["instance"], False
        if deadline is not None and time.monotonic() >= deadline:
            return answer["instance"], True


def end_exit_code(status: str, wanted: list[str], timed_out: bool) -> int:
    """0 when the status is the one waited for (default: COMPLETED), 4 for FAILED or TERMINATED, 124 when the
    wait timed out, 1 for any other ending."""
    if timed_out:
        return EXIT_TIMED_OUT
    if status in (wanted or ["COMPLETED"]):
        return 0
    if status in ("FAILED", "TERMINATED"):
        return EXIT_WORKFLOW_FAILED
    return EXIT_ERROR


def describe_end(instance: dict[str, Any], timed_out: bool) -> str:
    status = instance["status"]
    line = f"Workflow '{instance['instance_id']}' is {status}"
    if timed_out:
        return line + " (timed out waiting)"
    if instance.get("failure"):
        failure = instance["failure"]
        return line + f": {failure['error_type']}: {flat(failure['error_message'])}"
    if instance.get("output") is not None and status == "COMPLETED":
        return line + f"; output: {instance['output']}"
    return line


def flat(text: str) -> str:
    """A message on one line, its line breaks and runs of spaces made single spaces."""
    return " ".join(text.split())


def without_history(instance: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in instance.items() if k != "history"}


@click.command("wait")
@click.argument("instance_id")
@click.option("--status", "statuses", multiple=True, type=StatusChoice(),
              help="Wait for this status instead of the end (repeatable); an ending still stops the wait.")
@click.option("--timeout", metavar="DURATION", help="Give up after this long (30s, 2m; default: wait for ever).")
@connection_options
@click.pass_context
def wait_command(ctx: click.Context, instance_id: str, statuses: tuple[str, ...], timeout: str | None) -> None:
    """Wait until a workflow instance ends (or reaches --status).

    Exit code: 0 when it completed (or reached --status), 4 when it failed or was terminated, 124 when
    --timeout passed first, 3 when there is no such instance.
    """
    client = make_client(ctx)
    wanted = [s.upper() for s in statuses]
    instance, timed_out = wait_for_end(client, instance_id, wanted, parse_timeout(timeout))
    if settings(ctx).json:
        click.echo(to_json({"instance": without_history(instance), "timed_out": timed_out}))
    else:
        click.echo(describe_end(instance, timed_out))
    ctx.exit(end_exit_code(instance["status"], wanted, timed_out))


@click.command("show")
@click.argument("instance_id")
@connection_options
@click.pass_context
def show_command(ctx: click.Context, instance_id: str) -> None:
    """Show a workflow instance: status, times, input, output, failure and the size of its history."""
    client = make_client(ctx)
    instance = client.instance(instance_id)
    # What it waits on (the engine's summary view), for an instance that has not ended.
    summary = None if is_terminal(instance["status"]) else client.summary(instance_id, instance.get("app_id"))
    if settings(ctx).json:
        facts = without_history(instance) | {"history_events": len(instance["history"]), "waiting_on": summary}
        click.echo(to_json(facts))
        return
    text = facts_text(instance, datetime.now(UTC))
    if summary is not None:
        text += "\n" + "\n".join(waiting_lines(summary))
    click.echo(text, color=colour_enabled())


def facts_text(instance: dict[str, Any], now: datetime) -> str:
    def when(key: str) -> str:
        value = instance.get(key)
        if not value:
            return "-"
        stamp = parse_api_time(value)
        return f"{rfc3339(stamp)} ({human_age((now - stamp).total_seconds())} ago)"

    status = instance["status"]
    if colour_enabled():
        status = click.style(status, fg=STATUS_COLOURS.get(status))
    history = instance["history"]
    turns = sum(1 for e in history if e["kind"] == "workflowStarted")
    failure = instance.get("failure")
    facts = [
        ("ID", instance["instance_id"]),
        ("Name", instance["workflow_name"]),
        ("App", instance.get("app_id") or "-"),
        ("Status", status),
        ("Created", when("created_at")),
        ("Last update", when("last_updated_at")),
        ("Completed", when("completed_at")),
        ("Parent", _parent(instance)),
        ("Execution ID", instance.get("execution_id") or "-"),
        ("Custom status", instance.get("custom_status") or "-"),
        ("Input", instance.get("input") if instance.get("input") is not None else "-"),
        ("Output", instance.get("output") if instance.get("output") is not None else "-"),
        ("Failure", f"{failure['error_type']}: {flat(failure['error_message'])}" if failure else "-"),
        ("History", f"{len(history)} events, {turns} turns"),
    ]
    return "\n".join(f"{label + ':':<{LABEL_WIDTH}}{value}" for label, value in facts)


def waiting_lines(summary: dict[str, Any]) -> list[str]:
    """The summary view as `show` lines: pending activities and children, timers, awaited events, a stall."""
    now = summary["now_us"]

    def after(at_us: int | None) -> str:
        return "never" if at_us is None else f"in {human_age((at_us - now) / 1e6)}"

    def retry(item: dict[str, Any]) -> str:
        text = f"attempt {item['attempt']}"
        if item.get("retry_at_us") is not None:
            text += f", retry {after(item['retry_at_us'])}"
        return text + (f"; last failure: {flat(item['last_failure'])}" if item.get("last_failure") else "")

    items = [f"activity {a['name']} ({retry(a)})" for a in summary.get("activities", [])]
    items += [f"child {c['instance_id']} ({c['name']}, {retry(c)})" for c in summary.get("children", [])]
    # Event timeouts and retry timers show with their event, activity or child.
    items += [f"timer {t['name'] or t['origin'] or t['timer_id']} fires {after(t['fire_at_us'])}"
              for t in summary.get("timers", []) if t.get("origin") in ("createTimer", "")]
    items += [f"event {e['name']}" + ("" if e.get("timeout_at_us") is None else f" (times out {after(e['timeout_at_us'])})")
              for e in summary.get("events", [])]
    lines = [f"{'Waiting on:':<{LABEL_WIDTH}}{items[0] if items else 'nothing (its next turn is due)'}"]
    lines += [" " * LABEL_WIDTH + item for item in items[1:]]
    stall = summary.get("stall")
    if stall:
        lines.append(f"{'Stalled:':<{LABEL_WIDTH}}{stall['reason']}: {flat(stall['description'])} {stall['remedy']}")
    return lines


def _parent(instance: dict[str, Any]) -> str:
    parent = instance.get("parent_instance_id")
    if not parent:
        return "-"
    app = instance.get("parent_app_id")
    return parent if not app or app == instance.get("app_id") else f"{parent} (app {app})"


@click.command("count")
@filter_options
@click.option("--prefix", help="Only instances whose ID starts with this.")
@click.option("--group-by", type=click.Choice(["status", "name", "app"]),
              help="Count per status, per workflow name or per app.")
@connection_options
@click.pass_context
def count_command(ctx: click.Context, filter_name: str | None, filter_status: tuple[str, ...],
                  filter_max_age: str | None, prefix: str | None, group_by: str | None) -> None:
    """Count the workflow instances matching the filters."""
    flt = build_filter(filter_name, filter_status, filter_max_age, prefix)
    instances = [] if flt is None else list(make_client(ctx).instances(flt))
    key = {"status": "status", "name": "workflow_name", "app": "app_id"}.get(group_by or "")
    if key is None:
        click.echo(to_json({"count": len(instances)}) if settings(ctx).json else str(len(instances)))
        return
    groups = Counter(i[key] for i in instances)
    ordered = dict(sorted(groups.items()))
    if settings(ctx).json:
        click.echo(to_json({"count": len(instances), "groups": ordered}))
        return
    heading = {"status": "STATUS", "name": "NAME", "app": "APP ID"}[group_by or "status"]
    records = [{"group": g, "count": n} for g, n in ordered.items()]
    click.echo(table((Column(heading, "group"), Column("COUNT", "count")), records))


@click.command("export")
@click.argument("instance_id")
@connection_options
@click.pass_context
def export_command(ctx: click.Context, instance_id: str) -> None:
    """Print a workflow instance with its full decoded history as JSON (e.g. `... export ID > run.json`)."""
    click.echo(to_json(make_client(ctx).instance(instance_id)))


def is_terminal(status: str) -> bool:
    return status in TERMINAL
