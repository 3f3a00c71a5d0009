"""Start and stop a real control plane on loopback.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
child processes with random free ports and a private temporary directory. Each
child is tied to this process (it is killed if we die), logs to its own file,
and everything is torn down, the directory removed, on ``stop()``.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from testenv import build
from testenv.api import Api, Credentials, wait_for
from testenv.certs import Pki, write_pki

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 40


class ClusterError(RuntimeError):
    """A component failed to start or died; the message names it and ends with its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    # Runs in the child between fork and exec: if the test process is killed,
    # the kernel kills this component too, so no orphan survives.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Component:
    """A running child process of the control plane."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ClusterError(
                f"{self.name} exited with code {self.process.returncode}; "
                f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Cluster:
    """A control plane: start it, use ``kubeconfig``/``api``, stop it."""

    workdir: Path
    nodes: int = 1
    keep_workdir: bool = False
    components: dict[str, Component] = field(default_factory=dict)
    apiserver_port: int = 0
    etcd_port: int = 0
    started_in: float = 0.0
    _pki: Pki | None = None
    _api: Api | None = None

    @property
    def pki(self) -> Pki:
        assert self._pki is not None, "cluster not started"
        return self._pki

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def api(self) -> Api:
        assert self._api is not None, "cluster not started"
        return self._api

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    # -- life cycle -------------------------------------------------------

    def start(self, *, timeout: float = 120.0) -> None:
        started = time.monotonic()
        binaries = build.ensure_binaries()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._pki = write_pki(self.workdir / "pki")
        self.etcd_port = self.etcd_port or free_port()
        self.apiserver_port = self.apiserver_port or free_port()
        self._write_kubeconfig()
        self._api = Api(
            Credentials(
                host="127.0.0.1",
                port=self.apiserver_port,
                ca_cert=self.pki.ca_cert,
                client_cert=self.pki.admin_cert,
                client_key=self.pki.admin_key,
            )
        )
        try:
            self._add("etcd", self._etcd_argv(binaries)).start()
            self._wait_etcd(timeout)
            self._add("kube-apiserver", self._apiserver_argv(binaries)).start()
            self._wait_apiserver(timeout)
            self._add("kube-controller-manager", self._controller_manager_argv(binaries)).start()
            self._add("kube-scheduler", self._scheduler_argv(binaries)).start()
            self._add("kwok", self._kwok_argv(binaries)).start()
            for index in range(self.nodes):
                self.add_node(f"kwok-node-{index}")
            self._wait_nodes_ready(timeout)
            self._wait_default_service_account(timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        for component in reversed(list(self.components.values())):
            component.stop()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_component(self, name: str) -> None:
        self.components[name].stop()

    def start_component(self, name: str, *, timeout: float = 60.0) -> None:
        self.components[name].start()
        if name == "kube-apiserver":
            self._wait_apiserver(timeout)

    def restart_apiserver(self, *, down_for: float = 0.0, timeout: float = 60.0) -> None:
        self.stop_component("kube-apiserver")
        time.sleep(down_for)
        self.start_component("kube-apiserver", timeout=timeout)

    def pids(self) -> list[int]:
        return [c.process.pid for c in self.components.values() if c.process is not None]

    def check(self) -> None:
        """Raise ``ClusterError`` naming any component that has died."""
        for component in self.components.values():
            component.check_alive()

    def log_tails(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(
            f"--- {c.name} ({c.log_path}) ---\n{log_tail(c.log_path, lines)}"
            for c in self.components.values()
        )

    # -- objects ----------------------------------------------------------

    def add_node(self, name: str) -> None:
        self.api.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "kwok.x-k8s.io/node": "fake",
                    },
                    "labels": {
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/role": "agent",
                        "type": "kwok",
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                },
            },
        )

    # -- internals --------------------------------------------------------

    def _add(self, name: str, argv: list[str]) -> Component:
        component = Component(name=name, argv=argv, log_path=self.logs_dir / f"{name}.log")
        self.components[name] = component
        return component

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testenv",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(self.pki.admin_cert),
                        "client-key": str(self.pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": "admin"}}],
            "current-context": "testenv",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))

    def _etcd_argv(self, binaries: Path) -> list[str]:
        peer = free_port()
        client = f"http://127.0.0.1:{self.etcd_port}"
        return [
            str(binaries / "etcd"),
            "--name=testenv",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=testenv=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_argv(self, binaries: Path) -> list[str]:
        pki = self.pki
        return [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.apiserver_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.serving_cert}",
            f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            # Aggregation is unused, but components read this CA bundle at start-up.
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public}",
            f"--service-account-signing-key-file={pki.sa_private}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            # A real node's kubelet (testenv/node.py), for logs and exec: at its
            # InternalIP (its name resolves nowhere), its serving certificate
            # checked against the CA, our client certificate authorized by it.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            f"--kubelet-certificate-authority={pki.ca_cert}",
            f"--kubelet-client-certificate={pki.admin_cert}",
            f"--kubelet-client-key={pki.admin_key}",
            # A short compaction interval lets tests provoke "410 Gone" on watches.
            "--etcd-compaction-interval=30s",
            "--v=1",
        ]

    def _component_kubeconfig_args(self) -> list[str]:
        kubeconfig = str(self.kubeconfig)
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cert-dir={self.workdir / 'component-certs'}",
        ]

    def _controller_manager_argv(self, binaries: Path) -> list[str]:
        return [
            str(binaries / "kube-controller-manager"),
            *self._component_kubeconfig_args(),
            f"--service-account-private-key-file={self.pki.sa_private}",
            f"--root-ca-file={self.pki.ca_cert}",
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--v=1",
        ]

    def _scheduler_argv(self, binaries: Path) -> list[str]:
        return [str(binaries / "kube-scheduler"), *self._component_kubeconfig_args(), "--v=1"]

    def _kwok_argv(self, binaries: Path) -> list[str]:
        return [
            str(binaries / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--manage-nodes-with-label-selector=",
            "--manage-single-node=",
            "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
            "--disregard-status-with-label-selector=",
            "--cidr=10.0.0.1/24",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{free_port()}",
        ]

    def _wait(self, probe: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if callable(check) and check():
                return
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"timed out after {timeout:.0f}s waiting for {probe}\n{self.log_tails(20)}"
                )
            time.sleep(0.1)

    def _wait_etcd(self, timeout: float) -> None:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.etcd_port}/health", timeout=2
                ) as response:
                    return b'"true"' in response.read()
            except OSError:
                return False

        self._wait("etcd /health", healthy, timeout)

    def _wait_apiserver(self, timeout: float) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))

        def ready() -> bool:
            try:
                with urllib.request.urlopen(
                    f"{self.server}/readyz", timeout=2, context=context
                ) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        self._wait("kube-apiserver /readyz", ready, timeout)

    def _wait_nodes_ready(self, timeout: float) -> None:
        def all_ready() -> bool:
            nodes = self.api.items("/api/v1/nodes")
            ready = [
                n
                for n in nodes
                if any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            ]
            return len(ready) >= self.nodes

        self._wait("kwok nodes Ready", all_ready, timeout)

    def _wait_default_service_account(self, timeout: float) -> None:
        def exists() -> bool:
            return (
                self.api.get_or_none("/api/v1/namespaces/default/serviceaccounts/default")
                is not None
            )

        self._wait("the default ServiceAccount", exists, timeout)

    # -- helpers for tests --------------------------------------------------

    def create_namespace(self, name: str, *, timeout: float = 60.0) -> None:
        self.api.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        # Pods cannot be created until the namespace has its default ServiceAccount.
        wait_for(
            lambda: self.api.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
            timeout=timeout,
            what=f"ServiceAccount {name}/default",
        )


@contextmanager
def running(*, nodes: int = 1, workdir: Path | None = None) -> Iterator[Cluster]:
    """Start a cluster in a fresh temporary directory and always tear it down."""
    directory = workdir or Path(tempfile.mkdtemp(prefix="fluxd-testenv-"))
    cluster = Cluster(workdir=directory, nodes=nodes)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def environ_for(cluster: Cluster) -> dict[str, str]:
    """Environment for a child process that should talk to ``cluster`` (e.g. kubectl, fluxd)."""
    return dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
