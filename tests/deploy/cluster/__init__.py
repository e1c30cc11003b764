"""A test cluster of real Kubernetes parts on this machine (`make e2e-cluster`).

Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes), the KubeRay
operator and its CRDs, an S3 server (moto). In the kubelet's place: our node agent (`node.py`),
which runs the Pods the scheduler binds to its Nodes as sandboxed processes. `python -m
tests.deploy.cluster` starts one and prints how to reach it (Ctrl-C stops it).
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
from tests.deploy.cluster.node import BRIDGE_IP, CPU_NODE, GPU_NODE, NodeAgent
from tests.deploy.cluster.sandbox import sandbox_unavailable

S3_PORT = 9000
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "e2e",
    "AWS_SECRET_ACCESS_KEY": "e2e-secret",
    "AWS_REGION": "us-east-1",
}


def unavailable(cache: Path = CACHE) -> str | None:
    """Why the cluster cannot start here (None when it can)."""
    return sandbox_unavailable() or parts_missing(cache)


@dataclass
class E2ECluster:
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="tsdl-e2e-cluster-"))
    )
    cache: Path = CACHE
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.agent: NodeAgent | None = None
        self.cp = ControlPlane(self.workdir / "control-plane", self.cache)
        self._s3: Any = None

    @property
    def api(self):  # type: ignore[no-untyped-def]
        return self.cp.api()

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig()

    @property
    def s3_endpoint(self) -> str:
        return f"http://{BRIDGE_IP}:{S3_PORT}"

    def up(self) -> None:
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

    def _start_s3(self) -> None:
        """moto on the nodes' address, and a selector-less Service `s3` in front of it."""
        from moto.server import ThreadedMotoServer

        os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")
        self._s3 = ThreadedMotoServer(ip_address=BRIDGE_IP, port=S3_PORT)
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
endpoints: [{{addresses: ["{BRIDGE_IP}"], conditions: {{ready: true}}}}]
""",
        )
        return f"http://s3.{namespace}.svc.cluster.local:{S3_PORT}"

    def _wait_nodes_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.api.get("/api/v1/nodes")["items"]
            ready = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                             for c in n.get("status", {}).get("conditions", []))]  # fmt: skip
            if len(ready) == 2:
                return
            time.sleep(0.5)
        raise TimeoutError("nodes not Ready")

    def down(self) -> None:
        if isinstance(self.agent, NodeAgent) and hasattr(self.agent, "nodes"):
            self.agent.stop()
        self.cp.stop()
        if self._s3 is not None:
            self._s3.stop()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


__all__ = ["E2ECluster", "S3_CREDENTIALS", "unavailable"]
