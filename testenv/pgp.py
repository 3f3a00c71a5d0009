"""Keys that sign test commits and tags, as a Git author's gpg (or SSH) setup would.

Each key lives in its own GNUPGHOME in a temporary directory; git signs with it
when given :attr:`SigningKey.git_env` and :meth:`SigningKey.git_config`. The
key has no passphrase, so no pinentry is ever asked. Closing the key stops the
gpg-agent that signing started and removes the directory. :class:`SSHSigningKey`
is the same for Git's SSH signatures (``gpg.format=ssh``).
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

_names = itertools.count()


class SigningKey:
    """One ed25519 signing key with its armored public key ring."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"Test Author {next(_names)}"
        self.email = f"{self.name.lower().replace(' ', '.')}@example.com"
        self.home = Path(tempfile.mkdtemp(prefix="fluxd-test-gnupg-"))
        self.home.chmod(0o700)
        self.fingerprint = ""
        self.public_key = ""

    @property
    def key_id(self) -> str:
        """The primary key's id as Flux reports it: the fingerprint's last 16 hex digits."""
        return self.fingerprint[-16:]

    @property
    def git_env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def git_config(self) -> list[str]:
        """``git -c`` options that make ``commit -S`` and ``tag -s`` use this key."""
        return ["-c", "gpg.program=gpg", "-c", f"user.signingkey={self.fingerprint}"]

    def _gpg(self, *args: str) -> str:
        done = subprocess.run(
            ["gpg", "--batch", "--homedir", str(self.home), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> Self:
        uid = f"{self.name} <{self.email}>"
        self._gpg("--passphrase", "", "--quick-generate-key", uid, "ed25519", "sign", "never")
        listing = self._gpg("--with-colons", "--list-keys", uid)
        self.fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        self.public_key = self._gpg("--armor", "--export", self.fingerprint)
        return self

    def close(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class SSHSigningKey(SigningKey):
    """An ed25519 SSH key that signs as ``git -c gpg.format=ssh`` does."""

    def start(self) -> Self:
        private = self.home / "signing_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.email, "-f", str(private)],
            capture_output=True,
            check=True,
        )
        self.public_key = (self.home / "signing_key.pub").read_text()
        listing = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(private)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        self.fingerprint = listing.split()[1]
        return self

    @property
    def key_id(self) -> str:
        """What Flux reports for an SSH key: its SHA256 fingerprint."""
        return self.fingerprint

    def git_config(self) -> list[str]:
        return [
            "-c",
            "gpg.format=ssh",
            "-c",
            f"user.signingkey={self.home / 'signing_key.pub'}",
        ]
