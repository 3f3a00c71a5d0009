"""A real OpenSSH server on loopback serving git repositories, for tests and the demo.

GitRepositories with ``ssh://`` URLs authenticate with a deploy key and check
the server's host key against ``known_hosts``. To test that for real, this
module runs the system ``sshd`` (package ``openssh-server``) as the current
user on a random port of 127.0.0.1, with a freshly generated host key and one
authorised deploy key. Git over SSH runs ``git-upload-pack`` in the login
shell, so any bare repository on disk (for example those of
:class:`testenv.gitserver.GitServer`) is served by its absolute path.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from testenv.gitserver import free_port

__all__ = ["SSHServer", "generate_keypair", "sshd_binary"]

_SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def sshd_binary() -> str:
    """Absolute path of the OpenSSH server (sshd refuses to run by relative path)."""
    found = shutil.which("sshd")
    if found:
        return found
    for candidate in _SSHD_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    raise RuntimeError("sshd not found: install it with 'apt-get install -y openssh-server'")


def generate_keypair(
    directory: Path, *, name: str, key_type: str = "ed25519", passphrase: str = ""
) -> tuple[str, str]:
    """Generate an SSH key pair with ssh-keygen; return (private key text, public key line)."""
    path = directory / name
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", name, "-f", str(path)]
    if key_type == "ecdsa":
        args[4:4] = ["-b", "384"]
    subprocess.run(args, check=True, capture_output=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


class SSHServer:
    """``sshd`` on 127.0.0.1 with a random port, one host key and one deploy key.

    :attr:`known_hosts` is the line a GitRepository Secret needs, and
    :attr:`identity` the deploy key's private key. :meth:`url` turns a bare
    repository path into an ``ssh://`` clone URL.
    """

    def __init__(self, *, key_type: str = "ed25519", passphrase: str = "") -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="fluxd-sshd-"))
        self._dir.chmod(0o700)
        self.user = getpass.getuser()
        self.key_type = key_type
        self.passphrase = passphrase
        self.port = 0
        self.host_public_key = ""
        self.identity = ""
        self.identity_public_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Generate keys, write the config, start sshd and wait until it accepts logins."""
        # sshd started as root needs its privilege separation directory.
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _, self.host_public_key = generate_keypair(self._dir, name="host_key")
        self.identity, self.identity_public_key = generate_keypair(
            self._dir, name="deploy_key", key_type=self.key_type, passphrase=self.passphrase
        )
        authorized = self._dir / "authorized_keys"
        authorized.write_text(self.identity_public_key + "\n")
        authorized.chmod(0o600)
        self.port = free_port()
        config = self._dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self._dir / 'host_key'}",
                    f"PidFile {self._dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        with (self._dir / "sshd.log").open("wb") as log:
            self._process = subprocess.Popen(
                [sshd_binary(), "-D", "-e", "-f", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = (self._dir / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd exited with {self._process.returncode}: {log}")
            probe = subprocess.run(
                ["ssh-keyscan", "-p", str(self.port), "-T", "1", "127.0.0.1"],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0 and probe.stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start listening on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        """Stop sshd and remove its keys and config."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def known_hosts(self) -> str:
        """The known_hosts line for this server (``[127.0.0.1]:<port> <type> <key>``)."""
        key_type, key = self.host_public_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def url(self, repo_path: Path) -> str:
        """The ssh:// clone URL of the bare repository at ``repo_path``."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repo_path.resolve()}"
