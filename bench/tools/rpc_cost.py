"""The engine's CPU floor per gRPC call: what one trivial unary call costs `durahub serve`, and what it costs
a grpcio server that does nothing at all.

    .venv19/bin/python -m bench.tools.rpc_cost [--calls 3000] [--threads 4] [--bare]

Starts the engine on a fresh SQLite file and sends GetInstance for an unknown id (one indexed read of nothing)
from several client threads; reports the engine's CPU per call from /proc. Every order workflow costs the
engine 8 such unary calls that the SDK makes (StartInstance, WaitForInstanceCompletion, 3 x
CompleteOrchestratorTask, 3 x CompleteActivityTask) plus 6 stream messages, so this sets how far engine-side
work per workflow can fall without leaving grpcio's asyncio server.

`--bare` also measures, with the same client, grpcio servers whose one method echoes its request bytes (no
protobuf, no storage, no durahub): asyncio with uvloop (what `durahub serve` runs), plain asyncio, and the
synchronous server on a thread pool. Their CPU per call is the floor of any engine built on grpcio.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from bench import common
from bench.systems.durahub import Deployment
from durahub.protos import pb, taskhub_grpc

BARE_KINDS = ("asyncio+uvloop", "asyncio", "sync")
_ECHO = "/bench.Bare/Echo"


def _same(b: bytes) -> bytes:
    return b


def serve_bare(kind: str, port: int) -> None:
    """A grpcio server with one method that answers its request's bytes; prints 'ready' once listening."""
    def handler(request: bytes, context: object) -> bytes:
        return request

    async def async_handler(request: bytes, context: object) -> bytes:
        return request

    def handlers(fn: object) -> list[grpc.GenericRpcHandler]:
        method = grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_same, response_serializer=_same)
        return [grpc.method_handlers_generic_handler("bench.Bare", {"Echo": method})]

    if kind == "sync":
        from concurrent.futures import ThreadPoolExecutor

        server = grpc.server(ThreadPoolExecutor(max_workers=4), handlers=handlers(handler))
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("ready", flush=True)
        server.wait_for_termination()
        return

    async def run() -> None:
        aserver = grpc.aio.server(handlers=handlers(async_handler))
        aserver.add_insecure_port(f"127.0.0.1:{port}")
        await aserver.start()
        print("ready", flush=True)
        await aserver.wait_for_termination()

    if kind == "asyncio+uvloop":
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


def _load(call: Callable[[], object], calls: int, threads: int, pid: int) -> tuple[float, float]:
    """CPU seconds of process `pid` per call, and calls per second, for `threads` x `calls` calls."""
    for _ in range(200):  # warm-up
        call()

    def run() -> None:
        for _ in range(calls):
            call()

    cpu0, t0 = common.cpu_seconds(pid), time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    wall = time.perf_counter() - t0
    n = calls * threads
    return (common.cpu_seconds(pid) - cpu0) / n, n / wall


def bare_floor(kind: str, calls: int, threads: int) -> tuple[float, float]:
    port = common.free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.tools.rpc_cost", "--serve-bare", kind, str(port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(_ECHO, request_serializer=_same, response_deserializer=_same)
            payload = b"x" * 100
            return _load(lambda: echo(payload), calls, threads, server.pid)
    finally:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=3000, help="per thread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--bare", action="store_true", help="also measure grpcio servers that only echo")
    p.add_argument("--serve-bare", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_bare:
        serve_bare(args.serve_bare[0], int(args.serve_bare[1]))
        return 0
    with tempfile.TemporaryDirectory(prefix="durahub-rpc-") as tmp:
        dep = Deployment("sqlite", "full", Path(tmp), "")
        try:
            cmd = dep.engine.args
            assert isinstance(cmd, list)
            target = f"127.0.0.1:{cmd[cmd.index('--grpc-port') + 1]}"
            stub = taskhub_grpc.TaskHubSidecarServiceStub(grpc.insecure_channel(target))
            request = pb.GetInstanceRequest(instanceId="no-such-instance")
            per_call, rate = _load(lambda: stub.GetInstance(request), args.calls, args.threads, dep.engine.pid)
        finally:
            dep.close()
    n = args.calls * args.threads
    print(f"engine CPU per unary call: {per_call * 1e6:.0f} us ({n} GetInstance calls from {args.threads} threads,"
          f" {rate:.0f} calls/s)")
    if args.bare:
        for kind in BARE_KINDS:
            per_call, rate = bare_floor(kind, args.calls, args.threads)
            print(f"bare grpcio server ({kind}), CPU per echoed call: {per_call * 1e6:.0f} us ({rate:.0f} calls/s)")
        print("an order workflow is 8 unary calls and 6 stream messages to the engine (fixed by the SDK)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
