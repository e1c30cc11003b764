"""What a finished tsdl RayJob must have left behind, checked the same way on any cluster.

Used by the cluster e2e (tests/deploy/test_cluster_scenarios.py, `make e2e-cluster`) and by
`scripts/kind-e2e.sh` on a real kind cluster:

    python -m tests.deploy.e2e_checks --tracking-uri http://localhost:5000 \\
        --experiment NAME --study NAME --storage s3://BUCKET/PREFIX   # or the local results dir

Each check raises AssertionError with what is missing; `main` prints one line per check.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["check_mlflow", "check_storage", "finished_trials", "main"]


@dataclass(frozen=True)
class MlflowSummary:
    run_id: str
    metrics: int
    artifacts: int


def check_mlflow(tracking_uri: str, experiment: str, study: str) -> MlflowSummary:
    """The study's MLflow run exists, FINISHED, with metrics and artifacts, and its trials too."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"MLflow at {tracking_uri} has no experiment {experiment!r}"
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`tsdl.study` = '{study}'", max_results=200
    )
    parents = [r for r in runs if r.data.tags.get("tsdl.kind") == "study"]
    assert parents, f"no study run tagged tsdl.study={study!r} in experiment {experiment!r}"
    parent = parents[0]
    assert parent.info.status == "FINISHED", (
        f"study run {parent.info.run_id} is {parent.info.status}"
    )
    assert parent.data.metrics, f"study run {parent.info.run_id} has no metrics"
    artifacts = client.list_artifacts(parent.info.run_id)
    assert artifacts, f"study run {parent.info.run_id} has no artifacts"
    trials = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert trials, f"study {study!r} has no trial runs"
    assert all(r.info.status != "RUNNING" for r in runs), "a run was left RUNNING"
    return MlflowSummary(parent.info.run_id, len(parent.data.metrics), len(artifacts))


def _fs(storage: str):
    from tsdl.storage import filesystem

    return filesystem(storage)


def _list(storage: str, *parts: str) -> list[str]:
    import pyarrow.fs

    fs, root = _fs(storage)
    base = "/".join([root.rstrip("/"), *parts])
    infos = fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=True, allow_not_found=True))
    return [i.path[len(root.rstrip("/")) + 1 :] for i in infos]


def check_storage(storage: str, study: str) -> int:
    """The study's state, best config and trial checkpoints are in the storage; returns files."""
    files = _list(storage, study)
    assert f"{study}/study.json" in files, f"{storage}/{study}/study.json is missing"
    assert f"{study}/best_config.yaml" in files, f"{storage}/{study}/best_config.yaml is missing"
    assert any("/checkpoint_" in f for f in files), f"no trial checkpoint under {storage}/{study}"
    return len(files)


def finished_trials(storage: str, study: str, stage: str = "stage1") -> dict[str, bytes]:
    """Trials Tune recorded TERMINATED in the stage's experiment state -> their result.json."""
    fs, root = _fs(storage)
    files = _list(storage, study, stage)
    states = sorted(f for f in files if f.rsplit("/", 1)[-1].startswith("experiment_state-"))
    if not states:
        return {}
    with fs.open_input_stream(f"{root.rstrip('/')}/{states[-1]}") as handle:
        state = json.loads(handle.read())
    done = set()
    for trial_json, _meta in state.get("trial_data", []):
        trial = json.loads(trial_json)
        if trial.get("status") == "TERMINATED":
            done.add(trial["trial_id"])
    results: dict[str, bytes] = {}
    for trial_id in done:
        result = next(
            (f for f in files if f"run_trial_{trial_id}_" in f and f.endswith("/result.json")), None
        )
        if result is not None:
            with fs.open_input_stream(f"{root.rstrip('/')}/{result}") as handle:
                results[trial_id] = handle.read()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks against a live tracking server and storage; one line each."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.deploy.e2e_checks", description=main.__doc__
    )
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--storage", help="results URI or local directory (skip if not reachable)")
    args = parser.parse_args(argv)
    try:
        summary = check_mlflow(args.tracking_uri, args.experiment, args.study)
        print(
            f"ok: MLflow study run {summary.run_id}: {summary.metrics} metrics, {summary.artifacts} artifacts"
        )
        if args.storage:
            print(
                f"ok: {check_storage(args.storage, args.study)} files under {args.storage}/{args.study}"
            )
    except AssertionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
