"""`durahub workflow tree`, `graph` and `map`: the dashboard's views from the terminal, in process through
Click's CliRunner against a real server with the official SDK's workers (a fan-out of activities, child
workflows two levels deep, a workflow whose runs take different branches).

What they print is what the engine's view routes answer (`/durahub/v1/instances/{id}/tree`, `.../graph`,
`/durahub/v1/workflows/{name}/map`), which each test reads with httpx to compare. The unknown-instance and
unreachable-engine cases of `tree` and `graph` are with the other commands' in test_workflow_cli_errors.py;
`tree --watch` on a terminal is in test_workflow_cli_terminal.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest

pytest.importorskip("durahub.cli_workflow", reason="the CLI runs in process where durahub is installed")
from click.testing import CliRunner, Result  # noqa: E402

from durahub.cli_workflow import workflow  # noqa: E402
from durahub.cli_workflow.views import tree_text  # noqa: E402
from testsupport.process import free_port, wait_until  # noqa: E402
from testsupport.sdk import assert_completed, complete, new_id, wait_for_status  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]


def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * 2


def refuse(ctx: wf.WorkflowActivityContext, x: int) -> int:
    raise ValueError(f"odd: {x}")


def leaf_wf(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity(double, input=x)
    return y


def branch_wf(ctx: wf.DaprWorkflowContext, x: int):
    """Two child workflows at once."""
    results = yield wf.when_all([ctx.call_child_workflow(leaf_wf, input=x), ctx.call_child_workflow(leaf_wf,
                                                                                                      input=x + 1)])
    return sum(results)


def fan_wf(ctx: wf.DaprWorkflowContext, n: int):
    """A fan-out of `n` activities, then a child that has children of its own."""
    parts = yield wf.when_all([ctx.call_activity(double, input=i) for i in range(n)])
    total = yield ctx.call_child_workflow(branch_wf, input=sum(parts))
    return total


def gate_wf(ctx: wf.DaprWorkflowContext, x: int):
    """Waits for "go"."""
    go = yield ctx.wait_for_external_event("go")
    return go


def parent_of_gate_wf(ctx: wf.DaprWorkflowContext, x: int):
    got = yield ctx.call_child_workflow(gate_wf, input=x)
    return got


def route_wf(ctx: wf.DaprWorkflowContext, x: int):
    """Even inputs are doubled; odd ones are refused (the failure caught): two branches across runs."""
    if x % 2 == 0:
        result = yield ctx.call_activity(double, input=x)
        return result
    try:
        yield ctx.call_activity(refuse, input=x)
    except Exception:  # noqa: BLE001 - the failed step is what the map counts
        return None


WORKFLOWS = [leaf_wf, branch_wf, fan_wf, gate_wf, parent_of_gate_wf, route_wf]
ACTIVITIES = [double, refuse]

Cli = Callable[..., Result]
DURATION = re.compile(r"^\d+(\.\d+)?(ns|µs|ms|s|m|h)$")


@pytest.fixture(scope="module")
def cli(server: DurahubServer) -> Cli:
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(workflow, ["--address", server.http_url, *args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="module")
def api(server: DurahubServer) -> Callable[..., httpx.Response]:
    """GET a /durahub/v1 route of the server."""

    def get(path: str, **params: Any) -> httpx.Response:
        answer = httpx.get(f"{server.http_url}/durahub/v1{path}", params=params, timeout=30)
        answer.raise_for_status()
        return answer

    return get


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def tree_rows(text: str) -> list[list[str]]:
    """The rows of `tree`'s table, cut where its headings start (the tree's indent kept)."""
    heading, *lines = text.rstrip("\n").splitlines()
    starts = [m.start() for m in re.finditer(r"\S+( \S+)*", heading)]
    return [[line[a:b].rstrip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
            for line in (lines[:lines.index("")] if "" in lines else lines)]


@pytest.fixture(scope="module")
def fan(cli: Cli, client: wf.DaprWorkflowClient) -> str:
    """A finished fan_wf: root → branch_wf → two leaf_wf."""
    iid = new_id("fan")
    ok(cli("run", "fan_wf", "-i", iid, "-x", "3"))
    assert assert_completed(complete(client, iid)) == 6 * 2 + 7 * 2
    return iid


# -- tree -----------------------------------------------------------------------------------------------


def test_tree_prints_each_instance_under_its_parent_with_status_and_duration(cli: Cli, fan: str,
                                                                            api: Callable[..., httpx.Response]) -> None:
    node = api(f"/instances/{fan}/tree").json()
    branch = node["children"][0]
    leaves = [c["instance_id"] for c in branch["children"]]
    assert len(leaves) == 2

    text = ok(cli("tree", fan)).stdout
    lines = text.splitlines()
    assert cells(lines[0]) == ["INSTANCE ID", "NAME", "STATUS", "DURATION"]  # one app: no APP ID column
    rows = tree_rows(text)
    assert [r[:3] for r in rows] == [
        [fan, "fan_wf", "COMPLETED"],
        [f"└─ {branch['instance_id']}", "branch_wf", "COMPLETED"],
        [f"   ├─ {leaves[0]}", "leaf_wf", "COMPLETED"],
        [f"   └─ {leaves[1]}", "leaf_wf", "COMPLETED"],
    ]
    assert all(DURATION.match(r[3]) for r in rows), rows
    # The columns line up: each status starts where the heading does.
    at = lines[0].index("STATUS")
    assert all(line[at:].startswith("COMPLETED") for line in lines[1:])

    # --json and -o json print the route's answer, nothing else.
    assert json.loads(ok(cli("tree", fan, "--json")).stdout) == node
    assert json.loads(ok(cli("tree", fan, "-o", "json")).stdout) == node


def test_tree_depth_marks_what_was_not_looked_up(cli: Cli, fan: str) -> None:
    footnote = "… children not looked up: raise --depth (at most 50) or run `tree` on that instance"
    assert "…" not in ok(cli("tree", fan)).stdout  # the default depth, 10, reaches the leaves

    text = ok(cli("tree", fan, "--depth", "1")).stdout
    assert [r[0] for r in tree_rows(text)] == [fan, f"└─ {branch_of(cli, fan)} …"]
    assert text.splitlines()[-2:] == ["", footnote]
    node = json.loads(ok(cli("tree", fan, "--depth", "1", "--json")).stdout)
    assert node["truncated"] is False and node["children"][0]["truncated"] is True
    assert node["children"][0]["children"] == []

    text = ok(cli("tree", fan, "--depth", "2")).stdout
    assert [r[0].endswith(" …") for r in tree_rows(text)] == [False, False, True, True]
    assert text.splitlines()[-1] == footnote


def branch_of(cli: Cli, iid: str) -> str:
    return str(json.loads(ok(cli("tree", iid, "--json")).stdout)["children"][0]["instance_id"])


def test_tree_of_a_running_workflow_says_how_long_so_far(cli: Cli, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("gate")
    ok(cli("run", "parent_of_gate_wf", "-i", iid, "-x", "1"))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    child = wait_until(lambda: ok(cli("list", "--parent", iid, "-o", "ids")).stdout.split(), timeout=30,
                       message="the child workflow never started")
    wait_for_status(client, child[0], wf.WorkflowStatus.RUNNING)

    rows = tree_rows(ok(cli("tree", iid)).stdout)
    assert [r[:3] for r in rows] == [[iid, "parent_of_gate_wf", "RUNNING"],
                                     [f"└─ {child[0]}", "gate_wf", "RUNNING"]]
    assert all(re.match(r"^\d+[smhdy](\d+[smh])? so far$", r[3]) for r in rows), rows
    node = json.loads(ok(cli("tree", iid, "--json")).stdout)
    assert node["duration_us"] is None and node["children"][0]["completed_us"] is None

    ok(cli("raise-event", f"{child[0]}/go", "-x", "5"))
    assert assert_completed(complete(client, iid)) == 5
    assert [r[2] for r in tree_rows(ok(cli("tree", iid)).stdout)] == ["COMPLETED"] * 2


def test_tree_names_the_app_when_the_tree_spans_several(cli: Cli, fan: str) -> None:
    # The engine's own answer, with one child moved to another app (serving one needs a second set of workers).
    node = json.loads(ok(cli("tree", fan, "--json")).stdout)
    node["children"][0]["children"][1]["app_id"] = "shop"
    text = tree_text(node, now_us=0)
    assert cells(text.splitlines()[0]) == ["INSTANCE ID", "NAME", "APP ID", "STATUS", "DURATION"]
    assert [r[2] for r in tree_rows(text)] == ["durahub", "durahub", "durahub", "shop"]


# -- graph ----------------------------------------------------------------------------------------------


def test_graph_in_each_format_is_the_routes_drawing(cli: Cli, fan: str, api: Callable[..., httpx.Response]) -> None:
    mermaid = ok(cli("graph", fan)).stdout
    assert mermaid == api(f"/instances/{fan}/graph", format="mermaid").text.rstrip("\n") + "\n"
    assert mermaid.startswith("flowchart TD\n")
    assert mermaid.count('["double<br/>activity') == 3 and '[["branch_wf<br/>child' in mermaid

    dot = ok(cli("graph", fan, "-o", "dot")).stdout
    assert dot == api(f"/instances/{fan}/graph", format="dot").text.rstrip("\n") + "\n"
    assert dot.startswith("digraph workflow {") and dot.count('label="double\\nactivity') == 3
    assert ok(cli("graph", fan, "--format", "dot")).stdout == ok(cli("graph", fan, "-f", "dot")).stdout == dot

    svg = ok(cli("graph", fan, "-o", "svg")).stdout
    assert svg == api(f"/instances/{fan}/graph", format="svg").text.rstrip("\n") + "\n"
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg" and "branch_wf" in svg

    graph = api(f"/instances/{fan}/graph").json()
    assert json.loads(ok(cli("graph", fan, "-o", "json")).stdout) == graph
    assert json.loads(ok(cli("--json", "graph", fan)).stdout) == graph
    kinds = [n["kind"] for n in graph["nodes"]]
    assert kinds.count("activity") == 3 and kinds.count("child") == 1


def test_graph_file_takes_its_format_from_the_suffix(cli: Cli, fan: str, tmp_path: Path) -> None:
    expected = {fmt: ok(cli("graph", fan, "-o", fmt)).stdout for fmt in ("mermaid", "dot", "svg", "json")}
    for name, fmt in (("g.mmd", "mermaid"), ("g.dot", "dot"), ("g.gv", "dot"), ("g.svg", "svg"),
                      ("g.json", "json"), ("g.md", "mermaid")):
        path = tmp_path / name
        result = ok(cli("graph", fan, "--file", str(path)))
        assert result.stdout.strip() == f"Wrote the {fmt} graph of '{fan}' to {path}"
        assert path.read_text(encoding="utf-8") == expected[fmt]
    # -o wins over the suffix; --json makes the report JSON and leaves the drawing's format alone.
    forced = tmp_path / "forced.svg"
    ok(cli("graph", fan, "--file", str(forced), "-o", "dot"))
    assert forced.read_text(encoding="utf-8") == expected["dot"]
    report = json.loads(ok(cli("--json", "graph", fan, "--file", str(tmp_path / "r.svg"))).stdout)
    assert report == {"file": str(tmp_path / "r.svg"), "format": "svg"}
    assert (tmp_path / "r.svg").read_text(encoding="utf-8") == expected["svg"]

    unwritable = cli("graph", fan, "--file", str(tmp_path / "missing" / "g.svg"))
    assert unwritable.exit_code == 1 and unwritable.stdout == ""
    assert one_error_line(unwritable).startswith(f"Error: cannot write {tmp_path / 'missing' / 'g.svg'}")


# -- map ------------------------------------------------------------------------------------------------


def test_map_merges_the_last_runs(cli: Cli, client: wf.DaprWorkflowClient, api: Callable[..., httpx.Response],
                                  tmp_path: Path) -> None:
    for x in range(4):  # 0 and 2 doubled, 1 and 3 refused; started one after another, so newest last
        iid = new_id("route")
        ok(cli("run", "route_wf", "-i", iid, "-x", str(x), "--wait"))

    merged = json.loads(ok(cli("map", "route_wf", "-o", "json")).stdout)
    assert merged == api("/workflows/route_wf/map").json()
    assert merged["workflow_name"] == "route_wf" and merged["runs"] == 4
    nodes = {n["id"]: n for n in merged["nodes"]}
    assert nodes["activity:double"]["count"] == 2 and nodes["activity:double"]["failure_rate"] == 0
    assert nodes["activity:refuse"]["count"] == 2 and nodes["activity:refuse"]["failure_rate"] == 1
    shares = {e["target"]: e["share"] for e in merged["edges"] if e["source"] == "start"}
    assert shares == {"activity:double": 0.5, "activity:refuse": 0.5}

    newest = json.loads(ok(cli("--json", "map", "route_wf", "--last", "1")).stdout)  # x = 3: refused
    assert newest["runs"] == 1 and [n["id"] for n in newest["nodes"] if n["kind"] == "activity"] == [
        "activity:refuse"]

    mermaid = ok(cli("map", "route_wf")).stdout
    assert mermaid == api("/workflows/route_wf/map", format="mermaid").text.rstrip("\n") + "\n"
    assert mermaid.startswith("flowchart TD\n") and "n=2" in mermaid and "50#37;" in mermaid
    dot = ok(cli("map", "route_wf", "-o", "dot", "--last", "2")).stdout
    assert dot == api("/workflows/route_wf/map", format="dot", last=2).text.rstrip("\n") + "\n"
    path = tmp_path / "route.svg"
    ok(cli("map", "route_wf", "--file", str(path)))
    assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert path.read_text(encoding="utf-8") == api("/workflows/route_wf/map", format="svg").text.rstrip("\n") + "\n"

    # -a narrows the runs to one app's; this server's runs are all the engine's own app's.
    assert json.loads(ok(cli("map", "route_wf", "-a", "durahub", "--json")).stdout)["runs"] == 4
    elsewhere = cli("map", "route_wf", "-a", "shop")
    assert elsewhere.exit_code == 3
    assert one_error_line(elsewhere) == "Error: no instances of workflow 'route_wf' of app 'shop'"


def test_map_of_a_workflow_never_run_exits_3(cli: Cli) -> None:
    result = cli("map", "never_run_wf")
    assert result.exit_code == 3 and result.stdout == ""
    assert one_error_line(result) == "Error: no instances of workflow 'never_run_wf'"
    as_json = cli("map", "never_run_wf", "-o", "svg", "--json")
    assert as_json.exit_code == 3 and as_json.stdout == ""
    assert json.loads(as_json.stderr) == {"error": "no instances of workflow 'never_run_wf'"}


def test_unknown_instance_with_json_is_a_json_error(cli: Cli) -> None:
    missing = new_id("missing")
    for args in (["tree", missing, "--json"], ["graph", missing, "-o", "json"], ["--json", "graph", missing]):
        result = cli(*args)
        assert result.exit_code == 3 and result.stdout == ""
        assert json.loads(result.stderr) == {"error": f"no such instance exists: '{missing}'"}


def test_views_on_an_unreachable_engine_exit_1() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    for args in (["tree", "x"], ["tree", "x", "--watch"], ["graph", "x", "-o", "svg"], ["map", "w"]):
        result = CliRunner().invoke(workflow, ["--address", address, *args], catch_exceptions=False)
        assert result.exit_code == 1 and result.stdout == ""
        assert one_error_line(result).startswith(f"Error: cannot reach the durahub engine at {address}")


@pytest.mark.parametrize(("args", "message"), [
    (["tree", "x", "--depth", "0"], "Invalid value for '--depth'"),
    (["tree", "x", "--depth", "51"], "Invalid value for '--depth'"),
    (["tree", "x", "--watch", "--json"], "--watch draws the tree as text"),
    (["graph", "x", "-o", "png"], "Invalid value for '-o' / '--output'"),
    (["map", "w", "--last", "0"], "Invalid value for '--last'"),
    (["map", "w", "--last", "1001"], "Invalid value for '--last'"),
    (["map"], "Missing argument 'WORKFLOW_NAME'"),
])
def test_view_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(workflow, ["--address", f"http://127.0.0.1:{free_port()}", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr
