"""Printing: dapr-style tables (left-aligned, no borders, empty columns left out), JSON, YAML, one-line
messages, and redrawing a screen for `--watch` / `--follow`.

Colour only on a terminal and never when NO_COLOR is set; JSON output never carries colour or anything but
the JSON itself on stdout.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

import click

from durahub.cli_workflow.rows import Column, Record

STATUS_COLOURS = {"COMPLETED": "green", "FAILED": "red", "TERMINATED": "red", "RUNNING": "cyan",
                  "SUSPENDED": "yellow", "PENDING": "blue", "STALLED": "magenta", "RESUMED": "cyan"}
STATUS_KEYS = ("runtimeStatus", "status")


def colour_enabled(stream: IO[str] | None = None) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def _cell(value: Any) -> str:
    """Like dapr's table cells: one line, runs of whitespace collapsed."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def table(columns: Sequence[Column], records: Iterable[Record], colour: bool = False) -> str:
    """Left-aligned columns two spaces apart; a column empty in every row is left out, as dapr does."""
    rows = [[_cell(r.get(c.key)) for c in columns] for r in records]
    keep = [i for i in range(len(columns)) if any(row[i] for row in rows)] or list(range(len(columns)))
    headings = [columns[i].heading for i in keep]
    widths = [max([len(headings[j])] + [len(row[i]) for row in rows]) for j, i in enumerate(keep)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True)).rstrip()]
    for row in rows:
        cells = []
        for j, i in enumerate(keep):
            text = row[i].ljust(widths[j])
            if colour and columns[i].key in STATUS_KEYS and row[i] in STATUS_COLOURS:
                text = click.style(row[i], fg=STATUS_COLOURS[row[i]]) + " " * (widths[j] - len(row[i]))
            cells.append(text)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# Plain YAML scalars that read back as the same string (anything else is written as a JSON string, which YAML
# reads as a double-quoted scalar).
_PLAIN = re.compile(r"^[A-Za-z_/][\w./-]*( [\w./-]+)*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text, ensure_ascii=False)


def to_yaml(value: Any, indent: int = 0) -> str:
    """YAML for what the commands print: lists and mappings of scalars, nested."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}"
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_yaml_scalar(key)}:")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{_yaml_scalar(key)}: {to_yaml(item).strip()}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return pad + "[]"
        lines = []
        for item in value:
            body = to_yaml(item, indent + 2)
            lines.append(f"{pad}- {body.lstrip()}")
        return "\n".join(lines)
    return pad + _yaml_scalar(value)


def emit(records: list[Record], fmt: str, columns: Sequence[Column]) -> None:
    """Records as a table (`short`/`wide`), `json` or `yaml`."""
    if fmt == "json":
        click.echo(to_json(records))
    elif fmt == "yaml":
        click.echo(to_yaml(records))
    else:
        click.echo(table(columns, records, colour_enabled()), color=colour_enabled())


def info(message: str) -> None:
    """A one-line result on stdout (dapr prints its "... successfully" lines there)."""
    click.echo(message)


def error(message: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": message}), err=True)
    else:
        click.echo(f"Error: {message}", err=True)


class Screen:
    """Redraws the whole screen with each frame on a terminal; elsewhere prints the frames one after another."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def draw(self, text: str) -> None:
        if self.tty:
            self.stream.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            self.stream.write(text + "\n\n")
        self.stream.flush()
