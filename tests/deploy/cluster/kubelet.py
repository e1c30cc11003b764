"""A real kubelet node (issue 20's preferred node), and the record of what this sandbox refuses.

`python -m tests.deploy.cluster.kubelet` reproduces the attempt in one command:

1. the parts: kubelet and kube-proxy built from k8s.io/kubernetes (`scripts/cluster/build.sh`
   cached by version) and Debian's containerd, runc and CNI plugins (installed on first use);
2. the control plane the e2e uses (`ControlPlane`: etcd, kube-apiserver, controller-manager,
   scheduler, the KubeRay operator);
3. containerd with its own root, state and socket under the work directory, the cgroupfs driver,
   runc, the first snapshotter that loads here (overlayfs, else native) and a CNI bridge;
4. images made here and imported (nothing is pulled): the pod sandbox's pause image and a busybox
   image (`tests/deploy/cluster/oci.py`);
5. the kubelet with a node client certificate from the control plane's CA, settled on the first
   setting of a fallback ladder that gives a Ready Node;
6. one Pod, placed by the real scheduler, Running with its limits in the kernel's cgroups, and
   its log read through the API server;
7. kube-proxy (iptables mode): the Pod's Service answers on its ClusterIP;
8. with --ray-head: a stand-in for the Ray base image (mmdebstrap bookworm, Ray in a venv at the
   Ray image's Python path, user ray 1000:100), a Ray head Pod started with KubeRay's command and
   probe, and a RayCluster whose head Pod the KubeRay operator writes.

Each step prints one line: ok or REFUSED, its wall time, and what ran or the exact refusal. A
refused step ends the attempt (later steps need it); the summary is also written as JSON
(`--report`). Everything started is stopped, every mount under the work directory undone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.cluster.controlplane import CACHE, ControlPlane, _http_ok, free_port
from tests.deploy.cluster.oci import Entry, ImageConfig, layer, write_archive

REPO = Path(__file__).resolve().parents[3]
NODE_NAME = "kubelet-node"
BRIDGE = "tsdl-kl0"  # the Pods' bridge, shared by the Nodes (each hands out its own range)
POD_SUBNET = "10.250.0.0/24"
PAUSE_IMAGE = "tsdl.local/pause:1"
BUSYBOX_IMAGE = "tsdl.local/busybox:1"
CNI_BIN = Path("/usr/lib/cni")
K8S_NAMESPACE = "k8s.io"  # containerd's namespace for CRI
MARKER = "tsdl-kubelet-hello"
# Debian packages of the node: what is missing is named with its package.
NODE_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    str(CNI_BIN / "bridge"): "containernetworking-plugins",
    str(CNI_BIN / "host-local"): "containernetworking-plugins",
    "busybox": "busybox-static",
}
# The kubelet settings tried in order until the Node is Ready: each later one gives up a
# feature the earlier one needed (QoS cgroups and node-allocatable enforcement).
KUBELET_LADDER: tuple[dict[str, Any], ...] = (
    {"cgroupsPerQOS": True, "enforceNodeAllocatable": ["pods"]},
    {"cgroupsPerQOS": False, "enforceNodeAllocatable": []},
)
SNAPSHOTTERS = ("overlayfs", "native")
# A stand-in for rayproject/ray:<version>-py311 (no registry can be reached): Debian bookworm
# (Python 3.11) from mmdebstrap, with the base image's contract: user ray 1000:100, the Python
# env at /home/ray/anaconda3 and first on PATH, WORKDIR /home/ray.
RAY_VERSION = "2.60.0"
RAY_STANDIN = f"tsdl.local/ray-standin:{RAY_VERSION}-py311"
RAY_PATH = "/home/ray/anaconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
COREDNS_VERSION = "1.15.0"  # built by scripts/cluster/build.sh
CLUSTER_DNS = "10.250.0.1"  # CoreDNS on the bridge's gateway address: every Pod routes to it
COREDNS_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}]
"""
# Host settings the kubelet changes on start (kernel tunables; cgroups under the roots): the
# machine is shared, so they are put back as they were when the node goes.
KERNEL_TUNABLES = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic",
                   "kernel/panic_on_oops", "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes")  # fmt: skip
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str


def _check(*argv: object, timeout: float = 300) -> str:
    """stdout of a command; its exit status and last output as the error otherwise."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                            timeout=timeout)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(str(a) for a in argv)}` exited {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()[-800:]}"
        )
    return result.stdout


def wait_for(
    what: str,
    fetch: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float,
    period: float = 2,
) -> Any:
    """Poll `fetch` until `done` holds for what it returned; that value, or a RuntimeError naming
    `what` with the last value (the Pod or status a user would look at)."""
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        got = fetch()
        if done(got):
            return got
        time.sleep(period)
    raise RuntimeError(f"{what} not after {timeout:.0f}s: {str(got)[:1500]}")


def normalized(ref: str) -> str:
    """An image name as the CRI looks it up: `tsdl:dev` is `docker.io/library/tsdl:dev` (the
    CRI found the image by its ID under a bare `tsdl:dev` tag, then failed: `image
    "docker.io/library/tsdl:dev": not found`)."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if "/" in ref else f"docker.io/library/{ref}"


def missing_tools() -> str | None:
    """The one-line refusal when a node tool is missing (None when all are there)."""
    need = sorted({pkg for tool, pkg in NODE_TOOLS.items()
                   if not (Path(tool).exists() if "/" in tool else shutil.which(tool))})  # fmt: skip
    if need:
        return f"missing node packages: run `apt-get install {' '.join(need)}`"
    return None


def node_ip() -> str:
    """This machine's address on its default route (the Node's InternalIP), else 127.0.0.1."""
    out = subprocess.run(["ip", "-4", "route", "get", "192.0.2.255"], capture_output=True,
                         text=True).stdout  # fmt: skip
    found = re.search(r"\bsrc (\d+\.\d+\.\d+\.\d+)", out)
    return found.group(1) if found else "127.0.0.1"


def last_error(log: str, limit: int = 600) -> str:
    """The last klog error/fatal line (E.../F...) or `Error:` line of a log, trimmed."""
    lines = [line for line in log.splitlines()
             if re.match(r"^[EF]\d{4} ", line) or line.startswith(("Error:", "error:", "ERROR:"))
             or "level=error" in line or "level=fatal" in line]  # fmt: skip
    return (lines[-1] if lines else (log.strip().splitlines() or [""])[-1])[:limit]


@dataclass(frozen=True)
class Shape:
    """A Node as a cloud node pool makes it: name, labels, taints, GPUs (an extended resource,
    as a device plugin advertises it) and its slice of the Pods' addresses on the shared bridge."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    gpus: int = 0
    ips: tuple[int, int] = (10, 99)  # host-local range inside POD_SUBNET: .10-.99


SINGLE = Shape(NODE_NAME, {"node.kubernetes.io/instance-type": "e2-standard-8"})
# The e2e's Nodes: a CPU pool node, and a GKE/EKS-style GPU pool node (the accelerator label, GPU
# Feature Discovery's label, the taint GKE puts on GPU nodes and EKS users add), one GPU each.
CPU_POOL = Shape(
    "cpu-node",
    {"node.kubernetes.io/instance-type": "e2-standard-8", "cloud.google.com/gke-nodepool": "cpu"},
)
GPU_POOL = Shape(
    "gpu-node",
    {
        "node.kubernetes.io/instance-type": "g2-standard-16",
        "cloud.google.com/gke-nodepool": "gpu",
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "nvidia.com/gpu.present": "true",
    },
    taints=({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},),
    gpus=1,
    ips=(110, 199),
)


@dataclass
class Kubelet:
    """One Node on this host: its own containerd (root, state, socket, CNI config), its own
    kubelet (root dir, ports, client certificate) and its own cgroup root, so that neither
    kubelet sees the other's Pods (a kubelet kills running Pods and pod cgroups it does not know).

    `root` is containerd's root: under the cache for the e2e, so images imported on one run are
    there on the next (an import then skips every blob the node holds)."""

    shape: Shape
    dir: Path
    root: Path
    snapshotter: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    port: int = 0

    @property
    def name(self) -> str:
        return self.shape.name

    @property
    def sock(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    @property
    def cgroup_root(self) -> str:
        return f"/tsdl-{self.name}"

    def ctr(self, *args: object, timeout: float = 300) -> str:
        return _check("ctr", "--address", self.sock, "-n", K8S_NAMESPACE, *args, timeout=timeout)


@dataclass
class KubeletNode:
    """The host side of the real-kubelet nodes (control plane, Pods' bridge, kube-proxy, CoreDNS)
    and its Nodes (`Kubelet`): one by default, or the e2e's CPU and tainted GPU node."""

    workdir: Path
    cache: Path = CACHE
    steps: list[Step] = field(default_factory=list)
    shapes: tuple[Shape, ...] = (SINGLE,)
    persistent_images: bool = False  # containerd roots under the cache (the e2e) or the workdir

    def __post_init__(self) -> None:
        self.cp = ControlPlane(self.workdir / "control-plane", self.cache)
        roots = self.cache / "containerd" if self.persistent_images else self.workdir / "roots"
        self.nodes = [Kubelet(shape, self.workdir / shape.name, roots / shape.name)
                      for shape in self.shapes]  # fmt: skip
        self.ip = node_ip()
        self.netns_before = set(_cni_netns())
        self.tunables = {t: (Path("/proc/sys") / t).read_text() for t in KERNEL_TUNABLES
                         if (Path("/proc/sys") / t).exists()}  # fmt: skip
        self.cgroups_before = set(CGROUP_ROOT.glob("*/tsdl-*")) | set(
            CGROUP_ROOT.glob("*/kubepods*")
        )
        self.chains_before = kube_chains()

    @property
    def first(self) -> Kubelet:
        return self.nodes[0]

    # --- bookkeeping ------------------------------------------------------------------------

    def step(self, name: str, action: Callable[[], str]) -> bool:
        """Run one step, record ok/refused with its time and detail, print one line."""
        start = time.monotonic()
        try:
            detail, ok = action(), True
        except Exception as exc:  # the refusal is the result here, recorded verbatim
            detail, ok = " ".join(str(exc).split())[:1500], False
        record = Step(name, ok, round(time.monotonic() - start, 1), detail)
        self.steps.append(record)
        print(f"{name:<12} {'ok' if ok else 'REFUSED':<8} {record.seconds:7.1f}s  {detail}",
              flush=True)  # fmt: skip
        return ok

    def run(self, *argv: object, timeout: float = 300) -> str:
        return _check(*argv, timeout=timeout)

    # --- 1. parts ---------------------------------------------------------------------------

    def parts(self) -> str:
        why = missing_tools()
        if why:
            raise RuntimeError(why)
        env = dict(os.environ)
        build = subprocess.run(["bash", str(REPO / "scripts" / "cluster" / "build.sh")],
                               capture_output=True, text=True, env=env)  # fmt: skip
        if build.returncode != 0:
            raise RuntimeError(f"scripts/cluster/build.sh: {build.stderr.strip()[-800:]}")
        versions = []
        for argv in (["containerd", "--version"], ["runc", "--version"],
                     [str(self.cp.bin("kubelet")), "--version"]):  # fmt: skip
            versions.append(self.run(*argv).splitlines()[0].strip())
        return "; ".join(versions)

    # --- 3. containerd ----------------------------------------------------------------------

    def containerd_config(self, node: Kubelet, snapshotter: str) -> Path:
        base = node.dir / "containerd"
        (node.dir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""\
version = 2
root = "{node.root}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{node.sock}"
[ttrpc]
  address = "{node.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base / "opt"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  # No CAP_SYS_RESOURCE here: a container's oom_score_adj may not go below containerd's own.
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  disable_hugetlb_controller = true
[{cri}.containerd]
  snapshotter = "{snapshotter}"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{shutil.which("runc") or "runc"}"
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{node.dir / "cni" / "net.d"}"
"""
        path = base / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        node.root.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def cni_config(self, node: Kubelet) -> None:
        """The shared bridge; each Node hands out its own range of the subnet."""
        net = POD_SUBNET.rsplit(".", 1)[0]
        first, last = node.shape.ips
        conf = {
            "cniVersion": "1.0.0",
            "name": "tsdl-kubelet",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local",
                         "ranges": [[{"subnet": POD_SUBNET, "rangeStart": f"{net}.{first}",
                                      "rangeEnd": f"{net}.{last}", "gateway": CLUSTER_DNS}]],
                         "routes": [{"dst": "0.0.0.0/0"}],
                         "dataDir": str(node.dir / "cni" / "ipam")},
            }, {"type": "loopback"}],
        }  # fmt: skip
        (node.dir / "cni" / "net.d" / "10-tsdl.conflist").write_text(json.dumps(conf, indent=1))

    def start_containerd(self) -> str:
        return "; ".join(f"{n.name}: {self._start_containerd(n)}" for n in self.nodes)

    def _start_containerd(self, node: Kubelet) -> str:
        """containerd on the first snapshotter of SNAPSHOTTERS whose plugin loads here."""
        refusals, proc = [], f"containerd-{node.name}"
        for snapshotter in SNAPSHOTTERS:
            config = self.containerd_config(node, snapshotter)
            self.cni_config(node)
            self.cp._spawn(proc, ["containerd", "--config", str(config)])
            self.cp._wait(proc, lambda: node.sock.exists() and bool(node.ctr("version")), 60)
            plugins = node.ctr("plugins", "ls")
            row = next((line for line in plugins.splitlines()
                        if f"io.containerd.snapshotter.v1 {snapshotter} " in " ".join(line.split()) + " "), "")  # fmt: skip
            cri = next((line for line in plugins.splitlines() if "io.containerd.grpc.v1 cri" in
                        " ".join(line.split())), "")  # fmt: skip
            if row.split()[-1:] == ["ok"] and cri.split()[-1:] == ["ok"]:
                node.snapshotter = snapshotter
                self._forget_containers(node)
                prior = f" (refused: {'; '.join(refusals)})" if refusals else ""
                return f"snapshotter {snapshotter}, runc, cgroupfs{prior}"
            refusals.append(f"{snapshotter}: {' '.join(row.split()) or 'not listed'}; cri: "
                            f"{' '.join(cri.split())}; {last_error(self.cp.log(proc))}")  # fmt: skip
            self.stop_process(proc)
        raise RuntimeError("no snapshotter loads: " + " | ".join(refusals))

    def _forget_containers(self, node: Kubelet) -> None:
        """A kept root may still list an earlier run's containers and sandboxes: remove them (their
        tasks died with that run), so the kubelet starts from its own Pods only."""
        for task in node.ctr("tasks", "ls", "-q").split():
            subprocess.run(["ctr", "--address", str(node.sock), "-n", K8S_NAMESPACE, "tasks",
                            "delete", "--force", task], capture_output=True)  # fmt: skip
        containers = node.ctr("containers", "ls", "-q").split()
        if containers:
            node.ctr("containers", "rm", *containers)

    # --- 4. images --------------------------------------------------------------------------

    def pause_binary(self) -> Path:
        """scripts/cluster/pause built static, cached per source digest."""
        import hashlib

        src = REPO / "scripts" / "cluster" / "pause"
        digest = hashlib.sha256((src / "pause.go").read_bytes()).hexdigest()[:12]
        out = self.cache / f"pause-{digest}" / "pause"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod",
                   "PATH": os.environ.get("PATH", "") + ":/usr/local/go/bin"}  # fmt: skip
            subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(out), "."],
                           cwd=src, check=True, capture_output=True, env=env)  # fmt: skip
        return out

    def images(self) -> str:
        """The pause and busybox images, made here, into every Node's containerd."""
        pause = self.pause_binary()
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nray:x:1000:100::/home/ray:/bin/sh\n"
        group = b"root:x:0:\nusers:x:100:ray\n"
        applets = ("sh", "echo", "cat", "id", "ls", "sleep", "hostname", "ip", "grep", "mkdir",
                   "httpd", "wget", "nslookup")  # fmt: skip
        images = {
            PAUSE_IMAGE: ([Entry("pause", source=pause)], ImageConfig(entrypoint=["/pause"])),
            BUSYBOX_IMAGE: (
                [Entry("bin", mode=0o755), Entry("bin/busybox", source=busybox),
                 *(Entry(f"bin/{a}", link="busybox") for a in applets),
                 Entry("etc", mode=0o755), Entry("etc/passwd", data=passwd, mode=0o644),
                 Entry("etc/group", data=group, mode=0o644), Entry("tmp", mode=0o1777),
                 Entry("home", mode=0o755), Entry("home/ray", mode=0o755, uid=1000, gid=100)],
                ImageConfig(cmd=["sh"], env=["PATH=/bin"]),
            ),
        }  # fmt: skip
        out = []
        for ref, (entries, config) in images.items():
            archive = self.workdir / "images" / (ref.split("/")[-1].replace(":", "-") + ".tar")
            archive.parent.mkdir(parents=True, exist_ok=True)
            write_archive(archive, ref, [layer(entries)], config)
            for node in self.nodes:
                node.ctr("images", "import", "--snapshotter", node.snapshotter, archive)
            out.append(f"{ref} ({archive.stat().st_size // 1024} KiB)")
        for node in self.nodes:
            listed = node.ctr("images", "ls", "-q")
            for ref in images:
                if ref not in listed.split():
                    raise RuntimeError(f"{ref} not in {node.name}'s `ctr images ls` after import")
        return "imported " + ", ".join(out)

    def bridge_up(self) -> None:
        """The Pods' bridge with its gateway address, before the first Pod (the CNI bridge plugin
        takes it as it is): CoreDNS and the e2e's S3 server bind that address."""
        have = subprocess.run(["ip", "-4", "addr", "show", "dev", BRIDGE], capture_output=True,
                              text=True).stdout  # fmt: skip
        if f"{CLUSTER_DNS}/" in have:
            return
        if not have:
            self.run("ip", "link", "add", BRIDGE, "type", "bridge")
        self.run("ip", "addr", "add", f"{CLUSTER_DNS}/{POD_SUBNET.split('/')[1]}", "dev", BRIDGE)
        self.run("ip", "link", "set", BRIDGE, "up")

    def import_image(self, ref: str, save: Callable[[Path], Path], names: list[str]) -> str:
        """The image `ref` into every Node's containerd (k8s.io namespace) under every name in
        `names` (the kubelet finds them there: pullPolicy IfNotPresent/Never). A Node that holds
        `ref` already (its root is kept between runs) imports nothing; otherwise `save` writes the
        archive once and each import skips the layer blobs the Node holds."""
        names, said, archive = [normalized(n) for n in names], [], None
        for node in self.nodes:
            start = time.monotonic()
            if ref in node.ctr("images", "ls", "-q").split():
                how = "held"
            else:
                archive = archive or save(self.workdir / "images" / "image.tar")
                node.ctr("images", "import", "--snapshotter", node.snapshotter, archive,
                         timeout=1800)  # fmt: skip
                how = "imported"
            for name in names:
                node.ctr("images", "tag", "--force", ref, name)
            listed = node.ctr("images", "ls", "-q").split()
            stale = [i for i in listed if i.startswith(ref.rsplit(":", 1)[0] + ":") and i != ref]
            if stale:  # an older tree's image: its layers go unless the new one shares them
                node.ctr("images", "rm", *stale)
            missing = [name for name in [ref, *names] if name not in listed]
            if missing:
                raise RuntimeError(f"{missing} not in {node.name}'s `ctr images ls` after import")
            said.append(f"{node.name} {how} in {time.monotonic() - start:.0f}s")
        if archive is not None:
            archive.unlink()
        return f"{ref} as {', '.join(names)}: {'; '.join(said)}"

    # --- 5. kubelet -------------------------------------------------------------------------

    def kubelet_config(self, node: Kubelet, settings: dict[str, Any]) -> Path:
        healthz, node.port = free_port(), free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # this machine's cgroups are v1 (hybrid)
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": node.cgroup_root,  # its own: see `Kubelet`
            "containerRuntimeEndpoint": f"unix://{node.sock}",
            "address": self.ip,
            "port": node.port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            # The API server reaches the kubelet (logs, exec) without a client certificate.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [CLUSTER_DNS],
            "failSwapOn": False,
            "resolvConf": "/etc/resolv.conf",
            "rotateCertificates": False,
            "serializeImagePulls": False,
            "registerNode": True,
            "registerWithTaints": list(node.shape.taints),
            "podLogsDir": str(node.dir / "kubelet" / "pod-logs"),  # not the host's /var/log
            # The disk is the shared machine's (here 252G with 13% free once the project's 6 GB
            # image is in): the default thresholds (imagefs.available 15%) evicted every Pod for
            # DiskPressure, and image GC (85% used) would delete the imported, unpullable images.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            **settings,
        }
        path = node.dir / "kubelet" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        return path

    def node_ready(self, name: str) -> bool:
        node = self.cp.api().get(f"/api/v1/nodes/{name}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))  # fmt: skip

    def cgroup_roots(self, node: Kubelet) -> None:
        """The Node's cgroup root in every v1 hierarchy (the kubelet refuses a missing one); the
        cpuset one gets its parent's CPUs and memory nodes, or no task could join it."""
        for hierarchy in CGROUP_ROOT.iterdir():
            if not (hierarchy / "tasks").exists() or hierarchy.is_symlink():
                continue
            path = hierarchy / node.cgroup_root.lstrip("/")
            path.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (path / name).exists() and not (path / name).read_text().strip():
                    (path / name).write_text((hierarchy / name).read_text())

    def start_kubelet(self) -> str:
        return "; ".join(self._start_kubelet(node) for node in self.nodes)

    def _start_kubelet(self, node: Kubelet) -> str:
        """The kubelet on the first setting of KUBELET_LADDER that gives a Ready Node, then the
        Node's GPUs as an extended resource (what a device plugin would advertise)."""
        kubeconfig = self.client_kubeconfig(
            f"{node.name}-kubelet", f"/O=system:nodes/CN=system:node:{node.name}"
        )
        self.cgroup_roots(node)
        labels = ",".join(f"{k}={v}" for k, v in node.shape.labels.items())
        refusals, proc = [], f"kubelet-{node.name}"
        for settings in KUBELET_LADDER:
            config = self.kubelet_config(node, settings)
            self.cp._spawn(proc, [
                str(self.cp.bin("kubelet")), f"--config={config}", f"--kubeconfig={kubeconfig}",
                f"--root-dir={node.dir / 'kubelet' / 'root'}",
                f"--cert-dir={node.dir / 'kubelet' / 'pki'}",
                f"--hostname-override={node.name}", f"--node-ip={self.ip}",
                *([f"--node-labels={labels}"] if labels else []), "--v=2",
            ])  # fmt: skip
            try:
                self.cp._wait(proc, lambda: self.node_ready(node.name), 120)
            except (RuntimeError, TimeoutError):
                refusals.append(f"{settings}: {last_error(self.cp.log(proc))}")
                self.stop_process(proc)
                log = self.cp.workdir / "logs" / f"{proc}.log"
                shutil.copy(log, self.workdir / f"{proc}-refused-{len(refusals)}.log")
                log.unlink()
                continue
            node.settings = settings
            if node.shape.gpus:
                self.cp.api().merge_patch(f"/api/v1/nodes/{node.name}/status",
                                          {"status": {"capacity": {"nvidia.com/gpu": str(node.shape.gpus)}}})  # fmt: skip
            prior = f"; refused before: {' | '.join(refusals)}" if refusals else ""
            return f"Node {node.name} Ready ({self.ip}:{node.port}) with {settings}{prior}"
        raise RuntimeError(
            f"no kubelet setting gave a Ready Node {node.name}: " + " | ".join(refusals)
        )

    # --- 6. a Pod ---------------------------------------------------------------------------

    def run_pod(
        self, body: dict[str, Any], done: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Create a Pod in `default` and wait until `done(pod)`; the error names its events."""
        api, name = self.cp.api(), body["metadata"]["name"]
        api.create("/api/v1/namespaces/default/pods", body)
        try:
            return wait_for(f"Pod {name}", lambda: api.get(f"/api/v1/namespaces/default/pods/{name}"),
                            done, timeout)  # fmt: skip
        except RuntimeError as exc:
            events = api.get("/api/v1/namespaces/default/events",
                             fieldSelector=f"involvedObject.name={name}")["items"]  # fmt: skip
            said = "; ".join(f"{e['reason']}: {e.get('message', '')}" for e in events[-4:])
            raise RuntimeError(f"{exc}; events: {said}") from None

    def pod(self) -> str:
        script = (
            f"echo {MARKER} from $(hostname); id; echo nofile $(ulimit -n) $(ulimit -Hn);"
            " ulimit -n 65536 2>&1 || echo 'ulimit -n 65536 refused';"
            f" ip -4 addr show eth0 | grep inet; mkdir -p /tmp/www; echo {MARKER} > /tmp/www/index.html;"
            " exec httpd -f -p 8080 -h /tmp/www"
        )
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
            "spec": {
                "containers": [{
                    "name": "hello", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 100,
                                        "allowPrivilegeEscalation": False},
                    "resources": {"requests": {"cpu": "50m", "memory": "16Mi"},
                                  "limits": {"cpu": "200m", "memory": "64Mi"}},
                }],
                "terminationGracePeriodSeconds": 2,
            },
        }  # fmt: skip
        pod = self.run_pod(body, lambda p: p.get("status", {}).get("phase") == "Running", 180)
        log, deadline = "", time.monotonic() + 30
        while MARKER not in log and time.monotonic() < deadline:
            got = self.cp.kubectl("logs", "-n", "default", "hello", check=False)
            log = got.stdout if got.returncode == 0 else got.stderr
            time.sleep(1)
        if MARKER not in str(log):
            raise RuntimeError(f"Pod Running but its log through the API server is: {log!r}")
        status = pod["status"]
        return (f"{self.pod_cgroup(pod)}; "f"on {pod['spec'].get('nodeName')} ip {status.get('podIP')}; log via API: "
                + " / ".join(str(log).strip().splitlines()))  # fmt: skip

    def pod_cgroup(self, pod: dict[str, Any]) -> str:
        """The Pod's limits as the kernel holds them (cgroup v1, QoS cgroups): 64Mi, 200m."""
        node = next(n for n in self.nodes if n.name == pod["spec"].get("nodeName"))
        if not node.settings.get("cgroupsPerQOS"):
            return "no QoS cgroups (fallback setting)"
        uid = pod["metadata"]["uid"]
        tree = Path(node.cgroup_root.lstrip("/")) / "kubepods" / "burstable" / f"pod{uid}"
        memory, cpu = CGROUP_ROOT / "memory" / tree, CGROUP_ROOT / "cpu" / tree
        limit = int((memory / "memory.limit_in_bytes").read_text())
        quota = int((cpu / "cpu.cfs_quota_us").read_text())
        period = int((cpu / "cpu.cfs_period_us").read_text())
        if limit != 64 * 2**20 or quota * 5 != period:
            raise RuntimeError(
                f"pod cgroup limits not applied: memory {limit}, cpu {quota}/{period}"
            )
        return f"cgroup memory.limit_in_bytes {limit}, cpu.cfs_quota_us {quota}/{period}"

    # --- 7. kube-proxy ------------------------------------------------------------------------

    def client_kubeconfig(self, name: str, subject: str) -> Path:
        """A kubeconfig with a client certificate for `subject` (e.g. /CN=system:kube-proxy)."""
        pki, d = self.cp.pki, self.workdir / name
        d.mkdir(parents=True, exist_ok=True)
        self.run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                 "-keyout", d / "client.key", "-out", d / "client.csr")  # fmt: skip
        (d / "ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
        self.run("openssl", "x509", "-req", "-in", d / "client.csr", "-CA", pki / "ca.crt",
                 "-CAkey", pki / "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", d / "ext.cnf", "-out", d / "client.crt")  # fmt: skip
        path = d / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: e2e\n  cluster:\n    server: {self.cp.server}\n"
            f"    certificate-authority: {pki / 'ca.crt'}\n"
            f"users:\n- name: u\n  user:\n    client-certificate: {d / 'client.crt'}\n"
            f"    client-key: {d / 'client.key'}\n"
            "contexts:\n- name: e2e\n  context: {cluster: e2e, user: u}\ncurrent-context: e2e\n"
        )
        return path

    def start_kube_proxy(self) -> None:
        """kube-proxy (iptables mode) as system:kube-proxy."""
        kubeconfig = self.client_kubeconfig("kube-proxy", "/CN=system:kube-proxy")
        health, metrics = free_port(), free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "mode": "iptables",
            "clusterCIDR": POD_SUBNET,
            "hostnameOverride": self.first.name,
            "healthzBindAddress": f"127.0.0.1:{health}",
            "metricsBindAddress": f"127.0.0.1:{metrics}",
            "conntrack": {"maxPerCore": 0},  # leave the host's nf_conntrack_max alone
        }
        path = self.workdir / "kube-proxy" / "config.yaml"
        path.write_text(json.dumps(config, indent=1))
        self.cp._spawn("kube-proxy", [str(self.cp.bin("kube-proxy")), f"--config={path}", "--v=2"])
        self.cp._wait("kube-proxy", lambda: _http_ok(f"http://127.0.0.1:{health}/healthz"), 60)

    def kube_proxy(self) -> str:
        """kube-proxy started; the Pod reached by its Service's ClusterIP."""
        import urllib.request

        self.start_kube_proxy()
        api = self.cp.api()
        service = api.create("/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hello"},
            "spec": {"selector": {"app": "hello"}, "ports": [{"port": 80, "targetPort": 8080}]},
        })  # fmt: skip
        ip, said, deadline = service["spec"]["clusterIP"], "", time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{ip}/", timeout=3) as resp:
                    said = resp.read().decode().strip()
                if MARKER in said:
                    return f"iptables mode; Service hello {ip}:80 answered {said!r}"
            except OSError as exc:
                said = str(exc)
            time.sleep(1)
        raise RuntimeError(f"Service {ip}:80 did not answer in 60s: {said}; "
                           f"{last_error(self.cp.log('kube-proxy'))}")  # fmt: skip

    # --- 8. CoreDNS --------------------------------------------------------------------------

    def start_coredns(self) -> None:
        """CoreDNS (its Go module) as a process on the Pods' gateway, kubeadm's RBAC, its
        kubernetes plugin: Service names resolve as on a cluster."""
        self.bridge_up()
        binary = self.cache / f"coredns-v{COREDNS_VERSION}" / "coredns"
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: run scripts/cluster/build.sh")
        self.cp.kubectl("apply", "-f", "-", input=COREDNS_RBAC)
        kubeconfig = self.client_kubeconfig("coredns", "/CN=system:coredns")
        ready = free_port()
        corefile = self.workdir / "coredns" / "Corefile"
        corefile.write_text(f"""\
.:53 {{
    bind {CLUSTER_DNS}
    errors
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
""")
        self.cp._spawn("coredns", [str(binary), "-conf", str(corefile)])
        self.cp._wait("coredns", lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"), 60)

    def coredns(self) -> str:
        """CoreDNS started; the hello Service's name resolves to its ClusterIP."""
        self.start_coredns()
        answer = self.run("busybox", "nslookup", "hello.default.svc.cluster.local", CLUSTER_DNS)
        service = self.cp.api().get("/api/v1/namespaces/default/services/hello")
        if service["spec"]["clusterIP"] not in answer:
            raise RuntimeError(f"hello.default.svc.cluster.local: {answer.strip()!r}")
        return (f"CoreDNS v{COREDNS_VERSION} on {CLUSTER_DNS}:53: hello.default.svc.cluster.local "
                f"-> {service['spec']['clusterIP']}")  # fmt: skip

    # --- 9. a Ray head from a locally built image -------------------------------------------

    def standin_rootfs(self) -> tuple[Path, str]:
        return standin_rootfs(self.cache, self.workdir)

    def ray_image(self) -> str:
        start = time.monotonic()
        rootfs, how = self.standin_rootfs()
        built = time.monotonic() - start
        archive = self.workdir / "images" / "ray-standin.tar"
        config = ImageConfig(
            cmd=["bash"], user="1000:100", workdir="/home/ray",
            env=[f"PATH={RAY_PATH}", "HOME=/home/ray", "LANG=C.UTF-8"],
        )  # fmt: skip
        write_archive(archive, RAY_STANDIN, [rootfs], config)
        for node in self.nodes:
            node.ctr("images", "import", "--snapshotter", node.snapshotter, archive, timeout=900)
        archive.unlink()
        size = rootfs.stat().st_size / 2**20
        return (f"{RAY_STANDIN}: rootfs {how} in {built:.0f}s, {size:.0f} MiB uncompressed, "
                f"imported in {time.monotonic() - start - built:.0f}s")  # fmt: skip

    def ray_head(self) -> str:
        """A Ray head as KubeRay starts one (its command and probe), on the kubelet node."""
        command = (
            "ulimit -n 65536; ray start --head --block --dashboard-agent-listen-port=52365"
            " --dashboard-host=0.0.0.0 --num-cpus=1 --memory=1000000000"
            " --object-store-memory=100000000 --metrics-export-port=8080"
        )
        probe = {"httpGet": {"path": "/api/healthz", "port": 52365},
                 "initialDelaySeconds": 10, "periodSeconds": 5, "failureThreshold": 60}  # fmt: skip
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ray-head", "namespace": "default"},
            "spec": {
                "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
                "containers": [{
                    "name": "ray-head", "image": RAY_STANDIN, "imagePullPolicy": "Never",
                    "command": ["/bin/bash", "-c", "--"], "args": [command],
                    "readinessProbe": probe,
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                  "limits": {"cpu": "1", "memory": "3Gi"}},
                    "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
                }],
                "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}],
                "terminationGracePeriodSeconds": 5,
            },
        }  # fmt: skip
        api = self.cp.api()
        pod = self.run_pod(body, lambda p: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])), 600)  # fmt: skip
        log = re.sub(
            r"\x1b\[[0-9;]*m", "", self.cp.kubectl("logs", "-n", "default", "ray-head").stdout
        )
        said = [line for line in str(log).splitlines()
                if "Ray runtime started" in line or "ulimit" in line]  # fmt: skip
        if not any("Ray runtime started" in line for line in said):
            raise RuntimeError(
                f"ray-head Ready but its log lacks 'Ray runtime started': {log[-800:]!r}"
            )
        api.delete("/api/v1/namespaces/default/pods/ray-head", {"gracePeriodSeconds": 0})
        return (
            f"Ready on {pod['spec'].get('nodeName')} ip {pod['status'].get('podIP')}; log: "
            + " / ".join(said)
        )

    def raycluster(self) -> str:
        """A RayCluster whose head Pod the KubeRay operator writes and this kubelet runs."""
        from tests.deploy.cluster.controlplane import kuberay_version

        self.cp.kubectl("apply", "--server-side", "-f", "-", input=json.dumps({
            "apiVersion": "ray.io/v1", "kind": "RayCluster",
            "metadata": {"name": "standin", "namespace": "default"},
            "spec": {
                "rayVersion": RAY_VERSION,
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "1", "object-store-memory": "100000000"},
                    "template": {"spec": {
                        "securityContext": {"runAsUser": 1000, "runAsGroup": 100},
                        "containers": [{
                            "name": "ray-head", "image": RAY_STANDIN, "imagePullPolicy": "Never",
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                          "limits": {"cpu": "1", "memory": "2Gi"}},
                        }],
                    }},
                },
                # The worker's wait-gcs-ready init container finds the head by its Service
                # name: CoreDNS and kube-proxy at work.
                "workerGroupSpecs": [{
                    "groupName": "cpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 1,
                    "rayStartParams": {"num-cpus": "1", "object-store-memory": "100000000"},
                    "template": {"spec": {
                        "securityContext": {"runAsUser": 1000, "runAsGroup": 100},
                        "containers": [{
                            "name": "ray-worker", "image": RAY_STANDIN, "imagePullPolicy": "Never",
                            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                          "limits": {"cpu": "1", "memory": "2Gi"}},
                        }],
                    }},
                }],
            },
        }))  # fmt: skip
        api, path = self.cp.api(), "/apis/ray.io/v1/namespaces/default/rayclusters/standin"
        wait_for("RayCluster ready with 1 worker", lambda: api.get(path).get("status") or {},
                 lambda st: st.get("state") == "ready" and st.get("readyWorkerReplicas") == 1,
                 600, period=3)  # fmt: skip
        head = api.get("/api/v1/namespaces/default/pods",
                       labelSelector="ray.io/node-type=head")["items"][0]  # fmt: skip
        container = head["spec"]["containers"][0]
        (self.workdir / "raycluster-head-pod.json").write_text(json.dumps(head, indent=1))
        script = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
        alive = self.cp.kubectl("exec", head["metadata"]["name"], "--", "python", "-c", script)
        if alive.stdout.strip().splitlines()[-1:] != ["2"]:
            raise RuntimeError(f"the Ray cluster has not 2 live nodes: {alive.stdout.strip()!r}")
        return (f"KubeRay {kuberay_version(self.cache)}: head {head['metadata']['name']} and a "
                f"worker Ready on {head['spec'].get('nodeName')}, ray.nodes() 2 alive (kubectl "
                "exec); operator's head command: "
                f"{' '.join(container.get('command', []) + container.get('args', []))[:400]}")  # fmt: skip

    # --- teardown ---------------------------------------------------------------------------

    def stop_process(self, name: str) -> None:
        proc = self.cp.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()

    def down(self) -> None:
        """Pods, then containerd's tasks and shims (by pid), kubelets, containerds, control plane,
        the CNI bridge, every mount under the work directory, the host settings they changed."""
        running = [n for n in self.nodes if f"containerd-{n.name}" in self.cp.procs]
        if running and any(f"kubelet-{n.name}" in self.cp.procs for n in running):
            try:  # the kubelet tears the sandbox down (CNI DEL, netns) when the Pod goes
                self.cp.kubectl("delete", "rayjobs,rayclusters", "--all", "--all-namespaces",
                                "--wait=false", check=False)  # fmt: skip
                self.cp.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=0",
                                "--force", "--wait=false", check=False)  # fmt: skip
                deadline = time.monotonic() + 30
                while (any(n.ctr("tasks", "ls", "-q").split() for n in running)
                       and time.monotonic() < deadline):  # fmt: skip
                    time.sleep(1)
            except Exception:
                pass
        if (self.workdir / "kube-proxy").exists():  # its iptables rules outlive it
            self.stop_process("kube-proxy")
            subprocess.run([str(self.cp.bin("kube-proxy")), "--cleanup"], capture_output=True)
        for node in self.nodes:
            self.stop_process(f"kubelet-{node.name}")
        for node in running:
            try:
                for task in node.ctr("tasks", "ls", "-q", timeout=30).split():
                    subprocess.run(["ctr", "--address", str(node.sock), "-n", K8S_NAMESPACE,
                                    "tasks", "kill", "-s", "SIGKILL", task], capture_output=True)  # fmt: skip
            except Exception:
                pass
        for node in self.nodes:
            self.stop_process(f"containerd-{node.name}")
            for pid in _pids_with(str(node.sock)):  # the shims outlive containerd by design
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        self.cp.stop()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in reversed(mounts):
            if mount.startswith((str(self.workdir), *(str(n.root) for n in self.nodes))):
                subprocess.run(["umount", "-l", mount], capture_output=True)
        for netns in set(_cni_netns()) - self.netns_before:  # the pod sandboxes containerd made
            subprocess.run(["umount", "-l", str(netns)], capture_output=True)
            netns.unlink(missing_ok=True)
        # The kubelet's KUBE-FIREWALL (drops non-local traffic to 127.0.0.0/8) and canaries,
        # whatever `kube-proxy --cleanup` left: only the chains this node added.
        drop_kube_chains(kube_chains() - self.chains_before)
        for tunable, value in self.tunables.items():
            if (Path("/proc/sys") / tunable).read_text() != value:
                (Path("/proc/sys") / tunable).write_text(value)
        made = set(CGROUP_ROOT.glob("*/tsdl-*")) | set(CGROUP_ROOT.glob("*/kubepods*"))
        for top in made - self.cgroups_before:
            tree = [top, *(p for p in top.rglob("*") if p.is_dir())]
            for cgroup in sorted(tree, key=lambda p: -len(p.parts)):  # leaves first
                try:
                    cgroup.rmdir()  # a cgroup without tasks or children goes, control files too
                except OSError:
                    pass

    def report(self) -> dict[str, Any]:
        nodes = {n.name: {"snapshotter": n.snapshotter, "kubelet_settings": n.settings}
                 for n in self.nodes}  # fmt: skip
        return {"nodes": nodes, "ip": self.ip, "steps": [asdict(s) for s in self.steps]}


def standin_rootfs(cache: Path, logdir: Path) -> tuple[Path, str]:
    """The Ray base stand-in's root filesystem as one layer tar, cached per Ray version."""
    out = cache / f"ray-standin-{RAY_VERSION}-py311" / "rootfs.tar"
    if out.exists():
        return out, "cached"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / "rootfs.d"  # mmdebstrap writes a directory (hooks run in it)
    shutil.rmtree(tmp, ignore_errors=True)
    # Wheels come from this machine's pip (same glibc and Python 3.11 as bookworm); the
    # chroot installs them offline.
    wheels = out.parent / "wheels"
    _check(sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheels,
             f"ray[default]=={RAY_VERSION}", timeout=1800)  # fmt: skip
    hooks = [
        'chroot "$1" useradd -u 1000 -g 100 -m -s /bin/bash ray',
        'chroot "$1" python3 -m venv /home/ray/anaconda3',
        f'mkdir "$1/tmp/wheels" && cp {wheels}/* "$1/tmp/wheels/"',
        'chroot "$1" /home/ray/anaconda3/bin/pip install --no-cache-dir --no-index'
        f' --find-links /tmp/wheels "ray[default]=={RAY_VERSION}"',
        'rm -rf "$1/tmp/wheels"; chroot "$1" chown -R 1000:100 /home/ray',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
    ]
    argv = ["mmdebstrap", "--variant=minbase", "--mode=root",
            "--include=python3,python3-venv,bash,ca-certificates,iproute2,procps,wget",
            *(f"--customize-hook={h}" for h in hooks), "bookworm", str(tmp), DEBIAN_MIRROR]  # fmt: skip
    log = logdir / "mmdebstrap.log"
    with log.open("w") as f:
        code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"mmdebstrap exited {code}: {last_error(log.read_text())} (log {log})")
    # One layer: the tree as a tar with numeric owners (ray's files stay 1000:100).
    _check("tar", "--numeric-owner", "--xattrs", "-C", tmp, "-cf", out.with_suffix(".tmp"), ".",
             timeout=1800)  # fmt: skip
    out.with_suffix(".tmp").rename(out)
    shutil.rmtree(tmp)
    return out, "built"


IPTABLES = tuple((tool, table) for tool in ("iptables", "ip6tables")
                 for table in ("nat", "filter", "mangle"))  # fmt: skip


def kube_chains() -> set[tuple[str, str, str]]:
    """(tool, table, chain) of every KUBE-* chain on this machine (the kubelet's and kube-proxy's)."""
    found = set()
    for tool, table in IPTABLES:
        if shutil.which(tool) is None:
            continue
        rules = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True).stdout
        found |= {(tool, table, line.split()[1]) for line in rules.splitlines()
                  if line.startswith("-N KUBE-")}  # fmt: skip
    return found


def drop_kube_chains(chains: set[tuple[str, str, str]]) -> None:
    """Delete these chains: first every rule that jumps to one, then their rules, then them."""
    for tool, table in IPTABLES:
        mine = {c for t, tb, c in chains if (t, tb) == (tool, table)}
        if not mine:
            continue
        rules = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True).stdout
        for line in rules.splitlines():
            words = line.split()
            if words[:1] == ["-A"] and "-j" in words and words[words.index("-j") + 1] in mine:
                subprocess.run([tool, "-t", table, "-D", *words[1:]], capture_output=True)
        for chain in mine:
            subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
        for chain in mine:
            subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)


def _cni_netns() -> list[Path]:
    run = Path("/run/netns")
    return sorted(run.glob("cni-*")) if run.is_dir() else []


def _pids_with(text: str) -> list[int]:
    """Processes whose command line contains `text` (our own containerd's socket path)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                if text in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace"
                ):
                    pids.append(int(proc.name))
            except OSError:
                pass
    return pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="default: a new /tmp/tsdl-kubelet-*")
    parser.add_argument("--report", type=Path, help="write the steps as JSON here")
    parser.add_argument("--no-proxy", action="store_true",
                        help="stop after the Pod's log (no kube-proxy, no CoreDNS)")  # fmt: skip
    parser.add_argument("--ray-head", action="store_true",
                        help="then a Ray head pod from a locally built Ray base stand-in")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="leave it running until Ctrl-C")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: a kubelet node needs root (cgroups, mounts, network)", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tsdl-kubelet-"))
    node = KubeletNode(workdir)
    print(f"kubelet node attempt in {workdir}", flush=True)
    try:
        ok = (node.step("parts", node.parts)
              and node.step("control", lambda: (node.cp.start(), f"API {node.cp.server}")[1])
              and node.step("containerd", node.start_containerd)
              and node.step("images", node.images)
              and node.step("kubelet", node.start_kubelet)
              and node.step("pod", node.pod)
              and (args.no_proxy or node.step("kube-proxy", node.kube_proxy))
              and (args.no_proxy or node.step("coredns", node.coredns))
              and (not args.ray_head or (node.step("ray-image", node.ray_image)
                                         and node.step("ray-head", node.ray_head)
                                         and node.step("raycluster", node.raycluster))))  # fmt: skip
        if ok and args.keep:
            print(f"export KUBECONFIG={node.cp.kubeconfig()}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(5)
    except KeyboardInterrupt:
        ok = False
    finally:
        node.down()
        shutil.rmtree(workdir / "roots", ignore_errors=True)  # containerd's images: 1.3 GB
        if args.report:
            args.report.write_text(json.dumps(node.report(), indent=1))
    print(f"kubelet node: {'PASSED' if ok else 'REFUSED'}; logs in {node.cp.workdir / 'logs'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
