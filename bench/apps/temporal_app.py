"""The benchmark workflows for Temporal (temporalio SDK), and the worker process that runs them.

    python -m bench.apps.temporal_app --address 127.0.0.1:PORT     # prints "WORKER-READY" once polling

Normal (not local) activities, one task queue; the worker is its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

TASK_QUEUE = "bench"
TIMEOUT = timedelta(minutes=10)


@activity.defn(name="noop")
async def noop(value: int) -> int:
    return value


@workflow.defn(name="bench_order")
class BenchOrder:
    @workflow.run
    async def run(self, value: int) -> int:
        a, b = await asyncio.gather(
            workflow.execute_activity(noop, 1, start_to_close_timeout=TIMEOUT),
            workflow.execute_activity(noop, 2, start_to_close_timeout=TIMEOUT),
        )
        c = await workflow.execute_activity(noop, 3, start_to_close_timeout=TIMEOUT)
        return a + b + c


@workflow.defn(name="bench_fanout")
class BenchFanout:
    @workflow.run
    async def run(self, n: int) -> int:
        results = await asyncio.gather(
            *[workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT) for i in range(n)]
        )
        return len(results)


@workflow.defn(name="bench_chain")
class BenchChain:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(noop, i, start_to_close_timeout=TIMEOUT)
        return total


@workflow.defn(name="bench_wait")
class BenchWait:
    def __init__(self) -> None:
        self.value: int | None = None

    @workflow.signal(name="go")
    def go(self, value: int) -> None:
        self.value = value

    @workflow.run
    async def run(self, _: int) -> int | None:
        await workflow.wait_condition(lambda: self.value is not None)
        return self.value


async def serve(address: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[BenchOrder, BenchFanout, BenchChain, BenchWait],
                      activities=[noop]):
        print("WORKER-READY", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    args = p.parse_args(argv)
    asyncio.run(serve(args.address))
    return 0


if __name__ == "__main__":
    sys.exit(main())
