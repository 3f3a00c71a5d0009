"""Resolving and checking out a GitRepository's ref with libgit2 (pygit2).

A poll is two steps, as in Flux: :func:`resolve` lists the remote's refs
(``ls-remote``) and turns ``spec.ref`` into a commit and Flux's revision string
without fetching anything, so an unchanged repository costs one round trip;
only when that revision is new does the caller run :func:`checkout`, a shallow
fetch (depth 1) into a fresh directory that is moved into place atomically.

libgit2 blocks, so every operation runs in a thread of the caller's
:class:`~fluxd.source.workers.GitWorkers`, which never holds more threads
than its capacity, even when operations are abandoned, and refuses a source
whose previous operation is still stuck. Every operation honours its timeout
three ways: libgit2's own connect and read timeouts end a silent connection,
callbacks abort a transfer past its deadline, and the awaiting task gives up
shortly after in any case.

Three libgit2 settings are process-wide, which shapes how timeouts and server
identity are handled:

* The connect and read timeouts are copied into each new connection, so
  fluxd sets them to the longest timeout of the operations in flight: no
  operation gets less time than its own ``spec.timeout``.
* SSH host keys are checked by libgit2 against ``$HOME/.ssh/known_hosts``,
  where HOME is libgit2's own home directory. fluxd points it at a private
  directory and writes the GitRepository's ``known_hosts`` there for the
  duration of each SSH handshake, holding a gate from before the connection
  until the host key has been checked. Handshakes with the same
  ``known_hosts`` share the gate. A handshake holds it for a short lease
  only: one with a silent server cannot keep the others out, it is revoked
  and refused at its host key check. A mismatch is refused.
* Extra CAs for HTTPS (``ca.crt``) are added to libgit2's single OpenSSL trust
  store, which only grows: a CA given for one GitRepository is then trusted
  for every HTTPS remote of this process, on top of the system CAs.

Unsupported by libgit2 and reported as a stalled error rather than ignored:
client certificates (``tls.crt``/``tls.key``), SOCKS5 proxies, and proxies for
SSH remotes. Bearer tokens, and basic credentials for http(s) remotes, are sent
as an ``Authorization`` header with every request, so a poll is one request.
"""

from __future__ import annotations

import atexit
import base64
import collections
import dataclasses
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import anyio
import pygit2
from pygit2.enums import CheckoutStrategy, CredentialType

from fluxd.api.source import DEFAULT_BRANCH, GitRepositoryRef
from fluxd.source.auth import GitAuth, ProxySettings, url_scheme
from fluxd.source.errors import (
    AuthenticationFailed,
    GitOperationFailed,
    GitTimeout,
    InvalidSource,
    SourceError,
    redact_url,
)
from fluxd.source.semver_range import SemverRange, highest_match
from fluxd.source.workers import GitWorkers, WorkerBusy

__all__ = ["GitRef", "Resolved", "check_sparse_checkout", "checkout", "resolve"]

RefKind = Literal["commit", "name", "semver", "tag", "branch"]
_T = TypeVar("_T")

# libgit2's read timeout and the callbacks end an operation at about its
# deadline; should libgit2 be stuck anyway, the awaiting task stops waiting this
# much later (the thread keeps its worker slot until it returns).
_ABANDON_GRACE = 5.0


@dataclass(frozen=True)
class GitRef:
    """``spec.ref``: what to check out. Precedence: commit > name > semver > tag > branch."""

    branch: str | None = None
    tag: str | None = None
    semver: str | None = None
    name: str | None = None
    commit: str | None = None

    @classmethod
    def from_spec(cls, ref: GitRepositoryRef | None) -> GitRef:
        """Read ``spec.ref``; an empty or missing ref means the ``master`` branch, as in Flux."""
        ref = ref or {}
        return cls(
            branch=ref.get("branch") or None,
            tag=ref.get("tag") or None,
            semver=ref.get("semver") or None,
            name=ref.get("name") or None,
            commit=ref.get("commit") or None,
        )

    @property
    def kind(self) -> RefKind:
        if self.commit:
            return "commit"
        if self.name:
            return "name"
        if self.semver:
            return "semver"
        if self.tag:
            return "tag"
        return "branch"

    @property
    def effective_branch(self) -> str:
        return self.branch or DEFAULT_BRANCH

    def describe(self) -> str:
        """Human-readable form for messages: ``branch 'main'``, ``semver '>=1.0'``."""
        kind = self.kind
        value = {
            "commit": self.commit,
            "name": self.name,
            "semver": self.semver,
            "tag": self.tag,
            "branch": self.effective_branch,
        }[kind]
        return f"{kind} '{value}'"


@dataclass(frozen=True)
class Resolved:
    """A ref resolved against the remote: Flux's revision string and the commit.

    ``revision`` is ``<branch>@sha1:<hex>``, ``<tag>@sha1:<hex>`` (tag and
    semver), ``<ref name>@sha1:<hex>`` (``spec.ref.name``, e.g.
    ``refs/heads/main@sha1:...``), or ``sha1:<hex>`` for a bare commit.
    """

    revision: str
    commit: str
    #: Full name of the remote ref to fetch (``refs/heads/main``); None for a bare commit.
    ref_name: str | None
    #: True when ``spec.ref.commit`` pins the commit, whatever the ref's tip is.
    pinned: bool = False
    #: The commit's message, once checked out (events name the commit by its subject).
    message: str = ""

    def with_commit(self, commit: str) -> Resolved:
        """The same ref at another commit (the branch moved between resolve and checkout)."""
        label = self.revision.rpartition("@")[0]
        return dataclasses.replace(self, commit=commit, revision=_revision(label, commit))


def _revision(label: str | None, commit: str) -> str:
    return f"{label}@sha1:{commit}" if label else f"sha1:{commit}"


async def resolve(
    url: str,
    ref: GitRef,
    auth: GitAuth,
    *,
    timeout: float,
    workers: GitWorkers,
    key: str | None = None,
    proxy: ProxySettings | None = None,
) -> Resolved:
    """Resolve ``ref`` to a commit with one remote ref listing; fetch nothing.

    ``key`` names the source (default: the URL); while an earlier operation
    of the same key is still stuck in its thread, this one is refused.
    """
    remote = _Remote.prepare(url, auth, proxy=proxy, timeout=timeout)
    _validate_ref(ref, url)
    heads = await _off_loop(remote.list_refs, timeout=timeout, workers=workers, key=key, url=url)
    return _pick(ref, heads, url)


async def checkout(
    url: str,
    resolved: Resolved,
    auth: GitAuth,
    dest: Path,
    *,
    timeout: float,
    workers: GitWorkers,
    key: str | None = None,
    recurse_submodules: bool = False,
    proxy: ProxySettings | None = None,
    sparse_checkout: Sequence[str] = (),
) -> Resolved:
    """Check out ``resolved`` into ``dest`` (replaced atomically); return what was checked out.

    A ref is fetched shallow (depth 1); if it moved since :func:`resolve`, the
    new tip is checked out and the returned value names it. A pinned commit is
    fetched with the history of its branch (or of all branches and tags) and
    must be found there. ``sparse_checkout`` (``spec.sparseCheckout``), when
    not empty, limits the work tree to those directories; the repository
    database is complete either way, so the revision can still be verified.
    """
    remote = _Remote.prepare(url, auth, proxy=proxy, timeout=timeout)
    paths = _sparse_paths(sparse_checkout)

    def work() -> Resolved:
        return remote.checkout(
            resolved, dest, recurse_submodules=recurse_submodules, sparse_paths=paths
        )

    return await _off_loop(work, timeout=timeout, workers=workers, key=key, url=url)


async def _off_loop(
    work: Callable[[], _T], *, timeout: float, workers: GitWorkers, key: str | None, url: str
) -> _T:
    try:
        with anyio.fail_after(timeout + _ABANDON_GRACE):
            return await workers.run(work, key=key or url)
    except WorkerBusy:
        raise GitOperationFailed(
            f"git operation on '{redact_url(url)}' not started: the previous one is still "
            "running (the server is not answering)",
            url=url,
        ) from None
    except TimeoutError:
        raise GitTimeout(
            f"git operation on '{redact_url(url)}' timed out after {timeout:g}s", url=url
        ) from None


def _sparse_paths(directories: Sequence[str]) -> list[str] | None:
    """libgit2 paths for ``spec.sparseCheckout``; None (everything) when it lists nothing."""
    # Flux trims a leading './'; libgit2 matches a directory by its name without a slash.
    paths = [path.removeprefix("./").rstrip("/") for path in directories]
    return [path for path in paths if path] or None


def check_sparse_checkout(checkout_dir: Path, directories: Sequence[str], *, url: str) -> None:
    """Fail, as Flux does, when a ``spec.sparseCheckout`` directory is not in the checkout."""
    root = checkout_dir.resolve()
    for directory in directories:
        path = (root / directory).resolve()
        if path != root and root not in path.parents:
            raise GitOperationFailed(
                "failed to sparse checkout directories : sparse checkout dir "
                f"'{directory}' cannot be resolved: it is outside the repository",
                url=url,
            )
        if not os.path.lexists(path):
            raise GitOperationFailed(
                "failed to sparse checkout directories : sparse checkout dir "
                f"'{directory}' does not exist in repository",
                url=url,
            )


def _validate_ref(ref: GitRef, url: str) -> None:
    if ref.commit is not None:
        commit = ref.commit.lower()
        if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
            raise InvalidSource(
                f"spec.ref.commit must be a full 40-character SHA-1, got '{ref.commit}'",
                url=url,
                reason="GitOperationFailed",
            )
    if ref.kind == "semver" and ref.semver is not None:
        try:
            SemverRange.parse(ref.semver)
        except ValueError as error:
            raise InvalidSource(
                f"semver parse error: {error}", url=url, reason="GitOperationFailed"
            ) from None
    if ref.kind == "name" and ref.name is not None and not ref.name.startswith("refs/"):
        raise InvalidSource(
            f"spec.ref.name must be a full reference name such as 'refs/heads/main', "
            f"got '{ref.name}'",
            url=url,
            reason="GitOperationFailed",
        )


def _pick(ref: GitRef, heads: dict[str, str], url: str) -> Resolved:
    """Choose the commit for ``ref`` among the remote's refs (peeled tags included)."""
    where = redact_url(url)
    if not heads:
        raise GitOperationFailed(f"repository '{where}' is empty (it has no refs)", url=url)

    def commit_of(name: str) -> str | None:
        # An annotated tag lists its tag object; '^{}' is the commit it points at.
        return heads.get(f"{name}^{{}}") or heads.get(name)

    def missing(name: str) -> GitOperationFailed:
        return GitOperationFailed(
            f"unable to resolve {ref.describe()} of '{where}': couldn't find remote ref '{name}'",
            url=url,
        )

    kind = ref.kind
    if kind == "commit":
        assert ref.commit is not None
        commit = ref.commit.lower()
        if ref.branch:
            name = f"refs/heads/{ref.branch}"
            if name not in heads:
                raise missing(name)
            return Resolved(_revision(ref.branch, commit), commit, name, pinned=True)
        return Resolved(_revision(None, commit), commit, None, pinned=True)
    if kind == "name":
        assert ref.name is not None
        found = commit_of(ref.name)
        if found is None:
            raise missing(ref.name)
        return Resolved(_revision(ref.name, found), found, ref.name)
    if kind == "semver":
        assert ref.semver is not None
        tags = [
            name.removeprefix("refs/tags/")
            for name in heads
            if name.startswith("refs/tags/") and not name.endswith("^{}")
        ]
        chosen = highest_match(SemverRange.parse(ref.semver), tags)
        if chosen is None:
            raise GitOperationFailed(
                f"no tag of '{where}' matches semver range '{ref.semver}'", url=url
            )
        name = f"refs/tags/{chosen}"
        found = commit_of(name)
        assert found is not None
        return Resolved(_revision(chosen, found), found, name)
    label = ref.tag if kind == "tag" else ref.effective_branch
    assert label is not None
    name = f"refs/tags/{label}" if kind == "tag" else f"refs/heads/{label}"
    found = commit_of(name)
    if found is None:
        raise missing(name)
    return Resolved(_revision(label, found), found, name)


# libgit2 plumbing, all of it run in worker threads.


class _SSHGateTimeout(Exception):
    """Other SSH handshakes held the known_hosts gate until this operation's deadline."""


# How long one SSH handshake may keep the known_hosts gate from handshakes that
# need another known_hosts. A healthy server has shown its host key within a
# second; after this, a waiting handshake takes the gate over and the slow one
# is refused at its host key check, since it cannot tell which file libgit2
# read (libgit2 reads known_hosts once the TCP connection is up).
_SSH_HANDSHAKE_LEASE = 10.0


class _Libgit2Home:
    """libgit2's process-wide home directory, whose .ssh/known_hosts checks SSH host keys."""

    _lock = threading.Lock()
    _home: Path | None = None
    _trusted_cas: set[str] = set()

    @classmethod
    def ensure(cls) -> Path:
        with cls._lock:
            if cls._home is None:
                home = Path(tempfile.mkdtemp(prefix="fluxd-libgit2-home-"))
                atexit.register(shutil.rmtree, home, True)
                (home / ".ssh").mkdir(mode=0o700)
                pygit2.settings.homedir = str(home)
                cls._home = home
            return cls._home

    @classmethod
    def trust_ca(cls, pem: bytes) -> None:
        """Add a CA bundle to libgit2's (process-wide, grow-only) OpenSSL trust store."""
        home = cls.ensure()
        digest = hashlib.sha256(pem).hexdigest()
        with cls._lock:
            if digest in cls._trusted_cas:
                return
            path = home / f"ca-{digest[:16]}.pem"
            path.write_bytes(pem)
            pygit2.settings.set_ssl_cert_locations(str(path), None)
            cls._trusted_cas.add(digest)


class _SSHGate:
    """Who may have libgit2's known_hosts file in place, from connect to host key check.

    Handshakes needing the same ``known_hosts`` share the gate. One needing
    another waits until the holders are done or their lease has run out; it
    then revokes them. A revoked holder may have connected after the file was
    replaced, so its host key check is refused instead of trusted.
    """

    _condition = threading.Condition()
    _known_hosts: str | None = None
    #: Holders: ticket -> monotonic time their lease ends.
    _holders: dict[int, float] = {}
    _tickets = itertools.count()

    @classmethod
    @contextmanager
    def held(cls, known_hosts: str, *, deadline: float) -> Iterator[Callable[[], bool]]:
        """Hold the gate with ``known_hosts`` in place; yield the release.

        The release returns False if the hold was revoked before it. Raises
        _SSHGateTimeout if the gate is not free by ``deadline`` (monotonic).
        """
        home = _Libgit2Home.ensure()
        with cls._condition:
            while cls._holders and cls._known_hosts != known_hosts:
                now = time.monotonic()
                lease_end = max(cls._holders.values())
                if now >= lease_end:
                    cls._holders.clear()  # revoked: their release will say so
                    break
                if now >= deadline:
                    raise _SSHGateTimeout
                cls._condition.wait(min(lease_end, deadline) - now)
            if not cls._holders:
                (home / ".ssh" / "known_hosts").write_text(known_hosts)
                cls._known_hosts = known_hosts
            ticket = next(cls._tickets)
            cls._holders[ticket] = time.monotonic() + _SSH_HANDSHAKE_LEASE
        released: bool | None = None

        def release() -> bool:
            nonlocal released
            if released is None:
                with cls._condition:
                    released = cls._holders.pop(ticket, None) is not None
                    cls._condition.notify_all()
            return released

        try:
            yield release
        finally:
            release()


class _Libgit2Timeouts:
    """libgit2's connect and read timeouts, process-wide, copied into each new connection.

    While operations are in flight the options hold the longest of their
    timeouts, so a connection opened by any of them waits at least as long as
    its own operation allows, and a silent server ends the connection (and
    frees the thread) instead of holding it forever.
    """

    _lock = threading.Lock()
    _in_flight: collections.Counter[int] = collections.Counter()
    _applied: int | None = None

    @classmethod
    @contextmanager
    def at_least(cls, timeout: float) -> Iterator[None]:
        millis = max(1, round(timeout * 1000))
        with cls._lock:
            cls._in_flight[millis] += 1
            cls._apply()
        try:
            yield
        finally:
            with cls._lock:
                cls._in_flight[millis] -= 1
                if cls._in_flight[millis] == 0:
                    del cls._in_flight[millis]
                if cls._in_flight:
                    cls._apply()

    @classmethod
    def _apply(cls) -> None:
        longest = max(cls._in_flight)
        if longest != cls._applied:
            pygit2.settings.server_connect_timeout = longest
            pygit2.settings.server_timeout = longest
            cls._applied = longest


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials, server verification, deadline and outcome of one libgit2 operation."""

    def __init__(
        self,
        *,
        url: str,
        auth: GitAuth,
        deadline: float,
        timeout: float,
        after_host_check: Callable[[], bool],
    ) -> None:
        super().__init__()
        self._url = url
        self._auth = auth
        self._deadline = deadline
        self._timeout = timeout
        self._after_host_check = after_host_check
        self._attempts = 0

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise GitTimeout(
                f"git operation on '{redact_url(self._url)}' timed out after {self._timeout:g}s",
                url=self._url,
            )

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> pygit2.UserPass | pygit2.KeypairFromMemory | pygit2.Username:
        self._check_deadline()
        self._attempts += 1
        where = redact_url(self._url)
        if self._attempts > 1 or (
            allowed_types & CredentialType.USERPASS_PLAINTEXT and self._basic_up_front()
        ):
            # libgit2 asks (again) only when the server refused what we gave.
            raise AuthenticationFailed(
                f"authentication to '{where}' failed: the server refused the credentials",
                url=self._url,
            )
        auth = self._auth
        if allowed_types & CredentialType.SSH_KEY and auth.identity is not None:
            user = username_from_url or auth.username or "git"
            return pygit2.KeypairFromMemory(
                user, None, auth.identity, auth.identity_passphrase or ""
            )
        if allowed_types & CredentialType.USERNAME and auth.identity is not None:
            return pygit2.Username(username_from_url or auth.username or "git")
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and auth.username is not None:
            return pygit2.UserPass(auth.username, auth.password or "")
        raise AuthenticationFailed(
            f"authentication to '{where}' required, but no usable credentials are configured "
            "(set spec.secretRef)",
            url=self._url,
        )

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        if not self._after_host_check():
            # Another known_hosts may have been in place when libgit2 checked the key.
            raise GitTimeout(
                f"SSH handshake with '{redact_url(self._url)}' took longer than "
                f"{_SSH_HANDSHAKE_LEASE:g}s before the server showed its host key",
                url=self._url,
            )
        if valid:
            return True
        where = redact_url(self._url)
        if url_scheme(self._url) == "ssh":
            raise AuthenticationFailed(
                f"host key verification failed for '{where}': the server's key does not match "
                "'known_hosts'",
                url=self._url,
            )
        raise AuthenticationFailed(
            f"TLS verification failed for '{where}': certificate signed by unknown authority "
            "or not valid for the host (set 'ca.crt' in the secret)",
            url=self._url,
        )

    def _basic_up_front(self) -> bool:
        return self._auth.username is not None and url_scheme(self._url) in ("http", "https")

    def custom_headers(self) -> list[str] | None:
        if self._auth.bearer_token is not None:
            return [f"Authorization: Bearer {self._auth.bearer_token}"]
        if self._basic_up_front():
            # Sent with the first request, as git does once it knows the
            # credentials: libgit2 would first take a 401, then ask again.
            pair = f"{self._auth.username}:{self._auth.password or ''}".encode()
            return [f"Authorization: Basic {base64.b64encode(pair).decode()}"]
        return None

    def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
        self._check_deadline()

    def sideband_progress(self, string: str) -> None:
        self._check_deadline()


@dataclass(frozen=True)
class _Remote:
    """One remote URL with its auth: the blocking operations behind resolve/checkout."""

    url: str
    auth: GitAuth
    proxy_url: str | None
    timeout: float

    @classmethod
    def prepare(
        cls, url: str, auth: GitAuth, *, proxy: ProxySettings | None, timeout: float
    ) -> _Remote:
        scheme = url_scheme(url)
        if scheme == "ssh" and (auth.identity is None or auth.known_hosts is None):
            raise InvalidSource(
                f"ssh URL '{redact_url(url)}' needs a secretRef with 'identity' and 'known_hosts'",
                url=url,
                reason="AuthenticationFailed",
            )
        if auth.tls_cert is not None:
            raise InvalidSource(
                "client certificates ('tls.crt'/'tls.key') are not supported by fluxd's git "
                "transport; use basic auth or a bearer token",
                url=url,
                reason="AuthenticationFailed",
            )
        proxy_url = None
        if proxy is not None:
            if proxy.scheme == "socks5":
                raise InvalidSource(
                    "socks5 proxies are not supported by fluxd's git transport; use an "
                    "http:// or https:// proxy",
                    url=url,
                    reason="InvalidProxySecret",
                )
            if scheme == "ssh":
                raise InvalidSource(
                    "proxies are not supported for ssh:// URLs by fluxd's git transport",
                    url=url,
                    reason="InvalidProxySecret",
                )
            proxy_url = proxy.transport_url()
        return cls(url=url, auth=auth, proxy_url=proxy_url, timeout=timeout)

    @contextmanager
    def _session(self) -> Iterator[_Callbacks]:
        """Callbacks for one connection, with the SSH known_hosts gate when needed."""
        _Libgit2Home.ensure()
        if self.auth.ca_cert is not None:
            _Libgit2Home.trust_ca(self.auth.ca_cert)
        deadline = time.monotonic() + self.timeout
        with _Libgit2Timeouts.at_least(self.timeout):
            if url_scheme(self.url) != "ssh":
                yield self._callbacks(deadline, lambda: True)
                return
            assert self.auth.known_hosts is not None
            try:
                with _SSHGate.held(self.auth.known_hosts, deadline=deadline) as release:
                    yield self._callbacks(deadline, release)
            except _SSHGateTimeout:
                raise GitTimeout(
                    f"git operation on '{redact_url(self.url)}' timed out after "
                    f"{self.timeout:g}s waiting for other SSH handshakes to finish",
                    url=self.url,
                ) from None

    def _callbacks(self, deadline: float, release: Callable[[], bool]) -> _Callbacks:
        return _Callbacks(
            url=self.url,
            auth=self.auth,
            deadline=deadline,
            timeout=self.timeout,
            after_host_check=release,
        )

    def list_refs(self) -> dict[str, str]:
        """``git ls-remote``: every advertised ref name to its object id."""
        # Listing needs a repository to hang the remote on but never touches it:
        # an in-memory one has no files to leak and costs microseconds.
        remote = pygit2.Repository().remotes.create_anonymous(self.url)
        with self._session() as callbacks, self._translated("list remote refs of"):
            heads = remote.list_heads(callbacks=callbacks, proxy=self.proxy_url)
        return {head.name: str(head.oid) for head in heads if head.name and head.name != "HEAD"}

    def checkout(
        self,
        resolved: Resolved,
        dest: Path,
        *,
        recurse_submodules: bool,
        sparse_paths: list[str] | None = None,
    ) -> Resolved:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}-checkout-", dir=dest.parent))
        try:
            repo = pygit2.init_repository(str(work))
            target, actual = self._fetch(repo, resolved)
            strategy = CheckoutStrategy.FORCE
            if sparse_paths is not None:
                # Directory names, not patterns: 'app*' is a directory named so.
                strategy |= CheckoutStrategy.DISABLE_PATHSPEC_MATCH
            repo.checkout_tree(target, strategy=strategy, paths=sparse_paths)  # type: ignore[no-untyped-call]
            repo.set_head(target.id)
            # Named like a clone's remote, so relative submodule URLs resolve against it.
            repo.remotes.create("origin", self.url)
            if recurse_submodules:
                with self._session() as callbacks, self._translated("update submodules of"):
                    repo.submodules.update(init=True, callbacks=callbacks)
            message = str(target.message)
            repo.free()
            _replace_dir(work, dest)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return dataclasses.replace(actual, message=message)

    def _fetch(self, repo: pygit2.Repository, resolved: Resolved) -> tuple[pygit2.Commit, Resolved]:
        where = redact_url(self.url)
        # An anonymous remote writes no refs: what a refspec without destination
        # fetched is in FETCH_HEAD, whatever kind of ref it was.
        remote = repo.remotes.create_anonymous(self.url)
        if not resolved.pinned:
            assert resolved.ref_name is not None
            with self._session() as callbacks, self._translated("fetch"):
                remote.fetch(
                    [resolved.ref_name], callbacks=callbacks, proxy=self.proxy_url, depth=1
                )
            try:
                tip = repo.revparse_single("FETCH_HEAD").peel(pygit2.Commit)
            except (KeyError, ValueError, pygit2.GitError):
                raise GitOperationFailed(
                    f"unable to fetch '{resolved.ref_name}' from '{where}': ref not found",
                    url=self.url,
                ) from None
            commit = str(tip.id)
            return tip, resolved if commit == resolved.commit else resolved.with_commit(commit)
        # A pinned commit: fetch its branch (or everything) with history, then find it.
        if resolved.ref_name is not None:
            refspecs = [f"+{resolved.ref_name}:refs/remotes/origin/pinned"]
        else:
            refspecs = ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]
        with self._session() as callbacks, self._translated("fetch"):
            remote.fetch(refspecs, callbacks=callbacks, proxy=self.proxy_url)
        try:
            found = repo[resolved.commit].peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            scope = f"'{resolved.ref_name}'" if resolved.ref_name else "any branch or tag"
            raise GitOperationFailed(
                f"commit '{resolved.commit}' not found in {scope} of '{where}'", url=self.url
            ) from None
        return found, resolved

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn libgit2's errors into SourceErrors with the URL redacted and secrets scrubbed."""
        try:
            yield
        except SourceError:
            raise
        except (pygit2.GitError, OSError, ValueError) as error:
            raise self._classify(action, str(error)) from None

    def _classify(self, action: str, detail: str) -> SourceError:
        detail = _scrub(detail, self.auth, self.url)
        where = redact_url(self.url)
        lowered = detail.lower()
        if "timed out" in lowered:
            return GitTimeout(
                f"unable to {action} '{where}': timed out after {self.timeout:g}s ({detail})",
                url=self.url,
            )
        if "401" in lowered or "403" in lowered or "authentication" in lowered:
            return AuthenticationFailed(
                f"unable to {action} '{where}': authentication failed: {detail}", url=self.url
            )
        if "404" in lowered or "not found" in lowered or "does not appear to be a git" in lowered:
            return GitOperationFailed(
                f"unable to {action} '{where}': repository not found: {detail}", url=self.url
            )
        return GitOperationFailed(f"unable to {action} '{where}': {detail}", url=self.url)


def _scrub(text: str, auth: GitAuth, url: str) -> str:
    """Remove every secret value (and the URL's userinfo) from a message."""
    secrets = [auth.password, auth.bearer_token, auth.identity_passphrase]
    parts = urllib.parse.urlsplit(url)
    secrets.append(parts.password)
    text = text.replace(url, redact_url(url))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _replace_dir(source: Path, dest: Path) -> None:
    """Move ``source`` to ``dest``, replacing whatever ``dest`` was, without a gap if possible."""
    if not dest.exists() and not dest.is_symlink():
        os.rename(source, dest)
        return
    retired = dest.with_name(f".{dest.name}-old-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(dest, retired)
    try:
        os.rename(source, dest)
    finally:
        shutil.rmtree(retired, ignore_errors=True)
