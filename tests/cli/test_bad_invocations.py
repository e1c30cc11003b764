"""Every command, given bad input, ends with one line on stderr, a set exit code and no traceback.

Each case runs the real `tsdl` CLI in a subprocess (what a user sees, including library logging
on stderr), in an empty working directory with no Kubernetes or MLflow settings inherited. The
errors here all come before Ray would start, so the table stays fast.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _kubeconfig(server: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: c\n  cluster: {{server: '{server}'}}\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: u}\n"
        "users:\n- name: u\n  user: {token: t}\n"
    )


@dataclass
class Case:
    argv: list[str]
    code: int
    fragment: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    usage: bool = False
    """argparse's documented form: a usage line, then ``tsdl ...: error: ...``."""


_CFG = "data:\n  input_chunk_length: 24\n  output_chunk_length: 6\n"
_STORE = "resources:\n  storage_path: elsewhere\n"


def _cases() -> dict[str, Case | Callable[[], Case]]:
    port = _closed_port()
    down = f"http://127.0.0.1:{port}"
    return {
        # config
        "config-init-missing-dir": Case(
            ["config", "init", "-o", "nodir/sub/cfg.yaml"], 2, "cannot write config nodir/sub/cfg.yaml"
        ),
        "config-init-exists": Case(["config", "init", "-o", "c.yaml"], 2, "already exists", {"c.yaml": ""}),
        "config-init-disk-full": Case(
            ["config", "init", "-o", "/dev/full", "--force"], 2, "No space left on device"
        ),
        "config-show-missing": Case(["config", "show", "-c", "nope.yaml"], 2, "does not exist"),
        "config-show-directory": Case(["config", "show", "-c", "."], 2, "is not a file"),
        "config-show-bad-yaml": Case(["config", "show", "-c", "b.yaml"], 2, "invalid YAML", {"b.yaml": "data: [\n"}),
        "config-show-not-utf8": Case(
            ["config", "show", "-c", "l.yaml"], 2, "not UTF-8", {"l.yaml": b"data:\n  name: caf\xe9\n"}
        ),
        "config-show-unknown-key": Case(
            ["config", "show", "-c", "u.yaml"], 2, "unknown key 'data.lookback'", {"u.yaml": "data:\n  lookback: 3\n"}
        ),
        "config-show-bad-override": Case(
            ["config", "show", "--set", "training.max_epochs=many"], 2, "training.max_epochs"
        ),
        "config-show-loss-vs-scaler": Case(
            ["config", "show", "--set", "loss.name=tweedie"], 2, "data.scaler 'standard'"
        ),
        "config-unknown-action": Case(["config", "frobnicate"], 2, "invalid choice", usage=True),
        # check-data
        "check-data-missing": Case(["check-data", "nope.csv"], 2, "does not exist"),
        "check-data-binary": Case(
            ["check-data", "bin.csv"], 2, "bin.csv: not UTF-8 text", {"bin.csv": b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe,\n1,2\n"}
        ),
        "check-data-latin1-value": Case(
            ["check-data", "l.csv"], 2, "l.csv: column 'y' row 2: not UTF-8 text (byte 0xe9", {"l.csv": b"ds,y\n2020-01-01,1\n2020-01-02,2\xe9\n"}
        ),
        "check-data-nothing": Case(["check-data"], 2, "needs -c CONFIG or a FILE"),
        "datasets-unknown": Case(["datasets", "fetch", "NoSuchSet"], 2, "NoSuchSet"),
        "datasets-no-action": Case(["datasets"], 2, "required", usage=True),
        # train
        "train-missing-config": Case(["train", "-c", "nope.yaml"], 2, "does not exist"),
        "train-resume-with-config": Case(["train", "--resume", "ghost", "-c", "s.yaml"], 2, "-c would be ignored", {"s.yaml": _STORE}),
        "train-resume-unknown-run": Case(["train", "--resume", "ghost"], 2, "no tsdl run named 'ghost'"),
        "train-resume-corrupt-record": Case(
            ["train", "--resume", "broken"], 2, "tsdl_run.json is unreadable",
            {"tsdl_results/broken/tsdl_run.json": '{"run_name": "broken"'},
        ),
        "train-resume-partial-record": Case(
            ["train", "--resume", "partial"], 2, "tsdl_run.json is unreadable",
            {"tsdl_results/partial/tsdl_run.json": '{"run_name": "partial"}'},
        ),
        "train-resume-with-set": Case(
            ["train", "--resume", "r1", "--set", "training.max_epochs=9", "--num-workers", "2"], 2,
            "--set, --num-workers would be ignored",
        ),
        "train-resume-and-init-from": Case(["train", "--resume", "r1", "--init-from", "x"], 2, "not both"),
        "train-tweedie-negative-target": Case(
            ["train", "-c", "t.yaml"], 2, "needs a non-negative target",
            {
                "t.yaml": "loss: {name: tweedie}\ndata: {path: neg.csv, scaler: none, input_chunk_length: 8, "
                "output_chunk_length: 2}\n",
                "neg.csv": "ds,y\n" + "".join(f"2020-01-{d:02d},{(-1) ** d * d}\n" for d in range(1, 31)),
            },
        ),
        "train-mlflow-down": Case(
            ["train", "-c", "m.yaml"], 2, "unreachable (connection refused)",
            {"m.yaml": _CFG + f"tracking: {{tracking_uri: '{down}'}}\n"},
        ),
        # evaluate / predict
        "evaluate-missing-checkpoint": Case(["evaluate", "--checkpoint", "nock"], 2, "does not exist"),
        "evaluate-corrupt-checkpoint": Case(
            ["evaluate", "--checkpoint", "ck"], -1, "", {"ck/best.pt": b"\x1b garbage", "ck/last.pt": b"x"}
        ),
        "evaluate-unknown-run": Case(
            ["evaluate", "--run-id", "f" * 32, "--tracking-uri", down], 2, "unreachable (connection refused)"
        ),
        "predict-no-source": Case(["predict", "--input", "x.csv"], 2, "one of the arguments", usage=True),
        "predict-unknown-run": Case(
            ["predict", "--run-id", "f" * 32, "--input", "x.csv", "--tracking-uri", down], 2,
            "unreachable (connection refused)",
        ),
        # tune
        "tune-resume-unknown": Case(["tune", "--resume", "ghost"], 2, "no study 'ghost'"),
        "tune-resume-empty-state": Case(
            ["tune", "--resume", "s1"], 2, "study.json is unreadable: it lacks", {"tsdl_results/s1/study.json": "{}"}
        ),
        "tune-resume-truncated-state": Case(
            ["tune", "--resume", "s2"], 2, "study.json is unreadable: not valid JSON",
            {"tsdl_results/s2/study.json": '{"budget": "smoke", "conf'},
        ),
        "tune-resume-bad-config-in-state": Case(
            ["tune", "--resume", "s3"], 2, "data.stride",
            {"tsdl_results/s3/study.json": json.dumps({"budget": "smoke", "config": {"data": {"stride": 0}}})},
        ),
        "tune-bad-budget": Case(["tune", "--budget", "huge"], 2, "invalid choice", usage=True),
        # deploy
        "render-missing-config": Case(["render", "-c", "nope.yaml"], 2, "does not exist"),
        "status-kubeconfig-garbage": Case(
            ["status", "job1"], 2, "malformed kubeconfig", {"kube": "clusters: [\n  - {\n"}, {"KUBECONFIG": "kube"}
        ),
        "status-kubeconfig-wrong-shape": Case(
            ["status"], 2, "malformed kubeconfig", {"kube": "[1, 2]\n"}, {"KUBECONFIG": "kube"}
        ),
        "status-kubeconfig-missing": Case(
            ["logs", "job1"], 2, "no Kubernetes credentials", env={"KUBECONFIG": "no-such-kubeconfig"}
        ),
        "status-api-down": Case(
            ["status", "job1"], 2, f"cannot reach the Kubernetes API at 127.0.0.1:{port}",
            {"kube": _kubeconfig(down)}, {"KUBECONFIG": "kube"},
        ),
        "cancel-api-down": Case(
            ["cancel", "job1", "-n", "ml"], 2, "cannot reach the Kubernetes API",
            {"kube": _kubeconfig(down)}, {"KUBECONFIG": "kube"},
        ),
        "submit-api-down": Case(
            ["submit", "-c", "d.yaml"], 2, "cannot reach the Kubernetes API",
            {"kube": _kubeconfig(down), "d.yaml": "deploy: {worker: {gpu: 0}}\n"}, {"KUBECONFIG": "kube"},
        ),
        # doctor
        "doctor-nothing": Case(["doctor"], 2, "needs -c CONFIG"),
        "doctor-mlflow-down": Case(
            ["doctor", "--run-id", "abc", "--tracking-uri", down], 2, "unreachable (connection refused)"
        ),
        "doctor-out-under-a-file": Case(
            ["doctor", "-c", "d.yaml", "--out", "afile/report"], 2, "Not a directory",
            {"d.yaml": _CFG, "afile": "x"},
        ),
        "lr-find-missing-config": Case(["lr-find", "-c", "nope.yaml"], 2, "does not exist"),
        # top level
        "unknown-command": Case(["frobnicate"], 2, "invalid choice", usage=True),
    }


CASES = _cases()


def _run(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    for name, content in case.files.items():
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KUBE", "RAY_ADDRESS"))}
    env.update(HOME=str(cwd), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    env.update({k: str(cwd / v) if k == "KUBECONFIG" else v for k, v in case.env.items()})
    return subprocess.run(
        [sys.executable, "-m", "tsdl.cli.main", *case.argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_table_covers_every_command() -> None:
    from tsdl.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    covered = {case.argv[0] for case in CASES.values()}
    assert commands <= covered, f"no bad-invocation case for: {sorted(commands - covered)}"
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_invocation_is_one_line(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    proc = _run(case, tmp_path)
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    shown = f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    if case.code == -1:  # any failure code, as long as it is one line (see the case's comment)
        assert proc.returncode != 0, shown
    else:
        assert proc.returncode == case.code, shown
    if case.usage:
        assert err_lines[0].startswith("usage: tsdl") and err_lines[-1].startswith("tsdl"), shown
        assert ": error: " in err_lines[-1] and case.fragment in err_lines[-1], shown
        return
    assert len(err_lines) == 1, shown
    assert err_lines[0].startswith(("error: ", "internal error: ")), shown
    assert case.fragment in err_lines[0], shown
    assert err_lines[0].count("(fix:") <= 1, shown  # a wrapper never adds a second fix
    assert proc.stdout.strip() == "" or name.startswith(("train", "tune")), shown  # their progress
