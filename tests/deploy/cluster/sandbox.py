"""Containers as sandboxed processes: what the e2e cluster's node agent runs a Pod's containers with.

No image can be pulled or built on the CI machines, so a container runs from this machine's own
files, arranged the way the image would arrange them:

* its root is the host's, bound read-only (the image's layers), on a tmpfs that holds what the image
  adds (`/home/ray` owned by uid 1000, `/etc/passwd` with the `ray` user, the Python env and the
  tsdl source at their host paths, read-only); the tmpfs itself is remounted read-only when the
  container's `readOnlyRootFilesystem` is true;
* volumes are host directories (or a tmpfs for `emptyDir.medium: Memory`) bound at their
  `mountPath`s; `/etc/hosts` is a file the node agent keeps up to date (it stands in for cluster DNS);
* the process runs in its own mount and UTS namespaces inside the Pod's network namespace (one per
  Pod, with the Pod's IP), as the securityContext's uid/gid (`setpriv`, no new privileges, no
  capabilities), with the image's ENV and WORKDIR, then the container's env.

What it does not do (a real container runtime would): cgroup limits, seccomp, a private /dev.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
# The rayproject/ray images' user: what `USER 1000:100` in the Dockerfile refers to.
IMAGE_USER = ("ray", 1000, 100, "/home/ray")


def sandbox_unavailable() -> str | None:
    """Why this machine cannot run sandboxed containers (None when it can)."""
    import shutil

    if sys.platform != "linux":
        return f"the node agent needs Linux namespaces (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the node agent needs root for namespaces, bind mounts and setpriv (run as root, e.g. in CI)"
    for tool in ("unshare", "nsenter", "setpriv", "chroot", "mount", "ip"):
        if shutil.which(tool) is None:
            return f"the node agent needs `{tool}` (util-linux/iproute2)"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "probe", "/mnt"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"unshare -m does not work here: {probe.stderr.strip() or probe.returncode}"
    return None


# --- the image --------------------------------------------------------------------------------


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
    cmd: tuple[str, ...] = ()

    @classmethod
    def from_dockerfile(cls, dockerfile: Path = DOCKERFILE) -> ImageEmulation:
        env, workdir, cmd = _dockerfile_env(dockerfile.read_text())
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
        return cls(env=env, workdir=workdir or home, code_paths=tuple(sorted(paths)), cmd=cmd)


def python_image() -> ImageEmulation:
    """A plain Python image with this env (stands in for e.g. the MLflow server image)."""
    venv_bin = str(Path(sys.prefix) / "bin")
    paths = {str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix)}
    return ImageEmulation(
        env={"PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
        workdir="/",
        code_paths=tuple(sorted(paths)),
    )


def _dockerfile_env(text: str) -> tuple[dict[str, str], str, tuple[str, ...]]:
    """ENV, WORKDIR and CMD of the Dockerfile's last stage (the runtime image)."""
    text = re.sub(r"\\\n", " ", text)
    stage = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    workdir = ""
    cmd: tuple[str, ...] = ()
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
        elif words[0] == "CMD":
            import json

            cmd = tuple(json.loads(words[1]))
    return env, workdir, cmd


# --- KubeRay -----------------------------------------------------------------------------------


# --- one container ----------------------------------------------------------------------


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
    container: Container,
    image: ImageEmulation,
    root: Path,
    hosts_file: Path,
    hostname: str,
    started: Path | None = None,
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
    # Host dirs above a mount point are rebuilt entry by entry (so the mount point can be made in
    # them); a symlink on the way is followed as the image's would be (/var/run -> /run).
    container.mounts = [
        Mount(_resolve_host(m.target), m.source, m.read_only, m.tmpfs_size)
        for m in container.mounts
    ]
    shadowed: set[Path] = {Path("/etc")}
    for m in container.mounts:
        top = m.target.strip("/").split("/")[0]
        if top in ("tmp", "home", "mnt", "dev"):
            continue
        for parent in Path(m.target).parents:
            if parent != Path("/") and parent.is_dir():
                shadowed.add(parent)
    created_top -= {p.name for p in shadowed if p.parent == Path("/")}
    created_top.discard("dev")
    etc_skip = frozenset({"passwd", "hosts", "resolv.conf"})
    for entry in sorted(os.listdir("/")):
        host = Path("/") / entry
        if entry in ("proc", "sys", "dev"):
            sh.mkdir(host)
            sh.run("mount --rbind", host, sh.at(host))
        elif entry in created_top:
            continue
        elif host in shadowed:
            sh.shadow(host, shadowed, etc_skip if entry == "etc" else frozenset())
        else:
            sh.bind_host(host)
    for entry in created_top:
        sh.mkdir(Path("/") / entry)
    # The image: the ray user's home and passwd entry, cluster DNS in /etc/hosts.
    name, uid, gid, home = image.user
    sh.mkdir(Path(home))
    sh.run("chown", f"{uid}:{gid}", sh.at(Path(home)))
    sh.write(Path("/etc/passwd"), _passwd(name, uid, gid, home))
    sh.run("touch", sh.at(Path("/etc/hosts")))
    sh.run("mount --bind", hosts_file, sh.at(Path("/etc/hosts")))
    sh.run("hostname", hostname)
    for m in sorted(container.mounts, key=lambda m: m.target.count("/")):
        target = Path(m.target)
        if m.source and Path(m.source).is_file():
            sh.mkdir(target.parent)
            sh.run("touch", sh.at(target))
        else:
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
    if started is not None:  # the container's process starts now (its setup is done)
        sh.run("touch", started)
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

    def shadow(self, host: Path, shadowed: set[Path], skip: frozenset[str] = frozenset()) -> None:
        """A host dir rebuilt entry by entry on the tmpfs, so new mount points can be made in it."""
        self.mkdir(host)
        for entry in sorted(os.listdir(host)):
            if (host / entry) in shadowed:
                self.shadow(host / entry, shadowed)
            elif entry not in skip:
                self.bind_host(host / entry)


def _resolve_host(target: str) -> str:
    """`target` with the symlinks of its existing host ancestors resolved."""
    path = Path(target)
    for parent in [*reversed(path.parents), path]:
        if parent.is_symlink():
            return str(Path(os.path.realpath(parent)) / path.relative_to(parent))
    return target


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
