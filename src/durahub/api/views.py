"""`/durahub/v1` routes for the views the dashboard and the CLI share: counts, and per instance its "waiting on"
summary, timeline, derived graph and children tree, and per workflow name the map of its last runs.

Thin: each route reads through the engine's public methods and hands rows and history to `durahub.core.views`.
Times in these answers are microseconds since the Unix epoch (`*_us`), durations microseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from durahub.api.common import MAX_ID_LENGTH
from durahub.api.extensions import (
    APP_ID_PATTERN,
    NO_NUL,
    AppQuery,
    ErrorBody,
    InstanceIdPath,
    InstanceWithHistory,
    event_model,
    instance_model,
)
from durahub.core import views
from durahub.core.views.instances import InstanceCounter, instance_key
from durahub.core.views.timeline import DEFAULT_MIN_GAP_US
from durahub.engine import Engine
from durahub.errors import InstanceNotFound
from durahub.protos import pb
from durahub.store.base import InstanceQuery, InstanceRow

PAGE = 1000
MAX_MAP_RUNS = 1000
MAX_TREE_DEPTH = 50
MAX_TREE_NODES = 2000

NameQuery = Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=NO_NUL)]
AppFilter = Annotated[str | None, Query(alias="appID", max_length=256, pattern=APP_ID_PATTERN,
                                        description="One app's instances (default: every app's)")]


class GroupBy(StrEnum):
    status = "status"
    workflow_name = "workflow_name"


class GraphFormat(StrEnum):
    json = "json"
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


MEDIA_TYPES = {
    GraphFormat.mermaid: "text/vnd.mermaid; charset=utf-8",
    GraphFormat.dot: "text/vnd.graphviz; charset=utf-8",
    GraphFormat.svg: "image/svg+xml",
}
# An SVG opened on its own is a document: it may draw, never run or fetch anything.
SVG_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
               "X-Content-Type-Options": "nosniff"}

DRAWINGS: dict[str, Any] = {
    "content": {media.split(";")[0]: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()},
    "description": "The graph as JSON, or as text in the requested format",
}

FormatQuery = Annotated[GraphFormat, Query(description="json, or mermaid / dot / svg text")]


class RunOverview(BaseModel):
    """Everything the dashboard's run page shows, from one read of the history."""

    instance: InstanceWithHistory
    summary: views.Summary
    timeline: views.Timeline
    tree: views.TreeNode
    graph: views.Graph
    layout: views.GraphLayout = Field(description="The graph laid out: node boxes and edge paths to draw")


def _drawing(g: views.Graph, fmt: GraphFormat) -> Response:
    if fmt is GraphFormat.svg:
        return Response(views.to_svg(g), media_type=MEDIA_TYPES[fmt], headers=SVG_HEADERS)
    text = views.to_mermaid(g) if fmt is GraphFormat.mermaid else views.to_dot(g)
    return Response(text, media_type=MEDIA_TYPES[fmt])


async def _pages(engine: Engine, query: InstanceQuery) -> AsyncIterator[list[InstanceRow]]:
    """Every row matching `query`, a page at a time (keyset paging on the engine's query)."""
    query.limit = PAGE
    while True:
        rows = await engine.query_instances(query)
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        query.after = (rows[-1].created_us, rows[-1].key)


async def _tree(engine: Engine, root: InstanceRow, depth: int) -> views.TreeNode:
    """`root` and its children to `depth` levels, breadth first, at most MAX_TREE_NODES looked up."""
    children_of: dict[tuple[str, str], list[InstanceRow]] = {}
    frontier, seen = [root], 1
    for _ in range(depth):
        following: list[InstanceRow] = []
        for row in frontier:
            if seen >= MAX_TREE_NODES:
                break  # what is left is marked truncated
            query = InstanceQuery(parent_id=row.instance_id, parent_app_id=row.app_id)
            kids = [r async for page in _pages(engine, query) for r in page]
            children_of[instance_key(row)] = kids
            seen += len(kids)
            following += kids
        frontier = following
    return views.tree(root, children_of, max_depth=depth)


ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such instance", "model": ErrorBody}}


def views_router(engine: Engine, endpoint_app: str) -> APIRouter:
    """The routes as served on one app's endpoint: instances are that app's unless `?appID=` names another."""
    router = APIRouter()

    async def row_of(instance_id: str, app_id: str | None) -> InstanceRow:
        row = await engine.get_instance(instance_id, app=app_id or endpoint_app)
        if row is None:
            raise InstanceNotFound(instance_id)
        return row

    async def history_of(instance_id: str, app_id: str | None) -> list[pb.HistoryEvent]:
        row = await row_of(instance_id, app_id)
        history = await engine.history(instance_id, app=row.app_id)
        if history is None:  # purged meanwhile
            raise InstanceNotFound(instance_id)
        return history

    @router.get("/stats", response_model=views.Stats, summary="Count instances by status or by workflow name")
    async def stats(
        group_by: GroupBy = GroupBy.status,
        workflow_name: NameQuery = None,
        instance_id_prefix: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH,
                                                        pattern=NO_NUL)] = None,
        app_id: AppFilter = None,
    ) -> views.Stats:
        counter = InstanceCounter("status" if group_by is GroupBy.status else "workflow_name")
        query = InstanceQuery(app_id=app_id, name=workflow_name, id_prefix=instance_id_prefix)
        counter.add_counts(await engine.count_instances(query, by_name=group_by is GroupBy.workflow_name))
        return counter.stats()

    @router.get("/instances/{instance_id}/summary", response_model=views.Summary, responses=ERRORS,
                summary="What the instance waits on now: activities, timers, events, children, stall reason")
    async def summary(instance_id: InstanceIdPath, app_id: AppQuery = None) -> views.Summary:
        return views.summary(await history_of(instance_id, app_id), engine.clock.now_us())

    @router.get("/instances/{instance_id}/timeline", response_model=views.Timeline, responses=ERRORS,
                summary="One bar per activity, timer, event and child; turn markers; idle gaps to compress")
    async def timeline(
        instance_id: InstanceIdPath,
        min_gap_seconds: Annotated[float, Query(ge=0, le=10**9, description="Report idle gaps at least this long")]
        = DEFAULT_MIN_GAP_US / 1_000_000,
        app_id: AppQuery = None,
    ) -> views.Timeline:
        return views.timeline(await history_of(instance_id, app_id), engine.clock.now_us(), int(min_gap_seconds * 1_000_000))

    @router.get("/instances/{instance_id}/graph", response_model=views.Graph, responses={200: DRAWINGS, **ERRORS},
                summary="The derived execution graph: the observed causal order of this run")
    async def graph(instance_id: InstanceIdPath, format: FormatQuery = GraphFormat.json,
                    app_id: AppQuery = None) -> views.Graph | Response:
        g = views.graph(await history_of(instance_id, app_id))
        return g if format is GraphFormat.json else _drawing(g, format)

    @router.get("/instances/{instance_id}/tree", response_model=views.TreeNode, responses=ERRORS,
                summary="The instance and its children, recursively")
    async def tree(
        instance_id: InstanceIdPath,
        depth: Annotated[int, Query(ge=1, le=MAX_TREE_DEPTH)] = 10,
        app_id: AppQuery = None,
    ) -> views.TreeNode:
        return await _tree(engine, await row_of(instance_id, app_id), depth)

    @router.get("/instances/{instance_id}/overview", response_model=RunOverview, responses=ERRORS,
                summary="The instance with its history, summary, timeline, children tree, graph and the graph's"
                        " layout in one answer (what the dashboard's run page shows)")
    async def overview(
        instance_id: InstanceIdPath,
        depth: Annotated[int, Query(ge=1, le=MAX_TREE_DEPTH, description="Levels of the children tree")] = 10,
        app_id: AppQuery = None,
    ) -> Response:
        row = await row_of(instance_id, app_id)
        history = await engine.history(instance_id, app=row.app_id)
        if history is None:  # purged meanwhile
            raise InstanceNotFound(instance_id)
        now_us = engine.clock.now_us()
        execution = views.read_execution(history)  # once for all the views
        graph = views.build_graph(execution)
        instance = instance_model(row).model_dump()
        instance["history"] = [event_model(e) for e in history]
        body = {"instance": instance, "summary": views.summarize(execution, now_us),
                "timeline": views.build_timeline(execution, history, now_us), "tree": await _tree(engine, row, depth),
                "graph": graph, "layout": views.layout(graph)}
        # Built from the same models and dataclasses the schema names, encoded without validating them again
        # (a long history's answer would spend most of its time there).
        return Response(pydantic_core.to_json(body), media_type="application/json")

    @router.get("/workflows/{workflow_name}/map", response_model=views.WorkflowMap,
                responses={200: DRAWINGS,
                           404: {"description": "A name no route takes (one with a newline, say)",
                                 "model": ErrorBody}},
                summary="The derived graphs of the workflow's last runs merged: step counts, durations, branches")
    async def workflow_map(
        workflow_name: Annotated[str, Path(pattern=NO_NUL, max_length=MAX_ID_LENGTH)],
        last: Annotated[int, Query(ge=1, le=MAX_MAP_RUNS, description="How many of the newest runs")] = 200,
        format: FormatQuery = GraphFormat.json,
        app_id: AppFilter = None,
    ) -> views.WorkflowMap | Response:
        newest: list[InstanceRow] = []
        async for rows in _pages(engine, InstanceQuery(app_id=app_id, name=workflow_name)):
            newest = (newest + rows)[-last:]
        graphs = []
        for row in newest:
            history = await engine.history(row.instance_id, app=row.app_id)
            if history:
                graphs.append(views.graph(history))
        merged = views.workflow_map(graphs, workflow_name)
        return merged if format is GraphFormat.json else _drawing(merged.as_graph(), format)

    return router
