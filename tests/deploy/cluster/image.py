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

The image is saved as a docker archive under the cache, keyed by a hash of the Dockerfile, the
constraints, pyproject.toml and tsdl's sources (the wheel the build stage makes), so an unchanged
tree takes it from the cache and any change rebuilds. `python -m tests.deploy.cluster.image`
builds (or finds) it and prints one line; `--print-key` prints the key only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
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
BUILD_TAG = "tsdl.local/tsdl:e2e-cpu"
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
PODMAN = ("podman", "--runtime", "runc")
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


def cache_dir(cache: Path = CACHE) -> Path:
    return cache / f"tsdl-image-{tsdl_version()}-{image_key()}"


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


def build(cache: Path = CACHE) -> tuple[Path, str]:
    """The image archive (built now or found in the cache) and how it was had."""
    if shutil.which("podman") is None:
        raise RuntimeError("podman is missing: run `apt-get install podman runc`")
    out = cache_dir(cache)
    archive = out / "image.tar"
    if archive.exists():
        return archive, "cached"
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    log.write_text("")
    from tests.deploy.cluster.kubelet import standin_rootfs

    rootfs, _ = standin_rootfs(cache, out)
    wheels = wheelhouse(cache, log)
    made: list[str] = []
    try:
        _run([*PODMAN, "import", "--change", "USER 1000:100", "--change", "WORKDIR /home/ray",
              "--change", f"ENV PATH={RAY_PATH}", "--change", "ENV HOME=/home/ray",
              str(rootfs), STANDIN], log)  # fmt: skip
        made.append(STANDIN)
        with tempfile.TemporaryDirectory(prefix="tsdl-image-") as tmp:
            pipconf = Path(tmp) / "pip.conf"
            pipconf.write_text("[global]\nno-index = true\nfind-links = /tmp/tsdl-wheelhouse\n")
            made.append(BUILD_TAG)
            # --format docker: the OCI format has no SHELL, and the Dockerfile's bash lines need it.
            _run([*PODMAN, "build", *LIMITS, "--format", "docker", "--network", "none", "--target", "cpu",
                  "--build-arg", f"RAY_CPU_IMAGE={STANDIN}",
                  "--volume", f"{wheels}:/tmp/tsdl-wheelhouse:ro",
                  "--volume", f"{pipconf}:/etc/pip.conf:ro",
                  "-t", BUILD_TAG, str(REPO)], log)  # fmt: skip
        _run([*PODMAN, "save", "--format", "docker-archive", "-o", str(archive) + ".tmp",
              BUILD_TAG], log)  # fmt: skip
        Path(str(archive) + ".tmp").rename(archive)
    finally:  # podman's store is the host's: leave only the cache's archive behind
        for ref in reversed(made):
            subprocess.run([*PODMAN, "rmi", "-f", ref], capture_output=True)
        subprocess.run([*PODMAN, "image", "prune", "-f"], capture_output=True)
    return archive, "built"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print-key", action="store_true", help="print the cache key and exit")
    args = parser.parse_args()
    if args.print_key:
        print(image_key())
        return 0
    start = time.monotonic()
    try:
        archive, how = build()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"image: FAILED: {exc}", file=sys.stderr)
        return 1
    size = archive.stat().st_size / 2**30
    print(f"image: {BUILD_TAG} {how} in {time.monotonic() - start:.0f}s, {size:.2f} GiB "
          f"({archive}); serves {', '.join(image_refs())}")  # fmt: skip
    return 0


if __name__ == "__main__":
    os.nice(0)
    sys.exit(main())
