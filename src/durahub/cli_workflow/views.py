"""The dashboard's views from the terminal: `tree <id>` (an instance and its child workflows, with status and
duration), `graph <id>` (the derived execution graph of one run) and `map <name>` (the graphs of a workflow's
last runs merged). Each reads the engine's view route (`/durahub/v1/instances/{id}/tree`, `.../graph`,
`/durahub/v1/workflows/{name}/map`), which draws Mermaid, DOT and SVG itself: the CLI only prints or saves it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from durahub.cli_workflow.client import EXIT_NOT_FOUND, CliError, Filter
from durahub.cli_workflow.live import watch
from durahub.cli_workflow.options import F, connection_options, make_client, settings
from durahub.cli_workflow.output import STATUS_COLOURS, colour_enabled, to_json
from durahub.cli_workflow.timefmt import human_age, humanize_elapsed

# The limits of the API's routes.
MAX_TREE_DEPTH = 50
MAX_MAP_RUNS = 1000

DRAWING_FORMATS = ("mermaid", "dot", "svg", "json")
# A --file name's suffix chooses the format when -o does not.
SUFFIX_FORMATS = {".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot", ".svg": "svg",
                  ".json": "json"}
ACTIVE = ("RUNNING", "SUSPENDED", "STALLED")
TREE_HEADINGS = ("INSTANCE ID", "NAME", "APP ID", "STATUS", "DURATION")
UNEXPANDED = "…"


# -- tree -----------------------------------------------------------------------------------------------


def tree_text(root: dict[str, Any], now_us: int, colour: bool = False) -> str:
    """The tree as an indented table: one line per instance (ID drawn under its parent, name, status, how long
    it ran or has been running); an APP ID column only when the tree spans several apps. An instance whose
    children were not looked up (the depth or size limit) ends in "…", explained under the table."""
    rows: list[tuple[str, ...]] = []
    unexpanded = False

    def visit(node: dict[str, Any], lead: str, branch: str) -> None:
        nonlocal unexpanded
        mark = ""
        if node.get("truncated") and not node["children"]:
            mark, unexpanded = " " + UNEXPANDED, True
        rows.append((lead + branch + node["instance_id"] + mark, node["workflow_name"], node["app_id"],
                     node["status"], _duration(node, now_us)))
        children = node["children"]
        below = lead + ("" if not branch else "   " if branch == "└─ " else "│  ")
        for i, child in enumerate(children):
            visit(child, below, "└─ " if i == len(children) - 1 else "├─ ")

    visit(root, "", "")
    # Laid out here rather than by output.table, whose cells collapse runs of spaces (the tree's indent).
    keep = [i for i in range(len(TREE_HEADINGS)) if TREE_HEADINGS[i] != "APP ID" or len({r[2] for r in rows}) > 1]
    table = [TREE_HEADINGS, *rows]
    widths = {i: max(len(r[i]) for r in table) for i in keep}
    lines = []
    for n, row in enumerate(table):
        cells = []
        for i in keep:
            text = row[i].ljust(widths[i])
            if colour and n > 0 and TREE_HEADINGS[i] == "STATUS" and row[i] in STATUS_COLOURS:
                text = click.style(row[i], fg=STATUS_COLOURS[row[i]]) + " " * (widths[i] - len(row[i]))
            cells.append(text)
        lines.append("  ".join(cells).rstrip())
    if unexpanded:
        lines.append(f"\n{UNEXPANDED} children not looked up: raise --depth (at most {MAX_TREE_DEPTH}) or run"
                     " `tree` on that instance")
    return "\n".join(lines)


def _duration(node: dict[str, Any], now_us: int) -> str:
    """How long it ran; for one still going, how long so far."""
    if node.get("duration_us") is not None:
        return humanize_elapsed(node["duration_us"] / 1e6) or "0s"
    if node["status"] in ACTIVE:
        return f"{human_age((now_us - node['created_us']) / 1e6)} so far"
    return "-"


def _format(ctx: click.Context, output: str | None, default: str) -> str:
    """`--json` is `-o json`; either way errors go to stderr as JSON too."""
    if settings(ctx).json:
        return "json"
    fmt = output or default
    if fmt == "json":
        settings(ctx).json = True
    return fmt


@click.command("tree")
@click.argument("instance_id")
@click.option("--depth", type=click.IntRange(1, MAX_TREE_DEPTH), default=10, show_default=True,
              help="How many levels of child workflows to look up.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format: the indented tree, or the API's JSON.")
@click.option("--watch", "watching", is_flag=True, help="Redraw the tree every second until Ctrl-C.")
@connection_options
@click.pass_context
def tree_command(ctx: click.Context, instance_id: str, depth: int, output: str, watching: bool) -> None:
    """Show a workflow instance and its child workflows, with status and duration."""
    fmt = _format(ctx, output, "text")
    if watching and fmt != "text":
        raise click.UsageError("--watch draws the tree as text: leave out --json / -o json")
    client = make_client(ctx)

    def render() -> str:
        return tree_text(client.tree(instance_id, depth), time.time_ns() // 1000, colour_enabled())

    if fmt == "json":
        click.echo(to_json(client.tree(instance_id, depth)))
    elif watching:
        client.tree(instance_id, 1)  # an unknown id is an error, not an empty screen
        watch(f"durahub workflow tree {instance_id}", render)
    else:
        click.echo(render(), color=colour_enabled())


# -- graph, map -----------------------------------------------------------------------------------------


def drawing_options(fn: F) -> F:
    fn = click.option("--file", "path", type=click.Path(path_type=Path),
                      help="Write the drawing to this file instead of stdout (its suffix .mmd, .dot, .svg or"
                           " .json chooses the format when -o is not given).")(fn)
    return click.option("-o", "--output", "-f", "--format", "output", type=click.Choice(DRAWING_FORMATS),
                        help="Output format: Mermaid (paste into Markdown), Graphviz DOT, SVG, or the API's JSON."
                             "  [default: mermaid]")(fn)


def _drawing_format(ctx: click.Context, output: str | None, path: Path | None) -> str:
    """To stdout: -o, else JSON with --json, else Mermaid. To a file: -o, else the file's suffix, else Mermaid;
    --json then only makes what is printed about it JSON."""
    if path is None:
        return _format(ctx, output, "mermaid")
    return output or SUFFIX_FORMATS.get(path.suffix.lower(), "mermaid")


def _deliver(ctx: click.Context, drawing: Any, fmt: str, path: Path | None, what: str) -> None:
    """Print the drawing, or write it to `path` and say so (as JSON with --json)."""
    text = to_json(drawing) if fmt == "json" else str(drawing).rstrip("\n")
    if path is None:
        click.echo(text)
        return
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
    if settings(ctx).json:
        click.echo(to_json({"file": str(path), "format": fmt}))
    else:
        click.echo(f"Wrote the {fmt} {what} to {path}")


@click.command("graph")
@click.argument("instance_id")
@drawing_options
@connection_options
@click.pass_context
def graph_command(ctx: click.Context, instance_id: str, output: str | None, path: Path | None) -> None:
    """Draw the execution graph of a workflow instance: its steps (activities, timers, events, child workflows)
    in the order they caused one another, with status and duration."""
    fmt = _drawing_format(ctx, output, path)
    drawing = make_client(ctx).graph(instance_id, fmt)
    _deliver(ctx, drawing, fmt, path, f"graph of '{instance_id}'")


@click.command("map")
@click.argument("workflow_name")
@click.option("--last", type=click.IntRange(1, MAX_MAP_RUNS), default=200, show_default=True,
              help="How many of the newest runs to merge.")
@drawing_options
@connection_options
@click.pass_context
def map_command(ctx: click.Context, workflow_name: str, last: int, output: str | None, path: Path | None) -> None:
    """Draw the map of a workflow: the graphs of its last runs merged, with how often each step ran, its
    p50/p95 duration and failure rate, and which way runs branch."""
    fmt = _drawing_format(ctx, output, path)
    client = make_client(ctx)
    if not client.page(Filter(workflow_name=workflow_name), 1)["instances"]:
        where = f" of app '{client.app_id}'" if client.app_id else ""
        raise CliError(f"no instances of workflow '{workflow_name}'{where}", EXIT_NOT_FOUND)
    drawing = client.workflow_map(workflow_name, last, fmt)
    _deliver(ctx, drawing, fmt, path, f"map of '{workflow_name}'")
