"""Reading Flux's Secret keys into credentials, and refusing unusable Secrets clearly."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fluxd.source import GitAuth, InvalidSource, ProxySettings

HTTPS = "https://git.example.test/k3s/private.git"
SSH = "ssh://git@git.example.test/k3s/private.git"


def _key(password: bytes | None = None) -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    if password is None:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    # PKCS#8 encryption: checkable without the optional bcrypt module.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


KNOWN_HOSTS = (
    b"git.example.test ssh-ed25519 "
    b"AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
)


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        pytest.param(
            SSH,
            {"identity": _key()},
            "has no 'known_hosts' key, required for ssh",
            id="ssh-no-known-hosts",
        ),
        pytest.param(
            SSH,
            {"known_hosts": KNOWN_HOSTS},
            "has no 'identity' key, required for ssh",
            id="ssh-no-identity",
        ),
        pytest.param(
            SSH,
            {"identity": b"garbage", "known_hosts": KNOWN_HOSTS},
            "not a PEM or OpenSSH private key",
            id="ssh-bad-key",
        ),
        pytest.param(
            SSH,
            {"identity": _key(b"pw"), "known_hosts": KNOWN_HOSTS},
            "needs the 'password' key",
            id="ssh-encrypted-no-password",
        ),
        pytest.param(
            SSH,
            {"identity": _key(b"pw"), "password": b"nope", "known_hosts": KNOWN_HOSTS},
            "cannot be decrypted",
            id="ssh-wrong-password",
        ),
        pytest.param(
            HTTPS,
            {"username": b"u"},
            "has 'username' but no 'password'",
            id="user-without-password",
        ),
        pytest.param(
            HTTPS,
            {"password": b"p"},
            "has 'password' but no 'username'",
            id="password-without-user",
        ),
        pytest.param(
            HTTPS,
            {"username": b"u", "password": b"p", "bearerToken": b"t"},
            "use one",
            id="basic-and-bearer",
        ),
        pytest.param(
            HTTPS, {"ca.crt": b"not a certificate"}, "holds no PEM certificate", id="bad-ca"
        ),
        pytest.param(HTTPS, {"tls.crt": b"x"}, "has no 'tls.key' key", id="cert-without-key"),
    ],
)
def test_unusable_secret_is_stalled_with_the_missing_key_named(
    url: str, data: dict[str, bytes], message: str
) -> None:
    with pytest.raises(InvalidSource, match=message) as caught:
        GitAuth.from_secret(data, url=url, secret_name="git-creds")
    assert caught.value.stalled
    assert "git-creds" in str(caught.value)
    for value in data.values():
        if len(value) > 3:
            assert value.decode(errors="replace") not in str(caught.value)


def test_basic_auth_secret_from_the_seed_scenario() -> None:
    auth = GitAuth.from_secret(
        {"username": b"k3s", "password": b"personal-access-token"},
        url="http://gitea-svc.default.svc.cluster.local:3000/k3s/k3s-private.git",
        secret_name="gitea-auth",
    )
    assert auth.username == "k3s"
    assert auth.password == "personal-access-token"
    assert "personal-access-token" not in repr(auth)


def test_ssh_secret_keeps_key_out_of_repr() -> None:
    key = _key(b"pw")
    auth = GitAuth.from_secret(
        {"identity": key, "password": b"pw", "known_hosts": KNOWN_HOSTS}, url=SSH, secret_name="s"
    )
    assert auth.identity == key.decode()
    assert auth.identity_passphrase == "pw"
    assert key.decode() not in repr(auth)
    assert "'pw'" not in repr(auth)


def test_ca_is_ignored_for_plain_http() -> None:
    auth = GitAuth.from_secret(
        {"caFile": b"ignored"}, url="http://git.example.test/r.git", secret_name="s"
    )
    assert auth.ca_cert is None


class TestProxy:
    def test_credentials_are_embedded_only_in_the_transport_url(self) -> None:
        proxy = ProxySettings.from_secret(
            {"address": b"http://proxy.test:3128", "username": b"me", "password": b"p@ss word"},
            secret_name="proxy",
        )
        assert proxy.transport_url() == "http://me:p%40ss%20word@proxy.test:3128"
        assert "p@ss word" not in repr(proxy)

    def test_address_is_required(self) -> None:
        with pytest.raises(InvalidSource, match="has no 'address' key"):
            ProxySettings.from_secret({"username": b"me"}, secret_name="proxy")

    def test_address_must_be_a_proxy_url(self) -> None:
        with pytest.raises(InvalidSource, match="must be an http"):
            ProxySettings.from_secret({"address": b"proxy.test:3128"}, secret_name="proxy")
