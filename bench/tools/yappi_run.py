"""Run a module under yappi (CPU clock, every thread) and write where its CPU went as JSON on exit.

    python -m bench.tools.yappi_run OUT.json MODULE [ARGS...]

SIGUSR1 clears what was collected so far (the driver sends it once the process is ready, so start-up and
imports stay out of the profile).

Used by the durahub driver's --profile mode for the engine (`durahub serve`) and the SDK worker
(bench.apps.dapr_app); both exit cleanly on SIGTERM, which is when the stats are written. yappi's CPU clock
is per-thread CPU time, so time spent inside C code (sqlite3, protobuf, grpc) counts for the Python
function that called it; waiting does not count.
"""

from __future__ import annotations

import json
import runpy
import signal
import sys
import time


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if sys.argv[1:2] in (["-h"], ["--help"]) else 2)
    out, module, *args = sys.argv[1:]
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=True, profile_threads=True)
    t0 = [time.process_time()]

    def reset(*_: object) -> None:
        yappi.clear_stats()
        t0[0] = time.process_time()

    signal.signal(signal.SIGUSR1, reset)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        yappi.stop()
        total = time.process_time() - t0[0]
        stats = []
        for f in yappi.get_func_stats():
            where = "/".join(f.module.split("/")[-2:])
            stats.append({"name": f"{f.name} ({where}:{f.lineno})", "self_s": f.tsub, "incl_s": f.ttot,
                          "calls": f.ncall})
        top_self = sorted(stats, key=lambda s: -s["self_s"])[:30]
        top_incl = sorted(stats, key=lambda s: -s["incl_s"])[:60]
        with open(out, "w") as fh:
            json.dump({"process_cpu_s": total, "self": top_self, "inclusive": top_incl}, fh)


if __name__ == "__main__":
    main()
