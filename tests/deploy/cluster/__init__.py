"""A test cluster of real Kubernetes parts on this machine (`make e2e-cluster`).

Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes), the KubeRay
operator and its CRDs, an S3 server (moto). The nodes (TSDL_E2E_NODES):

* `agent` (the default): our node agent (`node.py`) runs the Pods the scheduler binds to its two
  Nodes (CPU, tainted "GPU") as sandboxed processes;
* `kubelet`: one real kubelet with containerd, runc, the CNI bridge, kube-proxy and CoreDNS
  (`kubelet.py`), running the project's image built from its Dockerfile (`image.py`); the Node
  advertises one `nvidia.com/gpu` as an extended resource (no device behind it).

`python -m tests.deploy.cluster` starts one and prints how to reach it (Ctrl-C stops it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.cluster.controlplane import CACHE, ControlPlane, parts_missing
from tests.deploy.cluster.node import BRIDGE_IP, CPU_NODE, GPU_NODE, NodeAgent, make_local_volumes
from tests.deploy.cluster.sandbox import sandbox_unavailable

S3_PORT = 9000
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "e2e",
    "AWS_SECRET_ACCESS_KEY": "e2e-secret",
    "AWS_REGION": "us-east-1",
}


NODE_MODES = ("agent", "kubelet")


def node_mode() -> str:
    """TSDL_E2E_NODES: which nodes run the Pods (see the module's docstring)."""
    mode = os.environ.get("TSDL_E2E_NODES", "agent") or "agent"
    if mode not in NODE_MODES:
        raise ValueError(f"TSDL_E2E_NODES={mode!r}: use one of {', '.join(NODE_MODES)}")
    return mode


def unavailable(cache: Path = CACHE) -> str | None:
    """Why the cluster cannot start here (None when it can)."""
    if node_mode() == "kubelet":
        from tests.deploy.cluster.kubelet import missing_tools

        if os.geteuid() != 0:
            return "a kubelet node needs root (cgroups, mounts, network)"
        return missing_tools() or parts_missing(cache)
    return sandbox_unavailable() or parts_missing(cache)


@dataclass
class E2ECluster:
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsdl-e2e-cluster-"))
    )
    cache: Path = CACHE
    timings: dict[str, float] = field(default_factory=dict)
    nodes: str = field(default_factory=node_mode)

    def __post_init__(self) -> None:
        self.agent: NodeAgent | None = None
        self.kubelet: Any = None  # kubelet.KubeletNode in kubelet mode
        if self.nodes == "kubelet":
            from tests.deploy.cluster.kubelet import CPU_POOL, GPU_POOL, KubeletNode

            self.kubelet = KubeletNode(self.workdir / "kubelet", self.cache,
                                       shapes=(CPU_POOL, GPU_POOL), persistent_images=True)  # fmt: skip
            self.cp = self.kubelet.cp
        else:
            self.cp = ControlPlane(self.workdir / "control-plane", self.cache)
        self._s3: Any = None

    @property
    def api(self):  # type: ignore[no-untyped-def]
        return self.cp.api()

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig()

    @property
    def host_ip(self) -> str:
        """The nodes' own address on the pod network (S3 and, with the kubelet, CoreDNS)."""
        if self.nodes == "kubelet":
            from tests.deploy.cluster.kubelet import CLUSTER_DNS

            return CLUSTER_DNS
        return BRIDGE_IP

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host_ip}:{S3_PORT}"

    @property
    def dns_files(self) -> tuple[Path, str]:
        """A file that gives a process the cluster's DNS when bind-mounted on the path named."""
        if self.nodes == "kubelet":
            return self.workdir / "cluster-resolv.conf", "/etc/resolv.conf"
        assert self.agent is not None
        return self.agent.operator_hosts, "/etc/hosts"

    def up(self) -> None:
        if self.nodes == "kubelet":
            self._up_kubelet()
            return
        start = time.monotonic()
        self.agent = NodeAgent.__new__(NodeAgent)  # placeholder until the API exists
        agent_dir = self.workdir / "nodes"
        agent_dir.mkdir(parents=True, exist_ok=True)
        self.cp.hosts_file = agent_dir / "operator-hosts"
        self.cp.hosts_file.write_text("127.0.0.1\tlocalhost\n")
        self.cp.start()
        self.timings["control plane + operator"] = time.monotonic() - start
        self.agent = NodeAgent(self.cp.api("node"), agent_dir, nodes=(CPU_NODE, GPU_NODE))
        pki = self.cp.pki
        self.agent.start(tls=(pki / "apiserver.crt", pki / "apiserver.key"))
        self._start_s3()
        self._wait_nodes_ready()
        self.timings["total"] = time.monotonic() - start

    def _up_kubelet(self) -> None:
        """Control plane + operator, containerd, the project's image, the kubelet, kube-proxy,
        CoreDNS, local PersistentVolumes for the Node, S3: each step's time in `timings`."""
        from tests.deploy.cluster import image
        from tests.deploy.cluster.kubelet import CLUSTER_DNS

        node, start = self.kubelet, time.monotonic()

        def timed(name: str, action):  # type: ignore[no-untyped-def]
            t0 = time.monotonic()
            result = action()
            self.timings[name] = round(time.monotonic() - t0, 1)
            return result

        ref, how = timed("image", image.build)
        self.timings["image source"] = how  # type: ignore[assignment]
        resolv, _ = self.dns_files
        resolv.parent.mkdir(parents=True, exist_ok=True)
        resolv.write_text(f"nameserver {CLUSTER_DNS}\nsearch svc.cluster.local cluster.local\n"
                          "options ndots:5\n")  # fmt: skip
        self.cp.dns_file = (resolv, "/etc/resolv.conf")  # the operator asks CoreDNS
        node.bridge_up()
        timed("control plane + operator", self.cp.start)
        timed("containerd", node.start_containerd)
        timed("pause image", node.images)
        save = lambda path: image.save(ref, path, self.cache)  # noqa: E731
        timed("image import", lambda: node.import_image(ref, save, image.image_refs()))
        timed("kubelet", node.start_kubelet)
        timed("kube-proxy", node.start_kube_proxy)
        timed("coredns", node.start_coredns)
        for kubelet in node.nodes:
            make_local_volumes(self.api, self.workdir / "disks", kubelet.name, 24)
        self._start_s3()
        self._wait_nodes_ready(count=len(node.nodes))
        self.timings["total"] = round(time.monotonic() - start, 1)

    def _start_s3(self) -> None:
        """moto on the nodes' address, and a selector-less Service `s3` in front of it."""
        from moto.server import ThreadedMotoServer

        os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")
        self._s3 = ThreadedMotoServer(ip_address=self.host_ip, port=S3_PORT)
        self._s3.start()

    def expose_s3(self, namespace: str) -> str:
        """Service `s3` (port 9000) in `namespace`; returns the in-cluster endpoint URL."""
        self.cp.kubectl(
            "apply",
            "-f",
            "-",
            input=f"""\
apiVersion: v1
kind: Service
metadata: {{name: s3, namespace: {namespace}}}
spec:
  ports: [{{name: http, port: {S3_PORT}, targetPort: {S3_PORT}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s3-host
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: s3}}
addressType: IPv4
ports: [{{name: http, port: {S3_PORT}}}]
endpoints: [{{addresses: ["{self.host_ip}"], conditions: {{ready: true}}}}]
""",
        )
        return f"http://s3.{namespace}.svc.cluster.local:{S3_PORT}"

    def _wait_nodes_ready(self, timeout: float = 60, count: int = 2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.api.get("/api/v1/nodes")["items"]
            ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in n.get("status", {}).get("conditions", []))]  # fmt: skip
            if len(ready) == count:
                return
            time.sleep(0.5)
        raise TimeoutError("nodes not Ready")

    def down(self) -> None:
        if self._s3 is not None:
            self._s3.stop()
        if self.kubelet is not None:  # Pods, kubelet, containerd, control plane, host settings
            self.kubelet.down()
            return
        if isinstance(self.agent, NodeAgent) and hasattr(self.agent, "nodes"):
            self.agent.stop()
        self.cp.stop()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


__all__ = ["E2ECluster", "S3_CREDENTIALS", "unavailable"]
