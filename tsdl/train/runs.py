"""A small record per training run, next to Ray's own files, so `--resume RUN` needs nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from tsdl.errors import TrainingError

__all__ = ["RunRecord"]

_RECORD_FILE = "tsdl_run.json"


@dataclass
class RunRecord:
    """Where a run lives and what it was: Ray run name + storage, MLflow run id, resolved config."""

    run_name: str
    storage_path: str
    config: dict[str, Any]
    mlflow_run_id: str | None = None
    status: str = "RUNNING"
    workload_hash: str | None = None
    """tsdl.train.workload.workload_hash of the config the run started with (None: older records)."""

    def save(self) -> None:
        fs, base = _filesystem(self.storage_path)
        fs.create_dir(f"{base}/{self.run_name}", recursive=True)
        with fs.open_output_stream(f"{base}/{self.run_name}/{_RECORD_FILE}") as f:
            f.write(json.dumps(asdict(self), indent=2).encode())

    @staticmethod
    def exists(storage_path: str, run_name: str) -> bool:
        """Whether a run of that name was started under ``storage_path`` (its name is taken)."""
        from tsdl.storage import exists, join

        return exists(join(storage_path, run_name, _RECORD_FILE)) or exists(join(storage_path, run_name))

    @classmethod
    def load(cls, storage_path: str, run_name: str) -> RunRecord:
        import pyarrow.fs

        fs, base = _filesystem(storage_path)
        path = f"{base}/{run_name}/{_RECORD_FILE}"
        if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
            raise TrainingError(
                f"no tsdl run named '{run_name}' under {storage_path}",
                hint="pass the run name printed by `tsdl train` (a directory under "
                "resources.storage_path), and the same --set resources.storage_path if you changed it",
            )
        with fs.open_input_stream(path) as f:
            raw = f.read()
        try:
            fields = json.loads(raw)
            return cls(**fields)
        except (ValueError, TypeError) as exc:  # truncated, overwritten or from another version
            raise TrainingError(
                f"cannot resume run '{run_name}': {storage_path}/{run_name}/{_RECORD_FILE} is "
                f"unreadable ({' '.join(str(exc).split())[:200]})",
                hint="start a new run with `tsdl train -c CONFIG` (optionally --init-from the "
                "old run's MLflow run id to keep its weights)",
            ) from None


def _filesystem(storage_path: str):
    from tsdl.storage import filesystem

    fs, base = filesystem(storage_path)
    return fs, base.rstrip("/")
