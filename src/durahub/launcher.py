"""`durahub run`: an engine next to an app process, the way `dapr run` pairs daprd with an app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import IO

ENGINE_PREFIX = "== durahub == "
APP_PREFIX = "== APP == "
READY_TIMEOUT = 30.0


def engine_ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v1.0/healthz", timeout=1) as resp:
            return resp.status == 204
    except (urllib.error.URLError, OSError):
        return False


def _pump(stream: IO[bytes], prefix: str, out: IO[str]) -> None:
    """Copy a child's output line by line with a prefix, so engine and app logs stay distinguishable."""
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode("utf-8", "replace"))
        out.flush()
    stream.close()


def _die_with_parent() -> None:
    """In a child: get SIGTERM if `durahub run` itself dies, so nothing is left behind holding the ports."""
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
                            preexec_fn=_die_with_parent, start_new_session=engine)
    assert proc.stdout is not None
    pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, sys.stdout), daemon=True)
    pump.start()
    return proc, pump


def run_with_engine(command: list[str], *, app_id: str, db: str, grpc_port: int, http_port: int,
                    log_level: str = "info") -> int:
    engine: subprocess.Popen[bytes] | None = None
    engine_pump: threading.Thread | None = None
    if engine_ready(http_port):
        print(f"{ENGINE_PREFIX}attaching to the engine already serving on HTTP port {http_port}", flush=True)
    else:
        cmd = [sys.executable, "-m", "durahub", "serve", "--grpc-port", str(grpc_port), "--http-port", str(http_port),
               "--db", db, "--app-id", app_id, "--log-level", log_level]
        engine, engine_pump = _spawn(cmd, ENGINE_PREFIX, dict(os.environ), engine=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not engine_ready(http_port):
            if engine.poll() is not None or time.monotonic() > deadline:
                print(f"{ENGINE_PREFIX}engine failed to start (exit code {engine.poll()})", file=sys.stderr, flush=True)
                _stop(engine)
                return 1
            time.sleep(0.05)

    env = dict(os.environ, DAPR_GRPC_PORT=str(grpc_port), DAPR_HTTP_PORT=str(http_port), APP_ID=app_id)
    try:
        app, app_pump = _spawn(command, APP_PREFIX, env)
    except OSError as exc:
        print(f"{ENGINE_PREFIX}cannot run {command[0]!r}: {exc}", file=sys.stderr, flush=True)
        _stop(engine)
        return 127

    def forward(signum: int, frame: object) -> None:
        if app.poll() is not None:
            return
        if signum == signal.SIGINT:
            # A terminal's Ctrl-C has reached the app already (same process group); pass it on only if the
            # interrupt was aimed at `durahub run` alone and the app is still running a moment later.
            timer = threading.Timer(1.0, lambda: app.poll() is None and app.send_signal(signal.SIGINT))
            timer.daemon = True
            timer.start()
        else:
            app.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = app.wait()
        app_pump.join(timeout=5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(engine)
        if engine_pump is not None:
            engine_pump.join(timeout=5)
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
