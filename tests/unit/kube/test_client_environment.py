"""The API client reads the environment once, as Kubernetes clients do, not on every request."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fluxd.kube.client import Kube, api_client, environment_proxy, k8s_client


async def test_a_netrc_entry_for_the_api_server_is_never_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    async def namespaces(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"kind": "NamespaceList", "items": []})

    app = web.Application()
    app.router.add_get("/api/v1/namespaces", namespaces)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password not-for-kubernetes\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    try:
        configuration = k8s_client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.port}"
        kube = Kube(api_client(configuration))
        try:
            await kube.request("GET", "/api/v1/namespaces")
        finally:
            await kube.close()
    finally:
        await server.close()
    assert seen == [None]


def test_the_proxy_comes_from_the_environment_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert environment_proxy("https://api.example:6443") == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "api.example,.svc")
    assert environment_proxy("https://api.example:6443") is None
    assert environment_proxy("https://kubernetes.default.svc:443") is None
    assert environment_proxy("https://other.example:6443") == "http://proxy.example:3128"


async def test_a_kubeconfig_proxy_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    configuration = k8s_client.Configuration()
    configuration.host = "https://api.example:6443"
    configuration.proxy = "http://configured.example:8080"
    api = api_client(configuration)
    try:
        assert configuration.proxy == "http://configured.example:8080"
        assert api.rest_client.proxy == "http://configured.example:8080"
    finally:
        await api.close()
