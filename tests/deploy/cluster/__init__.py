"""A test cluster of real Kubernetes parts on this machine (`make e2e-cluster`).

Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes), the KubeRay
operator and its CRDs, and two Nodes, each a real kubelet with its own containerd and runc
(`kubelet.py`): a CPU pool node and a GPU pool node (labelled and tainted as GKE's, advertising one
`nvidia.com/gpu`, no device behind it). Pods run the project's image built from its Dockerfile
(`image.py`) on a CNI bridge, with kube-proxy and CoreDNS; storage is local PersistentVolumes with
node affinity (`volumes.py`); S3 is moto.

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

from tests.deploy.cluster.controlplane import CACHE, parts_missing
from tests.deploy.cluster.kubelet import CLUSTER_DNS, CPU_POOL, GPU_POOL, KubeletNode, missing_tools
from tests.deploy.cluster.volumes import make_local_volumes

S3_PORT = 9000
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "e2e",
    "AWS_SECRET_ACCESS_KEY": "e2e-secret",
    "AWS_REGION": "us-east-1",
}


def unavailable(cache: Path = CACHE) -> str | None:
    """Why the cluster cannot start here (None when it can)."""
    if os.geteuid() != 0:
        return "the kubelet nodes need root (cgroups, mounts, network)"
    return missing_tools() or parts_missing(cache)


@dataclass
class E2ECluster:
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsdl-e2e-cluster-"))
    )
    cache: Path = CACHE
    timings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kubelet = KubeletNode(self.workdir / "kubelet", self.cache,
                                   shapes=(CPU_POOL, GPU_POOL), persistent_images=True)  # fmt: skip
        self.cp = self.kubelet.cp
        self._s3: Any = None

    @property
    def api(self):  # type: ignore[no-untyped-def]
        return self.cp.api()

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig()

    @property
    def host_ip(self) -> str:
        """The nodes' own address on the pod network: CoreDNS and S3 listen there."""
        return CLUSTER_DNS

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host_ip}:{S3_PORT}"

    @property
    def dns_files(self) -> tuple[Path, str]:
        """A file that gives a process the cluster's DNS when bind-mounted on the path named."""
        return self.workdir / "cluster-resolv.conf", "/etc/resolv.conf"

    def up(self) -> None:
        """Control plane + operator, containerds, the project's image, the kubelets, kube-proxy,
        CoreDNS, local PersistentVolumes for each Node, S3: each step's time in `timings`."""
        from tests.deploy.cluster import image

        node, start = self.kubelet, time.monotonic()

        def timed(name: str, action):  # type: ignore[no-untyped-def]
            t0 = time.monotonic()
            result = action()
            self.timings[name] = round(time.monotonic() - t0, 1)
            return result

        ref, how = timed("image", image.build)
        self.timings["image source"] = how
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

    def _wait_nodes_ready(self, count: int, timeout: float = 60) -> None:
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
        self.kubelet.down()  # Pods, kubelets, containerds, control plane, host settings

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


__all__ = ["E2ECluster", "S3_CREDENTIALS", "unavailable"]
