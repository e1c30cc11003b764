"""Standard benchmark datasets by name: download once, verify a pinned SHA-256, cache, reuse.

A config that says ``data.dataset: ETTh1`` (or ``tsdl datasets fetch ETTh1``) must give every
user the same bytes the papers used, with no file shipped in the repository. So each dataset
has one canonical URL and a pinned SHA-256; the file is streamed to a temporary name in the
cache, hashed while it arrives, and only renamed into place when the size and the hash match.
An interrupted or wrong download therefore never leaves a file that a later run would trust.

Where things live:

- cache directory: ``$TSDL_DATA_HOME``, else ``$XDG_CACHE_HOME/tsdl/datasets``, else
  ``~/.cache/tsdl/datasets``;
- download URL: the dataset's canonical URL, or ``$TSDL_DATASETS_URL/<file>`` for a mirror (or a
  local test server). A mirror must serve identical bytes: the pinned hash is checked either way.

Only the four ETT files are registered. Electricity, Traffic and Weather (the Autoformer
benchmark copies) are distributed through Google Drive / Tsinghua Cloud folders without a stable
raw-file URL or a published checksum, so tsdl cannot pin and verify them; bring them as a file
(``data.path``) instead.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tsdl.errors import DataError

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "cache_dir",
    "cached_path",
    "dataset_path",
    "dataset_url",
    "fetch_dataset",
    "get_dataset",
]

_ETT_CITATION = (
    "Zhou, H. et al. Informer: Beyond Efficient Transformer for Long Sequence Time-Series "
    "Forecasting. AAAI 2021. https://github.com/zhouhaoyi/ETDataset"
)
_ETT_LICENSE = "CC BY-ND 4.0 (https://creativecommons.org/licenses/by-nd/4.0/)"
_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{file}"
_CHUNK = 1 << 16
_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """One downloadable dataset: where it comes from, what its bytes hash to, how to read it."""

    name: str
    file: str
    url: str
    sha256: str
    size: int | None
    rows: int
    freq: str
    description: str
    license: str
    citation: str
    time_col: str = "date"
    """Read hints: the ETT files are wide (a ``date`` column plus one column per channel)."""


def _ett(name: str, *, sha256: str, size: int | None, rows: int, freq: str, what: str) -> DatasetSpec:
    """One ETT file: the four share their repository, file naming, license and citation."""
    file = f"{name}.csv"
    return DatasetSpec(
        name=name,
        file=file,
        url=_ETT_URL.format(file=file),
        sha256=sha256,
        size=size,
        rows=rows,
        freq=freq,
        description=f"{what}, 7 channels (HUFL..OT), 2016-07 to 2018-06",
        license=_ETT_LICENSE,
        citation=_ETT_CITATION,
    )


# SHA-256 of the upstream files. ETTh1's was computed from the copy this project tests against
# (ETDataset commit 1d16c8f4); all four agree with the hashes published independently by the
# tsdm project (randolf-scholz/tsdm, src/tsdm/datasets/ett.py, `rawdata_hashes`).
DATASETS: dict[str, DatasetSpec] = {
    "ETTh1": _ett(
        "ETTh1",
        sha256="f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
        size=2_589_657,
        rows=17_420,
        freq="h",
        what="electricity transformer 1, hourly",
    ),
    "ETTh2": _ett(
        "ETTh2",
        sha256="a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
        size=None,
        rows=17_420,
        freq="h",
        what="electricity transformer 2, hourly",
    ),
    "ETTm1": _ett(
        "ETTm1",
        sha256="6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
        size=None,
        rows=69_680,
        freq="15min",
        what="electricity transformer 1, 15-minute",
    ),
    "ETTm2": _ett(
        "ETTm2",
        sha256="db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",
        size=None,
        rows=69_680,
        freq="15min",
        what="electricity transformer 2, 15-minute",
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name`` (exact spelling), or a DataError listing the known ones."""
    spec = DATASETS.get(name)
    if spec is None:
        raise DataError(
            f"unknown dataset {name!r}",
            hint=f"use one of {', '.join(DATASETS)} (`tsdl datasets list`), or set data.path to a file",
        )
    return spec


def cache_dir() -> Path:
    """Where fetched datasets live: $TSDL_DATA_HOME, else the user's cache dir."""
    home = os.environ.get("TSDL_DATA_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tsdl" / "datasets"


def cached_path(name: str) -> Path:
    """Where ``name`` is (or would be) cached; it may not exist yet."""
    return cache_dir() / get_dataset(name).file


def dataset_url(name: str) -> str:
    """The download URL: ``$TSDL_DATASETS_URL/<file>`` when set (mirrors, tests), else canonical."""
    spec = get_dataset(name)
    base = os.environ.get("TSDL_DATASETS_URL")
    return f"{base.rstrip('/')}/{spec.file}" if base else spec.url


def dataset_path(name: str) -> Path:
    """The verified cached file of ``name``, fetched on first use (what ``data.dataset`` reads)."""
    path = cached_path(name)
    if path.exists():
        _verify_cached(get_dataset(name), path)
        return path
    return fetch_dataset(name)


def fetch_dataset(name: str, *, force: bool = False) -> Path:
    """Download ``name`` into the cache (unless a verified copy is there) and return its path.

    Raises:
        DataError: unknown name, no network / HTTP error (naming the URL and the manual fix),
            a truncated download, or bytes that do not match the pinned SHA-256. In every case
            no file is left at the cache path.
    """
    spec = get_dataset(name)
    target = cached_path(name)
    if target.exists() and not force:
        _verify_cached(spec, target)
        return target
    url = dataset_url(name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the dataset cache {target.parent}: {exc.strerror}",
            hint="set TSDL_DATA_HOME to a writable directory",
        ) from None
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        digest, size = _download(url, partial, spec, target)
        if digest != spec.sha256:
            raise DataError(
                f"{spec.name} from {url} has sha256 {digest[:16]}... but tsdl pins "
                f"{spec.sha256[:16]}... ({size} bytes received); the file was not kept",
                hint="the source or mirror serves different bytes; point TSDL_DATASETS_URL at an "
                "unmodified copy, or use the file directly with data.path",
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _download(url: str, partial: Path, spec: DatasetSpec, target: Path) -> tuple[str, int]:
    """Stream ``url`` into ``partial``, hashing as it goes; returns (sha256, bytes)."""
    manual = f"download it by hand: curl -fL -o {target} {url}"
    digest = hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "tsdl"})
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            expected = response.headers.get("Content-Length")
            with partial.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"cannot download {spec.name}: {url} answered HTTP {exc.code} {exc.reason}", hint=manual
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        if received:
            raise _broke_off(spec, url, f"{received} bytes ({reason})", manual) from None
        raise DataError(f"cannot download {spec.name} from {url}: {reason}", hint=manual) from None
    if expected is not None and expected.isdigit() and int(expected) != received:
        raise _broke_off(spec, url, f"{received} of {expected} bytes", manual)
    return digest.hexdigest(), received


def _broke_off(spec: DatasetSpec, url: str, so_far: str, manual: str) -> DataError:
    """A download that stopped early (connection dropped, or fewer bytes than announced): retry."""
    return DataError(
        f"download of {spec.name} from {url} broke off after {so_far}; nothing was kept",
        hint=f"run `tsdl datasets fetch {spec.name}` again, or {manual}",
    )


def _verify_cached(spec: DatasetSpec, path: Path) -> None:
    """A cached file must still hash to the pin (a hand-copied or edited file is caught here)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != spec.sha256:
        raise DataError(
            f"cached {spec.name} at {path} does not match its pinned sha256 "
            f"({digest.hexdigest()[:16]}... != {spec.sha256[:16]}...)",
            hint=f"run `tsdl datasets fetch {spec.name} --force` to download it again",
        )
