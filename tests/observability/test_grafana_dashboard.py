"""deploy/grafana/durahub-workflows.json: valid JSON, every metric it queries is one a real server's `/metrics`
exposes, and (when promtool is installed) every query parses as PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.sdk import complete, new_id
from testsupport.server import DurahubServer

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "durahub-workflows.json"
METRIC = re.compile(r"\b(?:dapr_runtime_workflow|durahub)_[a-z_]+\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def ok(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def hello(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(ok, input=x))


WORKFLOWS = [hello]
ACTIVITIES = [ok]


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets (rows included) and query variables."""
    found: list[str] = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            found += [t["expr"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            found.append(var["query"]["query"])
    return found


def exposed_names(text: str) -> set[str]:
    """Sample names the page has, plus the series names its TYPE lines promise (a histogram's three)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(name + s for s in HISTOGRAM_SUFFIXES)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_dashboard_queries_only_exposed_metrics(server: DurahubServer, client: wf.DaprWorkflowClient,
                                                 runtime: wf.WorkflowRuntime) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = queries(dashboard)
    assert len(exprs) >= 15
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert any(m.startswith("dapr_runtime_workflow_") for m in used)
    assert any(m.startswith("durahub_") for m in used)

    complete(client, client.schedule_new_workflow(hello, input=1, instance_id=new_id("dash")))
    r = httpx.get(f"{server.http_url}/metrics", timeout=10)
    assert r.status_code == 200
    missing = used - exposed_names(r.text)
    assert not missing, f"the dashboard queries metrics /metrics does not expose: {sorted(missing)}"


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    exprs = queries(json.loads(DASHBOARD.read_text()))
    # Grafana's variables, as Grafana would substitute them
    concrete = [e.replace("$__rate_interval", "1m").replace("$app_id", ".*") for e in exprs
                if not e.startswith("label_values(")]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(concrete)]}]}
    path = tmp_path / "rules.json"  # promtool reads YAML, of which JSON is a subset
    path.write_text(json.dumps(rules))
    run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, timeout=30)
    assert run.returncode == 0, run.stdout.decode() + run.stderr.decode()
