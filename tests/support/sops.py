"""Encrypting test inputs the way a user does: with the same sops binary fluxd decrypts with.

Age keys come from pyrage (sops ships no age-keygen); OpenPGP keys from
``gpg --batch`` in a GnuPG home of the test's own, whose agent is stopped when
the key has been exported.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519  # type: ignore[import-untyped]

from fluxd.build.decrypt import locate_sops


@dataclass(frozen=True)
class AgeKey:
    identity: str
    recipient: str


def age_key() -> AgeKey:
    identity = x25519.Identity.generate()
    return AgeKey(identity=str(identity), recipient=str(identity.to_public()))


@dataclass(frozen=True)
class PgpKey:
    fingerprint: str
    armored_private: bytes
    home: Path


GPG_GENERATE = [
    *("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "fluxd test <t@example.com>"),
    *("default", "default", "never"),
]


def pgp_key(home: Path) -> PgpKey:
    """A new passphrase-less OpenPGP key in ``home`` (a fresh GnuPG home)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": str(home)}
    try:
        subprocess.run(
            GPG_GENERATE,
            env=env,
            check=True,
            capture_output=True,
        )
        listing = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        armored = subprocess.run(
            ["gpg", "--batch", "--armor", "--export-secret-keys", fingerprint],
            env=env,
            check=True,
            capture_output=True,
        ).stdout
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    return PgpKey(fingerprint=fingerprint, armored_private=armored, home=home)


def encrypt(
    plaintext: bytes,
    *,
    age: str | None = None,
    pgp: PgpKey | None = None,
    input_type: str = "binary",
    output_type: str | None = None,
    encrypted_regex: str | None = None,
) -> bytes:
    """``sops encrypt`` of ``plaintext`` for an age recipient and/or an OpenPGP key."""
    home = pgp.home if pgp is not None else Path("/nonexistent")
    command = [str(locate_sops()), "encrypt", "--input-type", input_type]
    command += ["--output-type", output_type or input_type]
    if age is not None:
        command += ["--age", age]
    if pgp is not None:
        command += ["--pgp", pgp.fingerprint]
    if encrypted_regex is not None:
        command += ["--encrypted-regex", encrypted_regex]
    command.append("/dev/stdin")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": str(home)}
    try:
        done = subprocess.run(command, input=plaintext, env=env, check=True, capture_output=True)
    finally:
        if pgp is not None:
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, check=False)
    return done.stdout
