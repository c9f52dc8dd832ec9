"""Packages that are also functions: `tuneval.train(...)` and `tuneval.evaluate(...)`.

`from tuneval import train` is the Python API's name for training, and `tuneval.train` is also
the training package: Python sets that attribute to the package as soon as any of its modules is
imported, whatever tuneval/__init__.py says. So the package itself is made callable, forwarding
to the API function, and the name works whichever one Python finds.
"""

from __future__ import annotations

import importlib
import sys
import types


def make_callable(package: str, entry: str, function: str) -> None:
    """Calling the module `package` calls `entry.function` (imported on first call)."""

    class CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(entry), function)(*args, **kwargs)

    sys.modules[package].__class__ = CallablePackage
