"""A real git smart-HTTP server on loopback, for tests and the demo.

Sources are fetched from Gitea in production; in tests the same protocol is
served by the system git's own ``git http-backend`` CGI behind a small Python
HTTP server, with HTTP basic auth (and optionally a bearer token) and optional
TLS from a generated CA. Helpers create bare repositories and push commits,
tags and arbitrary refs into them with the git CLI, so what the fetcher sees is
exactly what a real server would serve.
"""

from __future__ import annotations

import base64
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from cryptography.hazmat.primitives import serialization

from testenv.certs import issue, make_ca
from testenv.pgp import SigningKey

__all__ = [
    "Blackhole",
    "FileContent",
    "GitServer",
    "Symlink",
    "TLSBundle",
    "free_port",
    "generate_tls_bundle",
    "git",
]

_GIT_AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "fluxd test",
    "GIT_AUTHOR_EMAIL": "test@fluxd.invalid",
    "GIT_COMMITTER_NAME": "fluxd test",
    "GIT_COMMITTER_EMAIL": "test@fluxd.invalid",
}


@dataclass(frozen=True)
class Symlink:
    """A file-tree entry that is a symbolic link to ``target`` (as written)."""

    target: str


FileContent = str | bytes | Symlink | None
"""What a path holds in a commit: text, bytes, a symlink, or ``None`` to delete it."""


@dataclass(frozen=True)
class TLSBundle:
    """A CA and a server certificate it signed, all PEM."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes


def generate_tls_bundle(
    *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), ca_name: str = "fluxd test git CA"
) -> TLSBundle:
    """Generate a throwaway CA and a server certificate valid for ``hosts``.

    Two CAs trusted by one process need distinct names: OpenSSL looks an
    issuer up by name and these CAs carry no key identifiers.
    """
    ca = make_ca(ca_name)
    server_cert, server_key = issue(ca=ca, common_name=hosts[0], hosts=hosts)
    return TLSBundle(
        ca_cert=ca[0].public_bytes(serialization.Encoding.PEM),
        server_cert=server_cert.public_bytes(serialization.Encoding.PEM),
        server_key=server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def git(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run the system git and return its stdout; raise with stderr on failure."""
    full_env = {**os.environ, **_GIT_AUTHOR_ENV, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    full_env.pop("GIT_DIR", None)
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def _http_backend() -> str:
    return str(Path(git("--exec-path").strip()) / "git-http-backend")


class _GitHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: GitServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _GitRequestHandler)


class _GitRequestHandler(BaseHTTPRequestHandler):
    server: _GitHTTPServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        # Quiet: tests read their own assertions, not access logs.
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _authorised(self) -> str | None:
        """Return the authenticated user name ('' when auth is off), or None if refused."""
        owner = self.server.owner
        if owner.username is None and owner.bearer_token is None:
            return ""
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and owner.username is not None:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if hmac.compare_digest(user, owner.username) and hmac.compare_digest(
                password, owner.password or ""
            ):
                return user
        if (
            scheme.lower() == "bearer"
            and owner.bearer_token is not None
            and hmac.compare_digest(value.strip(), owner.bearer_token)
        ):
            return "bearer"
        return None

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        owner = self.server.owner
        owner.requests.append(f"{self.command} {self.path}")
        user = self._authorised()
        body = self._read_body()
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": user or "anonymous",
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(owner.root),
        }
        done = subprocess.run(
            [_http_backend()], input=body, env=env, capture_output=True, check=False
        )
        head, payload = _split_cgi_output(done.stdout)
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name.strip(), value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class GitServer:
    """``git http-backend`` on 127.0.0.1 with a random port, plus repository helpers.

    Use as a context manager (sync or async) or call :meth:`start` / :meth:`stop`.
    Basic auth is on when ``username`` is set (wrong credentials get 401); a
    ``bearer_token`` is accepted as an alternative. ``tls=True`` serves HTTPS with
    a certificate from a generated CA (or from ``tls_bundle``), available as
    :attr:`ca_cert`.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        tls: bool = False,
        tls_bundle: TLSBundle | None = None,
        default_branch: str = "main",
    ) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="fluxd-git-")) if root is None else root
        self.username = username
        self.password = password
        self.bearer_token = bearer_token
        self.default_branch = default_branch
        if tls and tls_bundle is None:
            tls_bundle = generate_tls_bundle()
        self.tls_bundle = tls_bundle
        self.requests: list[str] = []
        self._httpd: _GitHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a background thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        httpd = _GitHTTPServer(self)
        if self.tls_bundle is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert.write_bytes(self.tls_bundle.server_cert)
                key.write_bytes(self.tls_bundle.server_key)
                context.load_cert_chain(cert, key)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, name="fluxd-test-gitserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the repositories if this server created their root."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

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

    # addresses

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("git server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_bundle is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> bytes:
        """PEM of the CA that signed the server certificate (TLS only)."""
        if self.tls_bundle is None:
            raise RuntimeError("git server was started without TLS")
        return self.tls_bundle.ca_cert

    def url(self, repo: str) -> str:
        """The clone URL of ``repo`` (e.g. ``k3s/private.git``)."""
        return f"{self.base_url}/{repo}"

    def repo_path(self, repo: str) -> Path:
        return self.root / repo

    # repositories

    def create_repo(self, repo: str) -> Path:
        """Create an empty bare repository whose HEAD names the default branch."""
        path = self.repo_path(repo)
        path.parent.mkdir(parents=True, exist_ok=True)
        git("init", "--quiet", "--bare", f"--initial-branch={self.default_branch}", str(path))
        git("config", "http.receivepack", "true", cwd=path)
        return path

    def delete_repo(self, repo: str) -> None:
        shutil.rmtree(self.repo_path(repo))

    def commit(
        self,
        repo: str,
        files: Mapping[str, FileContent],
        *,
        branch: str | None = None,
        message: str = "update",
        tags: tuple[str, ...] = (),
        annotated: bool = False,
        signed_by: SigningKey | None = None,
        tags_signed_by: SigningKey | None = None,
    ) -> str:
        """Commit ``files`` on top of ``branch`` (created if new) and push; return the sha.

        Paths not named keep their content; ``None`` deletes a path. Each tag in
        ``tags`` is created on the new commit (annotated if asked). The commit is
        signed with ``signed_by``, the tags (then annotated) with ``tags_signed_by``.
        """
        branch = branch or self.default_branch
        bare = self.repo_path(repo)
        with tempfile.TemporaryDirectory(prefix="fluxd-git-work-") as tmp:
            work = Path(tmp)
            git("init", "--quiet", f"--initial-branch={branch}", str(work))
            git("remote", "add", "origin", str(bare), cwd=work)
            heads = git("ls-remote", "--heads", "origin", branch, cwd=work)
            if heads.strip():
                git("fetch", "--quiet", "origin", branch, cwd=work)
                git("checkout", "--quiet", "-B", branch, "FETCH_HEAD", cwd=work)
            for rel, content in files.items():
                target = work / rel
                if content is None:
                    target.unlink(missing_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.is_symlink() or target.exists():
                    target.unlink()
                if isinstance(content, Symlink):
                    target.symlink_to(content.target)
                else:
                    _write(target, content)
            git("add", "--all", cwd=work)
            if signed_by is not None:
                git(
                    *signed_by.git_config(),
                    "commit",
                    "--quiet",
                    "--allow-empty",
                    "-S",
                    "-m",
                    message,
                    cwd=work,
                    env=signed_by.git_env,
                )
            else:
                git("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)
            sha = git("rev-parse", "HEAD", cwd=work).strip()
            for tag in tags:
                if tags_signed_by is not None:
                    git(
                        *tags_signed_by.git_config(),
                        "tag",
                        "-s",
                        "-m",
                        f"release {tag}",
                        tag,
                        cwd=work,
                        env=tags_signed_by.git_env,
                    )
                elif annotated:
                    git("tag", "-a", "-m", f"release {tag}", tag, cwd=work)
                else:
                    git("tag", tag, cwd=work)
            git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", *tags, cwd=work)
        return sha

    def rev_parse(self, repo: str, ref: str) -> str:
        """The object id ``ref`` names (an annotated tag's own id, not its commit's)."""
        return git("rev-parse", ref, cwd=self.repo_path(repo)).strip()

    def update_ref(self, repo: str, ref: str, target: str) -> None:
        """Point ``ref`` (a full name such as ``refs/pull/1/head``) at ``target``."""
        git("update-ref", ref, target, cwd=self.repo_path(repo))

    def delete_ref(self, repo: str, ref: str) -> None:
        git("update-ref", "-d", ref, cwd=self.repo_path(repo))


def _split_cgi_output(output: bytes) -> tuple[bytes, bytes]:
    """Split a CGI response into its header block and body (either line ending)."""
    crlf, lf = output.find(b"\r\n\r\n"), output.find(b"\n\n")
    if crlf != -1 and (lf == -1 or crlf <= lf):
        return output[:crlf], output[crlf + 4 :]
    if lf != -1:
        return output[:lf], output[lf + 2 :]
    return output, b""


def _write(target: Path, content: str | bytes) -> None:
    handle: IO[bytes]
    with target.open("wb") as handle:
        handle.write(content.encode() if isinstance(content, str) else content)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte.

    It stands in for a Git host that hangs after the TCP handshake (a stuck
    server, a firewall that swallows packets): clients connect, then wait for
    a greeting that never comes. Stopping it closes every connection, so a
    client still waiting on one gets an error and returns.
    """

    def __init__(self) -> None:
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        # accept() is not woken by close() from another thread: poll the stop flag.
        listener.settimeout(0.2)
        self._listener = listener
        self._thread = threading.Thread(
            target=self._accept, name="fluxd-test-blackhole", daemon=True
        )
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("blackhole is not running")
        return int(self._listener.getsockname()[1])

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._connections)

    def url(self, scheme: str = "ssh", repo: str = "team/repo.git") -> str:
        """A clone URL of ``repo`` on the blackhole (``ssh://git@...`` or ``http://...``)."""
        user = "git@" if scheme == "ssh" else ""
        return f"{scheme}://{user}127.0.0.1:{self.port}/{repo}"
