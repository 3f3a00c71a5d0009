"""Reloader's config digest, pinned against the formula computed independently.

Formula (Reloader ``GetSHAfromConfigmap`` / ``GetSHAfromSecret``): entries
``key=value`` (ConfigMap binaryData as padded base64; Secret data decoded),
sorted bytewise, joined with ``;``, SHA-1 as lower-case hex.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from fluxd.kube import secrets
from fluxd.restarter import (
    ConfigKind,
    DigestAlgorithm,
    InvalidConfigData,
    config_digest,
    equivalent_digests,
)
from fluxd.restarter.slim import config_change_of, slim_config
from tests.unit.restarter.restarter_objects import configmap, secret


def sha1(text: bytes) -> str:
    return hashlib.sha1(text).hexdigest()


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        pytest.param(
            ConfigKind.SECRET,
            secret(data={"realm_ix.toml": b'listen = "0.0.0.0:443"\n'}),
            sha1(b'realm_ix.toml=listen = "0.0.0.0:443"\n'),
            id="secret-decoded-value",
        ),
        pytest.param(
            ConfigKind.CONFIGMAP,
            configmap(data={"b": "2", "a": "1"}),
            sha1(b"a=1;b=2"),
            id="configmap-sorted",
        ),
        pytest.param(
            ConfigKind.CONFIGMAP,
            configmap(data={"a": "1"}, binary={"blob": b"\x00\x01"}),
            sha1(b"a=1;blob=AAE="),
            id="configmap-binarydata-base64",
        ),
        pytest.param(
            ConfigKind.CONFIGMAP,
            configmap(data={"a": "x", "a.b": "y"}),
            # Bytewise on whole entries: "." (0x2e) sorts before "=" (0x3d).
            sha1(b"a.b=y;a=x"),
            id="entries-sorted-not-keys",
        ),
        pytest.param(ConfigKind.CONFIGMAP, configmap(), sha1(b""), id="configmap-empty"),
        pytest.param(ConfigKind.SECRET, secret(data={}), sha1(b""), id="secret-empty"),
        pytest.param(
            ConfigKind.CONFIGMAP,
            configmap(data={"greeting": "你好", "emoji": "🚀"}),
            sha1("emoji=🚀;greeting=你好".encode()),
            id="unicode-utf8",
        ),
        pytest.param(
            ConfigKind.SECRET,
            secret(data={"key": b"\xff\xfe\x00raw"}),
            sha1(b"key=\xff\xfe\x00raw"),
            id="secret-binary-not-utf8",
        ),
    ],
)
def test_digest_follows_reloader_formula(
    kind: ConfigKind, obj: dict[str, object], expected: str
) -> None:
    assert config_digest(kind, obj) == expected


def test_scenario_secret_digest_is_pinned() -> None:
    # A literal, so a change in the formula shows even if the helper above changed too.
    digest = config_digest(ConfigKind.SECRET, secret(data={"realm_ix.toml": b"a"}))
    assert digest == "a1aa75acd27e08710051c2570756885b907dec3f"


def test_string_data_counts_like_stored_data() -> None:
    stored = secret(data={"user": b"admin", "password": b"old"})
    rendered = dict(secret(data={"user": b"admin"}))
    rendered["stringData"] = {"password": "old"}
    assert config_digest(ConfigKind.SECRET, rendered) == config_digest(ConfigKind.SECRET, stored)


def test_newer_reloader_algorithm_is_sha512_256() -> None:
    obj = configmap(data={"a": "1"})
    assert config_digest(
        obj=obj, kind=ConfigKind.CONFIGMAP, algorithm=DigestAlgorithm.SHA512_256
    ) == (hashlib.new("sha512_256", b"a=1").hexdigest())


def test_equivalent_digests_cover_every_reloader_release() -> None:
    obj = configmap(data={"a": "1"})
    assert equivalent_digests(ConfigKind.CONFIGMAP, obj) == {
        hashlib.sha1(b"a=1").hexdigest(),
        hashlib.new("sha512_256", b"a=1").hexdigest(),
    }
    # One release wrote "" for an empty object.
    assert "" in equivalent_digests(ConfigKind.CONFIGMAP, configmap())


def test_bad_base64_names_the_key_not_the_value() -> None:
    broken = secret(data={})
    broken["data"] = {"token": "not base64 s3cr3t!!"}
    with pytest.raises(InvalidConfigData) as raised:
        config_digest(ConfigKind.SECRET, broken)
    assert "token" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_a_secret_event_decodes_and_hashes_its_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each watched Secret is slimmed on every event: one decode pass, one hash per algorithm."""
    decodes: list[str] = []
    hashes: list[str] = []
    real_decode = secrets._decode
    real_new = hashlib.new

    def counting_decode(key: str, value: object) -> bytes:
        decodes.append(key)
        return real_decode(key, value)

    def counting_new(name: str, *args: Any, **kwargs: Any) -> Any:
        hashes.append(name)
        return real_new(name, *args, **kwargs)

    monkeypatch.setattr(secrets, "_decode", counting_decode)
    monkeypatch.setattr(hashlib, "new", counting_new)
    slim = slim_config(ConfigKind.SECRET, secret(data={"a": b"1", "b": b"2"}))
    monkeypatch.undo()

    change = config_change_of(slim)
    assert change is not None
    assert change.digest == sha1(b"a=1;b=2")
    assert sorted(decodes) == ["a", "b"]
    assert sorted(hashes) == sorted(algorithm.value for algorithm in DigestAlgorithm)
