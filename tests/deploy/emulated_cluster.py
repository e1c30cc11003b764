"""An emulated KubeRay cluster: the objects `helm template` renders, executed as local processes.

There is no Docker engine or registry on CI machines, so kind cannot run there. This module is the
nearest faithful thing: it takes the rendered objects (RayJob, ConfigMap, Secret, PVCs, the MLflow
Deployment and Service) and plays the parts of the kubelet and the KubeRay operator:

* **Pods.** Every container runs as a real process in its own mount namespace (`unshare -m`). Its
  root filesystem is the host's, bound read-only (the image's layers), on a tmpfs that holds what
  the image adds (`/home/ray` owned by uid 1000, `/etc/passwd` with the `ray` user, the Python env
  and the tsdl source at their host paths, read-only). The tmpfs itself is remounted read-only when
  the container's `readOnlyRootFilesystem` is true. Volumes are mounted at their `mountPath`s:
  emptyDir (a fresh 0777 directory; `medium: Memory` is a tmpfs of `sizeLimit`), configMap (its
  keys as files, read-only), persistentVolumeClaim (one directory per claim, shared by the pods,
  owned by the pod's fsGroup). The process runs as the securityContext's uid/gid (`setpriv`, no
  new privileges, no capabilities), with the Dockerfile's ENV and WORKDIR, then the container's env
  (values, ConfigMap/Secret refs and envFrom resolved from the objects).
* **KubeRay.** The head and worker commands are the ones KubeRay 1.7 generates
  (`ray-operator/controllers/ray/common/pod.go`: `ulimit -n ...; ray start [--head] <params>` from
  rayStartParams plus num-cpus/memory from the limits); the submitter runs the `bash -ce` script of
  `common/job.go` `BuildJobSubmitCommand` (K8sJobMode: wait for the dashboard, `ray job status ||
  ray job submit --no-wait -- <entrypoint>`, `ray job logs --follow`).
* **Services and DNS.** Every Service name (short, `.ns`, `.ns.svc`, `.ns.svc.cluster.local`)
  resolves to 127.0.0.1 through the pod's `/etc/hosts`. All pods share that one address, so each
  Service port and each node-local Ray port is remapped to a free local port, in the command line
  and in env values alike. This is the only change to what the objects say, besides capping Ray's
  CPU count to the machine (see `EmulatedCluster.cpu_cap`).
* **Storage classes.** Like a stock managed cluster (EBS, PD, Azure Disk), the default class only
  provides ReadWriteOnce: a claim asking ReadWriteMany of it stays Pending, and so do its pods.

The scenario (render, run, check) is in `tests/deploy/test_emulated_cluster.py` and
`scripts/e2e-local.py`; the checks are shared with `scripts/kind-e2e.sh` (`tests/deploy/e2e_checks.py`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
CLUSTER_DOMAIN = "cluster.local"
# KubeRay's default ports of a Ray head Service (common/service.go) and pod-level defaults.
HEAD_SERVICE_PORTS = {
    "gcs": 6379,
    "dashboard": 8265,
    "client": 10001,
    "metrics": 8080,
    "serve": 8000,
}
_DEFAULT_METRICS_PORT = 8080
_DEFAULT_AGENT_LISTEN_PORT = 52365
# The rayproject/ray images' user: what `USER 1000:100` in the Dockerfile refers to.
IMAGE_USER = ("ray", 1000, 100, "/home/ray")


class Unschedulable(RuntimeError):
    """A pod would stay Pending on a real cluster (missing or unbindable claim, missing object)."""


def emulation_unavailable() -> str | None:
    """Why this machine cannot emulate pods (None when it can): root and mount namespaces needed."""
    if sys.platform != "linux":
        return f"pod emulation needs Linux mount namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "pod emulation needs root for unshare -m, bind mounts and setpriv (run as root, e.g. in CI)"
    for tool in ("unshare", "setpriv", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"pod emulation needs `{tool}` (util-linux/coreutils)"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "probe", "/mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"unshare -m does not work here: {probe.stderr.strip() or probe.returncode}"
    return None


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the API server: the objects the pods refer to --------------------------------------------


@dataclass
class ClusterObjects:
    """What `kubectl apply` would have stored: rendered objects plus what the user created."""

    namespace: str
    objects: list[dict[str, Any]]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise Unschedulable(f'{kind.lower()} "{name}" not found in namespace {self.namespace}')

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def add_secret(self, name: str, data: Mapping[str, str]) -> None:
        """`kubectl create secret generic NAME --from-literal=...` (stringData, not base64)."""
        self.objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "stringData": dict(data),
            }
        )

    def config_map_data(self, name: str) -> dict[str, str]:
        return dict(self.get("ConfigMap", name).get("data", {}))

    def secret_data(self, name: str) -> dict[str, str]:
        secret = self.get("Secret", name)
        if "data" in secret:
            import base64

            return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        return dict(secret.get("stringData", {}))


# --- Services and DNS --------------------------------------------------------------------------


class ServiceDirectory:
    """Cluster DNS and Service ports: every name resolves to 127.0.0.1, ports are remapped."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.ports: dict[tuple[str, int], int] = {}

    def expose(self, service: str, port: int) -> int:
        """The local port that stands for `service:port` (allocated on first use)."""
        key = (service, port)
        if key not in self.ports:
            self.ports[key] = free_port()
        return self.ports[key]

    def register(self, service: str, port: int, local: int) -> None:
        """A Service backed by something already listening on `local` (e.g. the S3 server)."""
        self.ports[(service, port)] = local

    def hostnames(self, service: str) -> list[str]:
        ns = self.namespace
        return [
            service,
            f"{service}.{ns}",
            f"{service}.{ns}.svc",
            f"{service}.{ns}.svc.{CLUSTER_DOMAIN}",
        ]

    def fqdn(self, service: str) -> str:
        return self.hostnames(service)[-1]

    def hosts_file(self) -> str:
        """/etc/hosts lines that stand in for cluster DNS."""
        services = sorted({service for service, _ in self.ports})
        return "".join(f"127.0.0.1\t{' '.join(self.hostnames(s))}\n" for s in services)

    def remap(self, text: str) -> str:
        """`<service name>:<port>` -> the same name with the local port, wherever it appears."""
        for (service, port), local in self.ports.items():
            names = "|".join(re.escape(h) for h in reversed(self.hostnames(service)))
            text = re.sub(rf"(?<![\w.-])({names}):{port}(?!\d)", rf"\g<1>:{local}", text)
        return text


# --- the image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageEmulation:
    """What the Dockerfile's image provides, reproduced from this machine's Python environment.

    The env (ray, tsdl's dependencies) is `sys.prefix` and the tsdl code is this repository (on
    PYTHONPATH, so the tree under test wins over an editable install elsewhere); both are mounted
    read-only at their host paths. ENV and WORKDIR come from the Dockerfile's final stage.
    """

    env: dict[str, str]
    workdir: str
    user: tuple[str, int, int, str] = IMAGE_USER
    code_paths: tuple[str, ...] = ()

    @classmethod
    def from_dockerfile(cls, dockerfile: Path = DOCKERFILE) -> ImageEmulation:
        env, workdir = _dockerfile_env(dockerfile.read_text())
        name, _, _, home = IMAGE_USER
        venv_bin = str(Path(sys.prefix) / "bin")
        env.update(
            {
                "HOME": home,
                "USER": name,
                "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
                "PYTHONPATH": str(REPO),
                "LANG": "C.UTF-8",
            }
        )
        paths = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, REPO)}
        return cls(env=env, workdir=workdir or home, code_paths=tuple(sorted(paths)))


def python_image() -> ImageEmulation:
    """A plain Python image with this env (stands in for e.g. the MLflow server image)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    paths = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)}
    return ImageEmulation(
        env={"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        workdir="/",
        code_paths=tuple(sorted(paths)),
    )


def _dockerfile_env(text: str) -> tuple[dict[str, str], str]:
    """ENV and WORKDIR of the Dockerfile's last stage (the runtime image)."""
    text = re.sub(r"\\\n", " ", text)
    stage = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    workdir = ""
    for line in stage.splitlines():
        words = line.strip().split(None, 1)
        if len(words) < 2:
            continue
        if words[0] == "ENV":
            for item in shlex.split(words[1]):
                key, _, value = item.partition("=")
                env[key] = value
        elif words[0] == "WORKDIR":
            workdir = words[1].strip()
    return env, workdir


# --- KubeRay -----------------------------------------------------------------------------------


def kuberay_quantity(value: str) -> int:
    """Kubernetes quantity -> integer the way KubeRay's `Quantity.Value()` rounds (up)."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    value = str(value)
    if value.endswith("m"):
        return -(-int(value[:-1]) // 1000)
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * factor)
    return int(-(-float(value) // 1))


def kuberay_ray_start_params(
    group: Mapping[str, Any], *, head: bool, head_fqdn: str, head_port: int = 6379
) -> dict[str, str]:
    """rayStartParams completed as KubeRay 1.7 does (setMissingRayStartParams + limits)."""
    params = {k: str(v) for k, v in (group.get("rayStartParams") or {}).items()}
    if not head:
        params.setdefault("address", f"{head_fqdn}:{head_port}")
    else:
        params.setdefault("dashboard-host", "0.0.0.0")
    params.setdefault("metrics-export-port", str(_DEFAULT_METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(_DEFAULT_AGENT_LISTEN_PORT))
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    if "num-cpus" not in params and "cpu" in limits:
        params["num-cpus"] = str(kuberay_quantity(limits["cpu"]))
    if "memory" not in params and "memory" in limits:
        params["memory"] = str(kuberay_quantity(limits["memory"]))
    if "num-gpus" not in params and "nvidia.com/gpu" in limits:
        params["num-gpus"] = str(limits["nvidia.com/gpu"])
    return params


def kuberay_ray_start_command(params: Mapping[str, str], *, head: bool) -> str:
    """`ulimit -n ...; ray start [--head] --k=v ...` exactly as KubeRay's convertParamMap joins it."""
    flags = ""
    for key in sorted(params):
        value = params[key]
        special = key in ("log-color", "include-dashboard", "include-log-monitor")
        if value.lower() in ("true", "false") and not special:
            if value.lower() == "true":
                flags += f" --{key} "
        else:
            flags += f" --{key}={value} "
    start = f"ray start --head {flags}" if head else f"ray start {flags}"
    return "ulimit -n ${RAY_START_ULIMIT_OPEN_FILES:-65536}; " + start


def kuberay_submit_script(entrypoint: str, dashboard_url: str, job_id: str) -> str:
    """The K8sJobMode submitter's `bash -ce` script (KubeRay 1.7 common/job.go BuildJobSubmitCommand)."""
    address = dashboard_url if dashboard_url.startswith("http://") else f"http://{dashboard_url}"
    health = (
        'python -c "import urllib.request; '
        f"urllib.request.urlopen('{address}/api/gcs_healthz', timeout=5)\""
    )
    cmd = [
        "until", health, ">/dev/null", "2>&1", ";",
        "do", "echo", f'"Waiting for Ray Dashboard GCS to become healthy at {address} ..."', ";",
        "sleep", "2", ";", "done", ";",
        "if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then",
        "ray", "job", "submit", "--address", address, "--no-wait", "--submission-id", job_id,
        "--", entrypoint.strip(), ";",
        "fi", ";",
        "ray", "job", "logs", "--address", address, "--follow", job_id,
    ]  # fmt: skip
    return " ".join(cmd)


def kuberay_env(
    *,
    head: bool,
    cluster: str,
    namespace: str,
    head_fqdn: str,
    start_cmd: str,
    pod: str,
    group: str,
) -> dict[str, str]:
    """Env KubeRay adds to Ray containers (common/pod.go setContainerEnvVars)."""
    ip = "127.0.0.1" if head else head_fqdn
    env = {
        "FQ_RAY_IP": ip,
        "RAY_IP": ip.split(".")[0] if not head else ip,
        "RAY_CLUSTER_NAME": cluster,
        "RAY_CLUSTER_NAMESPACE": namespace,
        "RAY_CLOUD_INSTANCE_ID": pod,
        "RAY_NODE_TYPE_NAME": "headgroup" if head else group,
        "KUBERAY_GEN_RAY_START_CMD": start_cmd,
        "RAY_PORT": "6379",
        "RAY_ADDRESS": f"{ip}:6379",
        "RAY_USAGE_STATS_KUBERAY_IN_USE": "1",
        "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE": "1",
    }
    return env


# --- the kubelet: one container as a sandboxed process -----------------------------------------


@dataclass
class Mount:
    """A volume mount: `source` on the host at `target` in the container."""

    target: str
    source: str = ""
    read_only: bool = False
    tmpfs_size: str | None = None  # emptyDir medium: Memory


@dataclass
class Container:
    """One container, resolved: what the kubelet would exec, with what it would mount."""

    name: str
    argv: list[str]
    env: dict[str, str]
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    read_only_root: bool
    workdir: str


def sandbox_script(
    container: Container, image: ImageEmulation, root: Path, services: ServiceDirectory
) -> str:
    """Shell (run as root inside `unshare -m`) that builds the container's root and execs it."""
    sh = _Script(root)
    sh.run("mount -t tmpfs -o mode=755 rootfs", root)
    created_top = {"tmp", "home", "mnt"} | {
        m.target.strip("/").split("/")[0] for m in container.mounts
    }
    # The image's env must be reachable by the container's uid: a host dir that others cannot
    # enter (e.g. /root holding pyenv) becomes a plain directory holding only the env.
    created_top |= {
        top
        for top in (p.strip("/").split("/")[0] for p in image.code_paths)
        if not (Path("/") / top).stat().st_mode & 0o001
    }
    shadowed = set()
    for m in container.mounts:
        top = m.target.strip("/").split("/")[0]
        if (Path("/") / top).is_dir() and top not in ("tmp", "home", "mnt", "dev"):
            if not Path(m.target).parent.exists():
                raise NotImplementedError(
                    f"mountPath {m.target}: only one level under a host dir is emulated"
                )
            shadowed.add(top)
            created_top.discard(top)
    shadowed.add("etc")
    created_top.discard("etc")
    created_top.discard("dev")
    for entry in sorted(os.listdir("/")):
        host = Path("/") / entry
        if entry in ("proc", "sys", "dev"):
            sh.mkdir(host)
            sh.run("mount --rbind", host, sh.at(host))
        elif entry in created_top:
            continue
        elif entry in shadowed:
            sh.shadow(host, skip=frozenset({"passwd", "hosts"}) if entry == "etc" else frozenset())
        else:
            sh.bind_host(host)
    for entry in created_top:
        sh.mkdir(Path("/") / entry)
    # The image: the ray user's home and passwd entry, cluster DNS in /etc/hosts.
    name, uid, gid, home = image.user
    sh.mkdir(Path(home))
    sh.run("chown", f"{uid}:{gid}", sh.at(Path(home)))
    sh.write(Path("/etc/passwd"), _passwd(name, uid, gid, home))
    sh.write(Path("/etc/hosts"), Path("/etc/hosts").read_text() + services.hosts_file())
    for m in sorted(container.mounts, key=lambda m: m.target.count("/")):
        target = Path(m.target)
        sh.mkdir(target)
        if m.tmpfs_size:
            sh.run("mount -t tmpfs -o", f"size={m.tmpfs_size},mode=1777", "tmpfs", sh.at(target))
            continue
        sh.run("mount --bind", m.source, sh.at(target))
        if m.read_only:
            sh.run("mount -o remount,bind,ro", sh.at(target))
    for path in image.code_paths:
        sh.mkdir(Path(path))
        sh.run("mount --rbind", path, sh.at(Path(path)))
        sh.run("mount -o remount,bind,ro", sh.at(Path(path)))
    if container.read_only_root:
        sh.run("mount -o remount,ro", root)
    groups = ",".join(str(g) for g in container.groups) or str(container.gid)
    inner = f'cd {shlex.quote(container.workdir)} && exec "$@"'
    sh.lines.append(
        " ".join(
            [
                "exec chroot",
                shlex.quote(str(root)),
                "setpriv",
                f"--reuid={container.uid}",
                f"--regid={container.gid}",
                f"--groups={groups}",
                "--no-new-privs --inh-caps=-all --bounding-set=-all",
                "env -i",
                *(shlex.quote(f"{k}={v}") for k, v in container.env.items()),
                "/bin/bash -c",
                shlex.quote(inner),
                "container",
                *(shlex.quote(a) for a in container.argv),
            ]
        )
    )
    return "\n".join(sh.lines) + "\n"


class _Script:
    """Builder of the sandbox's shell lines; `at(p)` is p inside the new root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines = ["set -eu"]

    def at(self, path: Path) -> str:
        return str(self.root) + str(path)

    def run(self, *words: object) -> None:
        head, *rest = (str(w) for w in words)
        self.lines.append(" ".join([head, *(shlex.quote(w) for w in rest)]))

    def mkdir(self, path: Path) -> None:
        self.run("mkdir -p", self.at(path))

    def write(self, path: Path, text: str) -> None:
        self.lines.append(f"cat > {shlex.quote(self.at(path))} <<'TSDL_EOF'\n{text}TSDL_EOF")

    def bind_host(self, host: Path) -> None:
        """A host entry, read-only: a layer of the image."""
        if host.is_symlink():
            self.run("ln -s", os.readlink(host), self.at(host))
        elif host.is_dir():
            self.mkdir(host)
            self.run("mount --rbind", host, self.at(host))
            self.run("mount -o remount,bind,ro", self.at(host))
        elif host.is_file():
            self.run("touch", self.at(host))
            self.run("mount --bind", host, self.at(host))
            self.run("mount -o remount,bind,ro", self.at(host))

    def shadow(self, host: Path, skip: frozenset[str] = frozenset()) -> None:
        """A host dir rebuilt entry by entry on the tmpfs, so new mount points can be made in it."""
        self.mkdir(host)
        for entry in sorted(os.listdir(host)):
            if entry not in skip:
                self.bind_host(host / entry)


def _passwd(name: str, uid: int, gid: int, home: str) -> str:
    lines = [
        line
        for line in Path("/etc/passwd").read_text().splitlines()
        if line.split(":")[2:3] != [str(uid)] and not line.startswith(f"{name}:")
    ]
    return "\n".join([*lines, f"{name}:x:{uid}:{gid}::{home}:/bin/bash"]) + "\n"


@dataclass
class PodProcess:
    """A started container: its process group, its log, its sandbox dir."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    restarts: int = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def restart(self) -> None:
        """The kubelet restarts an exited container (restartPolicy Always, as in a RayCluster)."""
        self.stop()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.proc.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.restarts += 1

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the pod's process group (kubelet's grace period), then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                _wait_group_gone(self.proc.pid, wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


# --- the cluster -------------------------------------------------------------------------------


@dataclass
class EmulatedCluster:
    """Runs pods of the rendered objects; `workdir` holds their volumes, roots and logs."""

    objects: ClusterObjects
    workdir: Path
    image: ImageEmulation = field(default_factory=ImageEmulation.from_dockerfile)
    rwx_storage_classes: tuple[str, ...] = ()
    cpu_cap: int = field(default_factory=lambda: os.cpu_count() or 2)
    services: ServiceDirectory = field(init=False)
    pods: list[PodProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.services = ServiceDirectory(self.objects.namespace)
        self.workdir.mkdir(parents=True, exist_ok=True)

    # -- kubelet ----------------------------------------------------------------------------

    def start_pod(
        self,
        name: str,
        pod_spec: Mapping[str, Any],
        *,
        argv: list[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> PodProcess:
        """Start the pod's first container (its command+args, or `argv` given by an operator)."""
        container = self.resolve_container(name, pod_spec, argv=argv, extra_env=extra_env)
        pod_dir = self.workdir / "pods" / name
        root = pod_dir / "root"
        root.mkdir(parents=True, exist_ok=True)
        script = sandbox_script(container, self.image, root, self.services)
        (pod_dir / "sandbox.sh").write_text(script)
        log = pod_dir / "container.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "/bin/sh",
                    str(pod_dir / "sandbox.sh"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        pod = PodProcess(name, proc, log)
        self.pods.append(pod)
        return pod

    def resolve_container(
        self,
        name: str,
        pod_spec: Mapping[str, Any],
        *,
        argv: list[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> Container:
        spec = pod_spec["spec"] if "spec" in pod_spec else pod_spec
        c = spec["containers"][0]
        pod_sc = spec.get("securityContext", {})
        sc = c.get("securityContext", {})
        uid = int(sc.get("runAsUser", pod_sc.get("runAsUser", self.image.user[1])))
        gid = int(sc.get("runAsGroup", pod_sc.get("runAsGroup", self.image.user[2])))
        if (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")) and uid == 0:
            raise Unschedulable(f"pod {name}: runAsNonRoot with uid 0 (CreateContainerConfigError)")
        groups = sorted({gid, *([int(pod_sc["fsGroup"])] if "fsGroup" in pod_sc else [])})
        command = argv or [*c.get("command", []), *c.get("args", [])]
        if not command:
            raise Unschedulable(
                f"pod {name}: container {c['name']} has no command and no operator gave one"
            )
        env = {**self.image.env, **self._container_env(c), **(extra_env or {})}
        env = {k: self.services.remap(v) for k, v in env.items()}
        command = [self.services.remap(a) for a in command]
        mounts = self._mounts(name, spec, c, fs_group=pod_sc.get("fsGroup"))
        return Container(
            name=name,
            argv=command,
            env=env,
            mounts=mounts,
            uid=uid,
            gid=gid,
            groups=groups,
            read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
            workdir=c.get("workingDir") or self.image.workdir,
        )

    def _container_env(self, c: Mapping[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                env.update(self.objects.secret_data(source["secretRef"]["name"]))
            if "configMapRef" in source:
                env.update(self.objects.config_map_data(source["configMapRef"]["name"]))
        for item in c.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self.objects.secret_data(ref["name"])[ref["key"]]
            elif "configMapKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["configMapKeyRef"]
                env[item["name"]] = self.objects.config_map_data(ref["name"])[ref["key"]]
        return env

    def _mounts(
        self, pod: str, spec: Mapping[str, Any], c: Mapping[str, Any], fs_group: int | None
    ) -> list[Mount]:
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        mounts = []
        for vm in c.get("volumeMounts", []):
            volume = volumes[vm["name"]]
            read_only = bool(vm.get("readOnly", False))
            if "emptyDir" in volume:
                if volume["emptyDir"].get("medium") == "Memory":
                    size = str(volume["emptyDir"].get("sizeLimit", "64Mi")).replace("i", "").lower()
                    mounts.append(Mount(vm["mountPath"], tmpfs_size=size))
                    continue
                source = self.workdir / "pods" / pod / "volumes" / vm["name"]
                source.mkdir(parents=True, exist_ok=True)
                source.chmod(0o777)
            elif "configMap" in volume:
                source = self.workdir / "pods" / pod / "volumes" / vm["name"]
                source.mkdir(parents=True, exist_ok=True)
                for key, text in self.objects.config_map_data(volume["configMap"]["name"]).items():
                    (source / key).write_text(text)
                    (source / key).chmod(0o644)
                read_only = True
            elif "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                source = self.bind_claim(claim, fs_group)
                read_only = read_only or bool(
                    volume["persistentVolumeClaim"].get("readOnly", False)
                )
            else:
                raise NotImplementedError(
                    f"volume {vm['name']}: only emptyDir, configMap and PVC are emulated"
                )
            mounts.append(Mount(vm["mountPath"], str(source), read_only=read_only))
        return mounts

    def bind_claim(self, claim: str, fs_group: int | None) -> Path:
        """The claim's volume, provisioned like a stock cluster would (or Pending: Unschedulable)."""
        pvc = self.objects.get("PersistentVolumeClaim", claim)
        modes = set(pvc["spec"].get("accessModes", []))
        storage_class = pvc["spec"].get("storageClassName")
        if "ReadWriteMany" in modes and storage_class not in self.rwx_storage_classes:
            raise Unschedulable(
                f'persistentvolumeclaim "{claim}" Pending: storage class '
                f"{storage_class or '(default)'} cannot provision ReadWriteMany"
            )
        source = self.workdir / "claims" / claim
        if not source.exists():
            source.mkdir(parents=True)
            if fs_group is not None:  # kubelet applies fsGroup to RWO volumes
                os.chown(source, 0, int(fs_group))
                source.chmod(0o2775)
        return source

    def add_existing_claim(
        self, claim: str, source: Path, access_modes: tuple[str, ...] = ("ReadOnlyMany",)
    ) -> None:
        """A PVC the user created before installing (e.g. a dataset volume), backed by `source`."""
        self.objects.objects.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim},
                "spec": {"accessModes": list(access_modes), "storageClassName": "existing"},
            }
        )
        target = self.workdir / "claims" / claim
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copytree(source, target)
            for path in [target, *target.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)

    def start_deployment(self, name: str, image: ImageEmulation | None = None) -> PodProcess:
        """One replica of a Deployment, its container ports remapped to the Services' local ports.

        The remap rewrites `=PORT` and `:PORT` in the command line (e.g. `--port=5000`,
        `--allowed-hosts=svc:5000`), since every pod here shares 127.0.0.1.
        """
        template = self.objects.get("Deployment", name)["spec"]["template"]
        container = template["spec"]["containers"][0]
        named = {p.get("name"): int(p["containerPort"]) for p in container.get("ports", [])}
        argv = [*container.get("command", []), *container.get("args", [])]
        labels = template["metadata"].get("labels", {})
        for svc in self.objects.of_kind("Service"):
            selector = svc["spec"].get("selector", {})
            if not selector or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for port in svc["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                container_port = (
                    named.get(target, target) if isinstance(target, str) else int(target)
                )
                local = self.services.expose(svc["metadata"]["name"], int(port["port"]))
                argv = [re.sub(rf"([=:]){container_port}(?!\d)", rf"\g<1>{local}", a) for a in argv]
        saved, self.image = self.image, image or self.image
        try:
            return self.start_pod(f"{name}-0", template, argv=argv)
        finally:
            self.image = saved

    def local_url(self, service: str, port: int, path: str = "") -> str:
        """How the test (outside the cluster) reaches a Service: localhost and its local port."""
        return f"http://localhost:{self.services.expose(service, port)}{path}"

    def stop_all(self) -> None:
        for pod in reversed(self.pods):
            pod.stop()
        self.pods.clear()

    @contextmanager
    def running(self) -> Iterator[EmulatedCluster]:
        try:
            yield self
        finally:
            self.stop_all()


# --- KubeRay: a RayJob's cluster and submitter -------------------------------------------------


@dataclass
class RayJobRun:
    """One attempt of a RayJob: its RayCluster (head + workers) and, after `submit`, its submitter."""

    cluster: EmulatedCluster
    rayjob: dict[str, Any]
    attempt: int = 0
    head: PodProcess | None = None
    workers: list[PodProcess] = field(default_factory=list)
    dashboard_port: int = 0

    @property
    def name(self) -> str:
        return str(self.rayjob["metadata"]["name"])

    @property
    def ray_cluster(self) -> str:
        """KubeRay names the RayCluster `<rayjob>-<5 random chars>`; the attempt stands in for them."""
        return f"{self.name}-a{self.attempt:04d}"

    @property
    def head_service(self) -> str:
        return f"{self.ray_cluster}-head-svc"

    @property
    def auth_env(self) -> dict[str, str]:
        """authOptions.mode token: KubeRay's generated Secret `<cluster>` reaches every Ray
        container and the submitter as RAY_AUTH_MODE/RAY_AUTH_TOKEN (common/pod.go)."""
        auth = self.rayjob["spec"]["rayClusterSpec"].get("authOptions") or {}
        if auth.get("mode") != "token":
            return {}
        import hashlib

        token = hashlib.sha256(self.ray_cluster.encode()).hexdigest()
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}

    def start(self, timeout: float = 120.0) -> None:
        """Head pod, wait for its GCS, then the worker pods (KubeRay's wait-gcs-ready)."""
        spec = self.rayjob["spec"]["rayClusterSpec"]
        services = self.cluster.services
        ports = {k: services.expose(self.head_service, p) for k, p in HEAD_SERVICE_PORTS.items()}
        self.dashboard_port = ports["dashboard"]
        fqdn = services.fqdn(self.head_service)
        head_params = kuberay_ray_start_params(spec["headGroupSpec"], head=True, head_fqdn=fqdn)
        head_cmd = kuberay_ray_start_command(head_params, head=True)
        local = self._localize(head_params, head=True, ports=ports)
        self.head = self.cluster.start_pod(
            f"{self.ray_cluster}-head",
            spec["headGroupSpec"]["template"],
            argv=["/bin/bash", "-c", "--", kuberay_ray_start_command(local, head=True)],
            extra_env={
                **kuberay_env(
                    head=True,
                    cluster=self.ray_cluster,
                    namespace=services.namespace,
                    head_fqdn=fqdn,
                    start_cmd=head_cmd,
                    pod=f"{self.ray_cluster}-head",
                    group="headgroup",
                ),
                **self.auth_env,
            },
        )
        _wait_port(ports["gcs"], timeout, self.head)
        for group in spec["workerGroupSpecs"]:
            for i in range(int(group.get("replicas", 1))):
                params = kuberay_ray_start_params(group, head=False, head_fqdn=fqdn)
                cmd = kuberay_ray_start_command(params, head=False)
                local = self._localize(params, head=False, ports=ports)
                pod = f"{self.ray_cluster}-{group['groupName']}-worker-{i}"
                self.workers.append(
                    self.cluster.start_pod(
                        pod,
                        group["template"],
                        argv=[
                            "/bin/bash",
                            "-c",
                            "--",
                            kuberay_ray_start_command(local, head=False),
                        ],
                        extra_env={
                            **kuberay_env(
                                head=False,
                                cluster=self.ray_cluster,
                                namespace=services.namespace,
                                head_fqdn=fqdn,
                                start_cmd=cmd,
                                pod=pod,
                                group=group["groupName"],
                            ),
                            **self.auth_env,
                        },
                    )
                )

    def _localize(
        self, params: Mapping[str, str], *, head: bool, ports: Mapping[str, int]
    ) -> dict[str, str]:
        """The emulation's only changes: local ports for one shared IP, CPUs capped to the machine."""
        local = dict(params)
        if head:
            local.update(
                {
                    "port": str(ports["gcs"]),
                    "dashboard-port": str(ports["dashboard"]),
                    "ray-client-server-port": str(ports["client"]),
                    "metrics-export-port": str(ports["metrics"]),
                }
            )
        else:
            local["address"] = self.cluster.services.remap(local["address"])
            local["metrics-export-port"] = str(free_port())
        local["dashboard-agent-listen-port"] = str(free_port())
        # Worker ports from a shared range would collide between pods on one IP.
        local.update({"min-worker-port": "0", "max-worker-port": "0"})
        if "num-cpus" in local:
            local["num-cpus"] = str(min(int(local["num-cpus"]), self.cluster.cpu_cap))
        return local

    def wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        """Until `count` nodes are alive in the cluster (the dashboard's view)."""
        import json
        import urllib.request

        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.dashboard_port}/nodes?view=summary"
        while time.monotonic() < deadline:
            for pod in [self.head, *self.workers]:
                if pod is not None and not pod.alive():
                    if pod.restarts >= 3:  # CrashLoopBackOff
                        raise RuntimeError(f"pod {pod.name} exited:\n{pod.output()[-3000:]}")
                    pod.restart()
            try:
                token = self.auth_env.get("RAY_AUTH_TOKEN")
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                with urllib.request.urlopen(
                    urllib.request.Request(url, headers=headers), timeout=5
                ) as resp:
                    summary = json.load(resp)["data"]["summary"]
                if sum(1 for n in summary if n["raylet"]["state"] == "ALIVE") >= count:
                    return
            except Exception:
                pass
            time.sleep(1)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout:.0f}s")

    def submit(self, job_id: str, timeout: float = 240.0) -> SubmitterResult:
        """Run the submitter pod to completion; the job's outcome is what KubeRay reads from the
        dashboard (`ray job logs --follow`, the submitter's last command, exits 0 either way)."""
        pod = self.start_submitter(job_id)
        start = time.monotonic()
        try:
            pod.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pod.stop()
        info = self.job_info(job_id)
        seconds = (info.get("end_time") or 0) / 1000 - (info.get("start_time") or 0) / 1000
        return SubmitterResult(
            job_id,
            str(info.get("status", "UNKNOWN")),
            pod.output(),
            seconds if seconds > 0 else time.monotonic() - start,
        )

    def job_info(self, job_id: str) -> dict[str, Any]:
        """`GET /api/jobs/<id>` on the head's dashboard, as the KubeRay operator polls it."""
        import json
        import urllib.request

        token = self.auth_env.get("RAY_AUTH_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"http://127.0.0.1:{self.dashboard_port}/api/jobs/{job_id}"
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=10
            ) as resp:
                return dict(json.load(resp))
        except Exception as exc:  # the head is gone, or never ran the job
            return {"status": f"UNKNOWN ({exc})"}

    def start_submitter(self, job_id: str) -> PodProcess:
        """The submitter Job's pod (K8sJobMode), started; KubeRay names a new job id per attempt."""
        spec = self.rayjob["spec"]
        dashboard = (
            f"{self.cluster.services.fqdn(self.head_service)}:{HEAD_SERVICE_PORTS['dashboard']}"
        )
        script = kuberay_submit_script(spec["entrypoint"], dashboard, job_id)
        pod = self.cluster.start_pod(
            f"{self.name}-submitter-{job_id}",
            spec["submitterPodTemplate"],
            argv=["/bin/bash", "-ce", "--", script],
            extra_env={
                "PYTHONUNBUFFERED": "1",
                "RAY_DASHBOARD_ADDRESS": dashboard,
                "RAY_JOB_SUBMISSION_ID": job_id,
                **self.auth_env,
            },
        )
        return pod

    def stop(self) -> None:
        """Delete the RayCluster: workers first, then the head."""
        for pod in [*self.workers, self.head]:
            if pod is not None:
                pod.stop()
        self.workers.clear()


@dataclass
class SubmitterResult:
    """A job as KubeRay sees it: its dashboard status, its driver log, its run time."""

    job_id: str
    status: str
    log: str
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def _wait_port(port: int, timeout: float, pod: PodProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pod is not None and not pod.alive():
            raise RuntimeError(f"pod {pod.name} exited:\n{pod.output()[-3000:]}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def wait_http(
    url: str,
    timeout: float,
    pod: PodProcess | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Until `url` answers 200 (a readiness probe)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pod is not None and not pod.alive():
            raise RuntimeError(f"pod {pod.name} exited:\n{pod.output()[-3000:]}")
        try:
            req = urllib.request.Request(url, headers=dict(headers or {}))
            with urllib.request.urlopen(req, timeout=3) as resp:
                if resp.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")
