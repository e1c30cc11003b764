"""The e2e cluster's real parts, started as local processes: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the KubeRay operator (binaries from
`scripts/cluster/build.sh`), all on 127.0.0.1 with generated certificates, token auth and RBAC on.

Identities are the ones a kubeadm cluster uses, so the default RBAC of the API server decides what
each part may do: `system:kube-scheduler`, `system:kube-controller-manager` (controllers run with
their own service accounts), and the operator as the user `kuberay-operator` bound to the
ClusterRole of its release (`config/rbac/role.yaml`). The test itself is `system:masters`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.cluster.api import Api, ApiError

CACHE = Path(os.environ.get("TSDL_E2E_CACHE", Path.home() / ".cache" / "tsdl-e2e"))
SERVICE_CIDR = "10.96.0.0/16"
STORAGE_CLASS = "standard"  # kind's name for its default class; the chart's kind preset names it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parts_missing(cache: Path = CACHE) -> str | None:
    """Why the built parts are not there (None when they are): run scripts/cluster/build.sh."""
    need = [
        cache / "etcd" / "etcd",
        *(
            cache / "k8s" / "bin" / b
            for b in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        cache / "kuberay" / "ray-operator",
        cache / "kuberay" / "crds" / "ray.io_rayjobs.yaml",
    ]
    for path in need:
        if not path.exists():
            return f"{path} is missing: run `bash scripts/cluster/build.sh` (or `make e2e-cluster`)"
    return None


def kuberay_version(cache: Path = CACHE) -> str:
    return (cache / "kuberay").resolve().name.removeprefix("kuberay-")


def _run(*argv: object, cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in argv], cwd=cwd, check=True, capture_output=True)


def make_certs(pki: Path) -> None:
    """CA, the API server's serving cert (127.0.0.1 and the in-cluster names), the SA key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=tsdl-e2e-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=pki)  # fmt: skip
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
         "-keyout", "apiserver.key", "-out", "apiserver.csr", cwd=pki)  # fmt: skip
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost"]  # fmt: skip
    san = ",".join(["IP:127.0.0.1", "IP:10.96.0.1", *(f"DNS:{n}" for n in names)])
    (pki / "ext.cnf").write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    _run("openssl", "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "apiserver.crt", cwd=pki)  # fmt: skip
    _run("openssl", "genrsa", "-out", "sa.key", "2048", cwd=pki)
    _run("openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


@dataclass
class Identity:
    user: str
    groups: tuple[str, ...] = ()
    token: str = field(default_factory=lambda: secrets.token_hex(16))


IDENTITIES = {
    "admin": Identity("tsdl-e2e-admin", ("system:masters",)),
    "scheduler": Identity("system:kube-scheduler"),
    "controller-manager": Identity("system:kube-controller-manager"),
    "operator": Identity("kuberay-operator"),
}


@dataclass
class ControlPlane:
    """Start with `start()`; `stop()` ends every process it started (and only those)."""

    workdir: Path
    cache: Path = CACHE
    dns_file: tuple[Path, str] | None = None  # (a resolv.conf naming CoreDNS, /etc/resolv.conf)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    server: str = ""

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    def bin(self, name: str) -> Path:
        if name == "etcd":
            return self.cache / "etcd" / "etcd"
        if name == "ray-operator":
            return self.cache / "kuberay" / "ray-operator"
        return self.cache / "k8s" / "bin" / name

    def api(self, who: str = "admin") -> Api:
        return Api(self.server, IDENTITIES[who].token, self.pki / "ca.crt")

    def kubeconfig(self, who: str = "admin") -> Path:
        path = self.workdir / f"{who}.kubeconfig"
        if not path.exists():
            path.write_text(
                "apiVersion: v1\nkind: Config\n"
                f"clusters:\n- name: e2e\n  cluster:\n    server: {self.server}\n"
                f"    certificate-authority: {self.pki / 'ca.crt'}\n"
                f"users:\n- name: {who}\n  user:\n    token: {IDENTITIES[who].token}\n"
                f"contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: {who}\n"
                "    namespace: default\ncurrent-context: e2e\n"
            )
        return path

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> None:
        log = (self.workdir / "logs" / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip

    def log(self, name: str) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait(self, name: str, ready, timeout: float) -> None:  # type: ignore[no-untyped-def]
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}:\n{self.log(name)[-3000:]}")
            try:
                if ready():
                    self.timings[name] = time.monotonic() - start
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{name} not ready after {timeout:.0f}s:\n{self.log(name)[-3000:]}")

    def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        make_certs(self.pki)
        self.timings["certs"] = time.monotonic() - t0
        with (self.pki / "tokens.csv").open("w") as out:
            for i, ident in enumerate(IDENTITIES.values()):
                out.write(f'{ident.token},{ident.user},uid-{i},"{",".join(ident.groups)}"\n')
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self._spawn("etcd", [
            str(self.bin("etcd")), "--name", "e2e", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ])  # fmt: skip
        self._wait("etcd", lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), 60)
        self.server = f"https://127.0.0.1:{api_port}"
        pki = self.pki
        self._spawn("kube-apiserver", [
            str(self.bin("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={api_port}", "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # 127.0.0.1 may not be the `kubernetes` endpoint
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}", f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
            f"--cert-dir={self.workdir / 'apiserver-certs'}", "--profiling=false",
            "--event-ttl=2h", "--kubelet-preferred-address-types=InternalIP",
        ])  # fmt: skip
        admin = self.api()
        self._wait("kube-apiserver", admin.healthy, 180)
        common = ["--bind-address=127.0.0.1", "--leader-elect=false", "--secure-port=0"]
        self._spawn("kube-controller-manager", [
            str(self.bin("kube-controller-manager")), *common,
            f"--kubeconfig={self.kubeconfig('controller-manager')}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Like a managed cluster's: a node silent for 40 s is NotReady, its pods evicted soon after.
            "--node-monitor-grace-period=40s",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            str(self.bin("kube-scheduler")), *common, f"--kubeconfig={self.kubeconfig('scheduler')}",
        ])  # fmt: skip
        t0 = time.monotonic()
        self.bootstrap()
        self.timings["bootstrap"] = time.monotonic() - t0
        self.start_operator()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin("kubectl")), f"--kubeconfig={self.kubeconfig()}", *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def bootstrap(self) -> None:
        """CRDs and the operator's ClusterRole of the KubeRay release, the default StorageClass."""
        crds = self.cache / "kuberay" / "crds"
        self.kubectl("apply", "--server-side", "-f", str(crds))
        admin, deadline = self.api(), time.monotonic() + 120
        for crd in ("rayjobs.ray.io", "rayclusters.ray.io"):
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
            while not any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (admin.get(path).get("status") or {}).get("conditions") or []
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {crd} not Established after 120s")
                time.sleep(0.5)
        self.kubectl(
            "apply", "--server-side", "-f", str(self.cache / "kuberay" / "operator-role.yaml")
        )
        self.kubectl("create", "clusterrolebinding", "kuberay-operator",
                     "--clusterrole=kuberay-operator", "--user=kuberay-operator")  # fmt: skip
        self.kubectl("apply", "-f", "-", input=STORAGE_CLASS_YAML)

    def start_operator(self) -> None:
        """The KubeRay operator as a process; `dns_file` gives it the cluster's DNS (CoreDNS)."""
        probe = free_port()
        argv = [
            str(self.bin("ray-operator")), f"--kubeconfig={self.kubeconfig('operator')}",
            "--enable-leader-election=false", f"--metrics-addr=127.0.0.1:{free_port()}",
            f"--health-probe-bind-address=127.0.0.1:{probe}", "--log-stdout-encoder=console",
        ]  # fmt: skip
        dns = self.dns_file
        if dns is not None:
            # Its own mount namespace, so the service names resolve for it alone (not the host).
            script = f'mount --bind "{dns[0]}" {dns[1]} && exec "$@"'
            argv = [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "operator",
                *argv,
            ]
        self._spawn("ray-operator", argv)
        self._wait("ray-operator", lambda: _http_ok(f"http://127.0.0.1:{probe}/readyz"), 120)

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        self.procs.clear()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def _http_ok(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.status == 200


STORAGE_CLASS_YAML = f"""\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {STORAGE_CLASS}
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
"""

__all__ = ["ApiError", "ControlPlane", "parts_missing"]
