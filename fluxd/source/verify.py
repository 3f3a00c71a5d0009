"""Signature verification of a checked-out revision: ``spec.verify`` as source-controller does it.

A revision that is not signed, or signed by a key that is not in the
``spec.verify.secretRef`` Secret, must never become an artifact, so the
reconciler verifies the checkout before it packs anything. What is verified
follows ``spec.verify.mode``: the HEAD commit (``HEAD``, or the legacy
``head``), the annotated tag the ref points at (``Tag``), or both
(``TagAndHEAD``). Messages and reasons are source-controller's, so the
``SourceVerified`` condition reads the same as under Flux.

The cryptography is GnuPG's: the signature and the signed payload (the Git
object without its signature, as ``git verify-commit`` feeds it) go to the
``gpg`` binary with a private, empty home directory that holds only the
Secret's keys, created for one verification and removed after it, so no
key ring, trust database or agent outlives it or is shared between
GitRepositories. GnuPG is the OpenPGP implementation Git itself calls, and
Debian keeps it patched; the Python OpenPGP libraries on PyPI are either
unmaintained or not yet stable.

Everything here blocks (pygit2, subprocess); the reconciler runs
:func:`verify_checkout` in its git worker pool.

Secret layout, as in Flux: values under keys ending ``.asc`` and keys without
a recognised suffix are armored PGP key rings; ``.sshpub`` values are SSH
``authorized_keys`` lines, against which SSH signatures are checked by
OpenSSH's ``ssh-keygen -Y verify`` (namespace ``git``, as Git signs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygit2

__all__ = [
    "INVALID_COMMIT_SIGNATURE",
    "INVALID_GIT_OBJECT",
    "INVALID_TAG_SIGNATURE",
    "INVALID_VERIFICATION_MODE",
    "VERIFICATION_ERROR",
    "VerificationFailed",
    "VerificationKeys",
    "needs_verification",
    "verification_mode",
    "verify_checkout",
]

# source-controller's reasons for SourceVerified=False.
VERIFICATION_ERROR = "VerificationError"
INVALID_VERIFICATION_MODE = "InvalidVerificationMode"
INVALID_GIT_OBJECT = "InvalidGitObject"
INVALID_TAG_SIGNATURE = "InvalidTagSignature"
INVALID_COMMIT_SIGNATURE = "InvalidCommitSignature"

Mode = Literal["HEAD", "Tag", "TagAndHEAD"]

_PGP_SUFFIX = ".asc"
_SSH_SUFFIX = ".sshpub"

# How Git recognises a signature block (gpg-interface.c), by signature type; like Flux,
# only detached signatures count as OpenPGP (Git never writes PGP MESSAGE armor).
_SIGNATURE_PREFIXES: tuple[tuple[str, str], ...] = (
    ("-----BEGIN PGP SIGNATURE-----", "openpgp"),
    ("-----BEGIN SSH SIGNATURE-----", "ssh"),
    ("-----BEGIN SIGNED MESSAGE-----", "x509"),
)

_SSH_PRINCIPAL = "trusted"

# One gpg or ssh-keygen call checks one signature against a handful of keys: seconds at most.
_TOOL_TIMEOUT = 30.0


class VerificationFailed(Exception):
    """The revision was not verified; ``reason`` is source-controller's, ``stalled`` means
    only a change of the spec can help (retrying cannot)."""

    def __init__(self, reason: str, message: str, *, stalled: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.stalled = stalled

    def __str__(self) -> str:
        return self.message


def verification_mode(verify: Mapping[str, object]) -> Mode:
    """``spec.verify.mode`` as Flux reads it: ``head`` (legacy) and anything unknown mean HEAD."""
    mode = verify.get("mode")
    if mode == "Tag" or mode == "TagAndHEAD":
        return mode
    return "HEAD"


def needs_verification(verify: Mapping[str, object] | None, observed: object) -> bool:
    """Whether an unchanged revision must be verified again (Flux's ``requiresVerification``).

    ``observed`` is ``status.sourceVerificationMode``: nothing verified yet, or
    a mode that did not cover what is asked now (Tag then HEAD, or HEAD then
    Tag), means verifying again; TagAndHEAD covers both.
    """
    if verify is None:
        return False
    mode = verification_mode(verify)
    if observed is None:
        return True
    if observed == "Tag":
        return mode in ("HEAD", "TagAndHEAD")
    if observed == "HEAD":
        return mode in ("Tag", "TagAndHEAD")
    return False


@dataclass(frozen=True)
class VerificationKeys:
    """The trusted public keys of ``spec.verify.secretRef``."""

    key_rings: tuple[bytes, ...]
    authorized_keys: tuple[bytes, ...] = ()

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes]) -> VerificationKeys:
        rings: list[bytes] = []
        ssh: list[bytes] = []
        for name in sorted(data):
            (ssh if name.endswith(_SSH_SUFFIX) else rings).append(data[name])
        return cls(key_rings=tuple(rings), authorized_keys=tuple(ssh))


@dataclass(frozen=True)
class _Signed:
    """A Git object split as Git verifies it: the payload and its detached signature."""

    payload: bytes
    signature: str

    @property
    def signature_type(self) -> str:
        text = self.signature.strip()
        if not text:
            return "empty"
        for prefix, kind in _SIGNATURE_PREFIXES:
            if text.startswith(prefix):
                return kind
        return "unknown"


@dataclass(frozen=True)
class _Tag:
    name: str
    #: Object id of an annotated tag; None for a lightweight tag.
    id: str | None
    signed: _Signed | None

    def __str__(self) -> str:
        return f"{self.name}@{self.id}" if self.id else self.name


def verify_checkout(
    checkout_dir: Path,
    *,
    commit: str,
    ref_name: str | None,
    pinned: bool,
    mode: Mode,
    keys: VerificationKeys,
) -> str:
    """Verify the checked-out revision; return the ``SourceVerified`` message.

    ``commit`` is the checked-out commit, ``ref_name`` the ref it was fetched
    by (``refs/tags/v1``), ``pinned`` whether ``spec.ref.commit`` chose it.
    Raises :class:`VerificationFailed`.
    """
    repo = pygit2.Repository(str(checkout_dir))
    try:
        lines: list[str] = []
        if mode in ("Tag", "TagAndHEAD"):
            tag = _referencing_tag(repo, commit=commit, ref_name=ref_name, pinned=pinned)
            if tag is None:
                raise VerificationFailed(
                    INVALID_VERIFICATION_MODE,
                    "cannot verify tag object's signature if a tag reference is not specified",
                    stalled=True,
                )
            if tag.signed is None or tag.signed.signature_type == "empty":
                raise VerificationFailed(
                    INVALID_GIT_OBJECT,
                    f"cannot verify signature of tag '{tag}' since it is not signed",
                )
            try:
                key = _verify(tag.signed, keys, what="tag")
            except _Unverified as error:
                raise VerificationFailed(
                    INVALID_TAG_SIGNATURE,
                    f"signature verification of tag '{tag}' failed: {error}",
                ) from None
            lines.append(f"tag '{tag}' with key '{key}'")
        if mode in ("HEAD", "TagAndHEAD"):
            try:
                key = _verify(_signed_commit(repo, commit), keys, what="commit")
            except _Unverified as error:
                raise VerificationFailed(
                    INVALID_COMMIT_SIGNATURE,
                    f"signature verification of commit '{commit}' failed: {error}",
                ) from None
            lines.append(f"commit '{commit}' with key '{key}'")
    finally:
        repo.free()
    return "verified signature of\n" + "\n".join(f"\t- {line}" for line in lines)


def _signed_commit(repo: pygit2.Repository, commit: str) -> _Signed:
    signature, payload = repo[commit].peel(pygit2.Commit).gpg_signature
    if signature is None:
        raw = repo.odb.read(commit)[1]
        return _Signed(payload=raw, signature="")
    return _Signed(payload=payload or b"", signature=signature.decode("utf-8", "replace"))


def _referencing_tag(
    repo: pygit2.Repository, *, commit: str, ref_name: str | None, pinned: bool
) -> _Tag | None:
    """The tag the checkout went by, as Flux sees it: None unless the ref is a tag."""
    if pinned or ref_name is None or not ref_name.startswith("refs/tags/"):
        return None
    name = ref_name.removeprefix("refs/tags/").removesuffix("^{}")
    # The shallow fetch of a tag ref leaves the object the ref names in FETCH_HEAD.
    fetched = repo.revparse_single("FETCH_HEAD")
    if not isinstance(fetched, pygit2.Tag) or str(fetched.peel(pygit2.Commit).id) != commit:
        return _Tag(name=name, id=None, signed=None)
    raw = repo.odb.read(fetched.id)[1]
    return _Tag(name=fetched.name, id=str(fetched.id), signed=_split_tag(raw))


def _split_tag(raw: bytes) -> _Signed:
    """Split a tag object at its last signature block, as ``git verify-tag`` does."""
    start = None
    offset = 0
    for line in raw.splitlines(keepends=True):
        if any(line.startswith(prefix.encode()) for prefix, _ in _SIGNATURE_PREFIXES):
            start = offset
        offset += len(line)
    if start is None:
        return _Signed(payload=raw, signature="")
    return _Signed(payload=raw[:start], signature=raw[start:].decode("utf-8", "replace"))


class _Unverified(Exception):
    """Why one signature was not verified, in source-controller's words."""


def _verify(signed: _Signed, keys: VerificationKeys, *, what: str) -> str:
    """Return the key id (Flux's: the primary key's 16 hex digits) that made the signature."""
    kind = signed.signature_type
    if kind == "openpgp":
        if not keys.key_rings:
            raise _Unverified(
                "PGP signature detected but no PGP public keys found in secret "
                f"(keys with {_PGP_SUFFIX} suffix)"
            )
        return _verify_pgp(signed, keys.key_rings, what=what)
    if kind == "ssh":
        if not keys.authorized_keys:
            raise _Unverified(
                "SSH signature detected but no SSH public keys found in secret "
                f"(keys with {_SSH_SUFFIX} suffix)"
            )
        return _verify_ssh(signed, keys.authorized_keys, what=what)
    raise _Unverified(f"unsupported signature type: {kind}")


def _verify_pgp(signed: _Signed, key_rings: Sequence[bytes], *, what: str) -> str:
    home = Path(tempfile.mkdtemp(prefix="fluxd-gnupg-"))
    try:
        os.chmod(home, 0o700)
        imported = 0
        first_error: str | None = None
        for ring in key_rings:
            done = _gpg(home, ["--import"], stdin=ring)
            if done.returncode == 0 and "IMPORT_OK" in done.stdout:
                imported += 1
            elif first_error is None:
                first_error = _last_gpg_line(done.stderr)
        if imported == 0:
            raise _Unverified(
                f"unable to verify Git {what}: unable to read armored key ring: "
                f"{first_error or 'no key found'}"
            )
        signature = home / "signature.asc"
        signature.write_text(signed.signature)
        payload = home / "payload"
        payload.write_bytes(signed.payload)
        done = _gpg(home, ["--verify", str(signature), str(payload)])
        status = [line.split() for line in done.stdout.splitlines()]
        good = any(fields[1:2] == ["GOODSIG"] for fields in status if fields)
        valid = [fields for fields in status if fields[1:2] == ["VALIDSIG"]]
        if done.returncode != 0 or not good or not valid:
            raise _Unverified(
                f"unable to verify Git {what}: unable to verify payload with any of the given "
                "key rings: no matching key"
            )
        # VALIDSIG's last field is the primary key's fingerprint; its key id is the tail.
        return valid[0][-1][-16:].upper()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _verify_ssh(signed: _Signed, authorized_keys: Sequence[bytes], *, what: str) -> str:
    """Return the SHA256 fingerprint (Flux's report) of the authorized key that made it."""
    lines = [
        line.strip()
        for keys in authorized_keys
        for line in keys.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    work = Path(tempfile.mkdtemp(prefix="fluxd-sshsig-"))
    try:
        # One principal for every trusted key: who signed is told by the key, not a name.
        allowed = work / "allowed_signers"
        allowed.write_text("".join(f"{_SSH_PRINCIPAL} {line}\n" for line in lines))
        signature = work / "signature"
        signature.write_text(signed.signature.strip() + "\n")
        command = [
            "ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", _SSH_PRINCIPAL,
            "-n", "git", "-s", str(signature),
        ]  # fmt: skip
        done = _run_tool(command, stdin=signed.payload, verifies="SSH signatures")
        output = done.stdout.decode("utf-8", "replace")
        found = re.search(
            r"^Good \"git\" signature for \S+ with \S+ key (SHA256:\S+)", output, re.M
        )
        if done.returncode != 0 or found is None:
            raise _Unverified(
                f"unable to verify Git {what} SSH signature: unable to verify payload with any "
                "of the given authorized keys: no matching key"
            )
        return found.group(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_tool(
    command: list[str], *, stdin: bytes, verifies: str
) -> subprocess.CompletedProcess[bytes]:
    """Run gpg or ssh-keygen with a bounded time and a minimal environment."""
    try:
        return subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            timeout=_TOOL_TIMEOUT,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
        )
    except FileNotFoundError:
        raise _Unverified(
            f"{command[0]} is not installed, so {verifies} cannot be verified"
        ) from None
    except subprocess.TimeoutExpired:
        raise _Unverified(f"{command[0]} did not finish within {_TOOL_TIMEOUT:g}s") from None


def _gpg(home: Path, args: list[str], *, stdin: bytes | None = None) -> _GPGResult:
    command = [
        "gpg",
        "--batch",
        "--no-tty",
        "--no-options",
        "--no-autostart",
        "--no-auto-key-retrieve",
        "--trust-model",
        "always",
        "--homedir",
        str(home),
        "--status-fd",
        "1",
        *args,
    ]
    done = _run_tool(command, stdin=stdin or b"", verifies="OpenPGP signatures")
    return _GPGResult(
        returncode=done.returncode,
        stdout=done.stdout.decode("utf-8", "replace"),
        stderr=done.stderr.decode("utf-8", "replace"),
    )


@dataclass(frozen=True)
class _GPGResult:
    returncode: int
    stdout: str
    stderr: str


def _last_gpg_line(stderr: str) -> str:
    lines = [line.removeprefix("gpg: ").strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "gpg failed"
