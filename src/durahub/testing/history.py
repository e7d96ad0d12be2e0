"""Recorded histories as JSON, both ways: the decoded events `GET /durahub/v1/instances/{id}` and
`durahub workflow export <id>` print (`event_id`, `kind`, `timestamp`, `details` in protobuf JSON names), and
the protobuf events the engine and the SDK's worker exchange."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from durahub.api.extensions import event_model
from durahub.protos import pb


def history_json(events: list[pb.HistoryEvent]) -> list[dict[str, Any]]:
    return [event_model(e).model_dump(mode="json") for e in events]


def event_from_json(item: dict[str, Any]) -> pb.HistoryEvent:
    ev = pb.HistoryEvent(eventId=int(item["event_id"]))
    stamp = datetime.fromisoformat(str(item["timestamp"]).replace("Z", "+00:00"))
    ev.timestamp.FromDatetime(stamp)
    body = getattr(ev, item["kind"])
    body.SetInParent()
    json_format.ParseDict(item.get("details") or {}, body, ignore_unknown_fields=True)
    return ev


def load_history(source: str | Path | dict[str, Any] | list[dict[str, Any]]) -> list[pb.HistoryEvent]:
    """Events from an export: a file path, its JSON text, the instance object (with "history"), or the list."""
    data: Any = source
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith(("{", "["))):
        data = json.loads(Path(source).read_text())
    elif isinstance(source, str):
        data = json.loads(source)
    if isinstance(data, dict):
        data = data["history"]
    return [event_from_json(item) for item in data]
