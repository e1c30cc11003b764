"""The e2e image's cache key (tests/deploy/cluster/image.py): what the image is made of decides
when the real-kubelet e2e rebuilds it. The build itself (podman, minutes) runs under
`make e2e-cluster`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.deploy.cluster import image

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The image's inputs in a copy of the repository (pycache included, as a developer has it)."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "docker").mkdir()
    shutil.copy(REPO / "docker" / "constraints.txt", tmp_path / "docker" / "constraints.txt")
    shutil.copytree(REPO / "tsdl", tmp_path / "tsdl")
    (tmp_path / "tsdl" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "tsdl" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"1")
    return tmp_path


@pytest.mark.parametrize(
    "path",
    ["Dockerfile", "docker/constraints.txt", "pyproject.toml", "tsdl/__init__.py", ".dockerignore"],
)
def test_the_key_changes_with_each_input_of_the_image(repo: Path, path: str) -> None:
    before = image.image_key(repo)
    with (repo / path).open("a") as f:
        f.write("\n# changed\n")
    assert image.image_key(repo) != before


def test_the_key_ignores_bytecode_and_files_outside_the_build_context(repo: Path) -> None:
    before = image.image_key(repo)
    (repo / "tsdl" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"2")
    (repo / "notes.md").write_text("not in the context")
    assert image.image_key(repo) == before


def test_the_hashed_inputs_cover_the_dockerignore_allow_list() -> None:
    """Every path the build context lets in (.dockerignore's `!` lines) is hashed: a context file
    missing from the key would let a stale image through."""
    allowed = [line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]  # fmt: skip
    hashed = {str(p.relative_to(REPO)) for p in image.inputs()}
    for path in allowed:
        assert any(h == path or h.startswith(path + "/") for h in hashed), path


def test_the_image_serves_the_names_the_manifests_run() -> None:
    refs = image.image_refs()
    text = "".join(
        (REPO / "k8s" / f).read_text() for f in ("prerequisites.yaml", "rayjob-tune.yaml")
    )
    for ref in refs:
        if ref != "tsdl:dev":  # `tsdl submit`'s image in the e2e's own configs
            assert f"image: {ref}\n" in text, ref
