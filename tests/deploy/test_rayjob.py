"""One RayJob, two paths: `build_manifests` (tsdl render/submit) equals `helm template` of the chart."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._schemas import ObjectValidator
from tsdl.cli.main import main
from tsdl.config import TsdlConfig, parse_config
from tsdl.deploy import build_manifests, chart_values, job_name, with_overrides
from tsdl.deploy.chart import render_chart
from tsdl.errors import ConfigError, DeployError

# The only difference allowed: who created the object (Helm vs tsdl).
_CREATOR_LABEL = "app.kubernetes.io/managed-by"

CONFIGS: dict[str, dict[str, Any]] = {
    "defaults-with-gpu": {"resources": {"use_gpu": True}},
    "cpu-train": {
        "experiment": {"name": "Sales_Weekly.v2"},
        "training": {"optimizer": {"lr": 1e-7}, "max_epochs": 3},
        "deploy": {
            "mode": "train",
            "worker": {"gpu": 0, "cpu": 4, "tolerations": []},
            "namespace": "team-a",
        },
    },
    "everything": {
        "resources": {"use_gpu": True, "num_workers": 8},
        "data": {
            "split": {"method": "timestamp", "val_start": "2017-06-01", "test_start": "2017-10-01"}
        },
        "deploy": {
            "name": "etth1-nightly",
            "image": "registry.example.com/tsdl:abc123",
            "image_pull_policy": "Always",
            "image_pull_secrets": ["registry"],
            "autoscaling": True,
            "shm_size": "32Gi",
            "read_only_root_filesystem": False,
            "head": {"cpu": "4", "memory": "16Gi", "node_selector": {"pool": "cpu"}},
            "worker": {
                "replicas": 2,
                "min_replicas": 0,
                "max_replicas": 6,
                "gpu": 4,
                "node_selector": {"pool": "a100"},
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "gpu", "operator": "In", "values": ["a100"]}
                                    ]
                                }
                            ]
                        }
                    }
                },
                "ray_start_params": {"object-store-memory": "10000000000"},
            },
            "storage": {"uri": "s3://ml-results/tsdl"},
            "mlflow": {
                "tracking_uri": "https://mlflow.example.com",
                "credentials_secret": "mlflow-aws",
            },
            "gang": {"scheduler": "volcano", "queue": "research"},
            "submitter": {"backoff_limit": 5, "cpu": "1", "memory": "2Gi"},
            "shutdown_after_job_finishes": False,
            "ttl_seconds_after_finished": 0,
            "active_deadline_seconds": 86400,
            "backoff_limit": 2,
        },
    },
    "kueue": {
        "resources": {"use_gpu": True},
        "deploy": {"gang": {"scheduler": "kueue", "queue": "gpu-queue"}, "worker": {"replicas": 1}},
    },
}


def _without_creator(obj: Any) -> Any:
    obj = copy.deepcopy(obj)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            labels = node.get("labels")
            if isinstance(labels, dict):
                labels.pop(_CREATOR_LABEL)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return obj


def _helm_objects(
    config: TsdlConfig, values: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    rendered = render_chart(
        chart_values(config, complete=True) if values is None else values,
        release=job_name(config),
        namespace=config.deploy.namespace,
    )
    return {obj["kind"]: obj for obj in rendered}


def _assert_same(python: list[dict[str, Any]], helm: dict[str, dict[str, Any]]) -> None:
    by_kind = {obj["kind"]: obj for obj in python}
    configmap, job = by_kind["ConfigMap"], by_kind["RayJob"]
    assert set(by_kind) == set(helm)  # no ServiceAccount, Role or claim: those are prerequisites
    assert _without_creator(job) == _without_creator(helm["RayJob"])
    if "NetworkPolicy" in by_kind:
        assert _without_creator(by_kind["NetworkPolicy"]) == _without_creator(helm["NetworkPolicy"])
    # The mounted file must load to the same config; its text differs only in YAML formatting.
    ours = yaml.safe_load(configmap["data"]["config.yaml"])
    theirs = yaml.safe_load(helm["ConfigMap"]["data"]["config.yaml"])
    assert parse_config(ours) == parse_config(theirs)
    assert _without_creator({**configmap, "data": {}}) == _without_creator(
        {**helm["ConfigMap"], "data": {}}
    )


@pytest.mark.parametrize("case", CONFIGS)
def test_python_and_helm_render_the_same_rayjob(case: str, validator: ObjectValidator) -> None:
    config = parse_config(CONFIGS[case])
    python = build_manifests(config)
    _assert_same(python, _helm_objects(config))
    assert [e for obj in python for e in validator.errors(obj)] == []
    assert python[-1]["metadata"]["labels"][_CREATOR_LABEL] == "tsdl"


def test_tsdl_render_equals_helm_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(CONFIGS["everything"]))
    assert (
        main(["render", "-c", str(path), "--workers", "3", "--image", "tsdl:pr-7", "-n", "ml"]) == 0
    )
    printed = list(yaml.safe_load_all(capsys.readouterr().out))
    config = with_overrides(
        parse_config(CONFIGS["everything"]), namespace="ml", image="tsdl:pr-7", workers=3
    )
    _assert_same(printed, _helm_objects(config))
    worker = printed[-1]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert (worker["minReplicas"], worker["replicas"], worker["maxReplicas"]) == (0, 3, 6)


def test_job_name_is_a_valid_kuberay_name() -> None:
    assert (
        job_name(parse_config({"experiment": {"name": "ETTh1_Long.Horizon"}}))
        == "etth1-long-horizon-tune"
    )
    long = job_name(parse_config({"experiment": {"name": "x" * 60}, "deploy": {"mode": "train"}}))
    assert len(long) == 47 and long.endswith("-train")
    assert job_name(parse_config({"deploy": {"name": "given"}})) == "given"


def test_idle_gpus_are_refused() -> None:
    with pytest.raises(DeployError, match="deploy.worker.gpu is 1 but resources.use_gpu is false"):
        build_manifests(parse_config({"deploy": {"worker": {"gpu": 1}}}))


@pytest.mark.parametrize("use_gpu", [False, True])
def test_worker_gpus_follow_use_gpu_unless_set(use_gpu: bool) -> None:
    """One switch: `resources.use_gpu` alone gives CPU or GPU workers, in tsdl and in the chart."""
    config = parse_config({"resources": {"use_gpu": use_gpu}})
    for job in (build_manifests(config)[-1], _helm_objects(config)["RayJob"]):
        worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
        assert worker["resources"]["limits"].get("nvidia.com/gpu", 0) == int(use_gpu)
    chart_only = render_chart({"config": {"resources": {"use_gpu": use_gpu}}})
    worker = next(o for o in chart_only if o["kind"] == "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0) == int(use_gpu)
    explicit = parse_config({"resources": {"use_gpu": True}, "deploy": {"worker": {"gpu": 4}}})
    assert build_manifests(explicit)[-1]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"][
        "containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_example_renders_as_is(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newcomer's first `tsdl render -c examples/X.yaml` succeeds; `--set resources.use_gpu=true`
    turns the workers into GPU workers."""
    assert main(["render", "-c", str(example)]) == 0, capsys.readouterr().err
    job = list(yaml.safe_load_all(capsys.readouterr().out))[-1]
    limits = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in limits["limits"]
    assert main(["render", "-c", str(example), "--set", "resources.use_gpu=true"]) == 0
    job = list(yaml.safe_load_all(capsys.readouterr().out))[-1]
    limits = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    assert limits["limits"]["nvidia.com/gpu"] == 1


def test_flag_overrides_are_validated_like_config() -> None:
    config = parse_config({"resources": {"use_gpu": True}})
    assert with_overrides(config) is config
    changed = with_overrides(config, gpus_per_worker=2, workers=4)
    assert (
        changed.deploy.worker.gpu,
        changed.deploy.worker.replicas,
        changed.deploy.worker.max_replicas,
    ) == (2, 4, 4)
    with pytest.raises(ConfigError, match=r"^command line: deploy\.namespace: .*Not_A_Namespace"):
        with_overrides(config, namespace="Not_A_Namespace")


def test_render_cli_reports_bad_flags_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("resources:\n  use_gpu: true\n")
    assert main(["render", "-c", str(path), "--gpus-per-worker", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: command line: deploy.worker.gpu") and "Traceback" not in err
