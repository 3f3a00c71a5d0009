"""Load kubernetes_asyncio's configuration and transport without its generated models.

``import kubernetes_asyncio`` executes the package's ``__init__``, which imports
every generated API and model class: about 60 MiB of resident memory that
fluxd never uses, since it sends and receives plain JSON. This module registers
empty package objects for ``kubernetes_asyncio``, ``kubernetes_asyncio.client``
and ``kubernetes_asyncio.client.models`` (pointing at the real directories), so
that only the modules we need are executed: the client configuration, the
aiohttp transport, ``ApiClient`` and the kubeconfig/in-cluster loaders.

If anything about the installed version does not fit, the ordinary (heavy)
import is used instead; behaviour is the same either way.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any


def _stub(name: str, directory: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(directory)]
    module.__package__ = name
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    assert spec is not None
    spec.submodule_search_locations = [str(directory)]
    module.__spec__ = spec
    return module


def _load_lean() -> tuple[Any, Any]:
    spec = importlib.util.find_spec("kubernetes_asyncio")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("kubernetes_asyncio is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    package = _stub("kubernetes_asyncio", root)
    client = _stub("kubernetes_asyncio.client", root / "client")
    models = _stub("kubernetes_asyncio.client.models", root / "client" / "models")
    sys.modules["kubernetes_asyncio"] = package
    sys.modules["kubernetes_asyncio.client"] = client
    sys.modules["kubernetes_asyncio.client.models"] = models
    package.client = client  # type: ignore[attr-defined]
    client.models = models  # type: ignore[attr-defined]
    configuration = importlib.import_module("kubernetes_asyncio.client.configuration")
    client.Configuration = configuration.Configuration  # type: ignore[attr-defined]
    importlib.import_module("kubernetes_asyncio.client.exceptions")
    importlib.import_module("kubernetes_asyncio.client.rest")
    api_client = importlib.import_module("kubernetes_asyncio.client.api_client")
    client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
    config = importlib.import_module("kubernetes_asyncio.config")
    package.config = config  # type: ignore[attr-defined]
    return client, config


def load() -> tuple[Any, Any]:
    """``(client, config)`` modules: lean when possible, the full package otherwise."""
    loaded = sys.modules.get("kubernetes_asyncio.client")
    if loaded is not None and hasattr(loaded, "ApiClient"):
        return loaded, importlib.import_module("kubernetes_asyncio.config")
    try:
        return _load_lean()
    except Exception:
        for name in list(sys.modules):
            if name == "kubernetes_asyncio" or name.startswith("kubernetes_asyncio."):
                del sys.modules[name]
        full_client = importlib.import_module("kubernetes_asyncio.client")
        return full_client, importlib.import_module("kubernetes_asyncio.config")
