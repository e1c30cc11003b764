"""The e2e cluster's nodes: our node agent in the kubelet's place (see docs/deploy.md, "which parts
are real", for why the real kubelet is not used here).

The agent does the kubelet's side of the contract against the real API server:

* registers each Node (capacity, labels, taints; the "GPU" node advertises `nvidia.com/gpu` as a
  device plugin would), and keeps it Ready with node-status heartbeats and its `kube-node-lease`
  Lease, so the real node-lifecycle controller and scheduler treat it as a live node;
* pre-makes PersistentVolumes with node affinity (a local disk per node, ReadWriteOnce) for the
  default `WaitForFirstConsumer` StorageClass, so claims bind where the scheduler puts their pod;
* runs the Pods the real scheduler bound to its Nodes: a network namespace per Pod with its own IP
  on a bridge, init containers in order, then the containers as sandboxed processes
  (`sandbox.py`) with the spec's command/args, env (values, ConfigMap/Secret refs, fieldRefs,
  resourceFieldRefs), volumes (emptyDir, configMap, secret, projected, PVC), securityContext,
  restartPolicy and probes; reports phase, conditions, container states and the Pod IP back;
* on deletion, SIGTERMs the containers, waits out the grace period, then removes the Pod;
* stands in for cluster DNS: every Pod's `/etc/hosts` (and the operator's) maps each Service's
  names to the IP of its ready endpoint (from the EndpointSlices the real controller keeps).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import threading
import time
import traceback
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.deploy.cluster.api import Api, ApiError
from tests.deploy.cluster.controlplane import STORAGE_CLASS
from tests.deploy.cluster.sandbox import (
    Container,
    ImageEmulation,
    Mount,
    PodProcess,
    python_image,
    sandbox_script,
)

BRIDGE = "tsdl-e2e0"
BRIDGE_IP = "10.244.0.1"  # the nodes' own address on the pod network (S3 stands here)
PREFIX = 16
CLUSTER_DOMAIN = "cluster.local"
# In a pod's network namespace nothing listens here: a Service without ready endpoints refuses.
NO_ENDPOINT = "127.0.0.2"


@dataclass(frozen=True)
class NodeShape:
    """A Node as a cloud node pool would make it."""

    name: str
    cpu: str
    memory: str
    gpus: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    subnet: int = 1  # pod IPs are 10.244.<subnet>.x


CPU_NODE = NodeShape(
    "cpu-node",
    cpu="8",
    memory="32Gi",
    labels={
        "node.kubernetes.io/instance-type": "e2-standard-8",
        "cloud.google.com/gke-nodepool": "cpu",
    },
    subnet=1,
)
# A GKE/EKS-style GPU pool: the accelerator label, GPU Feature Discovery's label, and the taint
# GKE puts on GPU nodes (EKS users add the same one).
GPU_NODE = NodeShape(
    "gpu-node",
    cpu="16",
    memory="64Gi",
    gpus=1,
    labels={
        "node.kubernetes.io/instance-type": "g2-standard-16",
        "cloud.google.com/gke-nodepool": "gpu",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "nvidia.com/gpu.present": "true",
    },
    taints=({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    subnet=2,
)


def make_local_volumes(api: Api, disks: Path, node: str, count: int) -> None:
    """Local disks of this node as PersistentVolumes (what a local-volume provisioner makes)."""
    for i in range(count):
        name = f"{node}-disk-{i}"
        path = disks / name
        path.mkdir(parents=True, exist_ok=True)
        api.delete(f"/api/v1/persistentvolumes/{name}")
        api.create(
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"tsdl-e2e/node": node}},
                "spec": {
                    "capacity": {"storage": "200Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "local": {"path": str(path)},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": [node],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                },
            },
        )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def quantity(value: str | int | float) -> float:
    """A Kubernetes quantity as a number (cpu in cores, memory in bytes)."""
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "m": 1e-3,
    }
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def image_for(image: str) -> ImageEmulation:
    """The project's image (any tag) from the Dockerfile; anything else is a plain Python image."""
    if "tsdl" in image.split("/")[-1]:
        return ImageEmulation.from_dockerfile()
    return python_image()


# --- the pod network ------------------------------------------------------------------------------


class PodNetwork:
    """A bridge on this machine with a network namespace (veth, own IP) per Pod. No uplink, no NAT:
    pod traffic stays on this machine."""

    def __init__(self) -> None:
        self.next_host: dict[int, int] = {}

    def up(self) -> None:
        self.down()
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        _sh("ip", "addr", "add", f"{BRIDGE_IP}/{PREFIX}", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")

    def down(self) -> None:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)

    def attach(self, netns: str, subnet: int) -> str:
        host = self.next_host.get(subnet, 2)
        self.next_host[subnet] = host + 1
        ip = f"10.244.{subnet}.{host}"
        veth = "tv" + netns[-10:]
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        _sh("ip", "netns", "add", netns)
        _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        for cmd in (
            ["ip", "addr", "add", f"{ip}/{PREFIX}", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "link", "set", "lo", "up"],
            ["ip", "route", "add", "default", "via", BRIDGE_IP],
        ):
            _sh("ip", "netns", "exec", netns, *cmd)
        return ip

    def detach(self, netns: str) -> None:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


# --- per-pod state --------------------------------------------------------------------------------


@dataclass
class ContainerRun:
    spec: dict[str, Any]
    init: bool
    proc: PodProcess | None = None
    resolved: Container | None = None
    restarts: int = 0
    started_at: str = ""
    started_mono: float = 0.0
    exit_code: int | None = None
    finished_at: str = ""
    last_exit: dict[str, Any] | None = None
    ready: bool = False
    ready_ok: int = 0
    ready_fail: int = 0
    live_fail: int = 0
    next_probe: float = 0.0
    live_next: float = 0.0
    started_ok: bool = False  # the startupProbe has succeeded (or there is none)
    start_fail: int = 0
    start_next: float = 0.0
    running: bool = False
    backoff_until: float = 0.0
    done: bool = False  # terminated for good (no restart)

    @property
    def name(self) -> str:
        return str(self.spec["name"])


@dataclass
class PodRun:
    uid: str
    namespace: str
    name: str
    node: NodeShape
    dir: Path
    netns: str
    ip: str
    pod: dict[str, Any]
    started: str = field(default_factory=now)
    inits: list[ContainerRun] = field(default_factory=list)
    containers: list[ContainerRun] = field(default_factory=list)
    error: str = ""  # a container that cannot be created (CreateContainerConfigError etc.)
    terminating: bool = False
    last_status: dict[str, Any] | None = None

    @property
    def hosts_file(self) -> Path:
        return self.dir / "hosts"

    @property
    def restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))


# --- the agent ------------------------------------------------------------------------------------


class NodeAgent:
    """Runs `nodes` against `api` until `stop()`; one background thread."""

    def __init__(
        self,
        api: Api,
        workdir: Path,
        nodes: tuple[NodeShape, ...] = (CPU_NODE, GPU_NODE),
        volumes_per_node: int = 24,
    ) -> None:
        self.api = api
        self.workdir = workdir
        self.nodes = {n.name: n for n in nodes}
        self.volumes_per_node = volumes_per_node
        self.network = PodNetwork()
        self.pods: dict[str, PodRun] = {}
        self.operator_hosts = workdir / "operator-hosts"
        self.resolv = workdir / "resolv.conf"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self.errors: list[str] = []
        self.heartbeats = True  # a test may stop them (a node lost)
        self._service_lines: dict[str, list[str]] = {}
        self._log_server: Any = None
        self.kubelet_port = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Files the operator needs before the agent starts (its hosts file)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.operator_hosts.write_text("127.0.0.1\tlocalhost\n")
        # No DNS server: names not in /etc/hosts fail at once instead of asking the host's resolver.
        self.resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def start(self, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: cert and key for the nodes' log endpoint (the API server does not verify it)."""
        self.prepare()
        self.network.up()
        if tls is not None:
            self._serve_logs(*tls)
        for node in self.nodes.values():
            self._register(node)
            self._make_volumes(node)
        self._heartbeat()
        self._thread = threading.Thread(target=self._loop, name="node-agent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._log_server is not None:
            self._log_server.shutdown()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for run in list(self.pods.values()):
            self._kill_pod(run, grace=5)
        self.pods.clear()
        self.network.down()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() - self._last_heartbeat > 10 and self.heartbeats:
                    self._heartbeat()
                self._sync_dns()
                self._sync_pods()
            except Exception:  # keep the node alive; the test reads agent.errors
                self.errors.append(traceback.format_exc())
            self._stop.wait(1.0)

    # -- Node, Lease, volumes ----------------------------------------------------------------------

    def _register(self, node: NodeShape) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": {
                    "kubernetes.io/hostname": node.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/zone": "local-a",
                    **node.labels,
                },
            },
            "spec": {"taints": [dict(t) for t in node.taints]} if node.taints else {},
        }
        self.api.delete(f"/api/v1/nodes/{node.name}")
        self.api.create("/api/v1/nodes", body)

    def _node_status(self, node: NodeShape) -> dict[str, Any]:
        capacity = {
            "cpu": node.cpu,
            "memory": node.memory,
            "pods": "110",
            "ephemeral-storage": "100Gi",
        }
        if node.gpus:
            capacity["nvidia.com/gpu"] = str(node.gpus)
        stamp = now()
        conditions = [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "tsdl e2e node agent is posting ready status"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID"},
        ]  # fmt: skip
        for c in conditions:
            c.update(
                lastHeartbeatTime=stamp,
                lastTransitionTime=self._transitions.setdefault(node.name, stamp),
            )
        return {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": conditions,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "addresses": [
                    {"type": "InternalIP", "address": BRIDGE_IP},
                    {"type": "Hostname", "address": node.name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.36.3-tsdl-node-agent",
                    "containerRuntimeVersion": "tsdl-sandbox://1",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "tsdl e2e", "kernelVersion": os.uname().release,
                    "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
                },
            }
        }  # fmt: skip

    _transitions: dict[str, str] = {}

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        for node in self.nodes.values():
            self.api.merge_patch(f"/api/v1/nodes/{node.name}/status", self._node_status(node))
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": node.name, "namespace": "kube-node-lease"},
                "spec": {
                    "holderIdentity": node.name,
                    "leaseDurationSeconds": 40,
                    "renewTime": now_micro(),
                },
            }
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node.name}"
            try:
                self.api.merge_patch(path, {"spec": lease["spec"]})
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.api.create(
                    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease
                )

    def _make_volumes(self, node: NodeShape) -> None:
        make_local_volumes(self.api, self.workdir / "disks", node.name, self.volumes_per_node)

    # -- the kubelet's log endpoint (`kubectl logs`, `tsdl logs`) --------------------------------------

    def _serve_logs(self, cert: Path, key: Path) -> None:
        """GET /containerLogs/<ns>/<pod>/<container>[?tailLines=N&follow=true], the path the API
        server's pods/log proxies to on the node's kubelet port."""
        import ssl
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        agent = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                run = (
                    agent.find(parts[2], parts[1])
                    if len(parts) == 4 and parts[0] == "containerLogs"
                    else None
                )
                ctr = (
                    next((c for c in [*run.inits, *run.containers] if c.name == parts[3]), None)
                    if run
                    else None
                )
                if ctr is None or ctr.proc is None:
                    self.send_error(404, "container not found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                text = ctr.proc.output()
                if "tailLines" in query:
                    text = "".join(text.splitlines(keepends=True)[-int(query["tailLines"]) :])
                self.wfile.write(text.encode())
                if query.get("follow") == "true":
                    sent = len(ctr.proc.output())
                    while ctr.proc.alive() and not agent._stop.is_set():
                        time.sleep(1)
                        now_text = ctr.proc.output()
                        self.wfile.write(now_text[sent:].encode())
                        self.wfile.flush()
                        sent = len(now_text)

        server = ThreadingHTTPServer((BRIDGE_IP, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self.kubelet_port = int(server.server_address[1])
        self._log_server = server
        threading.Thread(target=server.serve_forever, name="node-logs", daemon=True).start()

    # -- DNS ---------------------------------------------------------------------------------------

    def _sync_dns(self) -> None:
        """Service names -> the IP of a ready endpoint (what CoreDNS + kube-proxy give a pod)."""
        services = self.api.get("/api/v1/services")["items"]
        slices = self.api.get("/apis/discovery.k8s.io/v1/endpointslices")["items"]
        ready: dict[tuple[str, str], str] = {}
        for s in slices:
            owner = s["metadata"].get("labels", {}).get("kubernetes.io/service-name")
            for ep in s.get("endpoints") or []:
                if owner and ep.get("conditions", {}).get("ready", True) and ep.get("addresses"):
                    ready.setdefault((s["metadata"]["namespace"], owner), ep["addresses"][0])
        by_ns: dict[str, list[str]] = {}
        fq_lines: list[str] = []
        down_lines: list[str] = []
        for svc in services:
            ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
            ip = ready.get((ns, name))
            fq = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.{CLUSTER_DOMAIN}"]
            if ip is None:  # the name resolves, the connection is refused (kube-proxy's reject)
                down_lines.append(f"{NO_ENDPOINT}\t{' '.join(fq)}")
                by_ns.setdefault(ns, []).append(f"{NO_ENDPOINT}\t{name}")
                continue
            fq_lines.append(f"{ip}\t{' '.join(fq)}")
            by_ns.setdefault(ns, []).append(f"{ip}\t{name}")
        self._fq_lines = fq_lines + down_lines  # pods only: the operator's file skips them
        self._service_lines = by_ns
        _write_if_changed(
            self.operator_hosts,
            "127.0.0.1\tlocalhost\n" + "".join(f"{line}\n" for line in fq_lines),
        )
        for run in list(self.pods.values()):
            self._write_hosts(run)

    def _write_hosts(self, run: PodRun) -> None:
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{run.ip}\t{run.name}",
        ]
        lines += self._service_lines.get(run.namespace, []) + getattr(self, "_fq_lines", [])
        _write_if_changed(run.hosts_file, "\n".join(lines) + "\n")

    # -- pods --------------------------------------------------------------------------------------

    def _sync_pods(self) -> None:
        seen = set()
        for node in self.nodes.values():
            pods = self.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={node.name}")["items"]
            for pod in pods:
                uid = pod["metadata"]["uid"]
                seen.add(uid)
                try:
                    self._sync_pod(pod, node)
                except Exception:
                    self.errors.append(f"pod {pod['metadata']['name']}: {traceback.format_exc()}")
        for uid in [u for u in self.pods if u not in seen]:  # deleted by force, or gone
            run = self.pods.pop(uid)
            threading.Thread(target=self._kill_pod, args=(run, 2), daemon=True).start()

    def _sync_pod(self, pod: dict[str, Any], node: NodeShape) -> None:
        uid = pod["metadata"]["uid"]
        run = self.pods.get(uid)
        if run is None:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            run = self._admit(pod, node)
        run.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            if not run.terminating:
                run.terminating = True
                grace = int(pod["metadata"].get("deletionGracePeriodSeconds", 30))
                threading.Thread(target=self._terminate, args=(run, grace), daemon=True).start()
            return
        if not run.error:
            self._step(run)
        self._report(run)

    def _admit(self, pod: dict[str, Any], node: NodeShape) -> PodRun:
        meta = pod["metadata"]
        netns = f"tsdl-{meta['uid'][:10]}"
        pod_dir = self.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        pod_dir.mkdir(parents=True, exist_ok=True)
        ip = self.network.attach(netns, node.subnet)
        run = PodRun(meta["uid"], meta["namespace"], meta["name"], node, pod_dir, netns, ip, pod)
        spec = pod["spec"]
        run.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers", [])]
        run.containers = [ContainerRun(c, init=False) for c in spec.get("containers", [])]
        self.pods[run.uid] = run
        self._write_hosts(run)
        try:
            for c in [*run.inits, *run.containers]:
                c.resolved = self._resolve(run, c.spec)
        except (ApiError, KeyError, ValueError, NotImplementedError) as exc:
            run.error = f"{type(exc).__name__}: {exc}"
            self._event(run, "Warning", "Failed", f"Error: {run.error}")
        return run

    def _step(self, run: PodRun) -> None:
        """Advance the pod: the next init container, or the containers (restarts, probes)."""
        for c in run.inits:
            if c.done:
                continue
            if c.proc is None:
                self._start(run, c)
                return
            if c.proc.alive():
                return
            self._exited(run, c)
            if c.exit_code == 0:
                c.done = True
                continue
            if run.restart_policy == "Never":
                c.done = True
                return
            self._maybe_restart(run, c)
            return
        for c in run.containers:
            if c.done:
                continue
            if c.proc is None:
                self._start(run, c)
            elif not c.proc.alive():
                if c.exit_code is None:
                    self._exited(run, c)
                policy = run.restart_policy
                if policy == "Never" or (policy == "OnFailure" and c.exit_code == 0):
                    c.done = True
                else:
                    self._maybe_restart(run, c)
            else:
                self._probe(run, c)

    def _start(self, run: PodRun, c: ContainerRun) -> None:
        assert c.resolved is not None
        cdir = run.dir / c.name
        root = cdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        image = image_for(str(c.spec.get("image", "")))
        marker = cdir / "started"
        marker.unlink(missing_ok=True)
        script = sandbox_script(c.resolved, image, root, run.hosts_file, run.name[:63], marker)
        (cdir / "sandbox.sh").write_text(script)
        log = cdir / "container.log"
        argv = ["nsenter", f"--net=/run/netns/{run.netns}", "unshare", "-m", "-u", "--propagation",
                "private", "/bin/sh", str(cdir / "sandbox.sh")]  # fmt: skip
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
        c.proc = PodProcess(f"{run.name}/{c.name}", proc, log)
        c.started_at = now()
        c.started_mono = time.monotonic()
        c.exit_code = None
        c.ready = False
        c.ready_ok = c.ready_fail = c.live_fail = c.start_fail = 0
        c.live_next = c.start_next = 0.0
        c.started_ok = "startupProbe" not in c.spec
        c.running = False
        probe = c.spec.get("readinessProbe") or {}
        c.next_probe = time.monotonic() + float(probe.get("initialDelaySeconds", 0))

    def _exited(self, run: PodRun, c: ContainerRun) -> None:
        assert c.proc is not None
        code = c.proc.proc.returncode
        c.exit_code = 128 + -code if code is not None and code < 0 else code
        c.finished_at = now()
        c.ready = False

    def _maybe_restart(self, run: PodRun, c: ContainerRun) -> None:
        """CrashLoopBackOff: 10 s, doubling, at most 5 min (the kubelet's curve)."""
        if c.backoff_until == 0.0:
            delay = min(10 * 2 ** min(c.restarts, 5), 300)
            c.backoff_until = time.monotonic() + delay
            c.last_exit = {
                "terminated": {"exitCode": c.exit_code, "reason": "Completed" if c.exit_code == 0 else "Error",
                               "startedAt": c.started_at, "finishedAt": c.finished_at}
            }  # fmt: skip
            return
        if time.monotonic() < c.backoff_until:
            return
        c.backoff_until = 0.0
        c.restarts += 1
        self._start(run, c)

    def restart_container(self, run: PodRun, c: ContainerRun, reason: str) -> None:
        assert c.proc is not None
        self._event(run, "Normal", "Killing", f"Container {c.name} {reason}, will be restarted")
        c.proc.stop(timeout=10)
        self._exited(run, c)
        c.restarts += 1
        self._start(run, c)

    # -- probes ------------------------------------------------------------------------------------

    def _probe(self, run: PodRun, c: ContainerRun) -> None:
        """Readiness and liveness, each on its own initialDelay/period (the kubelet's workers)."""
        now_ = time.monotonic()
        if not c.running:  # probes count from the process's start, not from the sandbox setup
            assert c.proc is not None
            if not (c.proc.log.parent / "started").exists():
                return
            c.running = True
            c.started_mono = now_
            probe = c.spec.get("readinessProbe") or {}
            c.next_probe = now_ + float(probe.get("initialDelaySeconds", 0))
            c.live_next = 0.0
        if not c.started_ok:  # as the kubelet: only the startupProbe runs until it succeeds
            self._startup_probe(run, c, now_)
            return
        ready_probe = c.spec.get("readinessProbe")
        live_probe = c.spec.get("livenessProbe")
        if ready_probe is None:
            c.ready = True
        elif now_ >= c.next_probe:
            c.next_probe = now_ + float(ready_probe.get("periodSeconds", 10))
            if self._check(run, c, ready_probe):
                c.ready_ok += 1
                c.ready_fail = 0
                if c.ready_ok >= int(ready_probe.get("successThreshold", 1)):
                    c.ready = True
            else:
                c.ready_ok = 0
                c.ready_fail += 1
                if c.ready_fail >= int(ready_probe.get("failureThreshold", 3)):
                    c.ready = False
        if live_probe is not None and now_ >= c.live_next:
            if c.live_next == 0.0:  # first time: wait out initialDelaySeconds
                c.live_next = c.started_mono + float(live_probe.get("initialDelaySeconds", 0))
                return
            c.live_next = now_ + float(live_probe.get("periodSeconds", 10))
            if self._check(run, c, live_probe):
                c.live_fail = 0
            else:
                c.live_fail += 1
                if c.live_fail >= int(live_probe.get("failureThreshold", 3)):
                    self.restart_container(run, c, "failed liveness probe")

    def _startup_probe(self, run: PodRun, c: ContainerRun, now_: float) -> None:
        probe = c.spec["startupProbe"]
        if c.start_next == 0.0:  # first time: wait out initialDelaySeconds
            c.start_next = c.started_mono + float(probe.get("initialDelaySeconds", 0))
        if now_ < c.start_next:
            return
        c.start_next = now_ + float(probe.get("periodSeconds", 10))
        if self._check(run, c, probe):
            c.started_ok = True
            c.next_probe = now_  # readiness and liveness start now
        else:
            c.start_fail += 1
            if c.start_fail >= int(probe.get("failureThreshold", 3)):
                self.restart_container(run, c, "failed startup probe")

    def _check(self, run: PodRun, c: ContainerRun, probe: Mapping[str, Any]) -> bool:
        timeout = float(probe.get("timeoutSeconds", 1))
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = self._port(c, get["port"])
                url = f"http://{run.ip}:{port}{get.get('path', '/')}"
                req = urllib.request.Request(
                    url, headers={h["name"]: h["value"] for h in get.get("httpHeaders", [])}
                )
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return 200 <= resp.status < 400
            if "tcpSocket" in probe:
                import socket

                with socket.create_connection(
                    (run.ip, self._port(c, probe["tcpSocket"]["port"])), timeout=timeout
                ):
                    return True
            if "exec" in probe:
                return (
                    self.exec(
                        run, c, probe["exec"]["command"], timeout=max(timeout, 1.0)
                    ).returncode
                    == 0
                )
        except Exception:
            return False
        return True

    @staticmethod
    def _port(c: ContainerRun, port: int | str) -> int:
        if isinstance(port, str) and not port.isdigit():
            for p in c.spec.get("ports", []):
                if p.get("name") == port:
                    return int(p["containerPort"])
            raise ValueError(f"no port named {port}")
        return int(port)

    def exec(
        self, run: PodRun, c: ContainerRun, command: list[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl exec`: the command in the container's namespaces, root and user."""
        assert c.proc is not None and c.resolved is not None
        r = c.resolved
        groups = ",".join(str(g) for g in r.groups) or str(r.gid)
        argv = ["nsenter", "-t", str(c.proc.proc.pid), "-m", "-n", "-u", "-r", "-w",
                "setpriv", f"--reuid={r.uid}", f"--regid={r.gid}", f"--groups={groups}", "--no-new-privs",
                "env", "-i", *(f"{k}={v}" for k, v in r.env.items()), *command]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    # -- status ------------------------------------------------------------------------------------

    def _container_status(
        self, c: ContainerRun, waiting_reason: str = "PodInitializing"
    ) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "restartCount": c.restarts,
            "ready": bool(c.ready and c.proc is not None and c.proc.alive()),
            "started": bool(c.proc is not None and c.proc.alive()),
        }
        if c.proc is None:
            status["state"] = {"waiting": {"reason": waiting_reason}}
        elif c.proc.alive():
            status["state"] = {"running": {"startedAt": c.started_at}}
            status["containerID"] = f"tsdl://{c.proc.proc.pid}"
        elif c.backoff_until and not c.done:
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off restarting failed container {c.name}"}}  # fmt: skip
        else:
            code = c.exit_code if c.exit_code is not None else 0
            status["state"] = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                              "startedAt": c.started_at, "finishedAt": c.finished_at or now()}}  # fmt: skip
        if c.last_exit:
            status["lastState"] = c.last_exit
        return status

    def _report(self, run: PodRun) -> None:
        inits_done = all(c.done and c.exit_code == 0 for c in run.inits)
        init_failed = any(c.done and c.exit_code not in (0, None) for c in run.inits)
        mains = run.containers
        if run.error:
            phase = "Pending"
        elif init_failed:
            phase = "Failed"
        elif not inits_done:
            phase = "Pending"
        elif mains and all(c.done for c in mains):
            phase = "Succeeded" if all(c.exit_code == 0 for c in mains) else "Failed"
        elif any(c.proc is not None for c in mains):
            phase = "Running"
        else:
            phase = "Pending"
        ready = phase == "Running" and all(
            c.ready and c.proc is not None and c.proc.alive() for c in mains
        )
        stamp = now()

        def cond(kind: str, ok: bool, reason: str = "") -> dict[str, Any]:
            out = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                   "lastTransitionTime": stamp}  # fmt: skip
            if reason and not ok:
                out["reason"] = reason
            return out

        waiting = "CreateContainerConfigError" if run.error else "PodInitializing"
        status = {
            "phase": phase,
            "hostIP": BRIDGE_IP,
            "hostIPs": [{"ip": BRIDGE_IP}],
            "podIP": run.ip,
            "podIPs": [{"ip": run.ip}],
            "startTime": run.started,
            "conditions": [
                cond("PodReadyToStartContainers", True),
                cond("Initialized", inits_done, "ContainersNotInitialized"),
                cond("Ready", ready, "ContainersNotReady"),
                cond("ContainersReady", ready, "ContainersNotReady"),
                cond("PodScheduled", True),
            ],
            "initContainerStatuses": [self._container_status(c, waiting) for c in run.inits]
            or None,
            "containerStatuses": [self._container_status(c, waiting) for c in mains],
        }
        if run.error:
            status["containerStatuses"][0]["state"] = {
                "waiting": {"reason": "CreateContainerConfigError", "message": run.error}
            }
        comparable = {
            **status,
            "conditions": [
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in status["conditions"]
            ],
        }
        if comparable == run.last_status:
            return
        # keep transition times of conditions that did not change
        old = {c["type"]: c for c in (run.pod.get("status", {}).get("conditions") or [])}
        for c in status["conditions"]:
            if c["type"] in old and old[c["type"]]["status"] == c["status"]:
                c["lastTransitionTime"] = old[c["type"]].get("lastTransitionTime", stamp)
        path = f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status"
        try:
            self.api.merge_patch(path, {"status": status})
            run.last_status = comparable
        except ApiError as exc:
            if exc.status != 404:
                raise

    def _event(self, run: PodRun, kind: str, reason: str, message: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{run.name}.", "namespace": run.namespace},
            "involvedObject": {
                "kind": "Pod",
                "namespace": run.namespace,
                "name": run.name,
                "uid": run.uid,
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": run.node.name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
        }
        with contextlib.suppress(ApiError):
            self.api.create(f"/api/v1/namespaces/{run.namespace}/events", body)

    # -- termination -------------------------------------------------------------------------------

    def _terminate(self, run: PodRun, grace: int) -> None:
        self._kill_pod(run, grace)
        self.pods.pop(run.uid, None)
        path = f"/api/v1/namespaces/{run.namespace}/pods/{run.name}"
        with contextlib.suppress(ApiError):
            self.api.delete(path, {"gracePeriodSeconds": 0, "preconditions": {"uid": run.uid}})

    def _kill_pod(self, run: PodRun, grace: float) -> None:
        procs = [c.proc for c in [*run.containers, *run.inits] if c.proc is not None]
        threads = [threading.Thread(target=p.stop, args=(max(grace, 1),)) for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.network.detach(run.netns)
        with contextlib.suppress(OSError):
            _umount_tree(run.dir)

    # -- resolving a container ---------------------------------------------------------------------

    def _obj(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        plural = {
            "ConfigMap": "configmaps",
            "Secret": "secrets",
            "PersistentVolumeClaim": "persistentvolumeclaims",
        }[kind]
        return self.api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")

    def _data(self, kind: str, namespace: str, name: str, optional: bool = False) -> dict[str, str]:
        try:
            obj = self._obj(kind, namespace, name)
        except ApiError as exc:
            if exc.status == 404 and optional:
                return {}
            if exc.status == 404:
                raise ValueError(f'{kind.lower()} "{name}" not found') from None
            raise
        if kind == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            return {**data, **(obj.get("stringData") or {})}
        return dict(obj.get("data") or {})

    def _field(self, run: PodRun, path: str) -> str:
        meta, spec = run.pod["metadata"], run.pod["spec"]
        simple = {
            "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
            "spec.nodeName": run.node.name, "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
            "status.podIP": run.ip, "status.podIPs": run.ip, "status.hostIP": BRIDGE_IP, "status.hostIPs": BRIDGE_IP,
        }  # fmt: skip
        if path in simple:
            return str(simple[path])
        for prefix, source in (
            ("metadata.labels", "labels"),
            ("metadata.annotations", "annotations"),
        ):
            if path.startswith(prefix + "['"):
                return str((meta.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
        raise NotImplementedError(f"fieldRef {path}")

    def _resource(self, spec: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
        kind, _, name = ref["resource"].partition(".")
        container = spec
        if ref.get("containerName"):
            container = next(
                c
                for c in self._all_containers(run_spec=self._current_spec)
                if c["name"] == ref["containerName"]
            )
        value = (container.get("resources", {}).get(kind) or {}).get(name)
        if value is None:  # no limit: the node's allocatable
            value = "8" if name == "cpu" else "32Gi"
        divisor = quantity(ref.get("divisor", "1"))
        return str(int(-(-quantity(value) // divisor)))

    _current_spec: dict[str, Any] = {}

    @staticmethod
    def _all_containers(run_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [*run_spec.get("initContainers", []), *run_spec.get("containers", [])]

    def _resolve(self, run: PodRun, c: Mapping[str, Any]) -> Container:
        spec = run.pod["spec"]
        self._current_spec = spec
        ns = run.namespace
        image = image_for(str(c.get("image", "")))
        pod_sc = spec.get("securityContext") or {}
        sc = c.get("securityContext") or {}
        uid = int(sc.get("runAsUser", pod_sc.get("runAsUser", image.user[1])))
        gid = int(sc.get("runAsGroup", pod_sc.get("runAsGroup", image.user[2])))
        if (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) and uid == 0:
            raise ValueError(f"container {c['name']} has runAsNonRoot and image will run as root")
        groups = sorted(
            {
                gid,
                *pod_sc.get("supplementalGroups", []),
                *([int(pod_sc["fsGroup"])] if "fsGroup" in pod_sc else []),
            }
        )
        env: dict[str, str] = dict(image.env)
        for source in c.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "secretRef" in source:
                ref = source["secretRef"]
                env.update(
                    {
                        prefix + k: v
                        for k, v in self._data(
                            "Secret", ns, ref["name"], ref.get("optional", False)
                        ).items()
                    }
                )
            if "configMapRef" in source:
                ref = source["configMapRef"]
                env.update(
                    {
                        prefix + k: v
                        for k, v in self._data(
                            "ConfigMap", ns, ref["name"], ref.get("optional", False)
                        ).items()
                    }
                )
        for item in c.get("env", []):
            if "value" in item:
                env[item["name"]] = _expand(str(item["value"]), env)
            elif "valueFrom" not in item:
                env[item["name"]] = ""
            else:
                src = item["valueFrom"]
                if "secretKeyRef" in src:
                    ref = src["secretKeyRef"]
                    data = self._data("Secret", ns, ref["name"], ref.get("optional", False))
                    if ref["key"] in data:
                        env[item["name"]] = data[ref["key"]]
                    elif not ref.get("optional"):
                        raise ValueError(
                            f"couldn't find key {ref['key']} in Secret {ns}/{ref['name']}"
                        )
                elif "configMapKeyRef" in src:
                    ref = src["configMapKeyRef"]
                    data = self._data("ConfigMap", ns, ref["name"], ref.get("optional", False))
                    if ref["key"] in data:
                        env[item["name"]] = data[ref["key"]]
                    elif not ref.get("optional"):
                        raise ValueError(
                            f"couldn't find key {ref['key']} in ConfigMap {ns}/{ref['name']}"
                        )
                elif "fieldRef" in src:
                    env[item["name"]] = self._field(run, src["fieldRef"]["fieldPath"])
                elif "resourceFieldRef" in src:
                    env[item["name"]] = self._resource(c, src["resourceFieldRef"])
        env.setdefault("HOSTNAME", run.name)
        env.setdefault("KUBERNETES_SERVICE_HOST", BRIDGE_IP)
        command = list(c.get("command") or [])
        args = [_expand(a, env) for a in c.get("args") or []]
        command = [_expand(a, env) for a in command]
        argv = [*command, *args] if command else [*image.cmd, *args] if not args else args
        if not argv:
            raise ValueError(f"container {c['name']}: no command and the image has no CMD")
        mounts = self._mounts(run, spec, c, pod_sc.get("fsGroup"))
        return Container(
            name=c["name"],
            argv=argv,
            env=env,
            mounts=mounts,
            uid=uid,
            gid=gid,
            groups=groups,
            read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
            workdir=c.get("workingDir") or image.workdir,
        )

    def _mounts(
        self, run: PodRun, spec: Mapping[str, Any], c: Mapping[str, Any], fs_group: int | None
    ) -> list[Mount]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts: list[Mount] = [Mount("/etc/resolv.conf", str(self.resolv), read_only=True)]
        for vm in c.get("volumeMounts", []):
            volume = volumes[vm["name"]]
            read_only = bool(vm.get("readOnly", False))
            vdir = run.dir / "volumes" / vm["name"]
            if "emptyDir" in volume:
                if (volume["emptyDir"] or {}).get("medium") == "Memory":
                    size = int(quantity((volume["emptyDir"] or {}).get("sizeLimit", "64Mi")))
                    mounts.append(Mount(vm["mountPath"], tmpfs_size=str(size)))
                    continue
                if not vdir.exists():
                    vdir.mkdir(parents=True)
                    vdir.chmod(0o777)
                source = vdir
            elif "configMap" in volume or "secret" in volume:
                kind = "ConfigMap" if "configMap" in volume else "Secret"
                ref = volume.get("configMap") or volume["secret"]
                name = ref.get("name") or ref.get("secretName")
                data = self._data(kind, run.namespace, name, ref.get("optional", False))
                _write_files(vdir, data, ref.get("items"))
                source, read_only = vdir, True
            elif "projected" in volume:
                files: dict[str, str] = {}
                for src in volume["projected"].get("sources", []):
                    if "serviceAccountToken" in src:
                        files[src["serviceAccountToken"].get("path", "token")] = self._token(
                            run, src["serviceAccountToken"]
                        )
                    elif "configMap" in src or "secret" in src:
                        kind = "ConfigMap" if "configMap" in src else "Secret"
                        ref = src.get("configMap") or src["secret"]
                        data = self._data(
                            kind, run.namespace, ref["name"], ref.get("optional", False)
                        )
                        items = ref.get("items")
                        files.update({i["path"]: data[i["key"]] for i in items} if items else data)
                    elif "downwardAPI" in src:
                        for item in src["downwardAPI"].get("items", []):
                            files[item["path"]] = self._field(run, item["fieldRef"]["fieldPath"])
                _write_files(vdir, files, None)
                source, read_only = vdir, True
            elif "downwardAPI" in volume:
                files = {
                    i["path"]: self._field(run, i["fieldRef"]["fieldPath"])
                    for i in volume["downwardAPI"].get("items", [])
                }
                _write_files(vdir, files, None)
                source, read_only = vdir, True
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                source = self._claim_path(run, claim)
                if fs_group is not None and source.stat().st_gid != int(fs_group):
                    os.chown(source, 0, int(fs_group))  # the kubelet applies fsGroup to RWO volumes
                    source.chmod(0o2775)
                read_only = read_only or bool(
                    volume["persistentVolumeClaim"].get("readOnly", False)
                )
            elif "hostPath" in volume:
                source = Path(volume["hostPath"]["path"])
            else:
                raise NotImplementedError(
                    f"volume {vm['name']}: type {sorted(volume)} is not run by the node agent"
                )
            sub = vm.get("subPath")
            if sub:
                source = Path(source) / sub
                source.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(vm["mountPath"], str(source), read_only=read_only))
        return mounts

    def _claim_path(self, run: PodRun, claim: str) -> Path:
        pvc = self._obj("PersistentVolumeClaim", run.namespace, claim)
        volume = pvc["spec"].get("volumeName")
        if not volume or pvc.get("status", {}).get("phase") != "Bound":
            raise ValueError(f'persistentvolumeclaim "{claim}" is not bound')
        pv = self.api.get(f"/api/v1/persistentvolumes/{volume}")
        path = (pv["spec"].get("local") or pv["spec"].get("hostPath") or {}).get("path")
        if not path:
            raise NotImplementedError(
                f"persistentvolume {volume}: only local/hostPath volumes are mounted"
            )
        return Path(path)

    def _token(self, run: PodRun, src: Mapping[str, Any]) -> str:
        sa = run.pod["spec"].get("serviceAccountName", "default")
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": int(src.get("expirationSeconds", 3607)),
                "boundObjectRef": {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "name": run.name,
                    "uid": run.uid,
                },
                **({"audiences": [src["audience"]]} if src.get("audience") else {}),
            },
        }
        out = self.api.create(
            f"/api/v1/namespaces/{run.namespace}/serviceaccounts/{sa}/token", body
        )
        return str(out["status"]["token"])

    # -- helpers for tests -------------------------------------------------------------------------

    def find(self, name: str, namespace: str = "default") -> PodRun | None:
        return next(
            (r for r in self.pods.values() if r.name == name and r.namespace == namespace), None
        )

    def kill_pod_processes(self, name: str, namespace: str = "default") -> None:
        """SIGKILL every container of a pod (a crashed node's processes); the agent restarts them."""
        run = self.find(name, namespace)
        if run is None:
            raise KeyError(name)
        for c in run.containers:
            if c.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.proc.proc.pid, 9)


def _expand(text: str, env: Mapping[str, str]) -> str:
    """$(VAR) references in command, args and env values, as the kubelet expands them."""
    import re

    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


def _write_files(vdir: Path, data: Mapping[str, str], items: list[dict[str, Any]] | None) -> None:
    vdir.mkdir(parents=True, exist_ok=True)
    chosen = {i["path"]: data[i["key"]] for i in items} if items else dict(data)
    for rel, text in chosen.items():
        path = vdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)


def _write_if_changed(path: Path, text: str) -> None:
    """In place (same inode), so the bind mounts of the file see the change."""
    if path.exists() and path.read_text() == text:
        return
    with path.open("r+" if path.exists() else "w") as out:
        out.seek(0)
        out.write(text)
        out.truncate()


def _umount_tree(path: Path) -> None:
    """Nothing is mounted in the host's namespace (sandboxes unshare theirs); just remove roots."""
    for root in path.glob("*/root"):
        shutil.rmtree(root, ignore_errors=True)


__all__ = ["CPU_NODE", "GPU_NODE", "NodeAgent", "NodeShape"]
