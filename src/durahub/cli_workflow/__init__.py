"""`durahub workflow` (alias `wf`): operate workflow instances of a running engine from the terminal.

The commands, flags, short flags and outputs of `dapr workflow` (dapr/cli `cmd/workflow/`), plus durahub's
`show`, `wait`, `count`, `export`, `tree`, `graph`, `map`, bulk `suspend`/`resume`/`terminate` by filter,
`run --wait`, `list --watch`, `history --follow` and `tree --watch`. Everything goes through the engine's HTTP API (`/durahub/v1`): no database access.

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 a waited workflow ended FAILED or TERMINATED, 124 a wait
timed out.
"""

from __future__ import annotations

from typing import Any

import click

from durahub.cli_workflow.client import CliError
from durahub.cli_workflow.commands import (
    history_command,
    list_command,
    purge_command,
    raise_event_command,
    rerun_command,
    run_command,
)
from durahub.cli_workflow.control import resume_command, suspend_command, terminate_command
from durahub.cli_workflow.inspection import count_command, export_command, show_command, wait_command
from durahub.cli_workflow.options import connection_options, settings
from durahub.cli_workflow.output import error
from durahub.cli_workflow.views import graph_command, map_command, tree_command

ALIASES = {"ls": "list"}
EXIT_CODES = ("Exit codes: 0 ok, 1 error (engine unreachable, token refused, an action the instance's state does"
              " not allow), 2 usage, 3 no such instance, 4 a waited workflow ended FAILED or TERMINATED, 124 a"
              " wait timed out.")


class WorkflowGroup(click.Group):
    """Resolves dapr's command aliases, and turns a `CliError` into its one line on stderr and its exit code."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, ALIASES.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        return (command.name if command else name), command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            error(str(exc), settings(ctx).json)
            ctx.exit(exc.exit_code)


@click.group("workflow", cls=WorkflowGroup, epilog=EXIT_CODES)
@connection_options
def workflow() -> None:
    """Workflow management commands (dapr's `dapr workflow`), against a running durahub engine."""


for _command in (list_command, history_command, run_command, raise_event_command, suspend_command, resume_command,
                 terminate_command, purge_command, rerun_command, show_command, wait_command, count_command,
                 export_command, tree_command, graph_command, map_command):
    workflow.add_command(_command)

__all__ = ["workflow"]
