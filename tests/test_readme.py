"""The README tour runs as written: every `tsdl ...` line, in order, on the installed package.

Each line runs as a subprocess of the installed `tsdl` entry point, in a fresh directory that
holds only a copy of `examples/` (what a clone has), with the dataset cache and the MLflow store
inside it. Placeholders (`<run-name>`, `<mlflow-run-id>`, `<study>`, `<job>`) are filled from the
output of the lines before. The README documents the smoke overrides this test appends to lines
that would train for minutes. ETTh1 comes from a local HTTP server (TSDL_DATASETS_URL), and the
Kubernetes lines talk to the API test double (tests/deploy/_k8s_double.py) through a kubeconfig.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests._dataset_server import serve_datasets
from tests.conftest import ETTH1, REPO_ROOT
from tests.deploy._k8s_double import serve

README = REPO_ROOT / "README.md"
TSDL = Path(sys.executable).with_name("tsdl")

# The smoke overrides the README names ("append ... for a one-minute look").
SMOKE_TRAIN = ["--set", "training.max_epochs=1", "--set", "training.limit_train_batches=20"]
SMOKE_BUDGET = "smoke"

# Placeholder -> pattern over earlier output; the most recent match wins.
PLACEHOLDERS = {
    "<run-name>": re.compile(r"^run:\s+(\S+)", re.M),
    "<mlflow-run-id>": re.compile(r"^mlflow run:\s+(\w+)", re.M),
    "<study>": re.compile(r"^study (\S+): leaderboard", re.M),
    "<job>": re.compile(r"^created RayJob [^/\s]+/(\S+)", re.M),
}
# The compact-output goals of the README (issue 15): lines printed by one command.
MAX_LINES = {"tune": 60}


def tour_commands(text: str) -> list[str]:
    """The `tsdl` commands of the README tour's bash block, in order (`a && b` gives two)."""
    section = text.split("## A 5-minute tour", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands: list[str] = []
    for raw in block.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).strip()
        if line.startswith("tsdl "):
            commands += [part.strip() for part in line.split("&&")]
    return commands


def kubectl_applies(text: str) -> list[tuple[str, str]]:
    """`kubectl apply -n NS -f FILE` lines of the tour: (namespace, file), in order."""
    section = text.split("## A 5-minute tour", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    applies = []
    for raw in block.splitlines():
        argv = shlex.split(re.sub(r"\s+#.*$", "", raw).strip() or "#")
        if argv[:2] == ["kubectl", "apply"]:
            applies.append((argv[argv.index("-n") + 1], argv[argv.index("-f") + 1]))
    return applies


_RESOURCES = {
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "ConfigMap": "configmaps",
    "NetworkPolicy": "networkpolicies",
}


def _apply(double, namespace: str, manifest: Path) -> None:
    """`kubectl apply` into the API double: the kinds it serves (it has no Roles)."""
    for obj in yaml.safe_load_all(manifest.read_text()):
        if obj and obj["kind"] in _RESOURCES:
            double.add(_RESOURCES[obj["kind"]], obj, namespace)


def with_smoke(argv: list[str]) -> list[str]:
    """The documented smoke overrides: one short epoch per training, the smoke study budget."""
    argv = list(argv)
    if argv[1] == "train" and "-c" in argv:
        argv += SMOKE_TRAIN
    if argv[1] == "tune" and "--budget" in argv:
        argv[argv.index("--budget") + 1] = SMOKE_BUDGET
    return argv


def fill(command: str, transcript: str) -> str:
    for placeholder, pattern in PLACEHOLDERS.items():
        if placeholder in command:
            found = pattern.findall(transcript)
            assert found, f"{command!r}: no earlier output gives {placeholder}"
            command = command.replace(placeholder, found[-1])
    return command


def test_tour_is_extracted_in_order() -> None:
    commands = tour_commands(README.read_text())
    assert commands[0] == "tsdl datasets fetch ETTh1"
    assert "tsdl logs <job> -n ml" in commands and not any("../shared" in c for c in commands)
    assert with_smoke(["tsdl", "tune", "-c", "x.yaml", "--budget", "small"])[-1] == "smoke"


# Lines that start no training (no Ray): run in the fast suite as well.
_NO_TRAINING = {"datasets", "check-data", "config", "render", "submit", "logs", "status"}

_needs_etth1 = pytest.mark.skipif(not ETTH1.exists(), reason=f"ETTh1 not found at {ETTH1} (../shared is absent)")
_needs_entry_point = pytest.mark.skipif(
    not TSDL.exists(), reason=f"no installed tsdl entry point next to {sys.executable}"
)


@_needs_etth1
@_needs_entry_point
@pytest.mark.slow(seconds=24)
def test_readme_lines_that_do_not_train_run(tmp_path: Path) -> None:
    """The data, config and Kubernetes lines, in order (seconds; the training lines are the slow test)."""
    ran = _run_tour(tmp_path, select=lambda argv: argv[1] in _NO_TRAINING)
    assert [argv[1] for argv in ran][:2] == ["datasets", "check-data"] and "submit" in ran[-2]


@pytest.mark.slow(seconds=210)
@_needs_etth1
@_needs_entry_point
def test_readme_lines_that_train_run(tmp_path: Path) -> None:
    """The train, evaluate, predict, tune, doctor and lr-find lines, in order. They need nothing the
    other lines make (the first one fetches ETTh1 itself), so with the test above every README line
    runs exactly once per CI run (the whole tour used to run here again: ~1 minute of duplicates)."""
    commands = tour_commands(README.read_text())
    ran = _run_tour(tmp_path, select=lambda argv: argv[1] not in _NO_TRAINING)
    assert len(ran) == sum(shlex.split(c)[1] not in _NO_TRAINING for c in commands)
    assert {argv[1] for argv in ran} >= {"train", "evaluate", "predict", "tune", "doctor", "lr-find"}


def _run_tour(tmp_path: Path, *, select) -> list[list[str]]:
    """Run the selected tour lines in a fresh directory; returns the argv of each line run."""
    work = tmp_path / "clone"
    work.mkdir()
    shutil.copytree(REPO_ROOT / "examples", work / "examples")
    transcript = ""
    ran: list[list[str]] = []
    with serve_datasets({"ETTh1.csv": ETTH1.read_bytes()}) as data, serve() as (double, k8s_url):
        env = {
            **os.environ,
            "TSDL_DATA_HOME": str(tmp_path / "cache"),
            "TSDL_DATASETS_URL": data.url,
            "KUBECONFIG": str(_kubeconfig(tmp_path, k8s_url)),
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        env.pop("RAY_ADDRESS", None)
        applies = kubectl_applies(README.read_text())
        assert applies, "the tour installs the namespace's prerequisites before `tsdl submit`"
        for namespace, manifest in applies:
            _apply(double, namespace, REPO_ROOT / manifest)
        for command in tour_commands(README.read_text()):
            if not select(shlex.split(command)):
                continue
            command = fill(command, transcript)
            argv = shlex.split(command)
            stdout_file = None
            if ">" in argv:
                stdout_file = work / argv[argv.index(">") + 1]
                argv = argv[: argv.index(">")]
            if argv[1] == "submit":
                namespace = argv[argv.index("-n") + 1] if "-n" in argv else None
                _operator_for(double, work / "rayjob.yaml", namespace)
            argv = with_smoke(argv)
            started = time.monotonic()
            proc = subprocess.run(
                [str(TSDL), *argv[1:]], cwd=work, env=env, capture_output=True, text=True, timeout=900
            )
            output = proc.stdout + proc.stderr
            tail = "\n".join(output.splitlines()[-40:])
            assert proc.returncode == 0, f"README line failed (exit {proc.returncode}): {shlex.join(argv)}\n{tail}"
            print(f"{time.monotonic() - started:6.1f}s  {len(output.splitlines()):3d} lines  {shlex.join(argv)}")
            limit = MAX_LINES.get(argv[1]) if "-c" in argv else None
            if limit is not None:
                assert len(output.splitlines()) <= limit, f"{shlex.join(argv)} printed:\n{output}"
            if stdout_file is not None:
                stdout_file.write_text(proc.stdout)
            transcript += proc.stdout
            ran.append(argv)
        if any(argv[1] == "predict" for argv in ran):
            assert (work / "forecasts.parquet").exists() and (work / "tuned.yaml").exists()
    assert data.requests == ["ETTh1.csv"]  # fetched once, then read from the cache
    return ran


def _kubeconfig(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "double", "cluster": {"server": url}}],
                "users": [{"name": "tester", "user": {"token": "test"}}],
                "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
                "current-context": "double",
            }
        )
    )
    return path


def _operator_for(double, rendered: Path, namespace: str | None) -> None:
    """What KubeRay would do for the rendered RayJob: run it to success and leave driver logs."""
    job = next(d for d in yaml.safe_load_all(rendered.read_text()) if d and d.get("kind") == "RayJob")
    name, namespace = job["metadata"]["name"], namespace or job["metadata"].get("namespace", "default")
    running = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING", "rayClusterName": f"{name}-raycluster"}
    done = {**running, "jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}
    double.script_status(namespace, name, [running, done])
    double.add_pod(namespace, f"{name}-submitter", {"job-name": name}, "best val_loss 0.31\n", "2026-01-01T00:00:00Z")
