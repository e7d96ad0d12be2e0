"""The engine's CPU floor per gRPC call: what one trivial unary call costs `durahub serve`.

    .venv19/bin/python -m bench.tools.rpc_cost [--calls 3000] [--threads 4]

Starts the engine on a fresh SQLite file and sends GetInstance for an unknown id (one indexed read of nothing)
from several client threads; reports the engine's CPU per call from /proc. Every order workflow costs the
engine 8 such unary calls that the SDK makes (StartInstance, WaitForInstanceCompletion, 3 x
CompleteOrchestratorTask, 3 x CompleteActivityTask) plus 6 stream messages, so this sets how far engine-side
work per workflow can fall without leaving grpcio's asyncio server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from bench import common
from bench.systems.durahub import Deployment
from durahub.protos import pb, taskhub_grpc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=3000, help="per thread")
    p.add_argument("--threads", type=int, default=4)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="durahub-rpc-") as tmp:
        dep = Deployment("sqlite", "full", Path(tmp), "")
        try:
            cmd = dep.engine.args
            assert isinstance(cmd, list)
            target = f"127.0.0.1:{cmd[cmd.index('--grpc-port') + 1]}"
            stub = taskhub_grpc.TaskHubSidecarServiceStub(grpc.insecure_channel(target))
            request = pb.GetInstanceRequest(instanceId="no-such-instance")
            for _ in range(200):  # warm-up
                stub.GetInstance(request)

            def run() -> None:
                for _ in range(args.calls):
                    stub.GetInstance(request)

            cpu0, t0 = common.cpu_seconds(dep.engine.pid), time.perf_counter()
            threads = [threading.Thread(target=run) for _ in range(args.threads)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            cpu = common.cpu_seconds(dep.engine.pid) - cpu0
        finally:
            dep.close()
    n = args.calls * args.threads
    print(f"engine CPU per unary call: {cpu / n * 1e6:.0f} us ({n} GetInstance calls from {args.threads} threads,"
          f" {n / wall:.0f} calls/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
