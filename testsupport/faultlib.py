"""Shared fault-injection workload: workflows, activities that log every execution to a file, a worker
subprocess, the kill -9 loop, the load phase and the after-run checks. Used by tests/reliability and
bench/faults.py.

Imports only the SDK and the rest of testsupport (never durahub), so it also runs under the legacy SDK.
CI sizes by default; DURAHUB_FAULTS_LONG=1 runs every test at full size (10,000 waiting workflows, 100
kills, ...).
"""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dapr.ext.workflow as wf
import httpx

from testsupport.process import REPO_ROOT, wait_until
from testsupport.sdk import make_client

if TYPE_CHECKING:
    from testsupport.server import DurahubServer

# ------------------------------------------------------------------------------------------------------
# Execution log: one JSON line per activity start/end/failure, appended with O_APPEND (survives kill -9
# of the writer: the bytes are in the kernel once write() returned).
# ------------------------------------------------------------------------------------------------------

LONG = os.environ.get("DURAHUB_FAULTS_LONG", "") not in ("", "0")


def scale(ci: int, long: int) -> int:
    """CI size, or the full size with DURAHUB_FAULTS_LONG=1."""
    return long if LONG else ci


LOG_ENV = "DURAHUB_FAULT_LOG"
STEP_SECONDS_ENV = "DURAHUB_FAULT_STEP_SECONDS"


def _log_path() -> str:
    return os.environ.get(LOG_ENV, "/tmp/durahub-fault-activities.log")


def _record(kind: str, key: str, **extra: Any) -> None:
    line = json.dumps({"ev": kind, "k": key, "t": time.time(), "pid": os.getpid(), **extra}) + "\n"
    fd = os.open(_log_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a torn last line of a killed writer
    return out


def _key(ctx: wf.WorkflowActivityContext, name: str, x: Any) -> str:
    return f"{ctx.workflow_id}|{ctx.task_id}|{name}|{json.dumps(x, sort_keys=True)}"


# ------------------------------------------------------------------------------------------------------
# Activities and workflows
# ------------------------------------------------------------------------------------------------------


def fl_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    key = _key(ctx, "fl_step", x)
    _record("start", key)
    time.sleep(float(os.environ.get(STEP_SECONDS_ENV, "0.2")))
    _record("end", key)
    return x + 1


def fl_flaky(ctx: wf.WorkflowActivityContext, wid: str) -> str:
    """Fails its first two attempts (counted in the log), then succeeds."""
    key = _key(ctx, "fl_flaky", wid)
    _record("start", key)
    failures = sum(1 for r in read_log(_log_path()) if r["ev"] == "fail" and r.get("wid") == wid)
    if failures < 2:
        _record("fail", key, wid=wid)
        raise RuntimeError(f"flaky failure #{failures + 1}")
    _record("end", key)
    return "ok"


def fl_chain(ctx: wf.DaprWorkflowContext, n: int):
    a = yield ctx.call_activity(fl_step, input=n)
    b = yield ctx.call_activity(fl_step, input=a)
    c = yield ctx.call_activity(fl_step, input=b)
    return c


def fl_fanout(ctx: wf.DaprWorkflowContext, n: int):
    results = yield wf.when_all([ctx.call_activity(fl_step, input=n + i) for i in range(5)])
    return sum(results)


def fl_timer(ctx: wf.DaprWorkflowContext, seconds: float):
    yield ctx.create_timer(timedelta(seconds=seconds))
    r = yield ctx.call_activity(fl_step, input=0)
    return {"slept": seconds, "r": r}


def fl_events(ctx: wf.DaprWorkflowContext, count: int):
    got = []
    for _ in range(count):
        v = yield ctx.wait_for_external_event("e")
        got.append(v)
    return got


def fl_parent(ctx: wf.DaprWorkflowContext, n: int):
    results = yield wf.when_all([ctx.call_child_workflow(fl_chain, input=n + i) for i in range(2)])
    return results


def fl_can(ctx: wf.DaprWorkflowContext, st: dict[str, int]):
    x = yield ctx.call_activity(fl_step, input=st["i"])
    if st["i"] < 3:
        ctx.continue_as_new({"i": st["i"] + 1, "acc": st["acc"] + x})
        return None
    return st["acc"] + x


def fl_retry(ctx: wf.DaprWorkflowContext, _: Any):
    policy = wf.RetryPolicy(first_retry_interval=timedelta(seconds=0.3), max_number_of_attempts=8)
    r = yield ctx.call_activity(fl_flaky, input=ctx.instance_id, retry_policy=policy)
    return r


def fl_can_events(ctx: wf.DaprWorkflowContext, st: dict[str, Any]):
    """Collects `want` events, one per generation, carrying unconsumed ones over continue-as-new."""
    v = yield ctx.wait_for_external_event("e")
    got = st["got"] + [v]
    if len(got) < st["want"]:
        ctx.continue_as_new({"got": got, "want": st["want"]}, save_events=True)
        return None
    return got


def fl_waiter(ctx: wf.DaprWorkflowContext, spec: dict[str, Any]):
    """Load shape: wait on a timer (spec['timer'] seconds) or an event, then finish."""
    if spec.get("timer") is not None:
        yield ctx.create_timer(timedelta(seconds=spec["timer"]))
        return "timer"
    v = yield ctx.wait_for_external_event("go")
    return v


def fl_noop(ctx: wf.DaprWorkflowContext, x: Any):
    return x


WORKFLOWS = [fl_chain, fl_fanout, fl_timer, fl_events, fl_parent, fl_can, fl_retry, fl_can_events, fl_waiter,
             fl_noop]
ACTIVITIES = [fl_step, fl_flaky]


# ------------------------------------------------------------------------------------------------------
# Worker subprocess
# ------------------------------------------------------------------------------------------------------


class WorkerProcess:
    """`python -m testsupport.fault_worker <grpc port>`: a WorkflowRuntime with WORKFLOWS/ACTIVITIES in its own
    process."""

    def __init__(self, port: str, log_path: Path, out_path: Path, step_seconds: float = 0.2) -> None:
        self.port = port
        self.log_path = log_path
        self.out_path = out_path
        self.step_seconds = step_seconds
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ)
        env[LOG_ENV] = str(self.log_path)
        env[STEP_SECONDS_ENV] = str(self.step_seconds)
        env["PYTHONUNBUFFERED"] = "1"
        # `-m testsupport.fault_worker` from any working directory: the repository root goes on PYTHONPATH.
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.out_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "testsupport.fault_worker", self.port],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


# ------------------------------------------------------------------------------------------------------
# Process figures
# ------------------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM/VmRSS in KiB and the open fd count of a process."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                out[name] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


class PeakSampler:
    """Samples a process's RSS and fd count in the background; VmHWM is the kernel's own peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.max_fds = 0
        self.max_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            s = proc_status(self.pid)
            self.max_fds = max(self.max_fds, s.get("fds", 0))
            self.max_rss_kib = max(self.max_rss_kib, s.get("VmHWM", 0), s.get("VmRSS", 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        s = proc_status(self.pid)
        self.max_rss_kib = max(self.max_rss_kib, s.get("VmHWM", 0))


# ------------------------------------------------------------------------------------------------------
# Extension API access and history checks
# ------------------------------------------------------------------------------------------------------


def ext_instance(http_url: str, instance_id: str) -> dict[str, Any] | None:
    from urllib.parse import quote

    r = httpx.get(f"{http_url}/durahub/v1/instances/{quote(instance_id, safe='')}", timeout=30)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()


def ext_list(http_url: str, **params: Any) -> list[dict[str, Any]]:
    """Every instance matching the filter (all pages)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = {"limit": 1000, **params}
        if cursor:
            q["cursor"] = cursor
        r = httpx.get(f"{http_url}/durahub/v1/instances", params=q, timeout=60)
        r.raise_for_status()
        body = r.json()
        out.extend(body["instances"])
        cursor = body.get("next_cursor")
        if not cursor:
            return out


def history_problems(inst: dict[str, Any]) -> list[str]:
    """Duplicate results per task id, timers fired twice or early, more than one start/completion."""
    problems: list[str] = []
    iid = inst["instance_id"]
    hist = inst["history"]
    results: collections.Counter[tuple[str, int]] = collections.Counter()
    scheduled: dict[str, set[int]] = {"task": set(), "timer": set(), "child": set()}
    timer_due: dict[int, str] = {}
    for e in hist:
        kind, d = e["kind"], e["details"]
        if kind == "taskScheduled":
            scheduled["task"].add(e["event_id"])
        elif kind == "timerCreated":
            scheduled["timer"].add(e["event_id"])
            timer_due[e["event_id"]] = d.get("fireAt", "")
        elif kind == "childWorkflowInstanceCreated":
            scheduled["child"].add(e["event_id"])
        elif kind in ("taskCompleted", "taskFailed"):
            results[("task", int(d.get("taskScheduledId", 0)))] += 1
        elif kind == "timerFired":
            tid = int(d.get("timerId", 0))
            results[("timer", tid)] += 1
            fire_at = d.get("fireAt", "")
            if fire_at and e["timestamp"] and _iso_us(e["timestamp"]) + 1000 < _iso_us(fire_at):
                problems.append(f"{iid}: timer {tid} fired at {e['timestamp']} before its due time {fire_at}")
        elif kind in ("childWorkflowInstanceCompleted", "childWorkflowInstanceFailed"):
            results[("child", int(d.get("taskScheduledId", 0)))] += 1
    for (what, tid), n in results.items():
        if n > 1:
            problems.append(f"{iid}: {n} results recorded for {what} id {tid}")
        if tid not in scheduled[what]:
            problems.append(f"{iid}: result for {what} id {tid} that was never scheduled")
    for kind in ("executionStarted", "executionCompleted"):
        n = sum(1 for e in hist if e["kind"] == kind)
        if n > 1:
            problems.append(f"{iid}: {n} {kind} events")
    return problems


def duplicate_result_count(inst: dict[str, Any]) -> int:
    c: collections.Counter[tuple[str, int]] = collections.Counter()
    for e in inst["history"]:
        d = e["details"]
        if e["kind"] in ("taskCompleted", "taskFailed"):
            c[("task", int(d.get("taskScheduledId", 0)))] += 1
        elif e["kind"] == "timerFired":
            c[("timer", int(d.get("timerId", 0)))] += 1
        elif e["kind"] in ("childWorkflowInstanceCompleted", "childWorkflowInstanceFailed"):
            c[("child", int(d.get("taskScheduledId", 0)))] += 1
    return sum(n - 1 for n in c.values() if n > 1)


def _iso_us(text: str) -> int:
    from datetime import datetime

    text = text.replace("Z", "+00:00")
    # protobuf JSON may carry nanoseconds; datetime takes at most microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        frac = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(frac):]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tz}"
    dt = datetime.fromisoformat(text)
    return int(dt.timestamp() * 1_000_000)


# ------------------------------------------------------------------------------------------------------
# Activity execution accounting
# ------------------------------------------------------------------------------------------------------


@dataclass
class ExecStats:
    executions: int = 0
    distinct: int = 0
    repeated: int = 0  # executions beyond the first, per (instance, task id, activity, input)
    in_flight_at_kills: int = 0  # activities started and not yet finished (+ grace) at a kill
    unexplained: list[str] = field(default_factory=list)  # repeats with no kill during their lifetime


def exec_stats(log_path: Path, kill_times: Iterable[float], grace: float = 1.0) -> ExecStats:
    kills = sorted(kill_times)
    starts: dict[str, list[float]] = collections.defaultdict(list)
    ends: dict[str, list[float]] = collections.defaultdict(list)
    for r in read_log(log_path):
        if r["ev"] == "start":
            starts[r["k"]].append(r["t"])
        elif r["ev"] in ("end", "fail"):
            ends[r["k"]].append(r["t"])
    st = ExecStats()
    for k, ts in starts.items():
        st.executions += len(ts)
        st.distinct += 1
        first_start = min(ts)
        first_end = min(ends[k]) if ends[k] else float("inf")
        in_flight = [t for t in kills if first_start <= t <= first_end + grace]
        st.in_flight_at_kills += 1 if in_flight else 0
        extra = len(ts) - 1
        st.repeated += extra
        if extra:
            # Every repeat must be explained by a kill between the first dispatch and the last run.
            window = [t for t in kills if first_start - 5.0 <= t <= max(ts)]
            if len(window) < extra:
                st.unexplained.append(f"{k}: {len(ts)} executions, {len(window)} kills in its lifetime")
    return st


# ------------------------------------------------------------------------------------------------------
# The kill -9 workload
# ------------------------------------------------------------------------------------------------------


@dataclass
class Expect:
    workflow: str
    output: Any
    events: list[str] = field(default_factory=list)  # raised payloads, in order
    events_wanted: int = 0


@dataclass
class FaultReport:
    kills: int = 0
    expected: int = 0
    completed: int = 0
    wrong: list[str] = field(default_factory=list)
    duplicate_results: int = 0
    history_problems: list[str] = field(default_factory=list)
    events_raised: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    exec: ExecStats = field(default_factory=ExecStats)
    seconds: float = 0.0
    peak_rss_kib: int = 0
    max_fds: int = 0
    left_running: list[str] = field(default_factory=list)


def _retry(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    import grpc

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _start_one(client: wf.DaprWorkflowClient, kind: str, tag: str, expects: dict[str, Expect]) -> None:
    iid = f"fl-{kind}-{tag}"
    if kind == "chain":
        fn, inp, out = fl_chain, 10, 13
    elif kind == "fanout":
        fn, inp, out = fl_fanout, 10, 5 * 10 + 15
    elif kind == "timer":
        fn, inp, out = fl_timer, 1.5, {"slept": 1.5, "r": 1}
    elif kind == "events":
        fn, inp, out = fl_events, 3, None
    elif kind == "parent":
        fn, inp, out = fl_parent, 10, [13, 14]
    elif kind == "can":
        fn, inp, out = fl_can, {"i": 0, "acc": 0}, 10
    elif kind == "retry":
        fn, inp, out = fl_retry, None, "ok"
    else:
        raise ValueError(kind)

    def start() -> None:
        # A start that raced a kill may have been committed: the id then exists, which is fine.
        st = client.get_workflow_state(iid, fetch_payloads=False)
        if st is None:
            client.schedule_new_workflow(fn, input=inp, instance_id=iid)

    _retry(start)
    expects[iid] = Expect(workflow=fn.__name__, output=out, events_wanted=3 if kind == "events" else 0)


KINDS = ("chain", "fanout", "timer", "events", "parent", "can", "retry")


def run_kill_workload(
    server: Any,
    client: wf.DaprWorkflowClient,
    log_path: Path,
    *,
    kills: int,
    initial_per_kind: int = 3,
    per_cycle_kinds: int = 4,
    seed: int = 5,
    finish_timeout: float = 120.0,
    min_gap: float = 0.3,
    max_gap: float = 1.2,
) -> FaultReport:
    """Start a mixed workload against `server` (a worker must be connected), kill -9 and restart the
    server `kills` times at random moments while starting more workflows and raising events, then
    wait for everything and check it. The worker (a subprocess) stays up throughout."""
    rng = random.Random(seed)
    report = FaultReport()
    expects: dict[str, Expect] = {}
    kill_times: list[float] = []
    t0 = time.monotonic()
    tag_counter = 0

    def tag() -> str:
        nonlocal tag_counter
        tag_counter += 1
        return f"{seed}-{tag_counter}"

    for kind in KINDS:
        for _ in range(initial_per_kind):
            _start_one(client, kind, tag(), expects)

    def raise_some(count: int) -> None:
        open_ = [iid for iid, e in expects.items() if e.events_wanted and len(e.events) < e.events_wanted]
        for iid in rng.sample(open_, min(count, len(open_))):
            e = expects[iid]
            payload = f"{iid}#{len(e.events)}"
            _retry(lambda iid=iid, payload=payload: client.raise_workflow_event(iid, "e", data=payload))
            e.events.append(payload)
            report.events_raised += 1

    for _cycle in range(kills):
        # Work while the engine is up: new workflows and raised events, then a random pause so the kill
        # lands at a random point of turns, activity completions and timer firings.
        for kind in rng.sample(KINDS, per_cycle_kinds):
            _start_one(client, kind, tag(), expects)
        raise_some(rng.randint(1, 4))
        time.sleep(rng.uniform(min_gap, max_gap))
        kill_times.append(time.time())
        server.kill()
        report.kills += 1
        server.start()

    # Deliver the remaining events, then let everything finish.
    while any(e.events_wanted and len(e.events) < e.events_wanted for e in expects.values()):
        raise_some(100)
    for e in expects.values():
        if e.events_wanted:
            e.output = e.events

    report.expected = len(expects)
    deadline = time.monotonic() + finish_timeout
    finished: dict[str, wf.WorkflowState] = {}
    for iid in expects:
        remaining = max(1, int(deadline - time.monotonic()))
        try:
            st = _retry(lambda iid=iid, remaining=remaining: client.wait_for_workflow_completion(
                iid, timeout_in_seconds=remaining))
        except TimeoutError:
            st = None
        if st is not None:
            finished[iid] = st

    report.seconds = time.monotonic() - t0
    for iid, e in expects.items():
        st = finished.get(iid)
        if st is None or st.runtime_status != wf.WorkflowStatus.COMPLETED:
            report.wrong.append(f"{iid}: {st.runtime_status.name if st else 'not finished'}"
                                f" {getattr(st, 'failure_details', None) and st.failure_details.message}")
            continue
        out = json.loads(st.serialized_output) if st.serialized_output else None
        if out != e.output:
            report.wrong.append(f"{iid}: output {out!r}, expected {e.output!r}")
            if e.events_wanted and isinstance(out, list):
                report.events_lost += len(set(e.events) - set(out))
                report.events_duplicated += len(out) - len(set(out))
            continue
        report.completed += 1

    # Histories: every instance including children (ids "<parent>:000N").
    for inst_summary in ext_list(server.http_url, instance_id_prefix="fl-"):
        inst = ext_instance(server.http_url, inst_summary["instance_id"])
        if inst is None:
            continue
        report.duplicate_results += duplicate_result_count(inst)
        report.history_problems.extend(history_problems(inst))
        e = expects.get(inst["instance_id"])
        if e is not None and e.events_wanted:
            raised = [json.loads(ev["details"]["input"]) for ev in inst["history"]
                      if ev["kind"] == "eventRaised" and "input" in ev["details"]]
            lost = len(set(e.events) - set(raised))
            dup = len(raised) - len(set(raised))
            if lost or dup:
                report.history_problems.append(f"{inst['instance_id']}: events lost={lost} duplicated={dup}")
            report.events_lost = max(report.events_lost, 0) + lost
            report.events_duplicated += dup
        if inst["status"] not in ("COMPLETED", "FAILED", "TERMINATED"):
            report.left_running.append(f"{inst['instance_id']} {inst['status']}")

    report.exec = exec_stats(log_path, kill_times)
    return report


def format_table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [f"{'metric'.ljust(width)} | value", f"{'-' * width}-+-{'-' * 30}"]
    lines += [f"{k.ljust(width)} | {v}" for k, v in rows]
    return "\n".join(lines)


def report_rows(r: FaultReport) -> list[tuple[str, Any]]:
    return [
        ("engine kill -9 / restart cycles survived", r.kills),
        ("workflows completed / expected", f"{r.completed} / {r.expected}"),
        ("duplicate results recorded (must be 0)", r.duplicate_results),
        ("activity executions (distinct tasks)", f"{r.exec.executions} ({r.exec.distinct})"),
        ("repeated activity executions", r.exec.repeated),
        ("activities running at a kill (started, not done +1s)", r.exec.in_flight_at_kills),
        ("repeats not explained by a kill", len(r.exec.unexplained)),
        ("events raised", r.events_raised),
        ("events lost (must be 0)", r.events_lost),
        ("events duplicated (must be 0)", r.events_duplicated),
        ("history problems", len(r.history_problems)),
        ("left non-terminal", len(r.left_running)),
        ("wall time (s)", f"{r.seconds:.1f}"),
    ]


# ------------------------------------------------------------------------------------------------------
# Load phase
# ------------------------------------------------------------------------------------------------------


def run_load(srv: DurahubServer, tmp_path: Path, waiting: int, events: int, starts: int) -> dict[str, object]:
    """Returns the figures; asserts nothing was dropped."""
    assert srv.proc is not None
    pid = srv.proc.pid
    worker = WorkerProcess(srv.port, tmp_path / "activities.log", tmp_path / "worker.out").start()
    client = make_client(srv)
    http = httpx.Client(base_url=srv.http_url, timeout=60, limits=httpx.Limits(max_connections=32))
    figures: dict[str, object] = {}
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker never connected")
        base_fds = proc_status(pid).get("fds", 0)
        with PeakSampler(pid) as peak, ThreadPoolExecutor(32) as pool:
            # 1. `waiting` workflows wait at once: half on a timer, half on an event. HTTP starts do not wait.
            t0 = time.monotonic()
            n_timer = waiting // 2

            per_waiter = max(1, -(-events // max(1, waiting - n_timer)))  # events per event-waiting workflow

            def start(i: int) -> None:
                if i < n_timer:
                    r = http.post(f"/v1.0/workflows/dapr/fl_waiter/start?instanceID=ld-{i}",
                                  json={"timer": 20.0 + (i % 10)})
                else:
                    r = http.post(f"/v1.0/workflows/dapr/fl_events/start?instanceID=ld-{i}", json=per_waiter)
                assert r.status_code == 202, r.text

            list(pool.map(start, range(waiting)))

            # Started = had its first turn. On a slow machine the first timers (20 s) can fire before the
            # last workflow starts, so a finished timer workflow counts as started too.
            def by_status() -> dict[str, int]:
                counts: dict[str, int] = {}
                for row in ext_list(srv.http_url, instance_id_prefix="ld-"):
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                return counts

            def all_started() -> bool:
                counts = by_status()
                return counts.get("RUNNING", 0) + counts.get("COMPLETED", 0) == waiting

            wait_until(all_started, timeout=600, interval=1.0,
                       message=lambda: f"not every workflow started: {by_status()}")
            figures["waiting started (s)"] = round(time.monotonic() - t0, 1)
            figures["fds while all wait"] = proc_status(pid).get("fds", 0)

            # 2. A burst of events, spread over the event-waiting workflows.
            t1 = time.monotonic()
            event_ids = [f"ld-{i}" for i in range(n_timer, waiting)]
            burst = [(iid, k) for k in range(per_waiter) for iid in event_ids]

            def raise_(target: tuple[str, int]) -> None:
                r = http.post(f"/v1.0/workflows/dapr/{target[0]}/raiseEvent/e", json=f"{target[0]}#{target[1]}")
                assert r.status_code == 202, r.text

            list(pool.map(raise_, burst))
            figures["events raised (s)"] = round(time.monotonic() - t1, 1)

            # 3. Concurrent SDK starts (each blocks until its first turn committed).
            t2 = time.monotonic()

            def sdk_start(i: int) -> str:
                return client.schedule_new_workflow(fl_noop, input=i, instance_id=f"ldstart-{i}")

            ids = list(pool.map(sdk_start, range(starts)))
            figures["concurrent starts (s)"] = round(time.monotonic() - t2, 1)

            # Everything finishes, nothing dropped.
            def done() -> bool:
                left = ext_list(srv.http_url, instance_id_prefix="ld", status=["RUNNING", "PENDING"])
                return not left

            wait_until(done, timeout=900, interval=1.0, message="load did not drain")
            figures["drained after (s)"] = round(time.monotonic() - t0, 1)
        rows = {r["instance_id"]: r for r in ext_list(srv.http_url, instance_id_prefix="ld")}
        for i in range(waiting):
            r = rows[f"ld-{i}"]
            assert r["status"] == "COMPLETED", r
            out = json.loads(r["output"])
            if i < n_timer:
                assert out == "timer", r
            else:  # concurrent raises to one instance may arrive in either order; none lost, none twice
                assert sorted(out) == [f"ld-{i}#{k}" for k in range(per_waiter)], r
        for i, iid in enumerate(ids):
            assert rows[iid]["status"] == "COMPLETED" and json.loads(rows[iid]["output"]) == i
        figures["peak RSS (MiB)"] = round(peak.max_rss_kib / 1024, 1)
        figures["max open fds (baseline)"] = f"{peak.max_fds} ({base_fds})"
        figures["fds after"] = proc_status(pid).get("fds", 0)
        figures["workflows"] = waiting + starts
        figures["events"] = len(burst)
        return figures
    finally:
        http.close()
        client.close()
        worker.stop()
