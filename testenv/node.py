"""A real node for the test control plane: kubelet, containerd, runc and CNI in a private network.

kwok's nodes run no containers, so what only a running Pod shows (the image
starts as the Deployment says, the restricted Pod Security Standard admits it,
a mounted Secret changes under a running process) needs a real kubelet. It
runs here with a containerd of its own (config, root, state and socket in the
node's temporary directory, never the packaged service), runc and Debian's CNI
plugins, on cgroup v1 with the cgroupfs driver as this machine has it.

Network safety: containerd, kubelet and kube-proxy run in a network namespace
``fluxd-node-<pid>`` joined to the host by a veth pair with a private /30; the
Pods' bridge lives inside that namespace, which has no default route, so no
packet from a Pod leaves the machine. The API server stays on loopback; a
relay on the host end of the veth forwards to it, and is what the cluster's
``kubernetes`` Service points at. The API server reaches the kubelet (logs,
exec) at the node's end of the veth, its InternalIP; each checks the other's
certificate against the test CA. Cluster DNS is CoreDNS run as a cluster runs
it, a Deployment ``coredns`` and Service ``kube-dns`` in kube-system on this
node, answering for ``cluster.local`` only: it forwards nowhere, so no name
lookup leaves the machine either. A namespace left by a run that crashed (its
pid is gone) is found by name and removed, with its processes, at the next
start. The node is tainted ``fluxd.dev/real-node=true:NoSchedule`` so that
only Pods tolerating it land there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testenv import build, images
from testenv.api import ApiError
from testenv.certs import issue
from testenv.cluster import Cluster, ClusterError, Component, log_tail
from testenv.images import ImageError, Images

NETNS_PREFIX = "fluxd-node-"
NODE_NAME = "real-node"
TAINT = {"key": "fluxd.dev/real-node", "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": "fluxd.dev/real-node", "operator": "Equal", "value": "true",
              "effect": "NoSchedule"}  # fmt: skip
# The taint keeps other Pods off the node; this label is how a Pod asks for it.
NODE_SELECTOR = {"fluxd.dev/real-node": "true"}
POD_CIDR = "10.252.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
# In the static band of the Service range (10.0.0.0/24), which the API server
# hands out dynamically only when the rest is used up.
CLUSTER_DNS_IP = "10.0.0.10"
# CoreDNS runs as a non-root user, which may not bind port 53: the Service maps 53 to this.
_DNS_CONTAINER_PORT = 1053
_COREFILE = f"""\
.:{_DNS_CONTAINER_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    loadbalance
}}
"""
# /30 links are carved from here by pid, so two nodes on one machine do not collide.
_LINK_RANGE = ipaddress.IPv4Network("10.251.0.0/16")
_CNI_BIN = Path("/usr/lib/cni")
_COREDNS_DEPLOYMENT = "/apis/apps/v1/namespaces/kube-system/deployments/coredns"


class NodeError(ClusterError):
    """The real node could not be had; the message says which step failed and why."""


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> list[str]:
    """Delete every ``fluxd-node-<pid>`` namespace whose creator is gone, and its processes."""
    removed = []
    listed = _sh("ip", "netns", "list", check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = re.fullmatch(rf"{NETNS_PREFIX}(\d+)", name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        _remove_namespace(name)
        removed.append(name)
    if removed:
        _kill_pod_processes()
        _remove_dead_pod_namespaces()
    return removed


def _remove_dead_pod_namespaces() -> None:
    """Delete containerd's Pod namespaces (``cni-<uuid>``) that no process uses any more.

    A node that was killed could not tear its Pods' networks down; one whose
    processes are gone holds nothing but the name.
    """
    for line in _sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith("cni-") and not _sh("ip", "netns", "pids", name, check=False).stdout:
            _sh("ip", "netns", "delete", name, check=False)


def _remove_namespace(name: str) -> None:
    pids = _sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    # Deleting the namespace deletes its veth, and with it the host's end.
    _sh("ip", "netns", "delete", name, check=False)


def _kill_pod_processes() -> None:
    """Kill what runs in the kubelet's Pod cgroups (only a real node of ours makes them)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            groups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if "/kubepods" in groups:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _unmount_under(directory: Path) -> None:
    """Lazily unmount what containerd and the kubelet mounted below ``directory``, deepest first."""
    prefix = str(directory.resolve())
    mounts = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == prefix or target.startswith(prefix + "/"):
            mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        _sh("umount", "-l", target, check=False)


@dataclass
class _Relay:
    """Forward TCP from the host end of the veth to the API server on loopback."""

    listen: tuple[str, int]
    target: tuple[str, int]
    _server: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self.listen)
        server.listen(64)
        server.settimeout(0.5)
        self._server = server
        self._spawn(self._accept, "relay-accept")

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._spawn(self._pipe, "relay-up", client, upstream)
            self._spawn(self._pipe, "relay-down", upstream, client)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@dataclass
class Node:
    """One real node joined to ``cluster``: start it, run Pods on it, stop it."""

    cluster: Cluster
    images: Images
    workdir: Path
    name: str = NODE_NAME
    components: dict[str, Component] = field(default_factory=dict)
    netns: str = ""
    host_ip: str = ""
    node_ip: str = ""
    _relay: _Relay | None = None
    _exposed: list[_Relay] = field(default_factory=list)

    @property
    def socket_path(self) -> Path:
        return self.workdir / "containerd.sock"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def start(self, *, timeout: float = 180.0) -> None:
        for tool in ("containerd", "runc", "ctr", "ip", "nsenter", "iptables"):
            if shutil.which(tool) is None:
                raise NodeError(f"{tool!r} is not on PATH: run scripts/system-deps.sh")
        if not (_CNI_BIN / "bridge").is_file():
            raise NodeError(f"no CNI plugins in {_CNI_BIN}: run scripts/system-deps.sh")
        binaries = build.ensure_binaries()
        try:
            coredns_image = images.ensure_coredns_image()
        except ImageError as error:
            raise NodeError(f"the cluster DNS image could not be built: {error}") from error
        remove_stale_namespaces()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        try:
            self._make_network()
            self._relay = _Relay((self.host_ip, self.cluster.apiserver_port),
                                 ("127.0.0.1", self.cluster.apiserver_port))  # fmt: skip
            self._relay.start()
            self._point_kubernetes_service()
            self._grant_node_roles()
            self._start("containerd", ["containerd", f"--config={self._containerd_config()}"])
            self._wait("containerd's socket", self.socket_path.exists, timeout)
            for archive in (*self.images.archives(), coredns_image):
                self._ctr("images", "import", str(archive))
            self._start("kubelet", self._kubelet_argv(binaries))
            self._start("kube-proxy", self._kube_proxy_argv(binaries))
            self._wait("the real node Ready", self._ready, timeout)
            self._apply_cluster_dns()
            self._wait("cluster DNS (CoreDNS) available", self._dns_available, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Let the kubelet stop the Pods (and free their networks) when it can, then stop all."""
        if self.components.get("kubelet") is not None and self.components["kubelet"].alive():
            self._drain()
        for name in ("kube-proxy", "kubelet"):
            if name in self.components:
                self.components[name].stop()
        if self.socket_path.exists() and "containerd" in self.components:
            self._stop_sandboxes()
        if "containerd" in self.components:
            self.components["containerd"].stop()
        for relay in [self._relay, *self._exposed]:
            if relay is not None:
                relay.stop()
        if self.netns:
            _remove_namespace(self.netns)
        _kill_pod_processes()
        _remove_dead_pod_namespaces()
        _unmount_under(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def expose(self, port: int) -> str:
        """Make a server on the host's loopback ``port`` reachable from Pods; its ``host:port``."""
        relay = _Relay((self.host_ip, port), ("127.0.0.1", port))
        relay.start()
        self._exposed.append(relay)
        return f"{self.host_ip}:{port}"

    def expose_as_service(self, port: int, *, name: str, namespace: str, service_port: int) -> str:
        """Make a host server reachable from Pods as a Service; its ``<dns name>:<port>``.

        A Service without a selector, and an EndpointSlice that points at the
        relay ``expose`` starts, as a cluster fronts a server it does not run.
        """
        host, _, relayed = self.expose(port).rpartition(":")
        api = self.cluster.api
        api.apply(
            f"/api/v1/namespaces/{namespace}/services/{name}",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"ports": [{"name": "http", "port": service_port, "protocol": "TCP"}]},
            },
        )
        api.apply(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
                "ports": [{"name": "http", "port": int(relayed), "protocol": "TCP"}],
            },
        )
        return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}:{service_port}"

    def _drain(self, timeout: float = 30.0) -> None:
        """Cordon the node, delete its Pods and wait until the kubelet has stopped them."""
        api = self.cluster.api
        try:
            api.merge_patch(f"/api/v1/nodes/{self.name}", {"spec": {"unschedulable": True}})
            # Its Pod would only be made again, for a node that is going away.
            api.delete(_COREDNS_DEPLOYMENT)
            selector = {"fieldSelector": f"spec.nodeName={self.name}"}
            for pod in api.items("/api/v1/pods", **selector):
                meta = pod["metadata"]
                api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
            deadline = time.monotonic() + timeout
            while api.items("/api/v1/pods", **selector) and time.monotonic() < deadline:
                time.sleep(0.5)
        except (OSError, ApiError, ClusterError):
            # The API server is gone: the fallbacks in stop() clean up instead.
            pass

    def check(self) -> None:
        for component in self.components.values():
            component.check_alive()

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {c.name} ({c.log_path}) ---\n{log_tail(c.log_path, lines)}"
            for c in self.components.values()
        )

    # -- network ----------------------------------------------------------

    def _make_network(self) -> None:
        pid = os.getpid()
        self.netns = f"{NETNS_PREFIX}{pid}"
        links = list(_LINK_RANGE.subnets(new_prefix=30))
        link = links[pid % len(links)]
        host, node = list(link.hosts())
        self.host_ip, self.node_ip = str(host), str(node)
        host_dev, node_dev = f"fxn{pid}h", f"fxn{pid}n"
        _sh("ip", "netns", "add", self.netns)
        _sh("ip", "link", "add", host_dev, "type", "veth", "peer", "name", node_dev)
        _sh("ip", "link", "set", node_dev, "netns", self.netns)
        _sh("ip", "addr", "add", f"{host}/30", "dev", host_dev)
        _sh("ip", "link", "set", host_dev, "up")
        inside = ("ip", "netns", "exec", self.netns)
        _sh(*inside, "ip", "link", "set", "lo", "up")
        _sh(*inside, "ip", "addr", "add", f"{node}/30", "dev", node_dev)
        _sh(*inside, "ip", "link", "set", node_dev, "up")
        # Only the /30 is routed: no default route, so nothing leaves the machine.
        # The host reaches Services through the node (tests that call a Service).
        _sh("ip", "route", "add", "10.0.0.0/24", "via", str(node), "dev", host_dev)
        _sh(*inside, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

    def _point_kubernetes_service(self) -> None:
        """Make ``kubernetes.default`` reach the API server through the relay.

        The test control plane runs without the endpoint reconciler, so the
        Service has no endpoints of its own.
        """
        port = self.cluster.apiserver_port
        self.cluster.api.apply(
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "kubernetes"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [self.host_ip], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            },
        )

    def _grant_node_roles(self) -> None:
        # RBAC only (no Node authorizer): the kubelet's group gets the node role.
        self.cluster.api.apply(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/fluxd-testenv-nodes",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "fluxd-testenv-nodes"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:node",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Group",
                        "name": "system:nodes",
                    }
                ],
            },
        )

    # -- cluster DNS ----------------------------------------------------------

    def _apply_cluster_dns(self) -> None:
        """CoreDNS as a cluster runs it: RBAC, Corefile, Deployment and the ``kube-dns`` Service."""
        labels = {"k8s-app": "kube-dns"}
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        objects: list[tuple[str, dict[str, object]]] = [
            ("/api/v1/namespaces/kube-system/serviceaccounts/coredns",
             {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "coredns", "namespace": "kube-system"}}),
            (f"{rbac}/clusterroles/system:coredns",
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
              "metadata": {"name": "system:coredns"},
              "rules": [
                  {"apiGroups": [""], "resources": ["services", "namespaces"],
                   "verbs": ["list", "watch"]},
                  {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                   "verbs": ["list", "watch"]},
              ]}),
            (f"{rbac}/clusterrolebindings/system:coredns",
             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
              "metadata": {"name": "system:coredns"},
              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                          "name": "system:coredns"},
              "subjects": [{"kind": "ServiceAccount", "name": "coredns",
                            "namespace": "kube-system"}]}),
            ("/api/v1/namespaces/kube-system/configmaps/coredns",
             {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "coredns", "namespace": "kube-system"},
              "data": {"Corefile": _COREFILE}}),
            ("/api/v1/namespaces/kube-system/services/kube-dns",
             {"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
              "spec": {"selector": labels, "clusterIP": CLUSTER_DNS_IP,
                       "ports": [{"name": "dns", "port": 53, "protocol": "UDP",
                                  "targetPort": _DNS_CONTAINER_PORT},
                                 {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                  "targetPort": _DNS_CONTAINER_PORT}]}}),
            (_COREDNS_DEPLOYMENT, self._coredns_deployment(labels)),
        ]  # fmt: skip
        for path, body in objects:
            try:
                self.cluster.api.apply(path, body)
            except ApiError as error:
                raise NodeError(f"cluster DNS: applying {path} failed: {error}") from error

    def _coredns_deployment(self, labels: dict[str, str]) -> dict[str, object]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "tolerations": [TOLERATION],
                        "nodeSelector": NODE_SELECTOR,
                        # Its own lookups go to the node's resolver, not to itself.
                        "dnsPolicy": "Default",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": images.COREDNS_IMAGE,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {
                                        "name": "dns",
                                        "containerPort": _DNS_CONTAINER_PORT,
                                        "protocol": "UDP",
                                    },
                                    {
                                        "name": "dns-tcp",
                                        "containerPort": _DNS_CONTAINER_PORT,
                                        "protocol": "TCP",
                                    },
                                ],
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 1,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {
                                        "name": "config",
                                        "mountPath": "/etc/coredns",
                                        "readOnly": True,
                                    }
                                ],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        }

    def _dns_available(self) -> bool:
        status = self.cluster.api.get(_COREDNS_DEPLOYMENT).get("status", {})
        return bool(status.get("availableReplicas", 0) >= 1)

    # -- processes ----------------------------------------------------------

    def _start(self, name: str, argv: list[str]) -> None:
        # nsenter joins the network namespace only: the kubelet's mounts
        # (Secret volumes) must be seen by containerd and runc.
        component = Component(
            name=name,
            argv=["nsenter", f"--net=/run/netns/{self.netns}", *argv],
            log_path=self.logs_dir / f"{name}.log",
        )
        self.components[name] = component
        component.start()

    def _ctr(self, *args: str) -> str:
        result = subprocess.run(
            ["ctr", f"--address={self.socket_path}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise NodeError(f"ctr {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _stop_sandboxes(self) -> None:
        try:
            tasks = self._ctr("tasks", "list", "--quiet").split()
            for task in tasks:
                subprocess.run(
                    ["ctr", f"--address={self.socket_path}", "--namespace=k8s.io", "tasks",
                     "kill", "--signal=SIGKILL", task],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )  # fmt: skip
        except (NodeError, subprocess.TimeoutExpired):
            pass

    def _wait(self, what: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if callable(check) and check():
                return
            if time.monotonic() >= deadline:
                raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}\n"
                                f"{self.log_tails()}")  # fmt: skip
            time.sleep(0.2)

    def _ready(self) -> bool:
        node = self.cluster.api.get_or_none(f"/api/v1/nodes/{self.name}")
        if node is None:
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )

    # -- configuration --------------------------------------------------------

    def _certificate(
        self,
        name: str,
        common_name: str,
        *,
        organization: str | None = None,
        hosts: tuple[str, ...] = (),
    ) -> tuple[Path, Path]:
        """A certificate and key signed by the cluster's CA: for a client, or serving ``hosts``."""
        pki = self.cluster.pki
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        cert, key = issue(
            ca=(ca_cert, ca_key),
            common_name=common_name,
            organization=organization,
            hosts=hosts,
            client=not hosts,
        )
        directory = self.workdir / "pki"
        directory.mkdir(exist_ok=True)
        cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return cert_path, key_path

    def _client_kubeconfig(self, name: str, common_name: str, organization: str | None) -> Path:
        pki = self.cluster.pki
        cert_path, key_path = self._certificate(name, common_name, organization=organization)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testenv",
                    "cluster": {
                        "server": f"https://{self.host_ip}:{self.cluster.apiserver_port}",
                        "certificate-authority": str(pki.ca_cert),
                        # The serving certificate names loopback, not the veth.
                        "tls-server-name": "kubernetes",
                    },
                }
            ],
            "users": [
                {
                    "name": name,
                    "user": {"client-certificate": str(cert_path), "client-key": str(key_path)},
                }
            ],
            "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": name}}],
            "current-context": "testenv",
        }
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _containerd_config(self) -> Path:
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-fluxd-node.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "fluxd-node",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "fxnbr0",
                            "isGateway": True,
                            # SNAT to the node's address inside the namespace: the host
                            # needs no route to the Pod network.
                            "ipMasq": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self.workdir / "cni" / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        root = self.workdir / "containerd"
        config = f"""\
version = 2
root = "{root / "root"}"
state = "{root / "state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{self.socket_path}"

[ttrpc]
  address = "{self.socket_path}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.PAUSE_IMAGE}"
  disable_apparmor = true
  # This machine refuses lowering a process's OOM score: keep containerd's own as the floor.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{_CNI_BIN}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        path = root / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config)
        return path

    def _kubelet_argv(self, binaries: Path) -> list[str]:
        kubeconfig = self._client_kubeconfig("kubelet", f"system:node:{self.name}", "system:nodes")
        serving_cert, serving_key = self._certificate(
            "kubelet-serving", f"system:node:{self.name}", hosts=(self.node_ip, self.name)
        )
        resolv = self.workdir / "resolv.conf"
        # The node's own resolver knows no servers: Pods resolve through the
        # cluster DNS, and CoreDNS (dnsPolicy Default) forwards nowhere.
        resolv.write_text("options ndots:1\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            # This machine has cgroup v1, which the kubelet refuses unless told.
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket_path}",
            "address": self.node_ip,
            "port": 10250,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": 10248,
            "tlsCertFile": str(serving_cert),
            "tlsPrivateKeyFile": str(serving_key),
            # As a cluster's kubelet: clients (the API server, for logs and exec)
            # show a certificate of the cluster's CA, and the API server decides
            # what they may do.
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.cluster.pki.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "registerWithTaints": [TAINT],
            "resolvConf": str(resolv),
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [CLUSTER_DNS_IP],
            # The images are imported, never pulled: never collect them, and do not
            # evict on a shared machine's disk use.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "0%",
                "imagefs.available": "0%",
                "nodefs.inodesFree": "0%",
            },
            "enforceNodeAllocatable": [],
            "cgroupsPerQOS": True,
            "serializeImagePulls": False,
            "localStorageCapacityIsolation": False,
            "syncFrequency": "5s",
            "podPidsLimit": -1,
        }
        path = self.workdir / "kubelet.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [
            str(binaries / "kubelet"),
            f"--config={path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.workdir / 'kubelet'}",
            f"--cert-dir={self.workdir / 'kubelet-pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.node_ip}",
            "--node-labels=fluxd.dev/real-node=true,type=real",
            "--v=1",
        ]

    def _kube_proxy_argv(self, binaries: Path) -> list[str]:
        kubeconfig = self._client_kubeconfig("kube-proxy", "system:kube-proxy", None)
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.name,
            "clusterCIDR": POD_CIDR,
            "bindAddress": self.node_ip,
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            # Leave the machine-wide conntrack sysctls alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
        }
        path = self.workdir / "kube-proxy.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return [str(binaries / "kube-proxy"), f"--config={path}", "--v=1"]
