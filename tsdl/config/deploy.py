"""Kubernetes deployment as a KubeRay RayJob: image, cluster shape and job lifecycle."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tsdl.config.base import StrictModel

__all__ = ["DeployConfig"]


class DeployConfig(StrictModel):
    """Defaults match `helm/tsdl/values.yaml`; a test keeps them in agreement."""

    namespace: str = "default"
    image: str = "ghcr.io/tsdl/tsdl:0.1.0"
    mode: Literal["train", "tune"] = "tune"
    workers: int = Field(1, ge=0)
    """Replicas of the GPU worker group."""
    gpus_per_worker: int = Field(1, ge=0)
    cpus_per_worker: int = Field(4, ge=1)
    memory_per_worker: str = "16Gi"
    ttl_seconds_after_finished: int = Field(3600, ge=0)
    active_deadline_seconds: int | None = Field(None, ge=1)
    backoff_limit: int = Field(0, ge=0)
