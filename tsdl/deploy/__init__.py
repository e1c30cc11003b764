"""Kubernetes deployment: a tsdl config as a KubeRay RayJob, its Helm values, and a client.

`build_manifests` is the one code path for the RayJob object; the Helm chart in `helm/tsdl`
renders the same object from `chart_values(config)` (tests/deploy proves it).
"""

from tsdl.deploy.client import RayJobClient, RayJobStatus
from tsdl.deploy.rayjob import (
    build_configmap,
    build_manifests,
    build_rayjob,
    entrypoint,
    job_name,
    with_overrides,
    workload_config,
)
from tsdl.deploy.values import chart_values, chart_values_yaml

__all__ = [
    "RayJobClient",
    "RayJobStatus",
    "build_configmap",
    "build_manifests",
    "build_rayjob",
    "chart_values",
    "chart_values_yaml",
    "entrypoint",
    "job_name",
    "with_overrides",
    "workload_config",
]
