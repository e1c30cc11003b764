"""A real kubelet node (issue 20's preferred node), and the record of what this sandbox refuses.

`python -m tests.deploy.cluster.kubelet` reproduces the attempt in one command:

1. the parts: kubelet and kube-proxy built from k8s.io/kubernetes (`scripts/cluster/build.sh`
   with TSDL_E2E_NODES=kubelet, cached by version) and Debian's containerd, runc and CNI plugins;
2. the control plane the e2e uses (`ControlPlane`: etcd, kube-apiserver, controller-manager,
   scheduler, the KubeRay operator);
3. containerd with its own root, state and socket under the work directory, the cgroupfs driver,
   runc, the first snapshotter that loads here (overlayfs, else native) and a CNI bridge;
4. images made here and imported (nothing is pulled): the pod sandbox's pause image and a busybox
   image (`tests/deploy/cluster/oci.py`);
5. the kubelet with a node client certificate from the control plane's CA, settled on the first
   setting of a fallback ladder that gives a Ready Node;
6. one Pod, placed by the real scheduler, Running, and its log read through the API server.

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

from tests.deploy.cluster.api import ApiError
from tests.deploy.cluster.controlplane import CACHE, ControlPlane, free_port
from tests.deploy.cluster.oci import Entry, ImageConfig, layer, write_archive

REPO = Path(__file__).resolve().parents[3]
NODE_NAME = "kubelet-node"
BRIDGE = "tsdl-kl0"  # not the node agent's tsdl-e2e0: both may run on one machine
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


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str


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
             if re.match(r"^[EF]\d{4} ", line) or line.startswith(("Error:", "error:"))
             or "level=error" in line or "level=fatal" in line]  # fmt: skip
    return (lines[-1] if lines else (log.strip().splitlines() or [""])[-1])[:limit]


@dataclass
class KubeletNode:
    workdir: Path
    cache: Path = CACHE
    steps: list[Step] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    snapshotter: str = ""

    def __post_init__(self) -> None:
        self.cp = ControlPlane(self.workdir / "control-plane", self.cache)
        self.sock = self.workdir / "containerd" / "containerd.sock"
        self.ip = node_ip()
        self.netns_before = set(_cni_netns())

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
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                                timeout=timeout)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(str(a) for a in argv)}` exited {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-800:]}"
            )
        return result.stdout

    def ctr(self, *args: object, timeout: float = 300) -> str:
        return self.run("ctr", "--address", self.sock, "-n", K8S_NAMESPACE, *args, timeout=timeout)

    # --- 1. parts ---------------------------------------------------------------------------

    def parts(self) -> str:
        why = missing_tools()
        if why:
            raise RuntimeError(why)
        env = {**os.environ, "TSDL_E2E_NODES": "kubelet"}
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

    def containerd_config(self, snapshotter: str) -> Path:
        base = self.workdir / "containerd"
        (self.workdir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""\
version = 2
root = "{base / "root"}"
state = "{base / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
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
  conf_dir = "{self.workdir / "cni" / "net.d"}"
"""
        path = base / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def cni_config(self) -> None:
        conf = {
            "cniVersion": "1.0.0",
            "name": "tsdl-kubelet",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                         "routes": [{"dst": "0.0.0.0/0"}],
                         "dataDir": str(self.workdir / "cni" / "ipam")},
            }, {"type": "loopback"}],
        }  # fmt: skip
        (self.workdir / "cni" / "net.d" / "10-tsdl.conflist").write_text(json.dumps(conf, indent=1))

    def start_containerd(self) -> str:
        """containerd on the first snapshotter of SNAPSHOTTERS whose plugin loads here."""
        refusals = []
        for snapshotter in SNAPSHOTTERS:
            config = self.containerd_config(snapshotter)
            self.cni_config()
            self.cp._spawn("containerd", ["containerd", "--config", str(config)])
            self.cp._wait(
                "containerd", lambda: self.sock.exists() and bool(self.ctr("version")), 60
            )
            plugins = self.ctr("plugins", "ls")
            row = next((line for line in plugins.splitlines()
                        if f"io.containerd.snapshotter.v1 {snapshotter} " in " ".join(line.split()) + " "), "")  # fmt: skip
            cri = next((line for line in plugins.splitlines() if "io.containerd.grpc.v1 cri" in
                        " ".join(line.split())), "")  # fmt: skip
            if row.split()[-1:] == ["ok"] and cri.split()[-1:] == ["ok"]:
                self.snapshotter = snapshotter
                prior = f" (refused: {'; '.join(refusals)})" if refusals else ""
                return f"snapshotter {snapshotter}, runc, cgroupfs{prior}"
            refusals.append(f"{snapshotter}: {' '.join(row.split()) or 'not listed'}; cri: "
                            f"{' '.join(cri.split())}; {last_error(self.cp.log('containerd'))}")  # fmt: skip
            self.stop_process("containerd")
        raise RuntimeError("no snapshotter loads: " + " | ".join(refusals))

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
        pause = self.pause_binary()
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        passwd = b"root:x:0:0:root:/root:/bin/sh\nray:x:1000:100::/home/ray:/bin/sh\n"
        group = b"root:x:0:\nusers:x:100:ray\n"
        applets = ("sh", "echo", "cat", "id", "ls", "sleep", "hostname", "ip", "wget", "nslookup")
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
            self.ctr("images", "import", "--snapshotter", self.snapshotter, archive)
            out.append(f"{ref} ({archive.stat().st_size // 1024} KiB)")
        listed = self.ctr("images", "ls", "-q")
        for ref in images:
            if ref not in listed.split():
                raise RuntimeError(f"{ref} not in `ctr images ls` after import: {listed.strip()}")
        return "imported " + ", ".join(out)

    # --- 5. kubelet -------------------------------------------------------------------------

    def node_kubeconfig(self) -> Path:
        """A client certificate for system:node:<name> (group system:nodes) from the CA."""
        pki, d = self.cp.pki, self.workdir / "kubelet"
        d.mkdir(parents=True, exist_ok=True)
        self.run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
                 f"/O=system:nodes/CN=system:node:{NODE_NAME}", "-keyout", d / "node.key",
                 "-out", d / "node.csr")  # fmt: skip
        (d / "ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
        self.run("openssl", "x509", "-req", "-in", d / "node.csr", "-CA", pki / "ca.crt",
                 "-CAkey", pki / "ca.key", "-CAcreateserial", "-days", "2",
                 "-extfile", d / "ext.cnf", "-out", d / "node.crt")  # fmt: skip
        path = d / "kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: e2e\n  cluster:\n    server: {self.cp.server}\n"
            f"    certificate-authority: {pki / 'ca.crt'}\n"
            f"users:\n- name: node\n  user:\n    client-certificate: {d / 'node.crt'}\n"
            f"    client-key: {d / 'node.key'}\n"
            "contexts:\n- name: e2e\n  context: {cluster: e2e, user: node}\ncurrent-context: e2e\n"
        )
        return path

    def kubelet_config(self, settings: dict[str, Any]) -> Path:
        self.healthz_port, self.port = free_port(), free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # this machine's cgroups are v1 (hybrid)
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.sock}",
            "address": self.ip,
            "port": self.port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            # The API server reaches the kubelet (logs, exec) without a client certificate.
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "clusterDomain": "cluster.local",
            "failSwapOn": False,
            "resolvConf": "/etc/resolv.conf",
            "rotateCertificates": False,
            "serializeImagePulls": False,
            "registerNode": True,
            **settings,
        }
        path = self.workdir / "kubelet" / "config.yaml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        return path

    def node_ready(self) -> bool:
        node = self.cp.api().get(f"/api/v1/nodes/{NODE_NAME}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in node.get("status", {}).get("conditions", []))  # fmt: skip

    def start_kubelet(self) -> str:
        kubeconfig = self.node_kubeconfig()
        refusals = []
        for settings in KUBELET_LADDER:
            config = self.kubelet_config(settings)
            self.cp._spawn("kubelet", [
                str(self.cp.bin("kubelet")), f"--config={config}", f"--kubeconfig={kubeconfig}",
                f"--root-dir={self.workdir / 'kubelet' / 'root'}",
                f"--cert-dir={self.workdir / 'kubelet' / 'pki'}",
                f"--hostname-override={NODE_NAME}", f"--node-ip={self.ip}",
                "--node-labels=node.kubernetes.io/instance-type=e2-standard-8", "--v=2",
            ])  # fmt: skip
            try:
                self.cp._wait("kubelet", self.node_ready, 120)
                self.settings = settings
                prior = f"; refused before: {' | '.join(refusals)}" if refusals else ""
                return f"Node {NODE_NAME} Ready ({self.ip}:{self.port}) with {settings}{prior}"
            except (RuntimeError, TimeoutError):
                refusals.append(f"{settings}: {last_error(self.cp.log('kubelet'))}")
                self.stop_process("kubelet")
                shutil.copy(self.cp.workdir / "logs" / "kubelet.log",
                            self.workdir / f"kubelet-refused-{len(refusals)}.log")  # fmt: skip
                (self.cp.workdir / "logs" / "kubelet.log").unlink()
        raise RuntimeError("no kubelet setting gave a Ready Node: " + " | ".join(refusals))

    # --- 6. a Pod ---------------------------------------------------------------------------

    def pod(self) -> str:
        script = (
            f"echo {MARKER} from $(hostname); id; echo nofile $(ulimit -n) $(ulimit -Hn);"
            " ulimit -n 65536 2>&1 || echo 'ulimit -n 65536 refused';"
            " ip -4 addr show eth0 | grep inet; sleep 3600"
        )
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "hello", "namespace": "default"},
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
        api = self.cp.api()
        api.create("/api/v1/namespaces/default/pods", body)
        deadline, pod = time.monotonic() + 180, {}
        while time.monotonic() < deadline:
            pod = api.get("/api/v1/namespaces/default/pods/hello")
            if pod.get("status", {}).get("phase") == "Running":
                break
            time.sleep(1)
        else:
            events = api.get("/api/v1/namespaces/default/events",
                             fieldSelector="involvedObject.name=hello")["items"]  # fmt: skip
            said = "; ".join(f"{e['reason']}: {e.get('message', '')}" for e in events[-4:])
            raise RuntimeError(f"Pod not Running after 180s ({pod.get('status', {})}): {said}")
        log, deadline = "", time.monotonic() + 30
        while MARKER not in log and time.monotonic() < deadline:
            try:
                log = api.request("GET", "/api/v1/namespaces/default/pods/hello/log",
                                  params={"container": "hello"}) or ""  # fmt: skip
            except (ApiError, ValueError) as exc:
                log = str(exc)
            time.sleep(1)
        if MARKER not in str(log):
            raise RuntimeError(f"Pod Running but its log through the API server is: {log!r}")
        status = pod["status"]
        return (f"on {pod['spec'].get('nodeName')} ip {status.get('podIP')}; log via API: "
                + " / ".join(str(log).strip().splitlines()))  # fmt: skip

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
        """Pods, then containerd's tasks and shims (by pid), kubelet, containerd, control plane,
        the CNI bridge and every mount under the work directory."""
        if "kubelet" in self.cp.procs and "containerd" in self.cp.procs:
            try:  # the kubelet tears the sandbox down (CNI DEL, netns) when the Pod goes
                self.cp.api().delete("/api/v1/namespaces/default/pods/hello",
                                     {"gracePeriodSeconds": 0})  # fmt: skip
                deadline = time.monotonic() + 30
                while self.ctr("tasks", "ls", "-q").split() and time.monotonic() < deadline:
                    time.sleep(1)
            except Exception:
                pass
        self.stop_process("kubelet")
        if "containerd" in self.cp.procs:
            try:
                for task in self.ctr("tasks", "ls", "-q", timeout=30).split():
                    subprocess.run(["ctr", "--address", str(self.sock), "-n", K8S_NAMESPACE,
                                    "tasks", "kill", "-s", "SIGKILL", task], capture_output=True)  # fmt: skip
            except Exception:
                pass
        self.stop_process("containerd")
        for pid in _pids_with(str(self.sock)):  # the shims outlive containerd by design
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.cp.stop()
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in reversed(mounts):
            if mount.startswith(str(self.workdir)):
                subprocess.run(["umount", "-l", mount], capture_output=True)
        for netns in set(_cni_netns()) - self.netns_before:  # the pod sandboxes containerd made
            subprocess.run(["umount", "-l", str(netns)], capture_output=True)
            netns.unlink(missing_ok=True)

    def report(self) -> dict[str, Any]:
        return {"node": NODE_NAME, "ip": self.ip, "snapshotter": self.snapshotter,
                "kubelet_settings": self.settings, "steps": [asdict(s) for s in self.steps]}  # fmt: skip


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
              and node.step("pod", node.pod))  # fmt: skip
        if ok and args.keep:
            print(f"export KUBECONFIG={node.cp.kubeconfig()}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(5)
    except KeyboardInterrupt:
        ok = False
    finally:
        node.down()
        if args.report:
            args.report.write_text(json.dumps(node.report(), indent=1))
    print(f"kubelet node: {'PASSED' if ok else 'REFUSED'}; logs in {node.cp.workdir / 'logs'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
