"""Remote kubeconfigs: read from a Secret, sanitised as Flux does, one client per Secret."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import yaml

from fluxd.kube.client import Kube
from fluxd.kube.remote import (
    KubeConfigError,
    RemoteClusters,
    connect,
    kubeconfig_from_secret,
    parse_kubeconfig,
)
from fluxd.kube.resources import Resource
from testenv.certs import Pki, write_pki
from tests.support.remote import embedded_kubeconfig

SERVER = "https://10.1.2.3:6443"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(Path(tmp_path_factory.mktemp("pki")))


def _secret(data: dict[str, str], *, version: str = "1") -> dict[str, Any]:
    return {
        "metadata": {"name": "prod-kubeconfig", "namespace": "apps", "resourceVersion": version},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def _kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> bytes:
    config = {
        "current-context": "prod",
        "contexts": [
            {"name": "other", "context": {"cluster": "other", "user": "other"}},
            {"name": "prod", "context": {"cluster": "prod", "user": "deployer"}},
        ],
        "clusters": [
            {"name": "other", "cluster": {"server": "https://other:6443"}},
            {"name": "prod", "cluster": {"server": SERVER + "/", **(cluster or {})}},
        ],
        "users": [{"name": "other", "user": {}}, {"name": "deployer", "user": user}],
    }
    return yaml.safe_dump(config).encode()


# -- which key of the Secret ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        pytest.param({"value": "a", "value.yaml": "b"}, None, b"a", id="value-first"),
        pytest.param({"value.yaml": "b"}, None, b"b", id="then-value.yaml"),
        pytest.param({"value": "a", "custom": "c"}, "custom", b"c", id="named-key"),
    ],
)
def test_the_kubeconfig_is_read_from_the_keys_flux_reads(
    data: dict[str, str], key: str | None, expected: bytes
) -> None:
    found = kubeconfig_from_secret(_secret(data), namespace="apps", name="prod", key=key)
    assert found == expected


@pytest.mark.parametrize(
    ("secret", "key", "message"),
    [
        pytest.param(
            None,
            None,
            "unable to read KubeConfig secret 'apps/prod' error: secrets \"prod\" not found",
            id="no-secret",
        ),
        pytest.param(
            _secret({"other": "x"}),
            None,
            "KubeConfig secret 'apps/prod' does not contain a 'value' key with a kubeconfig",
            id="no-default-key",
        ),
        pytest.param(
            _secret({"value": "x"}),
            "custom",
            "KubeConfig secret 'apps/prod' does not contain a 'custom' key with a kubeconfig",
            id="no-named-key",
        ),
    ],
)
def test_a_missing_kubeconfig_is_reported_as_flux_does(
    secret: dict[str, Any] | None, key: str | None, message: str
) -> None:
    with pytest.raises(KubeConfigError) as raised:
        kubeconfig_from_secret(secret, namespace="apps", name="prod", key=key)
    assert str(raised.value) == message


# -- what of the kubeconfig is used --------------------------------------------


def test_the_current_context_gives_server_and_credentials() -> None:
    remote = parse_kubeconfig(_kubeconfig({"token": "s3cr3t"}, {"tls-server-name": "api"}))
    assert remote.server == SERVER
    assert remote.authorization == "Bearer s3cr3t"
    assert remote.tls_server_name == "api"


def test_basic_auth_is_used_when_there_is_no_token() -> None:
    remote = parse_kubeconfig(_kubeconfig({"username": "u", "password": "p"}))
    assert remote.authorization == f"Basic {base64.b64encode(b'u:p').decode()}"


@pytest.mark.parametrize(
    ("user", "cluster", "named"),
    [
        pytest.param(
            {"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}},
            None,
            "'exec'",
            id="exec",
        ),
        pytest.param({"auth-provider": {"name": "gcp"}}, None, "'auth-provider'", id="plugin"),
        pytest.param({"tokenFile": "/var/run/token"}, None, "'tokenFile'", id="token-file"),
        pytest.param({"client-key": "/etc/key.pem"}, None, "'client-key'", id="key-file"),
        pytest.param(
            {}, {"certificate-authority": "/etc/ca.crt"}, "'certificate-authority'", id="ca-file"
        ),
    ],
)
def test_what_would_run_commands_or_read_daemon_files_is_refused_by_name(
    user: dict[str, Any], cluster: dict[str, Any] | None, named: str
) -> None:
    with pytest.raises(KubeConfigError) as raised:
        parse_kubeconfig(_kubeconfig(user, cluster))
    assert f"sets {named}" in str(raised.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"token: [s3cr3t", "kubeconfig is not valid YAML", id="not-yaml"),
        pytest.param(b"- a\n- b\n", "kubeconfig is not a YAML mapping", id="a-list"),
        pytest.param(b"clusters: []\n", "kubeconfig has no current-context", id="no-context"),
        pytest.param(
            b"current-context: x\ncontexts: []\n",
            "kubeconfig has no context named 'x' in 'contexts'",
            id="unknown-context",
        ),
    ],
)
def test_a_broken_kubeconfig_is_named_without_quoting_it(data: bytes, message: str) -> None:
    with pytest.raises(KubeConfigError) as raised:
        parse_kubeconfig(data)
    assert str(raised.value).startswith(message)
    assert "s3cr3t" not in str(raised.value)


def _any_exists(paths: list[str]) -> bool:
    return any(Path(path).exists() for path in paths)


async def test_certificates_do_not_stay_on_disk(pki: Pki) -> None:
    text = embedded_kubeconfig(
        server=SERVER, ca_cert=pki.ca_cert, client_cert=pki.admin_cert, client_key=pki.admin_key
    )
    kube = connect(parse_kubeconfig(text.encode()))
    try:
        configuration = kube._api.configuration
        assert kube.host == SERVER
        assert configuration.verify_ssl is True
        written = [configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file]
        assert all(written)
        assert not _any_exists(written)
    finally:
        await kube.close()


async def test_a_key_that_does_not_match_its_certificate_is_refused(pki: Pki) -> None:
    text = embedded_kubeconfig(
        server=SERVER, ca_cert=pki.ca_cert, client_cert=pki.admin_cert, client_key=pki.ca_key
    )
    with pytest.raises(KubeConfigError, match="TLS material cannot be used"):
        connect(parse_kubeconfig(text.encode()))


# -- one client per Kustomization, renewed with its Secret ---------------------------


class SecretStore:
    """The local cluster as RemoteClusters sees it: Secrets to read."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}

    async def get_or_none(
        self, resource: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        assert resource.kind == "Secret"
        return self.secrets.get((namespace or "", name))


def _closed(kube: Kube) -> bool:
    return bool(kube._api.rest_client.pool_manager.closed)


async def test_a_client_is_reused_until_its_secret_changes_then_closed(pki: Pki) -> None:
    store = SecretStore()
    remotes = RemoteClusters(cast(Kube, store))
    text = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t1"})
    store.secrets[("apps", "prod")] = _secret({"value": text}, version="1")
    owner = ("apps", "backend")

    first = await remotes.kube_for(owner, secret_name="prod")
    assert await remotes.kube_for(owner, secret_name="prod") is first

    rotated = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t2"})
    store.secrets[("apps", "prod")] = _secret({"value": rotated}, version="2")
    second = await remotes.kube_for(owner, secret_name="prod")
    assert second is not first
    assert _closed(first)
    assert second._api.configuration.api_key["BearerToken"] == "Bearer t2"

    remotes.discard(owner)
    await remotes.close_retired()
    assert _closed(second)
    assert len(remotes) == 0


async def test_a_deleted_secret_closes_the_client_made_from_it(pki: Pki) -> None:
    store = SecretStore()
    remotes = RemoteClusters(cast(Kube, store))
    text = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t1"})
    store.secrets[("apps", "prod")] = _secret({"value": text})
    owner = ("apps", "backend")
    first = await remotes.kube_for(owner, secret_name="prod")

    del store.secrets[("apps", "prod")]
    with pytest.raises(KubeConfigError, match="not found"):
        await remotes.kube_for(owner, secret_name="prod")
    assert _closed(first)


async def test_every_client_is_closed_when_the_clusters_stop(pki: Pki) -> None:
    store = SecretStore()
    remotes = RemoteClusters(cast(Kube, store))
    text = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t"})
    store.secrets[("apps", "prod")] = _secret({"value": text})
    clients = [await remotes.kube_for(("apps", name), secret_name="prod") for name in "ab"]
    await remotes.close()
    assert all(_closed(kube) for kube in clients)


async def test_the_running_service_closes_discarded_clients_and_all_when_stopped(pki: Pki) -> None:
    store = SecretStore()
    remotes = RemoteClusters(cast(Kube, store))
    text = embedded_kubeconfig(server=SERVER, ca_cert=pki.ca_cert, user={"token": "t"})
    store.secrets[("apps", "prod")] = _secret({"value": text})
    gone = await remotes.kube_for(("apps", "gone"), secret_name="prod")
    kept = await remotes.kube_for(("apps", "kept"), secret_name="prod")
    async with anyio.create_task_group() as group:
        group.start_soon(remotes.run)
        remotes.discard(("apps", "gone"))
        # The service has run until it waits for the next discard.
        await anyio.wait_all_tasks_blocked()
        assert _closed(gone)
        assert not _closed(kept)
        group.cancel_scope.cancel()
    assert _closed(kept)
