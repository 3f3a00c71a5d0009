"""SOPS-encrypted config in the seed repository, decrypted by fluxd as kustomize-controller does.

The user's ``realm_ix.toml`` is pushed encrypted (age, then OpenPGP) and the
generated Secret must hold the plaintext and roll the Deployment once; pushed
for a key fluxd does not hold, or with ``spec.decryption`` removed, nothing is
applied and nothing rolls. An encrypted Secret manifest is decrypted too, and
without a ``secretRef`` the daemon-wide ``sops-age-secret`` decrypts. The
plaintext never shows in fluxd's log, its Events, the Kustomization's status
or /metrics. The tests run in order on one seeded flow.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.seedflow import KUSTOMIZATION, PATHS, REALM_TOML, running_pods, secret_value
from testenv.api import Api, wait_for
from testenv.cluster import Cluster
from testenv.gitserver import GitServer
from tests.support.daemon import Fluxd
from tests.support.seedflow import (
    KS_PATH,
    RECEIVER_PATH,
    SECRET_PATH,
    push_and_deliver,
    seeded_flow,
)
from tests.support.sops import AgeKey, age_key, encrypt, pgp_key

KEYS_PATH = PATHS["Secret"].format(namespace="flux-system", name="sops-keys")
# The daemon-wide age Secret, in fluxd's namespace (POD_NAMESPACE unset: flux-system).
GLOBAL_KEYS_NAME = "sops-age-global"
GLOBAL_KEYS_PATH = PATHS["Secret"].format(namespace="flux-system", name=GLOBAL_KEYS_NAME)
DB_PATH = PATHS["Secret"].format(namespace="realm", name="realm-db")
# Every plaintext of these tests carries this marker, so one grep finds any leak.
MARKER = "s3cr3t-sops-marker"


def realm_toml(version: int) -> str:
    return REALM_TOML.replace('level = "warn"', f'level = "warn"\npassword = "{MARKER}-{version}"')


@pytest.fixture(scope="module")
def seeded(
    cluster: Cluster, crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitServer, Fluxd]]:
    extra = [f"--sops-age-secret={GLOBAL_KEYS_NAME}"]
    with seeded_flow(cluster, tmp_path_factory.mktemp("sops"), extra_args=extra) as flow:
        yield flow
    cluster.api.delete(KEYS_PATH)
    cluster.api.delete(GLOBAL_KEYS_PATH)


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return age_key()


def condition(api: Api, type_: str = "Ready") -> dict[str, Any]:
    conditions = api.get(KS_PATH).get("status", {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == type_), {})


def hook(api: Api) -> str:
    wait_for(lambda: api.get(RECEIVER_PATH).get("status", {}).get("webhookPath"), timeout=60)
    return str(api.get(RECEIVER_PATH)["status"]["webhookPath"])


def put_keys(api: Api, entries: dict[str, bytes], *, name: str = "sops-keys") -> None:
    api.delete(PATHS["Secret"].format(namespace="flux-system", name=name))
    api.create(
        "/api/v1/namespaces/flux-system/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "flux-system"},
            "data": {name: base64.b64encode(value).decode() for name, value in entries.items()},
        },
    )


def settled(api: Api) -> set[str]:
    wait_for(lambda: len(running_pods(api)) == 2, timeout=120, what="2 realm Pods Running")
    return running_pods(api)


def replica_sets(api: Api) -> int:
    return len(api.items("/apis/apps/v1/namespaces/realm/replicasets"))


def applied(api: Api, sha: str) -> bool:
    status = api.get(KS_PATH).get("status", {})
    return bool(
        status.get("lastAppliedRevision") == f"master@sha1:{sha}"
        and condition(api).get("status") == "True"
    )


def assert_no_plaintext(api: Api, daemon: Fluxd) -> None:
    places = {
        "log": daemon.log_path.read_text(errors="replace"),
        "events": yaml.safe_dump(api.items("/api/v1/namespaces/flux-system/events")),
        "status": yaml.safe_dump(api.get(KS_PATH).get("status", {})),
        "metrics": daemon.get("/metrics")[1],
    }
    leaks = [where for where, text in places.items() if MARKER in text]
    assert leaks == [], f"plaintext found in {leaks}"


def test_an_age_encrypted_file_becomes_the_plaintext_secret_and_rolls_once(
    api: Api, seeded: tuple[GitServer, Fluxd], key: AgeKey
) -> None:
    git, daemon = seeded
    wait_for(
        lambda: condition(api).get("status") == "True", timeout=120, what="Kustomization Ready"
    )
    before, sets = settled(api), replica_sets(api)
    put_keys(api, {"identity.agekey": key.identity.encode()})
    api.merge_patch(
        KS_PATH, {"spec": {"decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}}}}
    )

    encrypted = encrypt(realm_toml(1).encode(), age=key.recipient).decode()
    sha = push_and_deliver(git, daemon, hook(api), {"realm/ix/realm_ix.toml": encrypted})

    wait_for(lambda: applied(api, sha), timeout=90, what="the encrypted commit applied")
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == realm_toml(1).encode()
    wait_for(
        lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
        timeout=120,
        what="both Pods replaced",
    )
    assert replica_sets(api) == sets + 1
    assert_no_plaintext(api, daemon)


def test_without_the_key_nothing_is_applied_and_nothing_rolls(
    api: Api, seeded: tuple[GitServer, Fluxd]
) -> None:
    git, daemon = seeded
    before, sets = settled(api), replica_sets(api)
    stranger = age_key()

    encrypted = encrypt(realm_toml(2).encode(), age=stranger.recipient).decode()
    sha = push_and_deliver(git, daemon, hook(api), {"realm/ix/realm_ix.toml": encrypted})

    wait_for(
        lambda: (
            condition(api).get("status") == "False"
            and "error decrypting sources" in condition(api).get("message", "")
        ),
        timeout=90,
        what="the Kustomization to fail decrypting",
    )
    ready = condition(api)
    assert ready["reason"] == "BuildFailed"
    assert "realm/ix/realm_ix.toml" in ready["message"]
    assert api.get(KS_PATH)["status"]["lastAttemptedRevision"] == f"master@sha1:{sha}"
    events = api.items("/api/v1/namespaces/flux-system/events")
    assert any(
        e["involvedObject"]["name"] == "realm-ix" and "error decrypting sources" in e["message"]
        for e in events
    )
    # The failure is observed: the previous Secret and Pods are what a user still has.
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == realm_toml(1).encode()
    assert running_pods(api) == before and replica_sets(api) == sets

    # Without spec.decryption the ciphertext itself is refused, never applied.
    api.merge_patch(KS_PATH, {"spec": {"decryption": None}})
    wait_for(
        lambda: "is SOPS encrypted" in condition(api).get("message", ""),
        timeout=90,
        what="the encrypted Secret to be refused",
    )
    assert condition(api)["reason"] == "ReconciliationFailed"
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == realm_toml(1).encode()
    assert running_pods(api) == before and replica_sets(api) == sets
    assert_no_plaintext(api, daemon)


def test_an_openpgp_key_decrypts(
    api: Api, seeded: tuple[GitServer, Fluxd], key: AgeKey, tmp_path: Path
) -> None:
    git, daemon = seeded
    before = settled(api)
    pgp = pgp_key(tmp_path / "gnupg")
    put_keys(api, {"identity.agekey": key.identity.encode(), "realm.asc": pgp.armored_private})
    api.merge_patch(
        KS_PATH, {"spec": {"decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}}}}
    )

    encrypted = encrypt(realm_toml(3).encode(), pgp=pgp).decode()
    sha = push_and_deliver(git, daemon, hook(api), {"realm/ix/realm_ix.toml": encrypted})

    wait_for(lambda: applied(api, sha), timeout=90, what="the OpenPGP commit applied")
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == realm_toml(3).encode()
    wait_for(
        lambda: (now := running_pods(api)) and len(now) == 2 and not now & before,
        timeout=120,
        what="both Pods replaced",
    )
    assert_no_plaintext(api, daemon)


def test_an_encrypted_secret_manifest_is_decrypted(
    api: Api, seeded: tuple[GitServer, Fluxd], key: AgeKey
) -> None:
    git, daemon = seeded
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "realm-db"},
        "stringData": {"password": f"{MARKER}-db"},
    }
    encrypted = encrypt(
        yaml.safe_dump(manifest).encode(),
        age=key.recipient,
        input_type="yaml",
        encrypted_regex="^(data|stringData)$",
    ).decode()
    kustomization = KUSTOMIZATION + "resources:\n  - db.yaml\n"

    sha = push_and_deliver(
        git,
        daemon,
        hook(api),
        {"realm/ix/kustomization.yaml": kustomization, "realm/ix/db.yaml": encrypted},
    )

    wait_for(lambda: applied(api, sha), timeout=90, what="the encrypted manifest applied")
    assert secret_value(api, DB_PATH, "password") == f"{MARKER}-db".encode()
    assert "sops" not in api.get(DB_PATH)
    assert_no_plaintext(api, daemon)


def test_without_a_secret_ref_the_daemon_wide_age_secret_decrypts(
    api: Api, seeded: tuple[GitServer, Fluxd], key: AgeKey
) -> None:
    git, daemon = seeded
    shared = age_key()
    # The repository's db.yaml is still encrypted for the first key: both are needed.
    entries = {"cluster.agekey": shared.identity.encode(), "team.agekey": key.identity.encode()}
    put_keys(api, entries, name=GLOBAL_KEYS_NAME)
    api.merge_patch(KS_PATH, {"spec": {"decryption": {"secretRef": None}}})

    encrypted = encrypt(realm_toml(4).encode(), age=shared.recipient).decode()
    sha = push_and_deliver(git, daemon, hook(api), {"realm/ix/realm_ix.toml": encrypted})

    wait_for(lambda: applied(api, sha), timeout=90, what="the commit for the shared key applied")
    assert secret_value(api, SECRET_PATH, "realm_ix.toml") == realm_toml(4).encode()
    assert_no_plaintext(api, daemon)
