"""The checkpoints of one run directory: list, check, choose, load, save and prune them.

Both training paths decide about checkpoints here, with one completeness rule: a checkpoint is
complete only when every file tsdl writes into it (``last.pt``, ``best.pt``, ``meta.json``) is
there and loads. On object storage each file appears whole or not at all, so an upload cut short
leaves a directory with *some* files; a resumed run that accepted one without ``best.pt`` would
save a later, worse epoch as best and evaluate it.

The directory is on a pyarrow filesystem (local disk or object storage, ``tsdl.storage``). The
chosen checkpoint is downloaded once and loaded in the same step: what is returned is the loaded
state, so restoring it reads nothing again. Ray Train's registered checkpoint (the one its
checkpoint manager still references) is never deleted; paths are compared normalized, so another
spelling of the same directory (a trailing ``/``, a ``..``, a symlink) cannot hide it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tsdl.errors import TrainingError
from tsdl.train.checkpointing import (
    BEST_FILE,
    LAST_FILE,
    META_FILE,
    BestWeights,
    TrainState,
    checkpoint_dir_name,
    load_best,
    load_last,
)

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = [
    "REQUIRED_FILES",
    "Candidate",
    "CheckpointStore",
    "Restored",
    "load_complete",
    "newest_beside",
]

REQUIRED_FILES = (LAST_FILE, BEST_FILE, META_FILE)
"""Every file of a tsdl checkpoint; one missing means the checkpoint never finished arriving."""

_EPOCH_DIR = re.compile(r"^checkpoint_epoch-(\d+)$")
# Tune's own names for a function trainable's checkpoints (`tune.report` cannot name them): one per
# report, numbered in report order, so the number orders them as the epoch would.
_TUNE_DIR = re.compile(r"^checkpoint_(\d{6})$")
_STAGING = re.compile(r"^\.checkpoint_epoch-\d+\.tmp$")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Restored:
    """A complete checkpoint, loaded: what the training loop resumes from."""

    path: str
    last: TrainState
    best: BestWeights


@dataclass(frozen=True)
class Candidate:
    """A checkpoint directory of the run: its epoch (Tune's report number for Tune's names; -1:
    Ray's registered one, without either name) and path."""

    epoch: int
    path: str
    registered: bool


def load_complete(directory: Path, *, path: str | None = None) -> Restored:
    """Load a checkpoint directory on this machine; every required file must be there and load.

    Raises:
        TrainingError: a file is missing, truncated or not a tsdl checkpoint file.
    """
    for name in REQUIRED_FILES:
        if not (directory / name).is_file():
            raise TrainingError(
                f"checkpoint {path or directory} is incomplete: {name} is missing",
                hint="resume from an older checkpoint; this one was cut short while it was written",
            )
    try:
        json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(
            f"checkpoint {path or directory} is incomplete: {META_FILE} does not parse ({exc})",
            hint="resume from an older checkpoint; this one was cut short while it was written",
        ) from None
    return Restored(str(path or directory), load_last(directory), load_best(directory))


def newest_beside(registered: Any | None) -> Restored | None:
    """The newest complete checkpoint in the directory of Tune's registered one (a trial's), loaded.

    Tune logs a function trainable's result first and fetches its checkpoint in a second round
    trip (ray.tune's FunctionTrainable: "result/checkpoint reporting is separate"). A worker lost
    between the two leaves that epoch's checkpoint persisted but unknown to Tune, which restores
    the one before: the epoch would train, and be reported, twice (scenario 4 of the real-kubelet
    e2e did). None when Tune has no checkpoint of the trial.
    """
    if registered is None:
        return None
    parent = posixpath.dirname(registered.path.rstrip("/")) or "/"
    return CheckpointStore(registered.filesystem, parent).choose(registered.path)


class CheckpointStore:
    """The epoch-named checkpoint directories under one run directory.

    Args:
        filesystem: a pyarrow filesystem (``tsdl.storage.filesystem``).
        run_path: the run directory inside it.
    """

    def __init__(self, filesystem: pyarrow.fs.FileSystem, run_path: str) -> None:
        self.filesystem = filesystem
        self.run_path = run_path.rstrip("/") or "/"

    @classmethod
    def at(cls, location: str | Path) -> CheckpointStore:
        """The store of a run directory given as a local path or a URI."""
        from tsdl.storage import filesystem

        fs, path = filesystem(str(location))
        return cls(fs, path)

    @property
    def _local(self) -> bool:
        import pyarrow.fs

        return isinstance(self.filesystem, pyarrow.fs.LocalFileSystem)

    def path_of(self, epoch: int) -> str:
        return f"{self.run_path}/{checkpoint_dir_name(epoch)}"

    def candidates(self, registered: str | None = None) -> list[Candidate]:
        """Every epoch-named checkpoint, newest first; Ray's registered one marked.

        A registered checkpoint without an epoch name (older tsdl versions) comes last.
        """
        import pyarrow.fs as pafs

        found = []
        for info in self._entries():
            match = _EPOCH_DIR.match(info.base_name) or _TUNE_DIR.match(info.base_name)
            if info.type == pafs.FileType.Directory and match:
                found.append(Candidate(int(match.group(1)), info.path, self.same(info.path, registered)))
        found.sort(key=lambda c: c.epoch, reverse=True)
        if registered is not None and not any(c.registered for c in found):
            found.append(Candidate(-1, registered, True))
        return found

    def has_all_files(self, path: str) -> bool:
        """Every required file is there and not empty (a listing only; nothing downloaded)."""
        import pyarrow.fs as pafs

        infos = self.filesystem.get_file_info([f"{path}/{name}" for name in REQUIRED_FILES])
        return all(info.type == pafs.FileType.File and (info.size or 0) > 0 for info in infos)

    def load(self, path: str) -> Restored:
        """Download ``path`` once (nothing to download on local disk) and load it completely."""
        with self.local_directory(path) as directory:
            return load_complete(directory, path=path)

    def choose(self, registered: str | None = None) -> Restored | None:
        """The newest complete checkpoint, loaded; older ones are tried when newer ones are not.

        Incomplete ones are skipped with a warning (the usual state after a failure mid-upload).
        """
        for candidate in self.candidates(registered):
            if not self.has_all_files(candidate.path):
                _log.warning("skipping checkpoint %s: not every file of it arrived", candidate.path)
                continue
            try:
                return self.load(candidate.path)
            except TrainingError as exc:
                _log.warning("skipping checkpoint %s, cut short by the failure: %s", candidate.path, exc)
        return None

    def newest_complete(self) -> str | None:
        """The path of the newest checkpoint holding every file (a listing; nothing loaded)."""
        return next((c.path for c in self.candidates() if self.has_all_files(c.path)), None)

    def save(self, directory: Path, epoch: int) -> str:
        """Copy a checkpoint written on this machine into the store as epoch ``epoch``.

        On local disk it appears under its final name complete or not at all (staged, then
        renamed); on object storage every file is its own object, and :meth:`choose` checks them.
        """
        import pyarrow.fs as pafs

        final = self.path_of(epoch)
        if not self._local:
            self._delete(final)
            pafs.copy_files(str(directory), final, destination_filesystem=self.filesystem)
            return final
        staging = Path(self.run_path) / f".{checkpoint_dir_name(epoch)}.tmp"
        Path(self.run_path).mkdir(parents=True, exist_ok=True)
        try:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(directory, staging)
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # an interrupted copy leaves nothing behind
        return final

    def prune(self, keep: str | None, *, registered: str | None = None) -> None:
        """Delete every checkpoint but ``keep`` and Ray's ``registered`` one, and staging leftovers."""
        for candidate in self.candidates():
            if self.same(candidate.path, keep) or self.same(candidate.path, registered):
                continue
            if registered is not None and posixpath.basename(candidate.path) == _basename(registered):
                continue  # the registered directory, however it is spelled
            self._delete(candidate.path)
        self.clean_staging()

    def delete(self, path: str, *, registered: str | None = None) -> None:
        """Delete one checkpoint, unless it is Ray's registered one."""
        if not self.same(path, registered) and posixpath.basename(path) != _basename(registered):
            self._delete(path)

    def clean_staging(self) -> None:
        """Remove the staging directories a save interrupted by a kill left behind."""
        for info in self._entries():
            if _STAGING.match(info.base_name):
                self._delete(info.path)

    def same(self, a: str | None, b: str | None) -> bool:
        """Whether two spellings name the same directory of this filesystem."""
        return a is not None and b is not None and self._normalized(a) == self._normalized(b)

    @contextlib.contextmanager
    def local_directory(self, path: str) -> Iterator[Path]:
        """``path`` as a directory on this machine: itself on local disk, else a temporary download."""
        import pyarrow.fs as pafs

        if self._local:
            yield Path(path)
            return
        with tempfile.TemporaryDirectory(prefix="tsdl-ckpt-") as tmp:
            pafs.copy_files(path, tmp, source_filesystem=self.filesystem)
            yield Path(tmp)

    def _entries(self) -> list:
        import pyarrow.fs as pafs

        return self.filesystem.get_file_info(pafs.FileSelector(self.run_path, allow_not_found=True))

    def _normalized(self, path: str) -> str:
        text = path.split("://", 1)[-1] if "://" in path else path
        with contextlib.suppress(Exception):
            text = self.filesystem.normalize_path(text)
        text = posixpath.normpath(text.rstrip("/") or "/")
        return os.path.realpath(text) if self._local else text

    def _delete(self, path: str) -> None:
        import pyarrow.fs as pafs

        if self.filesystem.get_file_info(path).type == pafs.FileType.Directory:
            self.filesystem.delete_dir(path)


def _basename(path: str | None) -> str | None:
    return posixpath.basename(path.rstrip("/")) if path else None
