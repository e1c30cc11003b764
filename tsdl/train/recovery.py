"""Which checkpoint a restarted Ray Train worker group resumes from.

Ray Train V2 *persists* a checkpoint when rank 0's ``ray.train.report`` uploads it, but it
*registers* it (what ``ray.train.get_checkpoint()`` returns after a restart) only once the
controller has polled every rank's report of that step. When a worker process dies (SIGKILL, OOM,
a lost node) the reports still waiting in the ranks' queues die with it, so the registered
checkpoint can be one or more epochs older than the newest one on storage, and a restarted run
would train those finished epochs again (measured: epochs ``1 2 3 2 3 4 5`` after a kill in epoch
3). The loop therefore names every checkpoint after its epoch (``checkpoint_dir_name``) and,
on restart, resumes from the newest *complete* one on storage, falling back to older ones when the
newest was cut short by the failure.

Rank 0 chooses and broadcasts the path, so every rank restores the same state.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tsdl.errors import TrainingError
from tsdl.train.checkpointing import LAST_FILE, checkpoint_dir_name, load_best, load_last

if TYPE_CHECKING:
    from ray.train import Checkpoint

__all__ = ["EpochCheckpoints"]

_log = logging.getLogger(__name__)
_EPOCH_DIR = re.compile(r"^checkpoint_epoch-(\d+)$")


class EpochCheckpoints:
    """Resume point and storage hygiene for one Ray Train worker (every rank holds one).

    Ray's ``num_to_keep`` prunes only registered checkpoints, so the unregistered ones a failure
    leaves behind are deleted here: at restart all but the one resumed from, and that one as soon
    as a newer checkpoint is on storage (until then it is the only copy of the finished epochs).
    """

    def __init__(self) -> None:
        self._resumed_unregistered: str | None = None

    def resume_from(self, registered: Checkpoint | None) -> Checkpoint | None:
        """The newest complete checkpoint on storage; ``registered`` (Ray's) when none is newer.

        Called by every rank; the choice is rank 0's, broadcast so all ranks restore the same state.
        """
        import ray.train
        import torch.distributed as dist

        context = ray.train.get_context()
        filesystem = context.get_storage().storage_filesystem
        chosen: list[Any] = [None]
        if context.get_world_rank() == 0:
            candidates = _candidates(filesystem, context.get_storage().experiment_fs_path, registered)
            chosen[0] = _choose(candidates, filesystem)
            for _, path, is_registered in candidates:
                if not is_registered and (chosen[0] is None or path != chosen[0][0]):
                    filesystem.delete_dir(path)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast_object_list(chosen, src=0)
        if chosen[0] is None:
            return None
        path, is_registered = chosen[0]
        if is_registered and registered is not None:
            return registered
        if context.get_world_rank() == 0:
            self._resumed_unregistered = path
        return ray.train.Checkpoint(path, filesystem=filesystem)

    def reported(self, epoch: int) -> None:
        """Rank 0 reported `epoch`: once it is on storage, the unregistered checkpoint resumed from can go.

        (A report can be skipped when another rank fails during it: then the old one must stay.)
        """
        if self._resumed_unregistered is None:
            return
        import ray.train
        from pyarrow import fs as pafs

        storage = ray.train.get_context().get_storage()
        last = f"{storage.experiment_fs_path}/{checkpoint_dir_name(epoch)}/{LAST_FILE}"
        if storage.storage_filesystem.get_file_info(last).type == pafs.FileType.File:
            storage.storage_filesystem.delete_dir(self._resumed_unregistered)
            self._resumed_unregistered = None


def _candidates(filesystem: Any, experiment_path: str, registered: Checkpoint | None) -> list[tuple[int, str, bool]]:
    """``(epoch, path, is_registered)`` for every epoch-named checkpoint, newest first.

    A registered checkpoint that is not epoch-named (older tsdl versions) comes last.
    """
    from pyarrow import fs as pafs

    registered_path = registered.path if registered is not None else None
    found: list[tuple[int, str, bool]] = []
    for info in filesystem.get_file_info(pafs.FileSelector(experiment_path, allow_not_found=True)):
        match = _EPOCH_DIR.match(info.base_name)
        if info.type == pafs.FileType.Directory and match:
            found.append((int(match.group(1)), info.path, info.path == registered_path))
    found.sort(reverse=True)
    if registered_path is not None and not any(is_registered for *_, is_registered in found):
        found.append((-1, registered_path, True))
    return found


def _choose(candidates: list[tuple[int, str, bool]], filesystem: Any) -> tuple[str, bool] | None:
    """The first candidate whose files all load; incomplete ones are skipped with a warning."""
    import ray.train

    for _, path, is_registered in candidates:
        checkpoint = ray.train.Checkpoint(path, filesystem=filesystem)
        try:
            with checkpoint.as_directory() as directory:
                load_last(Path(directory))
                if (Path(directory) / "best.pt").exists():
                    load_best(Path(directory))
        except TrainingError as exc:
            _log.warning("skipping checkpoint %s, cut short by the failure: %s", path, exc)
            continue
        return path, is_registered
    return None

