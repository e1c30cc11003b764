"""Every command, given bad input, ends with one line on stderr, a set exit code and no traceback.

Each case runs the real `tsdl` CLI in a subprocess (what a user sees, including library logging
on stderr), in an empty working directory with no Kubernetes or MLflow settings inherited. The
errors here all come before Ray would start, so the table stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import default_sigint

REPO_ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A 127.0.0.1 port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@functools.cache
def _silent_port() -> int:
    """A 127.0.0.1 port that accepts every connection and never answers (a hung server), for
    the life of the test process."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(server.accept()[0]) for _ in iter(int, 1)], daemon=True).start()
    return server.getsockname()[1]


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
    absent: tuple[str, ...] = ()
    """Paths (relative to the working directory) the command must not have written."""
    seconds: float = 90.0
    """Wall-clock bound of the whole command (start-up included; CI machines are slow)."""


_CFG = "data:\n  input_chunk_length: 24\n  output_chunk_length: 6\n"
_FAST = _CFG + "training: {max_epochs: 1}\ntracking: {enabled: false}\n"
"""A config that would train in seconds: what fails is the invocation, never the training."""
_LAUGHS = ["&a [x, x, x, x, x, x, x, x, x]"] + [
    f"&{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)
]
_BOMB = "experiment:\n  group:\n" + "".join(f"    - {laugh}\n" for laugh in _LAUGHS)
"""A 'billion laughs' YAML: 9 ** 9 values once its aliases are expanded, under a real field (main
spent minutes and GBs echoing it in the error, then said "out of memory" with a batch-size hint)."""
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
        # issue 23: names that become paths or Kubernetes objects (one pattern, tsdl.config.names)
        "train-run-name-traversal": Case(
            ["train", "-c", "f.yaml", "--run-name", "../../escaped"], 2, "--run-name '../../escaped' is not a valid name",
            {"f.yaml": _FAST}, absent=("../escaped", "tsdl_results/../../escaped"),
        ),
        "train-run-name-absolute": Case(
            ["train", "-c", "f.yaml", "--run-name", "/tmp/tsdl-abs-run"], 2, "is not a valid name", {"f.yaml": _FAST},
        ),
        "train-run-name-shell": Case(
            ["train", "-c", "f.yaml", "--run-name", "x;touch pwned"], 2, "is not a valid name", {"f.yaml": _FAST},
            absent=("pwned",),
        ),
        "train-run-name-unicode": Case(
            ["train", "-c", "f.yaml", "--run-name", "modèle-été"], 2, "is not a valid name", {"f.yaml": _FAST},
        ),
        "train-run-name-flag-like": Case(
            ["train", "-c", "f.yaml", "--run-name=-rf"], 2, "is not a valid name", {"f.yaml": _FAST},
        ),
        "train-resume-outside-storage": Case(
            ["train", "--resume", "../outside"], 2, "--resume '../outside' is not a valid name",
            {"outside/tsdl_run.json": '{"run_name": "outside"}'},
        ),
        "tune-study-name-traversal": Case(
            ["tune", "--study-name", "../../s", "--budget", "smoke"], 2, "--study-name '../../s' is not a valid name",
        ),
        "tune-resume-traversal": Case(["tune", "--resume", "../x"], 2, "--resume '../x' is not a valid name"),
        "config-experiment-name-slash": Case(
            ["config", "show", "--set", "experiment.name=a/../../b"], 2, "experiment.name: not a valid name"
        ),
        "config-mlflow-experiment-traversal": Case(
            ["config", "show", "-c", "e.yaml"], 2, "tracking.experiment_name: not a valid name",
            {"e.yaml": "tracking:\n  experiment_name: ../../etc\n"},
        ),
        "status-job-traversal": Case(
            ["status", "../../../api/v1/secrets"], 2, "JOB '../../../api/v1/secrets' is not a valid name",
            {"kube": _kubeconfig(down)}, {"KUBECONFIG": "kube"},
        ),
        "logs-namespace-traversal": Case(
            ["logs", "job1", "-n", "../kube-system"], 2, "deploy.namespace",
            {"kube": _kubeconfig(down)}, {"KUBECONFIG": "kube"},
        ),
        # issue 23: resources that cannot be had (refused before the data is read or Ray starts)
        "train-more-workers-than-cpus": Case(
            ["train", "-c", "f.yaml", "--num-workers", "4096"], 2, "needs CPU=4096", {"f.yaml": _FAST},
        ),
        "train-gpus-beyond-the-machine": Case(
            ["train", "-c", "f.yaml", "--gpus", "--set", "resources.gpus_per_worker=512"], 2, "drop --gpus",
            {"f.yaml": _FAST},
        ),
        "train-cpus-per-worker-beyond-the-machine": Case(
            ["train", "-c", "f.yaml", "--set", "resources.cpus_per_worker=100000", "--num-workers", "2"], 2,
            "needs CPU=200000", {"f.yaml": _FAST},
        ),
        # issue 23: servers that do not answer, or junk where their address goes
        "train-ray-address-silent": Case(
            ["train", "-c", "f.yaml", "--address", f"127.0.0.1:{_silent_port()}", "--set",
             "resources.connect_timeout_s=2"], 2, "no answer within 2 s", {"f.yaml": _FAST}, seconds=60,
        ),
        "train-ray-client-address-refused": Case(
            ["train", "-c", "f.yaml", "--address", f"ray://127.0.0.1:{port}"], 2, "unreachable", {"f.yaml": _FAST},
        ),
        "train-ray-address-is-a-url": Case(
            ["train", "-c", "f.yaml", "--address", "http://127.0.0.1:8265/"], 2, "is not auto, host:port",
            {"f.yaml": _FAST},
        ),
        "train-RAY_ADDRESS-junk": Case(
            ["train", "-c", "f.yaml"], 2, "'definitely not an address' is not auto, host:port", {"f.yaml": _FAST},
            {"RAY_ADDRESS": "definitely not an address"},
        ),
        "tune-ray-address-silent": Case(
            ["tune", "--budget", "smoke", "--address", f"127.0.0.1:{_silent_port()}", "--set",
             "resources.connect_timeout_s=2"], 2, "no answer within 2 s", seconds=60,
        ),
        "train-mlflow-silent": Case(
            ["train", "-c", "f.yaml", "--set", "tracking.enabled=true", "--tracking-uri",
             f"http://127.0.0.1:{_silent_port()}"], 2, "unreachable (timed out: no answer to 3 requests in 35 s)", {"f.yaml": _FAST}, seconds=90,
        ),
        "train-MLFLOW_TRACKING_URI-unknown-scheme": Case(
            ["train", "-c", "f.yaml", "--set", "tracking.enabled=true"], 2, "gopher://nowhere",
            {"f.yaml": _FAST}, {"MLFLOW_TRACKING_URI": "gopher://nowhere"},
        ),
        # issue 23: storage that cannot be written
        "train-storage-under-a-file": Case(
            ["train", "-c", "f.yaml", "--set", "resources.storage_path=afile/results"], 2, "resources.storage_path",
            {"f.yaml": _FAST, "afile": "x"},
        ),
        "train-storage-on-a-full-device": Case(
            ["train", "-c", "f.yaml", "--set", "resources.storage_path=/dev/full"], 2, "resources.storage_path",
            {"f.yaml": _FAST},
        ),
        # issue 23: YAML and flag values: typing, size, expansion
        "config-alias-bomb": Case(["config", "show", "-c", "bomb.yaml"], 2, "expands to more than", {"bomb.yaml": _BOMB}),
        "config-alias-bomb-in-set": Case(
            ["config", "show", "--set", "experiment.group=[" + ", ".join(_LAUGHS) + "]"], 2,
            "expands to more than",
        ),
        "config-huge-number": Case(["config", "show", "--set", "training.seed=" + "9" * 100_000], 2, "training.seed"),
        "config-huge-string-echoed": Case(
            ["config", "show", "--set", "deploy.namespace=" + "X" * 100_000], 2, "(100000 chars)"
        ),
        "config-huge-file": Case(["config", "show", "-c", "big.yaml"], 2, "a tsdl config is at most", {"big.yaml": "#" * (2 << 20)}),
        "config-deep-nesting": Case(["config", "show", "-c", "deep.yaml"], 2, "nest", {"deep.yaml": "data: " + "[" * 5000 + "]" * 5000}),
        "config-python-tag": Case(
            ["config", "show", "-c", "tag.yaml"], 2, "unsupported YAML",
            {"tag.yaml": "data: !!python/object/apply:os.system ['touch pwned']\n"}, absent=("pwned",),
        ),
        "check-data-file-named-like-a-comment": Case(["check-data", "#data.csv"], 2, "#data.csv does not exist"),
        "check-data-file-named-null": Case(["check-data", "null"], 2, "null does not exist"),
        # top level
        "unknown-command": Case(["frobnicate"], 2, "invalid choice", usage=True),
    }


CASES = _cases()


def _env(case: Case, cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KUBE", "RAY_ADDRESS"))}
    env.update(HOME=str(cwd), PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    env.update({k: str(cwd / v) if k == "KUBECONFIG" else v for k, v in case.env.items()})
    return env


def _write(case: Case, cwd: Path) -> None:
    for name, content in case.files.items():
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _run(case: Case, cwd: Path) -> subprocess.CompletedProcess[str]:
    _write(case, cwd)
    return subprocess.run(
        [sys.executable, "-m", "tsdl.cli.main", *case.argv],
        cwd=cwd,
        env=_env(case, cwd),
        capture_output=True,
        text=True,
        timeout=max(120, case.seconds + 30),
    )


def _written(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_the_table_covers_every_command() -> None:
    from tsdl.cli.main import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    covered = {case.argv[0] for case in CASES.values()}
    assert commands <= covered, f"no bad-invocation case for: {sorted(commands - covered)}"
    assert len(CASES) >= 80


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_invocation_is_one_line(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    cwd = tmp_path / "cwd"  # anything written in tmp_path but outside cwd escaped it
    cwd.mkdir()
    start = time.monotonic()
    proc = _run(case, cwd)
    elapsed = time.monotonic() - start
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    shown = f"rc={proc.returncode} in {elapsed:.0f} s\nstdout:\n{proc.stdout[:3000]}\nstderr:\n{proc.stderr[:3000]}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert elapsed < case.seconds, shown
    assert len(proc.stdout) + len(proc.stderr) < 20_000 and all(len(line) <= 1000 for line in err_lines), shown
    assert [p.name for p in tmp_path.iterdir()] == ["cwd"], f"written outside the working directory: {shown}"
    assert not [p for p in case.absent if (cwd / p).exists()], shown
    left = _written(cwd) - set(case.files) - {"mlflow.db"}  # the tracking probe creates the local store
    assert not left, f"a refused command left {sorted(left)}"
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


@dataclass
class Signals:
    argv: list[str]
    signals: list[signal.Signals]
    after: str | None
    """Send once a stdout line starts with this (None: 0.3 s after the start, during imports)."""
    codes: tuple[int, ...] = (143,)


def _long_csv() -> str:
    """Enough rows that reading and checking them takes a moment (hourly, 20 years)."""
    import numpy as np
    import pandas as pd

    index = pd.date_range("2000-01-01", periods=175_000, freq="h")
    values = np.sin(np.arange(len(index)) / 24.0)
    return "ds,y\n" + "".join(f"{t},{v:.4f}\n" for t, v in zip(index.astype(str), values, strict=True))


SIGNAL_CASES = {
    # before the CLI's own handler exists: the default action, no traceback, nothing written
    "sigterm-during-start-up": Signals(["train", "-c", "s.yaml"], [signal.SIGTERM], None, (143, -15)),
    # after `tracking: ...`, the data is being read and checked
    "sigterm-during-checklist": Signals(["train", "-c", "s.yaml"], [signal.SIGTERM], "tracking:"),
    "sigterm-twice": Signals(["train", "-c", "s.yaml"], [signal.SIGTERM, signal.SIGTERM], "tracking:"),
    "sigint-then-sigterm": Signals(["train", "-c", "s.yaml"], [signal.SIGINT, signal.SIGTERM], "tracking:", (130, 143)),
}


@pytest.mark.parametrize("name", sorted(SIGNAL_CASES))
def test_a_signal_at_an_awkward_moment_is_one_line(name: str, tmp_path: Path) -> None:
    case = SIGNAL_CASES[name]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    files = {"s.yaml": "data: {path: long.csv, input_chunk_length: 24, output_chunk_length: 6}\n"
             "training: {max_epochs: 1}\n", "long.csv": _long_csv()}
    spec = Case(case.argv, 0, "", files)
    _write(spec, cwd)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsdl.cli.main", *case.argv], cwd=cwd, env=_env(spec, cwd),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
    )
    out = ""
    if case.after is None:
        time.sleep(0.3)
    else:
        deadline = time.monotonic() + 120
        while not any(line.startswith(case.after) for line in out.splitlines()) and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            out += line
    for sig in case.signals:
        proc.send_signal(sig)
        time.sleep(0.05)
    try:
        rest, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{name}: still running 60 s after the signal")
    out += rest
    shown = f"rc={proc.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    err_lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode in case.codes, shown
    assert "Traceback" not in out + err and len(err_lines) <= 1, shown
    if proc.returncode > 0:
        assert err_lines and err_lines[0].startswith(("terminated (SIGTERM)", "interrupted")), shown
    runs = cwd / "tsdl_results"
    assert not runs.exists() or not any(runs.iterdir()), f"a stopped start-up left {sorted(_written(runs))}"
