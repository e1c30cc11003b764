"""One trial: the base config plus the sampled params, trained by ``tsdl.train.build_trainer``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tsdl.config import TsdlConfig
from tsdl.tune.budget import StudyPlan
from tsdl.tune.space import apply_params

if TYPE_CHECKING:
    from tsdl.data import PreparedData

__all__ = ["run_trial", "trial_config"]


def trial_config(base: TsdlConfig, params: Mapping[str, Any], plan: StudyPlan) -> TsdlConfig:
    """The config a trial trains: the study's epoch budget, no MLflow of its own, then ``params``.

    The trainer stops by itself at ``plan.max_epochs`` (ASHA's max_t); the study logs trials to
    MLflow from the driver, so the trial's trainer does not open a run.
    """
    raw = base.model_dump(mode="json")
    raw["training"]["max_epochs"] = plan.max_epochs
    raw["training"]["limit_train_batches"] = plan.limit_train_batches
    raw["tracking"]["enabled"] = False
    return apply_params(TsdlConfig.model_validate(raw), params)


def run_trial(
    params: dict[str, Any],
    *,
    base: dict[str, Any],
    plan: StudyPlan,
    prepared: Mapping[int, PreparedData],
    registry: str,
    storage_path: str,
) -> None:
    """Tune function trainable: train one sampled config, reporting every epoch to Tune.

    A single-worker trial runs the training loop right here, in the trial actor, on the study's
    prepared windows (:mod:`tsdl.train.in_process`); it reports its checkpoints to Tune, which
    restores a failed or resumed trial from the latest one. A multi-worker trial starts a
    ``TorchTrainer`` (DDP) that reports through :mod:`tsdl.tune.teardown`.

    Args:
        params: the trial's sampled values by dotted path (Tune's ``config``).
        base: the study's resolved config as a plain dict.
        plan: the study's budget.
        prepared: scaled data per ``input_chunk_length`` (prepared once on the driver).
        registry: name of the study's :class:`~tsdl.tune.teardown.TrialRegistry` actor.
        storage_path: where a multi-worker trial's Train run checkpoints; it resumes there.
    """
    from ray import tune

    from tsdl.train.seeding import set_cublas_workspace

    # Tune gives a function trainable's actor no runtime environment of ours (its class cache
    # builds a fixed one), and a reused actor may already have run a non-deterministic trial:
    # the trial sets it before any CUDA work, so the actor's first cuBLAS call sees it.
    set_cublas_workspace()
    config = trial_config(TsdlConfig.model_validate(base), params, plan)
    data = prepared[config.data.input_chunk_length]
    from tsdl.train.in_process import run_in_process, trains_in_process

    if trains_in_process(config, in_trial=True):
        from tsdl.train.checkpoint_store import newest_beside
        from tsdl.train.trainer import make_loop_config

        run_in_process(
            make_loop_config(config, data),
            data,
            checkpoint=newest_beside(tune.get_checkpoint()),
            report=_report_to_tune,
            use_gpu=config.resources.use_gpu,
        )
        return

    from tsdl.train import build_trainer
    from tsdl.tune.teardown import fit_in_trial

    run_name = f"trial-{tune.get_context().get_trial_id()}"
    fit_in_trial(
        lambda callbacks: build_trainer(
            config, data, run_name=run_name, storage_path=storage_path, callbacks=callbacks
        ),
        registry,
    )


def _report_to_tune(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
    tune.report(metrics, checkpoint=checkpoint)
