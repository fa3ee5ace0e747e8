"""On PYTHONPATH, makes every AOTInductor build crash its process at once (a segmentation fault), as loading a
package does on torch 2.11 with CUDA 13: for tests of what a server does next (tests/runtime/test_upgrade.py).

A Python process imports this module at start; it patches explorer.runtime.ahead when that is first imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys


def _crash(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


class _CrashingAhead(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name != "explorer.runtime.ahead":
            return None
        sys.meta_path.remove(self)  # the module's own spec, found as usual
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.loader is not None
        run = spec.loader.exec_module

        def exec_module(module: object) -> None:
            run(module)
            module.build = _crash  # type: ignore[attr-defined]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


sys.meta_path.insert(0, _CrashingAhead())
