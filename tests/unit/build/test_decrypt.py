"""SOPS decryption in the build: what gets decrypted, what is refused, what is never kept.

These run the real sops binary (and gpg for OpenPGP) on inputs encrypted by the
tests, as a user encrypts them; no cluster is needed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fluxd.build import (
    BuildCache,
    BuildOptions,
    DecryptionError,
    DecryptionKeys,
    EncryptedObjectError,
    build,
)
from fluxd.build.decrypt import Format, detect_format, format_for_path, open_decryptor
from tests.support.sops import AgeKey, age_key, encrypt, pgp_key
from tests.unit.build.conftest import Tree

PLAINTEXT = b'listen = "0.0.0.0:9000"\npassword = "hunter2-realm"\n'
DECRYPTING = BuildOptions.from_spec({"decryption": {"provider": "sops"}})
PLAIN = BuildOptions.from_spec({})

GENERATOR = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
secretGenerator:
  - name: realm-config-ix
    files:
      - realm_ix.toml
generatorOptions:
  disableNameSuffixHash: true
"""

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
stringData:
  password: hunter3-db
"""


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return age_key()


def keys_for(*identities: AgeKey) -> DecryptionKeys:
    data = {f"k{n}.agekey": k.identity.encode() for n, k in enumerate(identities)}
    return DecryptionKeys.from_secret_data(data, origin="Secret 'apps/sops-keys'")


def generator_tree(tree: Tree, key: AgeKey) -> Path:
    encrypted = encrypt(PLAINTEXT, age=key.recipient).decode()
    return tree({"realm/ix/kustomization.yaml": GENERATOR, "realm/ix/realm_ix.toml": encrypted})


def secret_data(objects: list[dict[str, Any]], name: str, key: str) -> bytes:
    (secret,) = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
    return base64.b64decode(secret["data"][key])


async def test_an_encrypted_generator_file_becomes_the_plaintext_secret(
    tree: Tree, key: AgeKey
) -> None:
    root = generator_tree(tree, key)

    objects = await build(
        artifact_root=root, path="realm/ix", options=DECRYPTING, decryption_keys=keys_for(key)
    )

    assert secret_data(objects, "realm-config-ix", "realm_ix.toml") == PLAINTEXT


async def test_without_decryption_an_encrypted_generator_file_is_refused(
    tree: Tree, key: AgeKey
) -> None:
    root = generator_tree(tree, key)

    with pytest.raises(EncryptedObjectError) as caught:
        await build(artifact_root=root, path="realm/ix", options=PLAIN)

    assert caught.value.reason == "ReconciliationFailed"
    assert "Secret/realm-config-ix is SOPS encrypted" in caught.value.message


async def test_a_wrong_key_fails_the_build_naming_the_file_and_never_a_value(
    tree: Tree, key: AgeKey
) -> None:
    root = generator_tree(tree, key)

    with pytest.raises(DecryptionError) as caught:
        await build(
            artifact_root=root,
            path="realm/ix",
            options=DECRYPTING,
            decryption_keys=keys_for(age_key()),
        )

    assert caught.value.reason == "BuildFailed"
    assert "error decrypting sources" in caught.value.message
    assert "'realm/ix/realm_ix.toml'" in caught.value.message
    assert "hunter2" not in caught.value.message
    assert "/tmp" not in caught.value.message


async def test_decryption_without_any_key_fails_rather_than_applying_ciphertext(
    tree: Tree, key: AgeKey
) -> None:
    root = generator_tree(tree, key)

    with pytest.raises(DecryptionError) as caught:
        await build(artifact_root=root, path="realm/ix", options=DECRYPTING)

    assert "no sops decryption keys" in caught.value.message


async def test_any_of_several_identities_may_decrypt(tree: Tree, key: AgeKey) -> None:
    root = generator_tree(tree, key)

    objects = await build(
        artifact_root=root,
        path="realm/ix",
        options=DECRYPTING,
        decryption_keys=keys_for(age_key(), key),
    )

    assert secret_data(objects, "realm-config-ix", "realm_ix.toml") == PLAINTEXT


async def test_an_encrypted_secret_manifest_is_decrypted_after_the_build(
    tree: Tree, key: AgeKey
) -> None:
    encrypted = encrypt(
        SECRET.encode(),
        age=key.recipient,
        input_type="yaml",
        encrypted_regex="^(data|stringData)$",
    ).decode()
    root = tree({"apps/secret.yaml": encrypted})
    # Kustomize's edits (here a label from the spec) break sops' MAC: Flux ignores it too.
    options = BuildOptions.from_spec(
        {"decryption": {"provider": "sops"}, "commonMetadata": {"labels": {"team": "a"}}}
    )

    (secret,) = await build(
        artifact_root=root, path="apps", options=options, decryption_keys=keys_for(key)
    )

    assert secret["stringData"] == {"password": "hunter3-db"}
    assert "sops" not in secret
    assert secret["metadata"]["labels"] == {"team": "a"}


async def test_an_encrypted_secret_manifest_without_decryption_is_refused(
    tree: Tree, key: AgeKey
) -> None:
    encrypted = encrypt(
        SECRET.encode(), age=key.recipient, input_type="yaml", encrypted_regex="^stringData$"
    ).decode()
    root = tree({"apps/secret.yaml": encrypted})

    with pytest.raises(EncryptedObjectError) as caught:
        await build(artifact_root=root, path="apps", options=PLAIN)

    assert "Secret/apps/db is SOPS encrypted" in caught.value.message


async def test_the_decrypt_disabled_annotation_leaves_an_object_alone(
    tree: Tree, key: AgeKey
) -> None:
    manifest = yaml.safe_load(SECRET)
    manifest["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/decrypt": "Disabled"}
    encrypted = encrypt(
        yaml.safe_dump(manifest).encode(),
        age=key.recipient,
        input_type="yaml",
        encrypted_regex="^stringData$",
    ).decode()
    root = tree({"apps/secret.yaml": encrypted})

    (secret,) = await build(
        artifact_root=root, path="apps", options=DECRYPTING, decryption_keys=keys_for(key)
    )

    assert secret["stringData"]["password"].startswith("ENC[")


@pytest.mark.parametrize(
    ("entry", "plaintext", "input_type", "expected"),
    [
        pytest.param(
            "files", b'{"token": "hunter4"}', "json", b'{\n\t"token": "hunter4"\n}\n', id="json"
        ),
        pytest.param("files", b"token: hunter4\n", "yaml", b"token: hunter4\n", id="yaml"),
        pytest.param(
            "files", b"[main]\ntoken = hunter4\n", "ini", b"[main]\ntoken = hunter4\n", id="ini"
        ),
        pytest.param(
            "files", b"\x00\x01hunter4\xff", "binary", b"\x00\x01hunter4\xff", id="binary"
        ),
        pytest.param("envs", b"TOKEN=hunter4\n", "dotenv", None, id="dotenv-envs"),
    ],
)
async def test_each_generator_format_is_decrypted(
    tree: Tree,
    key: AgeKey,
    entry: str,
    plaintext: bytes,
    input_type: str,
    expected: bytes | None,
) -> None:
    suffix = {"json": ".json", "yaml": ".yaml", "ini": ".ini", "binary": ".bin", "dotenv": ".env"}
    name = "config" + suffix[input_type]
    encrypted = encrypt(plaintext, age=key.recipient, input_type=input_type)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "secretGenerator": [{"name": "config", entry: [name]}],
        "generatorOptions": {"disableNameSuffixHash": True},
    }
    root = tree({"app/kustomization.yaml": json.dumps(kustomization)})
    (root / "app" / name).write_bytes(encrypted)

    (secret,) = await build(
        artifact_root=root, path="app", options=DECRYPTING, decryption_keys=keys_for(key)
    )

    if expected is None:
        assert base64.b64decode(secret["data"]["TOKEN"]) == b"hunter4"
    else:
        assert base64.b64decode(secret["data"][name]) == expected


async def test_an_openpgp_key_decrypts_without_gpg(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pgp = pgp_key(tmp_path / "gnupg-of-the-user")
    encrypted = encrypt(PLAINTEXT, pgp=pgp).decode()
    root = tree({"realm/ix/kustomization.yaml": GENERATOR, "realm/ix/realm_ix.toml": encrypted})
    keys = DecryptionKeys.from_secret_data(
        {"identity.asc": pgp.armored_private}, origin="Secret 'apps/pgp'"
    )
    # No gpg anywhere: its agent would outlive the build, so fluxd never runs it.
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))

    objects = await build(
        artifact_root=root, path="realm/ix", options=DECRYPTING, decryption_keys=keys
    )

    assert secret_data(objects, "realm-config-ix", "realm_ix.toml") == PLAINTEXT


async def test_a_build_that_decrypted_is_never_cached(tree: Tree, key: AgeKey) -> None:
    root = generator_tree(tree, key)
    cache = BuildCache()

    for _ in range(2):
        objects = await build(
            artifact_root=root,
            path="realm/ix",
            options=DECRYPTING,
            decryption_keys=keys_for(key),
            cache=cache,
            artifact_digest="sha256:same",
        )
        assert secret_data(objects, "realm-config-ix", "realm_ix.toml") == PLAINTEXT

    assert len(cache) == 0
    assert cache.misses == 2


async def test_a_build_that_decrypted_nothing_is_still_cached(tree: Tree) -> None:
    root = tree({"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"})
    cache = BuildCache()
    keys = keys_for(age_key())

    for _ in range(2):
        await build(
            artifact_root=root,
            path="apps",
            options=DECRYPTING,
            decryption_keys=keys,
            cache=cache,
            artifact_digest="sha256:same",
        )

    assert (cache.misses, cache.hits, len(cache)) == (1, 1, 1)


async def test_the_private_key_directory_is_gone_after_the_build(
    tree: Tree, key: AgeKey, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr("tempfile.tempdir", None)
    root = generator_tree(tree, key)

    await build(
        artifact_root=root, path="realm/ix", options=DECRYPTING, decryption_keys=keys_for(key)
    )

    assert list(scratch.iterdir()) == []


# -- keys -------------------------------------------------------------------------------------


def test_a_secret_with_only_key_management_credentials_is_refused_by_name() -> None:
    with pytest.raises(DecryptionError) as caught:
        DecryptionKeys.from_secret_data(
            {"sops.vault-token": b"s.hunter5", "sops.aws-kms": b"aws_access_key_id: x"},
            origin="Secret 'apps/kms'",
        )

    assert "'sops.vault-token' (OpenBao/Vault)" in caught.value.message
    assert "'sops.aws-kms' (AWS KMS)" in caught.value.message
    assert "hunter5" not in caught.value.message


def test_a_malformed_age_key_names_the_entry_and_never_the_value() -> None:
    with pytest.raises(DecryptionError) as caught:
        DecryptionKeys.from_secret_data(
            {"bad.agekey": b"not-a-key-hunter6"}, origin="Secret 'apps/sops'"
        )

    assert "'bad.agekey'" in caught.value.message
    assert "hunter6" not in caught.value.message


def test_the_daemon_wide_secret_gives_age_keys_only(key: AgeKey) -> None:
    keys = DecryptionKeys.from_secret_data(
        {"a.agekey": key.identity.encode(), "b.asc": b"armored", "sops.gcp-kms": b"{}"},
        origin="Secret 'flux-system/sops-age'",
        age_only=True,
    )

    assert keys.age_identities == (key.identity,)
    assert keys.pgp_keys == () and keys.unusable == ()


def test_keys_never_show_in_their_repr(key: AgeKey) -> None:
    assert key.identity not in repr(keys_for(key))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("a.yaml", Format.YAML, id="yaml"),
        pytest.param("a.yml", Format.YAML, id="yml"),
        pytest.param("a.json", Format.JSON, id="json"),
        pytest.param("a.env", Format.DOTENV, id="env"),
        pytest.param("a.ini", Format.INI, id="ini"),
        pytest.param("realm_ix.toml", Format.BINARY, id="toml-is-binary"),
        pytest.param(".dockerconfigjson", Format.JSON, id="dockerconfigjson"),
    ],
)
def test_formats_follow_the_file_name(path: str, expected: Format) -> None:
    assert format_for_path(path) is expected


def test_plain_data_carries_no_sops_markers() -> None:
    assert detect_format(PLAINTEXT) is None
    assert detect_format(b"sops_mac=ENC[AES256_GCM,data:x]") is Format.DOTENV


async def test_a_build_with_other_keys_never_shares_a_result_in_flight(
    tree: Tree, key: AgeKey
) -> None:
    root = generator_tree(tree, key)
    cache = BuildCache()

    def attempt(keys: DecryptionKeys) -> Any:
        return build(
            artifact_root=root,
            path="realm/ix",
            options=DECRYPTING,
            decryption_keys=keys,
            cache=cache,
            artifact_digest="sha256:same",
        )

    results: list[object] = await asyncio.gather(
        attempt(keys_for(key)), attempt(keys_for(age_key())), return_exceptions=True
    )

    assert isinstance(results[0], list)
    assert isinstance(results[1], DecryptionError)


async def test_a_malformed_openpgp_key_names_the_entry_and_never_the_value(
    tmp_path: Path,
) -> None:
    armored = (
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----\nhunter7!\n-----END PGP PRIVATE KEY BLOCK-----"
    )
    keys = DecryptionKeys.from_secret_data({"bad.asc": armored}, origin="Secret 'apps/pgp'")

    with pytest.raises(DecryptionError) as caught:
        async with open_decryptor(keys, directory=tmp_path / "keys"):
            pass

    assert "'bad.asc'" in caught.value.message
    assert "hunter7" not in caught.value.message
    assert not (tmp_path / "keys").exists()


def sops_children() -> list[int]:
    """Processes of ours still running the sops binary."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"sops" in command:
            found.append(int(status.parent.name))
    return found


async def test_a_failed_decryption_leaves_no_sops_running(tree: Tree, key: AgeKey) -> None:
    names = [f"f{n:02d}.toml" for n in range(12)]
    files = {name: encrypt(PLAINTEXT, age=key.recipient).decode() for name in names}
    # The first file is for a key the build does not hold: it fails while the others run.
    files[names[0]] = encrypt(PLAINTEXT, age=age_key().recipient).decode()
    kustomization = {"secretGenerator": [{"name": "many", "files": names}]}
    root = tree(
        {"app/kustomization.yaml": json.dumps(kustomization)}
        | {f"app/{name}": text for name, text in files.items()}
    )

    with pytest.raises(DecryptionError):
        await build(
            artifact_root=root, path="app", options=DECRYPTING, decryption_keys=keys_for(key)
        )

    assert sops_children() == []
