"""One MLflow run of a tsdl experiment, logged through an explicit MlflowClient.

The fluent ``mlflow.start_run`` API keeps one global active run per process; a Tune driver
logs a parent run and many trials at once, so every call here names its run explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from tsdl.config.loader import config_hash, dump_config, to_flat_dict
from tsdl.config.root import TsdlConfig
from tsdl.errors import TrackingError
from tsdl.tracking.manifest import MANIFEST_ARTIFACT
from tsdl.tracking.store import artifact_root_for, connect, quick_http, resolve_tracking_uri
from tsdl.tracking.system import system_info
from tsdl.tracking.worker import log_metrics, worker_logger

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "MlflowRun",
    "RunStatus",
    "dataset_name",
    "experiment_name",
    "get_run",
    "probe_tracking",
    "resolve_tracking_uri",
    "worker_logger",
]

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]

_MAX_PARAM_CHARS = 6000  # MLflow 3's limit on a param value; config.yaml keeps the full text
_MAX_PARAMS_PER_BATCH = 100


class MlflowRun:
    """A driver-side handle on one MLflow run: everything before, during and after training.

    Create it with ``start`` (new run, logs config, system info, data stats and tags) or
    ``resume`` (a run restored from a checkpoint); hand ``run_id`` and ``tracking_uri`` to
    ``worker_logger`` on the workers. Used as a context manager it finishes the run as FAILED
    when the block raises and as FINISHED otherwise.
    """

    def __init__(
        self, client: MlflowClient, *, run_id: str, experiment_id: str, tracking_uri: str
    ) -> None:
        self._client = client
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self.enabled = True
        self._finished = False

    @classmethod
    def start(
        cls,
        config: TsdlConfig,
        *,
        data_stats: Mapping[str, Any],
        run_name: str | None = None,
        parent_run_id: str | None = None,
        extra_tags: Mapping[str, str] | None = None,
        tracking_uri: str | None = None,
    ) -> MlflowRun:
        """Register the experiment, open a run and log what is known before training starts.

        Logs: tags (architecture, dataset_name, experiment_group, config hash, user tags), the
        flattened config as params, ``config.yaml``, system info (params ``system.*`` and
        ``system_info.json``) and data stats (params ``data_stats.*`` and ``data_stats.json``).

        Args:
            config: the resolved experiment config.
            data_stats: n_series, n_timesteps, split dates, window counts... (nested is fine).
            run_name: display name; MLflow generates one when None.
            parent_run_id: makes this a child run (a Tune trial under its study run).
            extra_tags: tags on top of ``config.experiment.tags`` (they win on conflicts).
            tracking_uri: an explicit store (a CLI flag); beats the environment and the config.

        Raises:
            TrackingError: the tracking store cannot be reached.
        """
        uri = resolve_tracking_uri(config.tracking, tracking_uri)
        client = connect(uri)
        experiment_id = _experiment_id(client, uri, experiment_name(config))
        tags = _run_tags(config, run_name=run_name, parent_run_id=parent_run_id, extra=extra_tags)
        run = client.create_run(experiment_id, run_name=run_name, tags=tags)
        self = cls(client, run_id=run.info.run_id, experiment_id=experiment_id, tracking_uri=uri)
        try:
            self._log_before_training(config, dict(data_stats))
        except BaseException:
            self.finish("FAILED")
            raise
        return self

    @classmethod
    def resume(cls, run_id: str, config: TsdlConfig, *, tracking_uri: str | None = None) -> MlflowRun:
        """Reopen an existing run (e.g. after a restart from checkpoint) and mark it RUNNING.

        Raises:
            TrackingError: the store cannot be reached or has no run ``run_id``.
        """
        uri = resolve_tracking_uri(config.tracking, tracking_uri)
        client = connect(uri)
        run = get_run(client, run_id, uri)
        client.update_run(run_id, status="RUNNING")
        return cls(client, run_id=run_id, experiment_id=run.info.experiment_id, tracking_uri=uri)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch scalars (train_loss, val_loss, grad_norm, lr, ...) at step ``epoch``."""
        log_metrics(self._client, self.run_id, metrics, step=epoch)

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Per-step scalars such as ``grad_norm/<layer>`` at global step ``step``."""
        log_metrics(self._client, self.run_id, metrics, step=step)

    def log_test_metrics(self, metrics: Mapping[str, float], *, prefix: str = "test_") -> None:
        """Final metrics as ``<prefix><name>`` (e.g. ``test_MAE``, ``test_orig_MAE``)."""
        log_metrics(self._client, self.run_id, {prefix + k: v for k, v in metrics.items()}, step=0)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Extra params (values stringified; too-long values are cut, see ``config.yaml``)."""
        from mlflow.entities import Param

        items = [Param(str(k), _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), _MAX_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[start : start + _MAX_PARAMS_PER_BATCH])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Tags that are only known later (e.g. ``best_epoch``, ``stopped_early``)."""
        for key, value in tags.items():
            self._client.set_tag(self.run_id, key, str(value))

    def log_artifact_dir(self, path: str | Path, artifact_path: str) -> None:
        """Upload a directory (e.g. the best checkpoint) under ``artifact_path``."""
        path = Path(path)
        if not path.is_dir():
            raise TrackingError(
                f"cannot log artifact directory {path}: it does not exist or is not a directory",
                hint="pass the checkpoint directory itself (Checkpoint.path), not a file in it",
            )
        self._client.log_artifacts(self.run_id, str(path), artifact_path)

    def log_json(self, obj: Any, name: str) -> None:
        """Write ``obj`` as an indented JSON artifact ``name`` (e.g. ``manifest.json``)."""
        self._client.log_text(self.run_id, json.dumps(obj, indent=2, default=str), name)

    def log_manifest(self, manifest: Mapping[str, Any]) -> None:
        """The reproducibility manifest (``build_manifest``) as ``manifest.json``."""
        self.log_json(dict(manifest), MANIFEST_ARTIFACT)

    def log_text(self, text: str, name: str) -> None:
        """Write ``text`` as artifact ``name`` (e.g. ``test_metrics.txt``, ``features.txt``)."""
        self._client.log_text(self.run_id, text, name)

    def log_figure(self, png_path: str | Path, artifact_path: str = "plots") -> None:
        """Upload a PNG written by ``tsdl.tracking.plots`` under ``artifact_path``."""
        path = Path(png_path)
        if not path.is_file():
            raise TrackingError(
                f"cannot log figure {path}: file does not exist",
                hint="write it first with tsdl.tracking.plots",
            )
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def finish(self, status: RunStatus = "FINISHED") -> None:
        """End the run with ``status``; later calls are ignored so a failure path may call it too."""
        if self._finished:
            return
        self._client.set_terminated(self.run_id, status=status)
        self._finished = True

    def __enter__(self) -> MlflowRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        if exc_type is KeyboardInterrupt:
            self.finish("KILLED")
        else:
            self.finish("FAILED" if exc_type is not None else "FINISHED")

    def _log_before_training(self, config: TsdlConfig, data_stats: dict[str, Any]) -> None:
        system = system_info()
        params: dict[str, Any] = dict(to_flat_dict(config))
        params.update({f"system.{k}": v for k, v in system.items()})
        params.update({f"data_stats.{k}": v for k, v in _flatten(data_stats).items()})
        self.log_params(params)
        self.log_text(dump_config(config), "config.yaml")
        self.log_json(system, "system_info.json")
        self.log_json(data_stats, "data_stats.json")


def probe_tracking(config: TsdlConfig, tracking_uri: str | None = None) -> str:
    """Reach the store and get or create the config's experiment, or fail within seconds.

    Run before a long job starts: `tsdl tune` logs to MLflow only when the study ends, so an
    unreachable server or an unwritable store would otherwise be found after hours of trials.
    Returns the tracking URI.

    Raises:
        TrackingError: one line naming the URI, what failed, and the fix (one short HTTP try,
            not MLflow's minutes of retries).
    """
    uri = resolve_tracking_uri(config.tracking, tracking_uri)
    client = connect(uri)
    name = experiment_name(config)
    try:
        with quick_http():
            _experiment_id(client, uri, name)
    except TrackingError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise TrackingError(
            f"MLflow tracking store {uri} cannot create experiment {name!r}: {reason}",
            hint="check the store's permissions and disk, or set MLFLOW_TRACKING_URI to a writable store",
        ) from None
    return uri


def experiment_name(config: TsdlConfig) -> str:
    """The MLflow experiment of a config: tracking.experiment_name, else experiment.name."""
    return config.tracking.experiment_name or config.experiment.name


def dataset_name(config: TsdlConfig) -> str:
    """data.name, else data.dataset, else the data file's stem, else ``synthetic``."""
    if config.data.name or config.data.dataset:
        return config.data.name or str(config.data.dataset)
    return Path(config.data.path).stem if config.data.path is not None else "synthetic"


def get_run(client: MlflowClient, run_id: str, tracking_uri: str) -> Any:
    """``client.get_run`` with a TrackingError naming the run and the store when it is missing."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise TrackingError(
            f"MLflow run {run_id!r} not found in {tracking_uri}",
            hint="check the run id (`mlflow ui` lists runs) and tracking.tracking_uri "
            "/ $MLFLOW_TRACKING_URI",
        ) from None


def _experiment_id(client: MlflowClient, tracking_uri: str, name: str) -> str:
    """Get or create the experiment; tolerate another process creating it concurrently."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"MLflow experiment {name!r} in {tracking_uri} is deleted",
                hint=f"restore it (`mlflow experiments restore`) or set tracking.experiment_name "
                f"to another name than {name!r}",
            )
        return experiment.experiment_id
    try:
        return client.create_experiment(
            name, artifact_location=artifact_root_for(tracking_uri, name)
        )
    except MlflowException:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _run_tags(
    config: TsdlConfig,
    *,
    run_name: str | None,
    parent_run_id: str | None,
    extra: Mapping[str, str] | None,
) -> dict[str, str]:
    tags = {
        "architecture": config.model.name,
        "dataset_name": dataset_name(config),
        "tsdl.config_hash": config_hash(config),
    }
    if config.experiment.group:
        tags["experiment_group"] = config.experiment.group
    if run_name:
        tags["mlflow.runName"] = run_name
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    tags.update(config.experiment.tags)
    tags.update({str(k): str(v) for k, v in (extra or {}).items()})
    return tags


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, sub in value.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(sub, Mapping):
            flat.update(_flatten(sub, dotted))
        else:
            flat[dotted] = sub
    return flat


def _param_value(value: Any) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."
