"""`durahub run`: an engine next to an app process, the way `dapr run` pairs daprd with an app.

Several launchers on one HTTP port share one engine: Dapr's multi-app examples are started as
`durahub run --app-id a -- python a.py & durahub run --app-id b -- python b.py`. They coordinate through two
lock files per HTTP port in a per-user temp directory, e.g. /tmp/durahub-run-1000/3500.start.lock (flock:
released by the kernel if a launcher dies):

- ``*.start.lock``, held exclusively from "does an engine answer on the port?" until "the one we started
  answers": launchers started at the same moment do not race for the ports; the first starts the engine (and
  owns it), the others find it ready and attach to it.
- ``*.users.lock``, held shared by every attached launcher while its app runs. The owner keeps its engine
  running after its own app has exited until it gets this lock exclusively, i.e. until every attached app has
  exited (the engine's output still goes to the owner's stdout), then stops it. A SIGINT/SIGTERM to the owner
  while it waits stops the engine at once. An engine `durahub run` did not start is never stopped.
  Limits: if the owner is killed (SIGKILL), its engine goes with it, attached apps or not; launchers of other
  users do not register with the owner.

Signals: `durahub run` handles SIGINT and SIGTERM whatever dispositions it inherited (`nohup`, or `cmd &` in a
non-interactive shell, start it with SIGINT and SIGQUIT ignored), resets SIGINT/SIGTERM/SIGQUIT to their
defaults in its children, passes the signal on to the app and, if the app does not exit, escalates to SIGTERM
and then SIGKILL. It then stops the engine it owns, and exits with the app's exit code (128+N for signal N).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import IO

ENGINE_PREFIX = "== durahub == "
APP_PREFIX = "== APP == "
READY_TIMEOUT = 30.0
# A terminal's Ctrl-C reaches the app by itself (same process group): SIGINT is passed on only if the app is
# still running this long after it, so it is not delivered twice at once.
SIGINT_FORWARD_DELAY = 1.0
# How long an app that does not exit gets before the next, harsher signal (seconds; tests shorten them):
# DURAHUB_RUN_STOP_GRACE after the passed-on SIGINT before SIGTERM, DURAHUB_RUN_KILL_GRACE after SIGTERM
# before SIGKILL.
DEFAULT_GRACE = 10.0


def engine_ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1) as resp:
            return bool(resp.status == 204)
    except (urllib.error.URLError, OSError):
        return False


def _http_json(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    """GET (or POST `body` to) a URL of the engine's HTTP API, with the API token if one is set."""
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("DAPR_API_TOKEN")
    if token:
        headers["dapr-api-token"] = token
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read() or b"{}"))


def app_endpoint(http_port: int, app_id: str) -> tuple[int, int] | None:
    """The (gRPC, HTTP) ports of `app_id` on the engine serving HTTP on `http_port`: None when it is the engine's
    own app (its main ports), else the app's own endpoint, which the engine opens if it has none yet."""
    base = f"http://127.0.0.1:{http_port}"
    if _http_json(f"{base}/v1.0/metadata").get("id") == app_id:
        return None
    opened = _http_json(f"{base}/durahub/v1/apps", {"app_id": app_id})
    return int(str(opened["grpc_port"])), int(str(opened["http_port"]))


def default_app_id(command: list[str]) -> str:
    """A stable app id named after what the command runs (its script or module), so that apps started without
    `--app-id` differ from each other and keep their id across restarts: `python3 multi-app1.py` ->
    `multi-app1`, `uvicorn examples.management_api.app:app` -> `examples-management_api-app-app`."""
    launchers = {"python", "python3", "uvicorn", "gunicorn", "hypercorn", "fastapi", "flask"}
    for word in command:
        base = os.path.basename(word)
        if word == "-c":
            break  # inline code names nothing
        if word.startswith("-") or base in launchers or re.fullmatch(r"python3(\.\d+)?", base):
            continue
        name = re.sub(r"\.py$", "", base)
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
        if name:
            return name
    return "durahub-app"


def _pump(stream: IO[bytes], prefix: str, out: IO[str]) -> None:
    """Copy a child's output line by line with a prefix, so engine and app logs stay distinguishable."""
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode("utf-8", "replace"))
        out.flush()
    stream.close()


def _child_setup() -> None:
    """In a child, before exec: default signal dispositions, and SIGTERM if `durahub run` itself dies.

    Ignored signals stay ignored across exec, so an app started by a `durahub run` that inherited SIGINT ignored
    could not be interrupted. The death signal leaves nothing behind holding the ports.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(
    cmd: list[str], prefix: str, env: dict[str, str], engine: bool = False
) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    # The engine gets its own session: a terminal's Ctrl-C reaches only the app, and the engine is stopped
    # after the app has exited.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_child_setup, start_new_session=engine)
    assert proc.stdout is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, sys.stdout), daemon=True)
    pump.start()
    return proc, pump


def _grace(name: str) -> float:
    return float(os.environ.get(name, DEFAULT_GRACE))


def _stop_app(app: subprocess.Popen[bytes], signum: int) -> None:
    """In a thread, once `durahub run` got SIGINT/SIGTERM: pass the signal on to the app, then insist."""
    if signum == signal.SIGINT:
        steps = [(SIGINT_FORWARD_DELAY, signal.SIGINT), (_grace("DURAHUB_RUN_STOP_GRACE"), signal.SIGTERM)]
    else:
        steps = [(0.0, signal.SIGTERM)]
    steps.append((_grace("DURAHUB_RUN_KILL_GRACE"), signal.SIGKILL))
    for delay, sig in steps:
        try:
            app.wait(timeout=delay)
            return
        except subprocess.TimeoutExpired:
            pass
        if sig != signum:
            print(f"{ENGINE_PREFIX}the app is still running; sending it {sig.name}", flush=True)
        app.send_signal(sig)


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """SIGINT/SIGTERM handlers of `durahub run`; installed over whatever it inherited, SIG_IGN included."""

    def __init__(self) -> None:
        # starting: no app yet, a signal aborts; running: the app gets it; draining: the app has exited and the
        # engine waits for attached apps, a signal stops it now; stopping: the engine is being stopped.
        self.phase = "starting"
        self.app: subprocess.Popen[bytes] | None = None
        self.stop_now = False
        self._forwarding = False
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.phase == "starting":
            raise _Interrupted(signum)
        if self.phase == "draining":
            self.stop_now = True
        elif self.phase == "running" and self.app is not None:
            if not self._forwarding:
                self._forwarding = True
                threading.Thread(target=_stop_app, args=(self.app, signum), daemon=True).start()
            elif signum == signal.SIGTERM:
                self.app.send_signal(signum)  # asked again, more firmly: no need to wait for the grace


def _lock_file(http_port: int, kind: str) -> int | None:
    # Left in place afterwards: deleting a lock file races with a launcher that has just opened it.
    directory = os.path.join(tempfile.gettempdir(), f"durahub-run-{os.getuid()}")
    path = os.path.join(directory, f"{http_port}.{kind}.lock")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by the children (O_CLOEXEC)
    except OSError as exc:
        print(f"{ENGINE_PREFIX}cannot open {path} ({exc}); launchers started at the same moment may race for "
              "the ports", file=sys.stderr, flush=True)
        return None


def _flock(fd: int | None, operation: int) -> None:
    if fd is not None:
        fcntl.flock(fd, operation)


def _wait_for_attached_apps(start_lock: int | None, users_lock: int | None, signals: _Signals) -> None:
    """Return once no other launcher uses our engine, holding the start lock so that none attaches to it while
    it is being stopped (the locks go when their files are closed)."""
    announced = False
    while True:
        _flock(start_lock, fcntl.LOCK_EX)
        if signals.stop_now:
            return
        try:
            _flock(users_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            _flock(start_lock, fcntl.LOCK_UN)
        if not announced:
            print(f"{ENGINE_PREFIX}the app has exited; the engine keeps running until the other apps attached to "
                  "it have exited (SIGINT/SIGTERM stops it now)", flush=True)
            announced = True
        time.sleep(0.2)


def run_with_engine(command: list[str], *, app_id: str, db: str, grpc_port: int, http_port: int,
                    log_level: str = "info") -> int:
    """Run `command` next to an engine (started, or attached to; see the module docstring); return its exit
    code, 128+N if a signal N ended it."""
    signals = _Signals()
    start_lock, users_lock = _lock_file(http_port, "start"), _lock_file(http_port, "users")
    engine: subprocess.Popen[bytes] | None = None
    engine_pump: threading.Thread | None = None
    try:
        _flock(start_lock, fcntl.LOCK_EX)
        if engine_ready(http_port):
            _flock(users_lock, fcntl.LOCK_SH)  # its owner keeps it running until our app has exited
            try:
                own = app_endpoint(http_port, app_id)
            except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
                print(f"{ENGINE_PREFIX}cannot get an endpoint for app '{app_id}' from the engine on HTTP port"
                      f" {http_port}: {exc}", file=sys.stderr, flush=True)
                return 1
            where = ""
            if own is not None:
                where = f", on the app's own endpoint (gRPC port {own[0]}, HTTP port {own[1]})"
            print(f"{ENGINE_PREFIX}attaching to the engine already serving on HTTP port {http_port} as app"
                  f" '{app_id}'{where}", flush=True)
            if own is not None:
                grpc_port, http_port = own
        else:
            cmd = [sys.executable, "-m", "durahub", "serve", "--grpc-port", str(grpc_port), "--http-port",
                   str(http_port), "--db", db, "--app-id", app_id, "--log-level", log_level]
            engine, engine_pump = _spawn(cmd, ENGINE_PREFIX, dict(os.environ), engine=True)
            deadline = time.monotonic() + READY_TIMEOUT
            while not engine_ready(http_port):
                if engine.poll() is not None or time.monotonic() > deadline:
                    print(f"{ENGINE_PREFIX}engine failed to start (exit code {engine.poll()})", file=sys.stderr,
                          flush=True)
                    return 1
                time.sleep(0.05)
        _flock(start_lock, fcntl.LOCK_UN)

        env = dict(os.environ, DAPR_GRPC_PORT=str(grpc_port), DAPR_HTTP_PORT=str(http_port), APP_ID=app_id)
        try:
            app, app_pump = _spawn(command, APP_PREFIX, env)
        except OSError as exc:
            print(f"{ENGINE_PREFIX}cannot run {command[0]!r}: {exc}", file=sys.stderr, flush=True)
            return 127
        signals.app, signals.phase = app, "running"
        code = app.wait()
        app_pump.join(timeout=5)
        if engine is not None:
            signals.phase = "draining"
            _wait_for_attached_apps(start_lock, users_lock, signals)
    except _Interrupted as exc:
        print(f"{ENGINE_PREFIX}interrupted before the app was started", file=sys.stderr, flush=True)
        code = -exc.signum
    finally:
        signals.phase = "stopping"
        _stop(engine)
        if engine_pump is not None:
            engine_pump.join(timeout=5)
        for fd in (start_lock, users_lock):
            if fd is not None:
                os.close(fd)
        signals.restore()
    # A child killed by a signal reports -N; shells report 128+N.
    return code if code >= 0 else 128 - code


def _stop(engine: subprocess.Popen[bytes] | None) -> None:
    if engine is None or engine.poll() is not None:
        return
    engine.send_signal(signal.SIGTERM)
    try:
        engine.wait(timeout=15)
    except subprocess.TimeoutExpired:
        engine.kill()
        engine.wait()
