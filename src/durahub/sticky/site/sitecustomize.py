"""Put first on PYTHONPATH by `durahub run --sticky-worker` (see durahub/sticky/__init__.py): runs the
sitecustomize this one shadows, if any, then, if DURAHUB_STICKY_WORKER=1, makes the SDK's worker sticky when the
app imports it. It never stops the app from starting: a failure is printed and the SDK left as it is."""

import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _run_shadowed_sitecustomize() -> None:
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["_durahub_shadowed_sitecustomize"] = module
    spec.loader.exec_module(module)


def _install_sticky() -> None:
    if os.environ.get("DURAHUB_STICKY_WORKER", "") in ("", "0"):
        return
    package_dir = os.path.dirname(_HERE)
    name = "_durahub_sticky"  # by file path: the app's environment need not have durahub installed
    spec = importlib.util.spec_from_file_location(name, os.path.join(package_dir, "__init__.py"),
                                                  submodule_search_locations=[package_dir])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.install()


for _step in (_run_shadowed_sitecustomize, _install_sticky):
    try:
        _step()
    except Exception as _exc:  # noqa: BLE001 - never break the app's start-up
        print(f"durahub sticky worker: {_step.__name__} failed: {_exc!r}", file=sys.stderr)
