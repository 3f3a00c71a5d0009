"""``fluxd build`` of a Kustomization with spec.decryption: keys from --decryption-key-file only."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import yaml

from fluxd.cli import parser
from fluxd.cli.building import build_offline
from fluxd.cli.failures import CommandError
from fluxd.cli.terminal import Terminal
from tests.support.sops import age_key, encrypt
from tests.unit.build.test_decrypt import GENERATOR, PLAINTEXT


async def test_fluxd_build_decrypts_with_a_key_file_and_fails_without(tmp_path: Path) -> None:
    key = age_key()
    app = tmp_path / "app"
    app.mkdir()
    (app / "kustomization.yaml").write_text(GENERATOR)
    (app / "realm_ix.toml").write_bytes(encrypt(PLAINTEXT, age=key.recipient))
    key_file = tmp_path / "identity.agekey"
    key_file.write_text(key.identity + "\n")
    ks = tmp_path / "ks.yaml"
    ks.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "realm", "namespace": "flux-system"},
                "spec": {"path": "./", "decryption": {"provider": "sops"}},
            }
        )
    )
    argv = ["build", "ks", "realm", "--path", str(app), "--dry-run"]
    argv += ["--kustomization-file", str(ks)]

    out, err = io.StringIO(), io.StringIO()
    with_key = parser().parse_args([*argv, "--decryption-key-file", str(key_file)])
    assert await build_offline(with_key, Terminal(out=out, err=err)) == 0
    (secret,) = list(yaml.safe_load_all(out.getvalue()))
    assert base64.b64decode(secret["data"]["realm_ix.toml"]) == PLAINTEXT

    with pytest.raises(CommandError, match=r"no sops decryption keys.*--decryption-key-file"):
        await build_offline(parser().parse_args(argv), Terminal(out=out, err=err))
