"""Container images written as OCI archives by hand, for `ctr images import`.

No registry can be reached from these machines, and containerd must not pull: the pod sandbox's
pause image and the test images are made here from files of this machine (a static pause binary
built from `scripts/cluster/pause`, Debian's static busybox) and imported into containerd. An
archive is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/...`) with uncompressed
layers; the index names the image with containerd's `io.containerd.image.name` annotation.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One file of a layer: copied from `source`, written from `data`, a `link` or a directory."""

    path: str
    source: Path | None = None
    data: bytes | None = None
    link: str | None = None
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclass
class ImageConfig:
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/bin:/usr/bin:/bin"])
    user: str = ""
    workdir: str = "/"


def layer(entries: list[Entry]) -> bytes:
    """An uncompressed layer tar, reproducible (mtime 0, sorted paths, numeric owners)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
            if entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.source is None and entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = entry.data if entry.data is not None else entry.source.read_bytes()  # type: ignore[union-attr]
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _digest(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return "sha256:" + hashlib.sha256(data).hexdigest()
    with data.open("rb") as f:
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def _size(data: bytes | Path) -> int:
    return len(data) if isinstance(data, bytes) else data.stat().st_size


def _blob(tar: tarfile.TarFile, data: bytes | Path) -> str:
    """Add a blob (bytes, or a file streamed from disk: a root filesystem layer)."""
    digest = _digest(data)
    info = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
    info.size, info.mode = _size(data), 0o644
    if isinstance(data, bytes):
        tar.addfile(info, io.BytesIO(data))
    else:
        with data.open("rb") as f:
            tar.addfile(info, f)
    return digest


def write_archive(out: Path, ref: str, layers: list[bytes | Path], config: ImageConfig) -> str:
    """Write the OCI archive of image `ref` to `out`; returns the manifest digest. A layer is an
    uncompressed tar, in memory or a file."""
    diff_ids = [_digest(data) for data in layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint or None,
            "Cmd": config.cmd or None,
            "Env": config.env,
            "User": config.user,
            "WorkingDir": config.workdir,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    with tarfile.open(out, "w") as tar:
        layer_descs = []
        for data in layers:
            layer_descs.append({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": _blob(tar, data),
                "size": _size(data),
            })  # fmt: skip
        config_bytes = json.dumps(image_config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(tar, config_bytes),
                "size": len(config_bytes),
            },
            "layers": layer_descs,
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        manifest_digest = _blob(tar, manifest_bytes)
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1],
                },
            }],
        }  # fmt: skip
        for name, data in (
            ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode()),
            ("index.json", json.dumps(index, sort_keys=True).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return manifest_digest


__all__ = ["Entry", "ImageConfig", "layer", "write_archive"]
