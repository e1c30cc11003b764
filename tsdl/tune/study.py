"""A staged study: reference trial + broad TPE search (stage 1), then TPE refinement (stage 2).

Both stages are Tune experiments under ``<storage>/<study>/``, ASHA-scheduled on ``val_loss``
with epochs as the time attribute. ``study.json`` keeps the config and budget, so
``run_study(resume=NAME)`` restores each unfinished stage with ``Tuner.restore`` (finished
trials are kept, the OptunaSearch state continues from Tune's experiment checkpoint, and a trial
that was running resumes its Train run from its last checkpoint).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from tsdl.config import TsdlConfig, dump_config, parse_config
from tsdl.errors import ConfigError, StorageError, TuneError
from tsdl.tune.budget import BudgetName, StudyPlan, plan_study
from tsdl.tune.results import AshaStats, StudyResult, TrialRecord, leaderboard, trial_records
from tsdl.tune.space import apply_params, narrow_space, reference_point, resolve_value, select_space

__all__ = ["FinalFit", "StudyLogger", "finished_trials", "is_finished", "run_study", "stored_config"]

StudyLogger = Callable[
    [TsdlConfig, StudyResult, StudyPlan, Mapping[str, Mapping[str, Any]], Mapping[str, Any]], str | None
]
FinalFit = Callable[..., Any]
"""``final_fit(config, tags={...})``: train ``config`` and evaluate it on test (`tsdl.api.train`)."""

_log = logging.getLogger(__name__)
_STATE = "study.json"


def run_study(
    config: TsdlConfig,
    *,
    budget: BudgetName | None = None,
    address: str | None = None,
    resume: str | None = None,
    name: str | None = None,
    resume_if_exists: bool = False,
    final_fit: FinalFit | None = None,
    progress: bool = True,
    study_logger: StudyLogger | None = None,
) -> StudyResult:
    """Run (or resume) a two-stage ASHA + Optuna TPE study of ``config``.

    Args:
        config: base config; ``tune`` holds the space and counts, ``resources`` the per-trial
            workers and the storage path.
        budget: ``smoke``, ``small`` or ``full`` (overrides ``tune.budget``).
        address: Ray address (None: in-process; "auto": a ``ray start --head`` cluster).
        resume: name of an interrupted study under ``resources.storage_path`` to continue; its
            stored config and budget are used.
        name: name of a new study (default ``<experiment>-study-<time>``); an existing name is
            refused unless ``resume_if_exists``.
        resume_if_exists: with ``name``: resume that study if it exists, else start it (what a
            RayJob retry needs: a deterministic name, and no finished trial lost or rerun).
        final_fit: ``(best_config, tags=...) -> result`` that retrains the best config and
            evaluates it on test (``tsdl.api.tune`` passes ``tsdl.api.train``; training and
            tracking sit above tune in the layering, so they come in as a function).
        progress: print a line per finished trial, status lines and the study's plan (tsdl.tune.progress).
        study_logger: ``(config, result, plan, spaces, data_stats) -> run id`` that records the
            finished study (``tsdl.api.tune`` passes the MLflow one; tracking is a later stage).

    Returns:
        The leaderboard, best config, reference val_loss and ASHA savings.
    """
    from tsdl.ray_connection import ensure_ray
    from tsdl.storage import absolute, join

    storage = absolute(config.resources.storage_path)
    if resume is None and name is not None and stored_config(storage, name) is not None:
        if not resume_if_exists:
            raise TuneError(
                f"a study named '{name}' already exists under {storage}",
                hint=f"continue it with --resume {name} (or --resume-if-exists), or pick another --study-name",
            )
        _check_same_workload(storage, name, config, plan_study(config, budget).budget)
        resume = name
    if resume is not None:
        config, budget = _load_state(storage, resume)
        if is_finished(join(storage, resume)):  # not hidden by --quiet: the job reran nothing
            print(f"study {resume} already finished: nothing to run (its stored results follow)", flush=True)
        else:
            done = len(finished_trials(join(storage, resume)))
            print(f"resuming study {resume} ({done} trials finished)", flush=True)
    plan = plan_study(config, budget)
    name = resume or name or f"{config.experiment.name}-study-{time.strftime('%Y%m%d-%H%M%S')}"
    root = join(storage, name)
    active = select_space(config, max_params=plan.max_params)
    point, space1 = reference_point(config, active.params)
    _say(progress, _plan_line(name, plan, list(space1), active.frozen))
    prepared = _prepare(config, space1)
    ensure_ray(address)
    if resume is None:
        _save_state(root, config, plan.budget)

    from tsdl.tune.runner import StageRunner

    runner = StageRunner(config, plan, prepared, root=root, progress=progress)
    try:
        records, space2 = _run_stages(runner, plan, point, space1, name=name, root=root)
    except (ValueError, OSError) as exc:
        lost = _storage_lost(root, exc)
        if lost is None:
            raise
        raise lost from exc
    finally:
        runner.close()
    result = _summarize(config, plan, records, name=name, root=root, frozen=active.frozen)
    _write_outputs(root, result, {"stage1": space1, "stage2": space2}, plan)
    if study_logger is not None and config.tracking.enabled:
        stats = prepared[config.data.input_chunk_length].stats()
        spaces = {"stage1": space1, "stage2": space2}
        result.mlflow_run_id = study_logger(config, result, plan, spaces, stats)
    if final_fit is not None:
        result.final_fit = final_fit(result.best_config, tags={"tsdl.study": name})
    return result


def _run_stages(
    runner: Any, plan: StudyPlan, point: dict[str, Any], space1: dict[str, Any], *, name: str, root: str
) -> tuple[list[TrialRecord], dict[str, Any]]:
    """Stage 1 from the reference point, then stage 2 on the space narrowed around its top-k."""
    grid1 = runner.run("stage1", space1, points=[point], trials=plan.stage1_trials, startup=plan.startup_trials)
    records = trial_records(grid1, stage="stage1", max_epochs=plan.max_epochs, reference=point)
    ranked = sorted((r for r in records if math.isfinite(r.val_loss)), key=lambda r: r.val_loss)
    if not ranked:
        raise TuneError(
            f"study {name}: every stage-1 trial failed",
            hint=f"see the trial errors under {root}/stage1, or run `tsdl train` with the same config",
        )
    space2 = narrow_space(space1, [r.params for r in ranked[: plan.top_k]])
    if plan.stage2_trials:
        grid2 = runner.run("stage2", space2, points=[], trials=plan.stage2_trials, startup=0)
        records += trial_records(grid2, stage="stage2", max_epochs=plan.max_epochs)
    return records, space2


def _summarize(
    config: TsdlConfig, plan: StudyPlan, records: list[TrialRecord], *, name: str, root: str, frozen: dict[str, str]
) -> StudyResult:
    board = leaderboard(records)
    ok = [r for r in records if math.isfinite(r.val_loss)]
    best = min(ok, key=lambda r: r.val_loss)
    reference = next((r for r in records if r.reference), None)
    return StudyResult(
        name=name,
        path=root,
        leaderboard=board,
        best_config=apply_params(config, best.params),
        best_val_loss=best.val_loss,
        reference_val_loss=reference.val_loss if reference else math.nan,
        asha=AshaStats(
            epochs_run=sum(r.epochs for r in records),
            full_budget_epochs=len(records) * plan.max_epochs,
            stopped_trials=sum(r.status == "asha-stopped" for r in records),
        ),
        frozen=frozen,
        records=records,
    )


def _prepare(config: TsdlConfig, space: dict[str, Any]) -> dict[int, Any]:
    """Scaled data for every input_chunk_length the space can sample (windows differ per length)."""
    from tsdl.data import prepare_data

    lengths = {config.data.input_chunk_length}
    spec = space.get("data.input_chunk_length")
    if spec is not None:
        values = spec.values if hasattr(spec, "values") else range(spec.low, spec.high + 1)
        lengths |= {int(resolve_value("data.input_chunk_length", v, config)) for v in values}
    return {n: prepare_data(apply_params(config, {"data.input_chunk_length": n})) for n in sorted(lengths)}


def _write_outputs(root: str, result: StudyResult, spaces: dict[str, Any], plan: StudyPlan) -> None:
    from tsdl.storage import filesystem

    fs, base = filesystem(root)
    files = {
        "leaderboard.csv": result.leaderboard.to_csv(index=False),
        "best_config.yaml": dump_config(result.best_config),
        "summary.json": json.dumps(_summary(result, spaces, plan), indent=2, default=str),
    }
    for filename, text in files.items():
        with fs.open_output_stream(f"{base}/{filename}") as out:
            out.write(text.encode())


def _summary(result: StudyResult, spaces: dict[str, Any], plan: StudyPlan) -> dict[str, Any]:
    """best vs reference, ASHA efficiency, the budget and the searched spaces (for humans and MLflow)."""
    return {
        "study": result.name,
        "budget": plan.budget,
        "best_val_loss": result.best_val_loss,
        "reference_val_loss": result.reference_val_loss,
        "improvement_vs_reference": 1.0 - result.best_val_loss / result.reference_val_loss
        if result.reference_val_loss
        else None,
        "asha": {
            "epochs_run": result.asha.epochs_run,
            "full_budget_epochs": result.asha.full_budget_epochs,
            "efficiency": result.asha.efficiency,
            "stopped_trials": result.asha.stopped_trials,
        },
        "frozen": result.frozen,
        "search_space": {stage: {p: s.model_dump() for p, s in space.items()} for stage, space in spaces.items()},
    }


def stored_config(storage: str, name: str) -> TsdlConfig | None:
    """The config a study of that name was started with, or None when there is no such study."""
    from tsdl.storage import exists, join

    return _load_state(storage, name)[0] if exists(join(storage, name, _STATE)) else None


def _storage_lost(root: str, exc: BaseException) -> StorageError | None:
    """A StorageError naming the results storage when the study's directory vanished mid-study (a
    deleted bucket or claim), instead of Tune's "No experiment snapshot file ..." (N8); None when
    the directory is still there (the error is something else)."""
    from tsdl.storage import exists

    try:
        gone = not exists(f"{root.rstrip('/')}/{_STATE}")
    except (StorageError, OSError):
        gone = True
    if not gone:
        return None
    first = " ".join(str(exc).split())[:160]
    return StorageError(
        f"results storage {root} is gone or no longer readable: the study's {_STATE} and "
        f"checkpoints went with it ({type(exc).__name__}: {first})",
        hint="check that the bucket or claim still exists and the pods' credentials can write it, "
        "then start the study again (finished trials cannot be recovered from a deleted store)",
    )


def is_finished(root: str) -> bool:
    """Whether the study under ``root`` ran to its end (its summary is written last)."""
    from tsdl.storage import exists

    return exists(f"{root.rstrip('/')}/summary.json")


def _check_same_workload(storage: str, name: str, config: TsdlConfig, budget: str) -> None:
    """Resume ``name`` only with the config and budget it was started with (N3: a reused job name
    must not hand back the old study's results for a changed config)."""
    from tsdl.storage import join
    from tsdl.train.workload import workload_diff, workload_hash

    stored, stored_budget, stored_hash = _load_state(storage, name, with_hash=True)
    stored_hash = stored_hash or workload_hash(stored, extra=stored_budget)  # studies from before the hash
    if stored_hash == workload_hash(config, extra=budget):
        return
    diff = workload_diff(stored, config)
    if stored_budget != budget:
        diff = "; ".join(p for p in (f"budget: {stored_budget} -> {budget}", diff) if p)
    raise TuneError(
        f"study '{name}' under {storage} was started with another config ({diff or 'changed'}), "
        "so it cannot be resumed with this one",
        hint=f"run it under a new name (--study-name, or a new deploy.name / release), or delete "
        f"{join(storage, name)} to start it again",
    )


def finished_trials(root: str) -> dict[str, int]:
    """Trials Tune marked done under a study's ``root``: ``stage/trial dir -> epochs reported``."""
    import pyarrow.fs

    from tsdl.storage import filesystem

    fs, base = filesystem(root)
    if fs.get_file_info(base).type == pyarrow.fs.FileType.NotFound:
        return {}
    finished = {}
    for info in fs.get_file_info(pyarrow.fs.FileSelector(base, recursive=True)):
        parts = info.path[len(base) :].strip("/").split("/")
        if len(parts) != 3 or not parts[0].startswith("stage") or parts[2] != "result.json":
            continue
        with fs.open_input_stream(info.path) as src:
            rows = [json.loads(line) for line in src.read().decode().splitlines() if line.strip()]
        if rows and rows[-1].get("done"):
            finished[f"{parts[0]}/{parts[1]}"] = len(rows)
    return finished


def _save_state(root: str, config: TsdlConfig, budget: str) -> None:
    from tsdl.storage import filesystem

    fs, base = filesystem(root)
    fs.create_dir(base, recursive=True)
    from tsdl.train.workload import workload_hash

    state = {
        "budget": budget,
        "config": config.model_dump(mode="json"),
        "workload_hash": workload_hash(config, extra=budget),
    }
    with fs.open_output_stream(f"{base}/{_STATE}") as out:
        out.write(json.dumps(state, indent=2).encode())


def _load_state(storage: str, name: str, *, with_hash: bool = False) -> Any:
    """``(config, budget)`` of a stored study; with ``with_hash`` also its workload hash (None for
    studies stored before it was kept)."""
    from tsdl.storage import filesystem, join

    root = join(storage, name)
    fs, base = filesystem(root)
    try:
        with fs.open_input_stream(f"{base}/{_STATE}") as src:
            state = json.loads(src.read().decode())
    except (FileNotFoundError, OSError):
        known = _studies(storage)
        raise TuneError(
            f"no study '{name}' under {storage} (missing {_STATE})",
            hint=f"studies there: {', '.join(known)}" if known else "check resources.storage_path / -c",
        ) from None
    except ValueError as exc:  # invalid JSON or not UTF-8: a truncated or overwritten file
        raise _corrupt_state(root, f"not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not {"config", "budget"} <= state.keys():
        raise _corrupt_state(root, "it lacks the 'config' and 'budget' entries tsdl writes")
    try:
        config = parse_config(state["config"], source=f"{root}/{_STATE}")
    except ConfigError as exc:
        raise _corrupt_state(root, exc.message) from None
    if with_hash:
        return config, state["budget"], state.get("workload_hash")
    return config, state["budget"]


def _corrupt_state(root: str, why: str) -> TuneError:
    return TuneError(
        f"cannot resume the study in {root}: {_STATE} is unreadable: {why}",
        hint="start a new study with `tsdl tune -c CONFIG` (the trials under that directory stay "
        "readable by Ray Tune)",
    )


def _studies(storage: str) -> list[str]:
    import pyarrow.fs

    from tsdl.storage import filesystem

    try:
        fs, base = filesystem(storage)
        infos = fs.get_file_info(pyarrow.fs.FileSelector(base, allow_not_found=True))
        names = [i.base_name for i in infos if i.type == pyarrow.fs.FileType.Directory]
        return sorted(n for n in names if fs.get_file_info(f"{base}/{n}/{_STATE}").type == pyarrow.fs.FileType.File)
    except (OSError, StorageError):
        return []


def _plan_line(name: str, plan: StudyPlan, tuned: list[str], frozen: dict[str, str]) -> str:
    lines = [
        f"study {name}: budget {plan.budget}, {plan.stage1_trials} + {plan.stage2_trials} trials, "
        f"ASHA grace {plan.grace_period} / factor {plan.reduction_factor:g} / max {plan.max_epochs} epochs",
        f"  tuning: {', '.join(tuned)}",
    ]
    lines += [f"  frozen: {path} ({why})" for path, why in frozen.items()]
    return "\n".join(lines)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)
