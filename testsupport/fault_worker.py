"""A worker process for the fault tests: `python -m testsupport.fault_worker <grpc port>`.

Registers faultlib's workflows and activities and runs until SIGTERM (or SIGKILL, on purpose).
"""

from __future__ import annotations

import signal
import sys
import threading

import dapr.ext.workflow as wf

from testsupport import faultlib


def main() -> None:
    port = sys.argv[1]
    rt = wf.WorkflowRuntime(host="127.0.0.1", port=port, maximum_thread_pool_workers=64)
    for fn in faultlib.WORKFLOWS:
        rt.register_workflow(fn)
    for fn in faultlib.ACTIVITIES:
        rt.register_activity(fn)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rt.start()
    print("fault worker started", flush=True)
    stop.wait()
    rt.shutdown()


if __name__ == "__main__":
    main()
