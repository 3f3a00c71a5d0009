"""A real OCI registry on loopback (CNCF distribution), with TLS and htpasswd basic auth.

OCIRepository tests pull from the same registry server people run in front
of their clusters, built from its Go module (testenv.build.OCI_REGISTRY).
It serves HTTPS with a certificate from a CA of its own (trusted by the
tests through ``ca_cert``) and asks for a bcrypt htpasswd user. Artifacts
are pushed with the real flux CLI (``flux push artifact``), the way Flux
users ship manifests through a registry.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import bcrypt
from cryptography.hazmat.primitives import serialization

from testenv import build
from testenv.certs import issue, make_ca
from testenv.gitserver import free_port

__all__ = ["Registry"]

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


class RegistryError(RuntimeError):
    """The registry did not start, or a push failed."""


class Registry:
    """``registry serve`` on 127.0.0.1 over TLS with one htpasswd user; a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        username: str = "oci-user",
        password: str,
        access_log: bool = False,
        tls: bool = True,
    ) -> None:
        self.workdir = workdir
        # Without TLS it serves plain HTTP, for ``spec.insecure``.
        self.tls = tls
        # Benchmarks count the requests a poll costs from the access log (registry.log).
        self.access_log = access_log
        self.username = username
        self.password = password
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        ca = make_ca("fluxd-testenv-registry-ca")
        cert, key = issue(ca=ca, common_name="registry", hosts=("127.0.0.1", "localhost"))
        self.ca_cert = ca[0].public_bytes(serialization.Encoding.PEM)
        self._cert = cert.public_bytes(serialization.Encoding.PEM)
        self._key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def url(self, repository: str) -> str:
        """The OCIRepository ``spec.url`` of a repository: ``oci://127.0.0.1:<port>/<repo>``."""
        return f"oci://{self.host}/{repository}"

    def docker_config(self, username: str | None = None, password: str | None = None) -> bytes:
        """A ``.dockerconfigjson`` for this registry (its own user unless told otherwise)."""
        user = self.username if username is None else username
        secret = self.password if password is None else password
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return json.dumps({"auths": {self.host: {"auth": auth}}}).encode()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        binary = build.ensure_binaries(build.OCI_REGISTRY) / "registry"
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tls.crt").write_bytes(self._cert)
        (self.workdir / "tls.key").write_bytes(self._key)
        (self.workdir / "tls.key").chmod(0o600)
        (self.workdir / "ca.crt").write_bytes(self.ca_cert)
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.workdir / "htpasswd").write_text(f"{self.username}:{hashed}\n")
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": not self.access_log}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
            },
            "http": {"addr": self.host},
            "auth": {
                "htpasswd": {"realm": "fluxd-testenv", "path": str(self.workdir / "htpasswd")}
            },
        }
        if self.tls:
            config["http"]["tls"] = {
                "certificate": str(self.workdir / "tls.crt"),
                "key": str(self.workdir / "tls.key"),
            }
        config_file = self.workdir / "config.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        log = (self.workdir / "registry.log").open("wb")
        env = dict(os.environ, OTEL_TRACES_EXPORTER="none", OTEL_SDK_DISABLED="true")
        self._process = subprocess.Popen(
            [str(binary), "serve", str(config_file)], stdout=log, stderr=log, env=env
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        context = ssl.create_default_context(cadata=self.ca_cert.decode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RegistryError(f"registry exited: {self.log_tail()}")
            try:
                urllib.request.urlopen(f"{self.base_url}/v2/", context=context, timeout=2)
            except urllib.error.HTTPError as error:
                if error.code == 401:  # up, and asking for the htpasswd user
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RegistryError(f"registry not ready within {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        path = self.workdir / "registry.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def requests(self, method: str) -> int:
        """How many ``method`` requests to /v2/ the access log recorded (with ``access_log``)."""
        path = self.workdir / "registry.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text.count(f'"{method} /v2/')

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- pushing ----------------------------------------------------------------

    def push(
        self,
        repository: str,
        tag: str,
        path: Path,
        *,
        source: str = "https://git.example/k3s/config",
        revision: str = "main@sha1:0000000000000000000000000000000000000000",
    ) -> str:
        """``flux push artifact`` a directory as ``<repo>:<tag>``; returns the manifest digest."""
        flux = build.ensure_binaries(build.FLUX_CLI) / "flux"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            # Go reads extra roots from here: the CLI trusts the registry's CA.
            "SSL_CERT_FILE": str(self.workdir / "ca.crt"),
        }
        done = subprocess.run(
            [
                str(flux),
                "push",
                "artifact",
                f"oci://{self.host}/{repository}:{tag}",
                f"--path={path}",
                f"--source={source}",
                f"--revision={revision}",
                f"--creds={self.username}:{self.password}",
                *([] if self.tls else ["--insecure-registry"]),
                "--output=json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise RegistryError(f"flux push artifact failed: {done.stderr}")
        found = _DIGEST.search(done.stdout) or _DIGEST.search(done.stderr)
        if found is None:
            raise RegistryError(f"flux push artifact printed no digest: {done.stdout}{done.stderr}")
        return found[0]
