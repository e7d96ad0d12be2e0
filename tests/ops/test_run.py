"""`durahub run`: the engine next to an app command (ports exported, exit code kept, signals, sharing one
engine). API-token enforcement is in tests/protocol/test_auth.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from testsupport.process import REPO_ROOT, free_port
from testsupport.server import SERVER_PYTHON, DurahubServer

pytestmark = pytest.mark.timeout(120)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _run(args: list[str], tmp_path, extra_env: dict[str, str] | None = None, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SERVER_PYTHON, "-m", "durahub", "run", "--db", str(tmp_path / "run.db"), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**_env(), **(extra_env or {})},
        cwd=str(tmp_path), **kw,
    )


def _sigint(disposition: signal.Handlers) -> Callable[[], None]:
    """A preexec_fn: the launcher starts with this SIGINT disposition, whatever pytest itself inherited
    (`nohup` and `cmd &` in a non-interactive shell start a command with SIGINT ignored)."""
    return lambda: signal.signal(signal.SIGINT, disposition) and None


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    """The launcher's output up to the first line with ``marker`` (asserted to come)."""
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never came; output:\n{seen}")


def _engine_gone(http_port: int) -> bool:
    try:
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)
    except httpx.HTTPError:
        return True
    return False


APP = """
import os, sys, urllib.request
import dapr.ext.workflow as wf
port = os.environ["DAPR_GRPC_PORT"]
with urllib.request.urlopen(f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/healthz") as r:
    assert r.status == 204
rt = wf.WorkflowRuntime(host="127.0.0.1", port=port)
@rt.workflow(name="hello")
def hello(ctx, name):
    return f"hello {name} from {os.environ['APP_ID']}"
rt.start()
c = wf.DaprWorkflowClient(host="127.0.0.1", port=port)
iid = c.schedule_new_workflow(hello, input="world")
st = c.wait_for_workflow_completion(iid, timeout_in_seconds=30)
print("RESULT", st.serialized_output, flush=True)
rt.shutdown()
sys.exit(7)
"""


def test_run_starts_engine_exports_ports_and_returns_the_exit_code(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    (tmp_path / "app.py").write_text(APP)
    proc = _run(["--app-id", "shop", "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--",
                 sys.executable, "app.py"], tmp_path)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 7, out
    assert '== APP == RESULT "hello world from shop"' in out
    assert "== durahub == " in out and "event=server_started" in out
    # The engine it started is gone.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


PROBE = """
import os, sys, urllib.error, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics") as r:
    assert r.status == 200 and b"dapr_runtime_workflow" in r.read()
try:
    urllib.request.urlopen(f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/dashboard/")
    sys.exit("the dashboard is served")
except urllib.error.HTTPError as e:
    assert e.code == 404, e.code
print("PROBED", flush=True)
"""


def test_run_forwards_the_engine_options_given_to_it(tmp_path) -> None:
    """Every `serve` option works on `durahub run` too, and reaches the engine it starts: here a metrics port,
    no dashboard, a retention duration (forwarded in Go's notation) and the event loop."""
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    (tmp_path / "probe.py").write_text(PROBE)
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--metrics-port", str(metrics_port),
                 "--no-dashboard", "--retention-completed", "1h30m", "--event-loop", "asyncio", "--",
                 sys.executable, "probe.py", str(metrics_port)], tmp_path)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "== APP == PROBED" in out, out


def test_run_refuses_a_bad_engine_option_before_starting_anything(tmp_path) -> None:
    proc = _run(["--retention-completed", "soon", "--", sys.executable, "-c", "print('ran')"], tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "soon" in out and "ran" not in out


def test_run_attaches_to_a_running_engine_and_leaves_it_running(server: DurahubServer, tmp_path) -> None:
    """As the engine's own app it gets the engine's ports; as another app, an endpoint of that app's own."""
    show = [sys.executable, "-c", "import os; print('PORT', os.environ['DAPR_GRPC_PORT'], os.environ['APP_ID'])"]
    engine_app = server.metadata()["id"]
    ports = ["--grpc-port", str(server.grpc_port), "--http-port", str(server.http_port)]
    proc = _run(["--app-id", engine_app, *ports, "--", *show], tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "attaching" in out and f"PORT {server.grpc_port} {engine_app}" in out
    other = _run(["--app-id", "other-app", *ports, "--", *show], tmp_path)
    out, _ = other.communicate(timeout=60)
    own = {a["app_id"]: a for a in server.http_get("/durahub/v1/apps").json()}["other-app"]
    assert other.returncode == 0 and f"PORT {own['grpc_port']} other-app" in out, out
    assert own["grpc_port"] != server.grpc_port
    assert httpx.get(f"{server.http_url}/v1.0/healthz").status_code == 204


def test_run_forwards_sigterm_and_stops_the_engine(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\nprint('APP-IS-UP', flush=True)\ntime.sleep(60)"
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c", script],
                tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "APP-IS-UP" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 5, out
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)


INTERRUPTIBLE = ("import time\ntry:\n    print('APP-IS-UP', flush=True)\n    time.sleep(60)\n"
                 "except KeyboardInterrupt:\n    print('app: interrupted', flush=True)\n    raise SystemExit(3)")


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["sigint-default", "sigint-ignored"])
def test_ctrl_c_stops_app_and_engine(tmp_path, inherited) -> None:
    grpc_port, http_port = free_port(), free_port()
    # Its own session, like a terminal's foreground job: Ctrl-C goes to the whole process group. The SIGINT
    # disposition is set explicitly, not inherited from however pytest was started.
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c",
                 INTERRUPTIBLE], tmp_path, start_new_session=True, preexec_fn=_sigint(inherited))
    _read_until(proc, "APP-IS-UP")
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert "app: interrupted" in out and "event=server_stopped" in out
    assert _engine_gone(http_port)


def test_sigint_stops_run_started_with_sigint_ignored(tmp_path) -> None:
    """`nohup durahub run ...` / `durahub run ... &` in a script, then `kill -INT` to the launcher alone."""
    grpc_port, http_port = free_port(), free_port()
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c",
                 INTERRUPTIBLE], tmp_path, preexec_fn=_sigint(signal.SIG_IGN))
    _read_until(proc, "APP-IS-UP")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3, out
    assert "app: interrupted" in out and "event=server_stopped" in out
    assert time.monotonic() - started < 10, out
    assert _engine_gone(http_port)


def test_app_ignoring_sigint_and_sigterm_is_killed_after_the_grace(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    script = ("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('APP-IS-UP', flush=True)\ntime.sleep(60)")
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--", sys.executable, "-c", script],
                tmp_path, extra_env={"DURAHUB_RUN_STOP_GRACE": "0.5", "DURAHUB_RUN_KILL_GRACE": "0.5"})
    _read_until(proc, "APP-IS-UP")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL, out
    assert "sending it SIGTERM" in out and "sending it SIGKILL" in out and "event=server_stopped" in out
    assert time.monotonic() - started < 10, out
    assert _engine_gone(http_port)


# Checks the engine, waits until the other app is running too, waits argv[3] seconds, checks the engine again.
SHARING_APP = """
import os, sys, time, urllib.request
def healthy():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/healthz", timeout=5) as r:
            return r.status == 204
    except OSError:
        return False
assert healthy(), "no engine at start"
open(sys.argv[1], "w").close()
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]):
    assert time.monotonic() < deadline, "the other app never ran"
    time.sleep(0.05)
time.sleep(float(sys.argv[3]))
assert healthy(), "the engine went away under the app"
print("APP-DONE", flush=True)
"""


def test_runs_started_at_the_same_moment_share_one_engine(tmp_path) -> None:
    """`durahub run --app-id a -- ... & durahub run --app-id b -- ...`: no race for the ports, one engine, and
    it stays up until both apps have exited, whichever launcher started it."""
    (tmp_path / "app.py").write_text(SHARING_APP)
    for round_ in range(4):
        grpc_port, http_port = free_port(), free_port()
        ports = ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
        a_up, b_up = str(tmp_path / f"a{round_}"), str(tmp_path / f"b{round_}")
        # Back to back, so both look for an engine at about the same time; b's app outlives a's.
        procs = [_run(["--app-id", "a", *ports, "--", sys.executable, "app.py", a_up, b_up, "0"], tmp_path),
                 _run(["--app-id", "b", *ports, "--", sys.executable, "app.py", b_up, a_up, "1.5"], tmp_path)]
        outs = [p.communicate(timeout=60)[0] for p in procs]
        for p, out in zip(procs, outs, strict=True):
            assert p.returncode == 0 and "APP-DONE" in out, f"round {round_}:\n" + "\n-----\n".join(outs)
        assert sum(out.count("event=server_started") for out in outs) == 1, "\n-----\n".join(outs)
        assert sum("attaching" in out for out in outs) == 1
        assert _engine_gone(http_port)


def test_engine_stays_until_every_attached_app_has_exited(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    ports = ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    # Says it is up, waits for its file, checks the engine.
    app = ("import os, sys, time, urllib.request\nprint('APP-IS-UP', flush=True)\n"
           "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
           "urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/healthz\", timeout=5)")
    owner = _run(["--app-id", "a", *ports, "--", sys.executable, "-c", app, str(tmp_path / "a-go")], tmp_path)
    assert "event=server_started" in _read_until(owner, "APP-IS-UP")
    attached = _run(["--app-id", "b", *ports, "--", sys.executable, "-c", app, str(tmp_path / "b-go")], tmp_path)
    assert "attaching" in _read_until(attached, "APP-IS-UP")

    (tmp_path / "a-go").touch()
    _read_until(owner, "keeps running until the other apps attached to it have exited")
    time.sleep(0.5)
    assert owner.poll() is None and not _engine_gone(http_port)

    (tmp_path / "b-go").touch()
    out, _ = attached.communicate(timeout=30)
    assert attached.returncode == 0, out
    out, _ = owner.communicate(timeout=30)
    assert owner.returncode == 0 and "event=server_stopped" in out, out
    assert _engine_gone(http_port)


def test_engine_goes_when_run_is_killed(tmp_path) -> None:
    grpc_port, http_port = free_port(), free_port()
    proc = _run(["--grpc-port", str(grpc_port), "--http-port", str(http_port), "--",
                 sys.executable, "-c", "print('APP-IS-UP', flush=True); import time; time.sleep(60)"], tmp_path)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "APP-IS-UP" in line:
            break
    assert httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz").status_code == 204
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1)
        except httpx.HTTPError:
            return
        time.sleep(0.2)
    pytest.fail("the engine outlived a killed `durahub run`")
