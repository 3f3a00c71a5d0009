"""A real Gitea on loopback: the user's Git server, webhook sender and commit-status API.

The stand-ins (testenv/gitserver.py serving git, testenv/gitea.py writing
webhook bodies) say what we believe Gitea does; this runs Gitea itself, built
by testenv/build.py (group ``GITEA``), so the end-to-end tests, the demo and
the push benchmark see Gitea's own pushes, payloads, signatures and status
API. Each instance lives in a temporary directory (app.ini, SQLite database,
repositories), is set up as the user's is (user ``k3s``, private repository
``k3s/k3s-private``, a personal access token, a push webhook) and is removed
on stop.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from testenv import build
from testenv.cluster import die_with_parent
from testenv.gitserver import free_port, git

__all__ = ["Delivery", "GiteaError", "GiteaServer", "built"]

_GIT_AUTHOR_ENV = {
    "GIT_AUTHOR_NAME": "k3s",
    "GIT_AUTHOR_EMAIL": "k3s@fluxd.invalid",
    "GIT_COMMITTER_NAME": "k3s",
    "GIT_COMMITTER_EMAIL": "k3s@fluxd.invalid",
}
# What the user's token needs: git push and commit statuses (repository), its own
# repositories and hooks (user).
TOKEN_SCOPES = ("write:repository", "write:user")


class GiteaError(RuntimeError):
    """Gitea did not start, or refused a setup call."""


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery as Gitea recorded it (table ``hook_task``)."""

    uuid: str
    event: str
    # When Gitea recorded the outcome below (Unix seconds), 0 until it has: its
    # ``is_delivered`` flag and ``delivered`` stamp are set before the request
    # goes out, the response (and a new stamp) only once it is answered.
    finished_at: float
    succeeded: bool
    # The HTTP status the receiver answered, 0 when there was no answer.
    status: int
    request_headers: Mapping[str, str]
    request_body: str
    # The receiver's answer, or why Gitea got none.
    response_body: str


def built() -> bool:
    """Whether Gitea's binary is in the cache already (nothing would be built)."""
    return not build.missing(build.GITEA)


def _app_ini(*, root: Path, port: int, assets: Path) -> str:
    data = root / "data"
    return f"""\
APP_NAME = fluxd test Gitea
RUN_MODE = prod
RUN_USER = {getpass.getuser()}
WORK_PATH = {root}
; the test machines run as root; Gitea refuses that unless told
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:{port}/
APP_DATA_PATH = {data}
; built without bindata: templates, locales and public files from the module source
STATIC_ROOT_PATH = {assets}
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
OFFLINE_MODE = true

[database]
DB_TYPE = sqlite3
PATH = {data}/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {root}/repositories
DEFAULT_BRANCH = master
DEFAULT_PRIVATE = private

[security]
INSTALL_LOCK = true
SECRET_KEY = {secrets.token_hex(32)}
INTERNAL_TOKEN = {secrets.token_urlsafe(64)}
PASSWORD_HASH_ALGO = pbkdf2_hi
; deliveries go to fluxd on 127.0.0.1, which the default ("external") forbids
ALLOWED_HOST_LIST = loopback

[oauth2]
ENABLED = false

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = true
ENABLE_NOTIFY_MAIL = false

[mailer]
ENABLED = false

[webhook]
DELIVER_TIMEOUT = 3

[queue]
; in memory: a test instance has nothing to keep across restarts, and deliveries
; leave at once instead of after a disk round trip
TYPE = channel

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[cache]
ADAPTER = memory

[session]
PROVIDER = memory

[cron]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = {root}/log
"""


class GiteaServer:
    """One Gitea, set up as the user's: ``start`` it (or use it as a context manager).

    After start: ``token`` is the user's personal access token (the ``password``
    of the ``gitea-auth`` Secret), ``clone_url`` the repository's HTTP address.
    """

    def __init__(
        self,
        *,
        owner: str = "k3s",
        repository: str = "k3s-private",
        branch: str = "master",
        password: str = "k3s-password-for-the-web-ui",
    ) -> None:
        self.owner = owner
        self.repository = repository
        self.branch = branch
        self.password = password
        self.token = ""
        self.started_in = 0.0
        self._root: Path | None = None
        self._port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._work: Path | None = None
        self._binary = Path("gitea")

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        started = time.monotonic()
        binary = build.ensure_binaries(build.GITEA) / "gitea"
        assets = build.assets_dir(build.GITEA.components[0], build.GITEA)
        self._root = Path(tempfile.mkdtemp(prefix="fluxd-gitea-"))
        try:
            self._port = free_port()
            config = self._root / "app.ini"
            config.write_text(_app_ini(root=self._root, port=self._port, assets=assets))
            self._binary = binary
            self._cli("migrate")
            self._cli(
                "admin",
                "user",
                "create",
                "--admin",
                f"--username={self.owner}",
                f"--password={self.password}",
                f"--email={self.owner}@fluxd.invalid",
                "--must-change-password=false",
            )
            self._log = (self._root / "gitea.log").open("wb")
            self._process = subprocess.Popen(
                [str(binary), "web", f"--config={config}", f"--work-path={self._root}"],
                cwd=self._root,
                env=self._env(),
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
            self._wait_ready()
            self.token = self._create_token()
            self.api(
                "POST",
                "/user/repos",
                {"name": self.repository, "private": True, "default_branch": self.branch},
            )
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
        self._work = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        # Gitea's hooks run git; keep the user's global git config out of it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(GITEA_WORK_DIR=str(self._root), HOME=str(self._root), USER=getpass.getuser())
        return env

    def _cli(self, *args: str) -> str:
        assert self._root is not None
        done = subprocess.run(
            [str(self._binary), *args, f"--config={self._root / 'app.ini'}"],
            cwd=self._root,
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise GiteaError(f"gitea {' '.join(args[:3])} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise GiteaError(
                    f"gitea web exited ({self._process.returncode}): {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/api/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise GiteaError(f"gitea web not ready after {timeout:.0f}s: {self.log_tail()}")

    def _create_token(self) -> str:
        created = self.api(
            "POST",
            f"/users/{self.owner}/tokens",
            {"name": f"fluxd-{secrets.token_hex(4)}", "scopes": list(TOKEN_SCOPES)},
            basic=True,
        )
        return str(created["sha1"])

    def log_tail(self, lines: int = 30) -> str:
        if self._root is None or not (self._root / "gitea.log").exists():
            return ""
        text = (self._root / "gitea.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- addresses -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repository}"

    @property
    def clone_url(self) -> str:
        return f"{self.base_url}/{self.full_name}.git"

    # -- the API ---------------------------------------------------------------

    def api(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, *, basic: bool = False
    ) -> Any:
        """Call ``/api/v1<path>`` as the user (token, or basic auth to make the token)."""
        if basic:
            pair = base64.b64encode(f"{self.owner}:{self.password}".encode()).decode()
            authorization = f"Basic {pair}"
        else:
            authorization = f"token {self.token}"
        request = urllib.request.Request(
            f"{self.base_url}/api/v1{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": authorization,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                raw = answer.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise GiteaError(f"{method} {path}: HTTP {error.code}: {detail}") from error
        return json.loads(raw) if raw else None

    def add_webhook(self, url: str, *, secret: str, events: tuple[str, ...] = ("push",)) -> int:
        """A repository webhook of type ``gitea`` (JSON body, signed with ``secret``); its id."""
        created = self.api(
            "POST",
            f"/repos/{self.full_name}/hooks",
            {
                "type": "gitea",
                "config": {"url": url, "content_type": "json", "secret": secret},
                "events": list(events),
                "branch_filter": "*",
                "active": True,
            },
        )
        return int(created["id"])

    def delete_webhook(self, hook_id: int) -> None:
        self.api("DELETE", f"/repos/{self.full_name}/hooks/{hook_id}")

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        """The commit statuses on ``sha``, newest first, as the API lists them."""
        listed = self.api("GET", f"/repos/{self.full_name}/statuses/{sha}?limit=50")
        # Gitea orders by creation second; the id breaks ties.
        return sorted(listed, key=lambda status: -int(status["id"]))

    def deliveries(self, hook_id: int) -> list[Delivery]:
        """The deliveries of one webhook, oldest first.

        Gitea's API has no endpoint for them (the web UI shows them on the
        hook's settings page), so they are read from its database.
        """
        assert self._root is not None
        database = self._root / "data" / "gitea.db"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT uuid, event_type, delivered, is_succeed, request_content,"
                " response_content FROM hook_task WHERE hook_id = ? ORDER BY id",
                (hook_id,),
            ).fetchall()
        found = []
        for uuid, event, finished_at, succeeded, request, response in rows:
            answer = json.loads(response) if response else {}
            sent = json.loads(request) if request else {}
            found.append(
                Delivery(
                    uuid=str(uuid),
                    event=str(event),
                    finished_at=int(finished_at or 0) / 1e9 if response else 0.0,
                    succeeded=bool(succeeded),
                    status=int((answer or {}).get("status", 0)),
                    request_headers=dict((sent or {}).get("headers", {})),
                    request_body=str((sent or {}).get("body", "")),
                    response_body=str((answer or {}).get("body", "")),
                )
            )
        return found

    # -- git -------------------------------------------------------------------

    def commit(self, files: Mapping[str, str | None], *, message: str = "update") -> str:
        """Commit ``files`` (``None`` deletes) on the branch and push it to Gitea over HTTP.

        The push goes through Gitea's smart-HTTP endpoint with the token, as the
        user's does, so Gitea's own hooks fire its push webhook. Returns the sha.
        """
        assert self._root is not None
        env = {**_GIT_AUTHOR_ENV, "GIT_TERMINAL_PROMPT": "0"}
        if self._work is None:
            self._work = self._root / "work"
            git("init", "--quiet", f"--initial-branch={self.branch}", str(self._work), env=env)
            remote = self.clone_url.replace("://", f"://{self.owner}:{self.token}@", 1)
            git("remote", "add", "origin", remote, cwd=self._work, env=env)
        for relative, content in files.items():
            target = self._work / relative
            if content is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        git("add", "--all", cwd=self._work, env=env)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self._work, env=env)
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self._work, env=env)
        return git("rev-parse", "HEAD", cwd=self._work, env=env).strip()
