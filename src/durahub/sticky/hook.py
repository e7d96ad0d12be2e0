"""Run a function on a module right after it is imported, without importing it first (an app process may
never use it; importing the SDK eagerly would slow every Python process started with the sticky site dir)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, after: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._after = after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._after(module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_filename, ... (tracebacks, inspect)
        return getattr(self._loader, name)


class PatchOnImport(importlib.abc.MetaPathFinder):
    """A meta path finder that finds nothing itself: it wraps the loader the other finders return for one
    module name so that `after(module)` runs once the module has executed, then removes itself."""

    def __init__(self, name: str, after: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.after = after

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        self.remove()
        spec: importlib.machinery.ModuleSpec | None = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        if spec is None:
            return None
        if spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, self.after)
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def after_import(name: str, after: Callable[[ModuleType], None]) -> None:
    """`after(module)` now if `name` is imported already, else right after it is."""
    module = sys.modules.get(name)
    if module is not None:
        after(module)
        return
    sys.meta_path.insert(0, PatchOnImport(name, after))
