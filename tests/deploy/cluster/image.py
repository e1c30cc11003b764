"""The project's image for the real-kubelet e2e: the repository's own Dockerfile, built with
Debian's podman on the Ray base stand-in, cached by what goes into it, imported into containerd.

No registry can be reached here and the build container has no network, so:

* the base is the stand-in for rayproject/ray:<ray>-py311 (`kubelet.KubeletNode.standin_rootfs`:
  mmdebstrap bookworm, Ray at /home/ray/anaconda3, user ray 1000:100), imported into podman with
  the base image's USER, WORKDIR and PATH and passed as the Dockerfile's RAY_CPU_IMAGE;
* the wheels come from a wheelhouse this machine's pip downloads (PyPI, through the host's own
  CA bundle): torch==2.13.0 (PyPI's Linux wheel, the CUDA build) and tsdl's dependencies under
  docker/constraints.txt. The build sees it through two build-time volumes, the wheelhouse and a
  pip.conf that says `no-index` + `find-links`; neither is a layer of the image, and the
  Dockerfile is the one users build (its torch index and constraints lines are unchanged).

The image lives in a podman store of its own under the cache (`podman/`), tagged with a hash of
the Dockerfile, the constraints, pyproject.toml and tsdl's sources (`image_key`): an unchanged
tree finds its tag and builds nothing; a change to tsdl's code rebuilds only the layers above the
dependencies (the store keeps podman's layer cache): seconds, not the cold build's ~13 minutes.
`save` writes it as an OCI archive for containerd, whose import skips every layer blob a node
already holds. `python -m tests.deploy.cluster.image` builds (or finds) it and prints one line;
`--print-key` prints the key only.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.deploy.cluster.controlplane import CACHE

REPO = Path(__file__).resolve().parents[3]
RAY_VERSION = "2.60.0"
TORCH_VERSION = "2.13.0"  # house rule 2; the Dockerfile's TORCH_VERSION default
STANDIN = f"tsdl.local/ray-standin:{RAY_VERSION}-py311"
BUILD_REPO = "tsdl.local/tsdl"  # tagged <version>-<key>
RAY_PATH = "/home/ray/anaconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the manifests and the chart run, all served by the one image built here (the cpu target
# with PyPI's CUDA torch: the gpu target differs only in its base image and torch index). The
# MLflow server image is stood in by it too: it carries mlflow at the server image's version
# (docker/constraints.txt) and the Deployment sets its own command.
IMAGE_REFS = (
    "ghcr.io/tsdl/tsdl:{version}-cpu",
    "ghcr.io/tsdl/tsdl:{version}-gpu",
    "tsdl:dev",
    "ghcr.io/mlflow/mlflow:v{mlflow}",
)
# podman here: runc (crun fails on setrlimit and hybrid cgroups) and rlimits within the host's
# hard limits (no CAP_SYS_RESOURCE): ../shared/reviews/2026-12-06-control-plane-probe.md.
LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


def tsdl_version(repo: Path = REPO) -> str:
    for line in (repo / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise ValueError("pyproject.toml: no version line")


def mlflow_version(repo: Path = REPO) -> str:
    for line in (repo / "docker" / "constraints.txt").read_text().splitlines():
        if line.startswith("mlflow=="):
            return line.split("==", 1)[1].strip()
    raise ValueError("docker/constraints.txt: no mlflow== line")


def image_refs(repo: Path = REPO) -> list[str]:
    return [r.format(version=tsdl_version(repo), mlflow=mlflow_version(repo)) for r in IMAGE_REFS]


def inputs(repo: Path = REPO) -> list[Path]:
    """Every file the image is made from: the Dockerfile and its context (.dockerignore's list)."""
    files = [repo / "Dockerfile", repo / ".dockerignore", repo / "pyproject.toml",
             repo / "README.md", repo / "docker" / "constraints.txt"]  # fmt: skip
    files += sorted(p for p in (repo / "tsdl").rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")  # fmt: skip
    return files


def image_key(repo: Path = REPO) -> str:
    """sha256 over the inputs' paths and bytes, the Ray and torch versions: 12 hex digits."""
    h = hashlib.sha256(f"ray {RAY_VERSION} torch {TORCH_VERSION}\n".encode())
    for path in inputs(repo):
        h.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def podman(cache: Path = CACHE) -> list[str]:
    """podman on the e2e's own store under the cache (the host's store stays untouched), runc."""
    return ["podman", "--root", str(cache / "podman" / "storage"),
            "--runroot", "/run/tsdl-e2e-podman", "--runtime", "runc"]  # fmt: skip


def reference(repo: Path = REPO) -> str:
    """The image's tag for this tree: its version and `image_key`."""
    return f"{BUILD_REPO}:{tsdl_version(repo)}-{image_key(repo)}"


def _run(argv: list[str], log: Path, timeout: float = 3600) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"`{' '.join(argv[:4])} ...` exited {code}: {' / '.join(tail)} (log {log})"
        )


def _exists(cache: Path, ref: str) -> bool:
    found = subprocess.run([*podman(cache), "image", "exists", ref], capture_output=True)
    return found.returncode == 0


def wheelhouse(cache: Path, log: Path) -> Path:
    """torch and tsdl's dependencies as wheels, downloaded by this machine's pip (its CA bundle)."""
    out = cache / "image-wheels"
    out.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(out),
          "-c", str(REPO / "docker" / "constraints.txt"), f"torch=={TORCH_VERSION}",
          "setuptools>=77", "wheel", str(REPO)], log)  # fmt: skip
    for stray in out.glob("tsdl-*"):  # the build stage makes tsdl's own wheel
        stray.unlink()
    return out


def build(cache: Path = CACHE) -> tuple[str, str]:
    """The image's reference in the e2e's podman store (built now or found) and how it was had."""
    if shutil.which("podman") is None:
        raise RuntimeError("podman is missing: run `apt-get install podman runc`")
    ref = reference()
    if _exists(cache, ref):
        return ref, "cached"
    (cache / "podman").mkdir(parents=True, exist_ok=True)
    log = cache / "podman" / "build.log"
    log.write_text("")
    if not _exists(cache, STANDIN):
        from tests.deploy.cluster.kubelet import standin_rootfs

        rootfs, _ = standin_rootfs(cache, cache / "podman")
        _run([*podman(cache), "import", "--change", "USER 1000:100", "--change", "WORKDIR /home/ray",
              "--change", f"ENV PATH={RAY_PATH}", "--change", "ENV HOME=/home/ray",
              str(rootfs), STANDIN], log)  # fmt: skip
    wheels = wheelhouse(cache, log)
    with tempfile.TemporaryDirectory(prefix="tsdl-image-") as tmp:
        pipconf = Path(tmp) / "pip.conf"
        pipconf.write_text("[global]\nno-index = true\nfind-links = /tmp/tsdl-wheelhouse\n")
        # --format docker: the OCI format has no SHELL, and the Dockerfile's bash lines need it.
        _run([*podman(cache), "build", *LIMITS, "--format", "docker", "--network", "none",
              "--target", "cpu", "--build-arg", f"RAY_CPU_IMAGE={STANDIN}",
              "--volume", f"{wheels}:/tmp/tsdl-wheelhouse:ro",
              "--volume", f"{pipconf}:/etc/pip.conf:ro", "-t", ref, str(REPO)], log)  # fmt: skip
    # Older trees' tags go; the untagged layers below them stay: they are the build cache.
    listed = subprocess.run([*podman(cache), "images", "--format", "{{.Repository}}:{{.Tag}}",
                             BUILD_REPO], capture_output=True, text=True).stdout.split()  # fmt: skip
    for old in set(listed) - {ref}:
        subprocess.run([*podman(cache), "rmi", old], capture_output=True)
    return ref, "built"


def save(ref: str, archive: Path, cache: Path = CACHE) -> Path:
    """The image as an OCI archive (blobs named by digest: containerd skips those it holds)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    _run([*podman(cache), "save", "--format", "oci-archive", "-o", str(archive), ref],
         archive.with_suffix(".log"))  # fmt: skip
    return archive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-key", action="store_true", help="print the cache key and exit")
    args = parser.parse_args()
    if args.print_key:
        print(image_key())
        return 0
    start = time.monotonic()
    try:
        ref, how = build()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"image: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"image: {ref} {how} in {time.monotonic() - start:.0f}s; serves "
          f"{', '.join(image_refs())}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
