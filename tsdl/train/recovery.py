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

Rank 0 chooses and broadcasts the path, so every rank restores the same state. The choice, the
completeness rule and the deletions are :class:`~tsdl.train.checkpoint_store.CheckpointStore`'s,
shared with the in-process path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tsdl.train.checkpoint_store import CheckpointStore, Restored

if TYPE_CHECKING:
    from ray.train import Checkpoint

__all__ = ["EpochCheckpoints"]


class EpochCheckpoints:
    """Resume point and storage hygiene for one Ray Train worker (every rank holds one).

    Ray's ``num_to_keep`` prunes only registered checkpoints, so the unregistered ones a failure
    leaves behind are deleted here: at restart all but the one resumed from, and that one as soon
    as a newer checkpoint is on storage (until then it is the only copy of the finished epochs).
    """

    def __init__(self) -> None:
        self._resumed_unregistered: str | None = None

    def resume_from(self, registered: Checkpoint | None) -> Restored | None:
        """The newest complete checkpoint on storage, loaded; Ray's ``registered`` one when none is newer.

        Called by every rank; the choice is rank 0's, broadcast so all ranks restore the same state.
        """
        import ray.train
        import torch.distributed as dist

        context = ray.train.get_context()
        store = _store()
        registered_path = registered.path if registered is not None else None
        restored: Restored | None = None
        chosen: list[Any] = [None]
        if context.get_world_rank() == 0:
            restored = store.choose(registered_path)
            chosen[0] = restored.path if restored is not None else None
            store.prune(chosen[0], registered=registered_path)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast_object_list(chosen, src=0)
        if chosen[0] is None:
            return None
        if restored is None:  # another rank: load what rank 0 chose (one download)
            restored = store.load(chosen[0])
        if context.get_world_rank() == 0 and not store.same(chosen[0], registered_path):
            self._resumed_unregistered = chosen[0]
        return restored

    def reported(self, epoch: int) -> None:
        """Rank 0 reported `epoch`: once it is on storage, the unregistered checkpoint resumed from can go.

        (A report can be skipped when another rank fails during it: then the old one must stay.)
        """
        if self._resumed_unregistered is None:
            return
        store = _store()
        if store.has_all_files(store.path_of(epoch)):
            store.delete(self._resumed_unregistered)
            self._resumed_unregistered = None


def _store() -> CheckpointStore:
    """The store of this Ray Train run's directory (local or object storage)."""
    import ray.train

    storage = ray.train.get_context().get_storage()
    return CheckpointStore(storage.storage_filesystem, storage.experiment_fs_path)
