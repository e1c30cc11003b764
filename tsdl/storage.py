"""Where tsdl's files live: local paths and object-store URIs behind one pyarrow filesystem.

Data files, Ray Train/Tune storage and `predict` outputs may be local paths or URIs such as
``s3://bucket/key`` (AWS or an S3-compatible store like MinIO), ``gs://`` or ``abfs://``. In a
Kubernetes pod the laptop's disk is not there, so every place that takes a path goes through
here. Credentials and endpoints come only from each store's standard environment (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
``AWS_REGION``), never from the config file, which is copied into ConfigMaps and MLflow.

Failures of the store itself (no such bucket, unreachable endpoint, denied credentials) become
one-line errors naming the URI and the fix, raised before any Ray work starts.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from tsdl.errors import StorageError, TsdlError

if TYPE_CHECKING:
    import pyarrow.fs

__all__ = [
    "absolute",
    "describe",
    "exists",
    "filesystem",
    "is_uri",
    "join",
    "probe_writable",
    "ray_storage",
    "read_bytes",
    "require_file",
    "write_bytes",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_S3_SCHEMES = {"s3", "s3a"}
_PROBE_PREFIX = ".tsdl-probe-"


def is_uri(location: str | Path) -> bool:
    """True for ``scheme://...`` other than ``file://`` (those are plain local paths)."""
    match = _SCHEME.match(str(location))
    return match is not None and match.group(1).lower() != "file"


def absolute(location: str | Path) -> str:
    """URIs unchanged; local paths (and ``file://`` URIs) made absolute against the cwd.

    Stored runs keep this form, so ``evaluate``, ``--resume`` and ``--reproduce`` find the same
    files from any working directory (and Ray workers, which run elsewhere, do too).
    """
    text = str(location)
    if is_uri(text):
        return text
    if text.lower().startswith("file://"):
        text = text[len("file://") :]
    return str(Path(text).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for paths and URIs alike (no ``os.sep`` surprises in URIs)."""
    return "/".join([location.rstrip("/"), *(p.strip("/") for p in parts)])


def describe(location: str) -> str:
    """The location plus the endpoint it resolves to (what a user needs to debug access)."""
    endpoint = _s3_endpoint() if _scheme(location) in _S3_SCHEMES else None
    return f"{location} (endpoint {endpoint})" if endpoint else location


def filesystem(location: str | Path) -> tuple[pyarrow.fs.FileSystem, str]:
    """The pyarrow filesystem holding ``location`` and the path inside it.

    S3 endpoints and region are read from the environment explicitly (the AWS SDK inside
    pyarrow does not read ``AWS_ENDPOINT_URL_S3`` in every version); query parameters in the
    URI (``?endpoint_override=...``) still win, as in `pyarrow.fs.FileSystem.from_uri`.

    Raises:
        StorageError: the scheme is unsupported or the store cannot be set up.
    """
    import pyarrow.fs

    text = str(location)
    if not is_uri(text):
        return pyarrow.fs.LocalFileSystem(), absolute(text)
    scheme = _scheme(text)
    try:
        if scheme in _S3_SCHEMES and "?" not in text:
            return _s3_filesystem(), text.split("://", 1)[1].rstrip("/")
        fs, path = pyarrow.fs.FileSystem.from_uri(text)
        return fs, path.rstrip("/")
    except (OSError, ValueError, ImportError) as exc:
        message, hint = _explain(exc, text)
        raise StorageError(message, hint=hint) from None


def ray_storage(location: str) -> tuple[str, pyarrow.fs.FileSystem | None]:
    """``(storage_path, storage_filesystem)`` for Ray's ``RunConfig`` and ``Tuner.restore``.

    Local storage: the absolute path and None. A URI: the path inside the store and the
    filesystem configured from the environment (Ray pickles it to every worker).
    """
    if not is_uri(location):
        return absolute(location), None
    fs, path = filesystem(location)
    return path, fs


def exists(location: str) -> bool:
    """Whether a file or directory (prefix) exists at ``location``."""
    import pyarrow.fs

    fs, path = filesystem(location)
    try:
        return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound
    except OSError as exc:
        message, hint = _explain(exc, location)
        raise StorageError(message, hint=hint) from None


def require_file(
    location: str | Path, *, what: str, fix: str, error: type[TsdlError] = StorageError
) -> int:
    """Check that ``location`` is one readable file; returns its size in bytes.

    Args:
        location: path or URI.
        what: how the message names it, e.g. ``"data file"``.
        fix: the hint for a missing file, e.g. ``"set data.path to ..."``.
        error: the `TsdlError` subclass to raise (DataError for data, ...).

    Raises:
        error: missing file or bucket, a directory, an unreachable store or denied access.
    """
    import pyarrow.fs

    text = absolute(location)
    try:
        fs, path = filesystem(text)
        info = fs.get_file_info(path)
        if info.type == pyarrow.fs.FileType.NotFound:
            bucket = _missing_bucket(fs, text, path)
            if bucket is not None:
                raise error(
                    f"{what} {text}: bucket '{bucket}' does not exist at {describe(text)}",
                    hint=f"create the bucket or fix the URI; {fix}",
                )
            raise error(f"{what} {describe(text)} does not exist", hint=fix)
        if info.type == pyarrow.fs.FileType.Directory:
            raise error(f"{what} {text} is a directory", hint="point it at one file")
        return int(info.size or 0)
    except StorageError as exc:
        raise error(exc.message, hint=exc.hint) from None
    except OSError as exc:
        message, hint = _explain(exc, text)
        raise error(f"{what} {message}", hint=hint) from None


def read_bytes(location: str | Path) -> bytes:
    """The whole file (small files: configs, records, probes)."""
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as src:
            return src.read()
    except FileNotFoundError:
        raise StorageError(f"{location} does not exist", hint="check the path or URI") from None
    except OSError as exc:
        message, hint = _explain(exc, str(location))
        raise StorageError(message, hint=hint) from None


def write_bytes(location: str | Path, data: bytes) -> str:
    """Write ``data`` to ``location`` (parent directories created); returns the absolute location."""
    text = absolute(location)
    fs, path = filesystem(text)
    try:
        parent = path.rsplit("/", 1)[0]
        if parent and parent != path:
            fs.create_dir(parent, recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(data)
    except OSError as exc:
        message, hint = _explain(exc, text)
        raise StorageError(message, hint=hint) from None
    return text


def probe_writable(location: str, *, what: str = "storage path") -> None:
    """Write, read back and delete a small marker under ``location``, or raise at once.

    Run before a long job starts: an unwritable results store would otherwise fail only at
    the first checkpoint (or, for a study, after hours of trials).

    Raises:
        StorageError: names the location, what failed, and the fix.
    """
    marker = join(absolute(location), f"{_PROBE_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        fs, path = filesystem(marker)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(b"tsdl storage probe\n")
        with fs.open_input_stream(path) as src:
            src.read()
        fs.delete_file(path)
    except StorageError as exc:
        raise StorageError(f"{what} {exc.message}", hint=exc.hint) from None
    except OSError as exc:
        message, hint = _explain(exc, absolute(location))
        raise StorageError(f"{what} {message} (while writing a probe file)", hint=hint) from None


def _scheme(location: str) -> str:
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else ""


def _s3_endpoint() -> str | None:
    """``AWS_ENDPOINT_URL_S3`` beats ``AWS_ENDPOINT_URL`` (the AWS SDKs' own precedence)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _s3_filesystem() -> pyarrow.fs.S3FileSystem:
    import pyarrow.fs

    endpoint = _s3_endpoint()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    kwargs: dict[str, str] = {}
    if endpoint:
        scheme, sep, rest = endpoint.partition("://")
        kwargs["endpoint_override"] = rest.rstrip("/") if sep else endpoint.rstrip("/")
        kwargs["scheme"] = scheme if sep else "https"
        kwargs["region"] = region or "us-east-1"  # S3-compatible stores ignore it, the signer needs one
    elif region:
        kwargs["region"] = region
    return pyarrow.fs.S3FileSystem(**kwargs)


def _missing_bucket(fs: pyarrow.fs.FileSystem, location: str, path: str) -> str | None:
    """The bucket name when an object-store location's bucket does not exist."""
    import pyarrow.fs

    if not is_uri(location):
        return None
    bucket = path.split("/", 1)[0]
    try:
        missing = fs.get_file_info(bucket).type == pyarrow.fs.FileType.NotFound
    except OSError:
        return None
    return bucket if missing else None


def _explain(exc: BaseException, location: str) -> tuple[str, str]:
    """(message, hint) for a store failure; message starts with the location."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    where = describe(location)
    scheme = _scheme(location)
    if "NETWORK_CONNECTION" in text or "Could not connect" in text or "Could not resolve" in text:
        env = "AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3" if scheme in _S3_SCHEMES else "the store's endpoint"
        return (
            f"{where}: the object store is unreachable",
            f"start the store or fix {env} (credentials and endpoints come from the environment)",
        )
    if any(key in text for key in ("ACCESS_DENIED", "INVALID_ACCESS_KEY", "SIGNATURE_DOES_NOT_MATCH", "AccessDenied", "InvalidAccessKeyId", "Forbidden", "403")):
        creds = "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY" if scheme in _S3_SCHEMES else "the store's credentials"
        return (
            f"{where}: access denied",
            f"set {creds} in the environment to a key that may read and write there",
        )
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text or ("Bucket" in text and "not found" in text):
        bucket = location.split("://", 1)[-1].split("/", 1)[0]
        return (f"{where}: bucket '{bucket}' does not exist", "create the bucket or fix the URI")
    if isinstance(exc, PermissionError):
        return (f"{where}: permission denied", "pick a writable directory (or fix its owner/mode)")
    if "Unrecognized filesystem type" in text or "Unsupported" in text or isinstance(exc, ImportError):
        return (
            f"{where}: unsupported storage scheme '{scheme}'",
            "use a local path or s3://, gs://, abfs:// (the schemes pyarrow.fs supports)",
        )
    return (f"{where}: {text[:300]}", "check the path or URI and the store's environment variables")
