"""Modules loaded on first use, so the daemon's memory pays only for the features in use.

``jwt`` and ``cryptography`` together add about 8 MiB to the process (the
Rust extension and its OpenSSL bindings) and serve only some receivers, one
notification provider and the checks of certificates and SSH keys in Secrets.
A module made here is an ordinary module object whose code runs at its first
attribute access; importing it under ``TYPE_CHECKING`` keeps the types.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name`` as a module that is executed when one of its attributes is first read."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
