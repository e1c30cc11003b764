"""One trial: the base config plus the sampled params, trained by ``tsdl.train.build_trainer``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tsdl.config import TsdlConfig
from tsdl.tune.budget import StudyPlan
from tsdl.tune.space import apply_params

if TYPE_CHECKING:
    from tsdl.data import PreparedData

__all__ = ["trial_config", "run_trial"]


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
    """Tune function trainable: train one sampled config with Ray Train, reporting every epoch.

    Args:
        params: the trial's sampled values by dotted path (Tune's ``config``).
        base: the study's resolved config as a plain dict.
        plan: the study's budget.
        prepared: scaled data per ``input_chunk_length`` (prepared once on the driver).
        registry: name of the study's :class:`~tsdl.tune.teardown.TrialRegistry` actor.
        storage_path: where the trial's Train run checkpoints; a restored trial resumes there.
    """
    from ray import tune

    from tsdl.train import build_trainer
    from tsdl.tune.teardown import fit_in_trial

    config = trial_config(TsdlConfig.model_validate(base), params, plan)
    data = prepared[config.data.input_chunk_length]
    run_name = f"trial-{tune.get_context().get_trial_id()}"
    fit_in_trial(
        lambda callbacks: build_trainer(
            config, data, run_name=run_name, storage_path=storage_path, callbacks=callbacks
        ),
        registry,
    )
