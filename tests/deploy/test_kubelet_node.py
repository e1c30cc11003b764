"""The kubelet node's offline parts: the OCI archives it imports into containerd, its refusal lines.

The attempt itself (`python -m tests.deploy.cluster.kubelet`) needs root, containerd and the built
kubelet; it is run by hand and its measured outcome is in docs/deploy.md.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from tests.deploy.cluster import kubelet
from tests.deploy.cluster.oci import Entry, ImageConfig, layer, write_archive


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_an_oci_archive_is_content_addressed_and_named_for_containerd(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF-not-really")
    data = layer([
        Entry("bin", mode=0o755), Entry("bin/tool", source=binary),
        Entry("bin/sh", link="tool"), Entry("home/ray", mode=0o755, uid=1000, gid=100),
        Entry("etc/passwd", data=b"ray:x:1000:100::/home/ray:/bin/sh\n", mode=0o644),
    ])  # fmt: skip
    archive = tmp_path / "img.tar"
    digest = write_archive(
        archive, "tsdl.local/tool:2", [data], ImageConfig(entrypoint=["/bin/tool"])
    )
    blobs = _members(archive)
    for name, content in blobs.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(content).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(blobs["index.json"])
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"]["io.containerd.image.name"] == "tsdl.local/tool:2"
    manifest = json.loads(blobs["blobs/sha256/" + digest.split(":")[1]])
    config = json.loads(blobs["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(data).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert [m["digest"] for m in manifest["layers"]] == config["rootfs"]["diff_ids"]


def test_a_layer_keeps_links_owners_and_modes_and_is_reproducible(tmp_path: Path) -> None:
    entries = [Entry("tmp", mode=0o1777), Entry("bin/sh", link="busybox"),
               Entry("home/ray", mode=0o755, uid=1000, gid=100)]  # fmt: skip
    data = layer(entries)
    assert data == layer(list(reversed(entries)))
    (tmp_path / "l.tar").write_bytes(data)
    with tarfile.open(tmp_path / "l.tar") as tar:
        got = {m.name: m for m in tar.getmembers()}
    assert got["bin/sh"].issym() and got["bin/sh"].linkname == "busybox"
    assert (got["home/ray"].uid, got["home/ray"].gid) == (1000, 100)
    assert got["tmp"].isdir() and got["tmp"].mode == 0o1777


def test_the_refusal_is_the_last_klog_error_line() -> None:
    log = (
        "I1206 08:40:00.1 server.go:1] starting\n"
        'E1206 08:40:01.2 kubelet.go:9] "Failed to start ContainerManager" err="cpuset"\n'
        "I1206 08:40:02.3 server.go:2] shutting down\n"
    )
    assert kubelet.last_error(log).startswith('E1206 08:40:01.2 kubelet.go:9] "Failed to start')
    assert kubelet.last_error("only this\n") == "only this"
    containerd = 'time="x" level=error msg="failed to load cni"\ntime="y" level=info msg=ok\n'
    assert "failed to load cni" in kubelet.last_error(containerd)


def test_a_missing_node_tool_is_named_with_its_debian_package(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(kubelet.shutil, "which", lambda tool: None if tool == "runc" else "/x")
    monkeypatch.setattr(kubelet.Path, "exists", lambda self: True)
    assert kubelet.missing_tools() == "missing node packages: run `apt-get install runc`"
    monkeypatch.setattr(kubelet.shutil, "which", lambda tool: "/x")
    assert kubelet.missing_tools() is None


def test_a_layer_from_a_file_is_the_same_blob_as_from_memory(tmp_path: Path) -> None:
    data = layer([Entry("etc/hostname", data=b"standin\n", mode=0o644)])
    (tmp_path / "rootfs.tar").write_bytes(data)
    from_memory = write_archive(tmp_path / "a.tar", "tsdl.local/x:1", [data], ImageConfig())
    from_file = write_archive(
        tmp_path / "b.tar", "tsdl.local/x:1", [tmp_path / "rootfs.tar"], ImageConfig()
    )
    assert from_memory == from_file
    assert _members(tmp_path / "a.tar") == _members(tmp_path / "b.tar")


def test_image_names_are_tagged_as_the_cri_looks_them_up() -> None:
    assert kubelet.normalized("tsdl:dev") == "docker.io/library/tsdl:dev"
    assert kubelet.normalized("team/tsdl:1") == "docker.io/team/tsdl:1"
    assert kubelet.normalized("ghcr.io/tsdl/tsdl:0.1.0-cpu") == "ghcr.io/tsdl/tsdl:0.1.0-cpu"
    assert kubelet.normalized("localhost/tsdl:1") == "localhost/tsdl:1"
    assert kubelet.normalized("registry:5000/tsdl:1") == "registry:5000/tsdl:1"


def test_the_two_nodes_share_nothing_a_kubelet_would_fight_over(tmp_path: Path) -> None:
    """A kubelet kills running Pods and pod cgroups it does not know, and host-local IPAM hands
    out addresses from its own store: each Node needs its own containerd (socket, root), cgroup
    root and address range, on one shared bridge."""
    host = kubelet.KubeletNode(tmp_path, tmp_path / "cache", shapes=(kubelet.CPU_POOL, kubelet.GPU_POOL),
                               persistent_images=True)  # fmt: skip
    cpu, gpu = host.nodes
    assert cpu.sock != gpu.sock and cpu.root != gpu.root and cpu.cgroup_root != gpu.cgroup_root
    assert cpu.root.parent == tmp_path / "cache" / "containerd"  # kept between runs
    ranges = []
    for node in host.nodes:
        toml = host.containerd_config(node, "overlayfs").read_text()
        assert f'root = "{node.root}"' in toml and f'address = "{node.sock}"' in toml
        host.cni_config(node)
        conf = json.loads((node.dir / "cni" / "net.d" / "10-tsdl.conflist").read_text())
        bridge = conf["plugins"][0]
        assert bridge["bridge"] == kubelet.BRIDGE
        (r,) = bridge["ipam"]["ranges"][0]
        ranges.append({int(r["rangeStart"].rsplit(".", 1)[1]), int(r["rangeEnd"].rsplit(".", 1)[1])})
        config = json.loads(host.kubelet_config(node, {}).read_text())
        assert config["cgroupRoot"] == node.cgroup_root
        assert config["containerRuntimeEndpoint"] == f"unix://{node.sock}"
        assert config["registerWithTaints"] == list(node.shape.taints)
    (a_lo, a_hi), (b_lo, b_hi) = (sorted(r) for r in ranges)
    assert a_hi < b_lo or b_hi < a_lo  # disjoint
    assert gpu.shape.gpus == 1 and gpu.shape.taints[0]["key"] == "nvidia.com/gpu"
    assert not cpu.shape.taints
