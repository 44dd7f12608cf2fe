"""Output directories given as URIs (``s3://bucket/runs``, ``gs://...``): write locally, then upload with fsspec.

A profiler writes to local files, so a session whose ``output_dir`` is a URI
writes into a local staging directory and, once its files are complete,
copies them to the URI through ``fsspec`` (the optional extra ``remote``:
``pip install npuprofile[remote]``) and removes the local copies. Without
fsspec such an ``output_dir`` is a :class:`~npuprofile.errors.ConfigError`
naming it, never a local directory named ``s3:``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from npuprofile.errors import ConfigError

__all__ = ["RemoteDir", "is_uri", "parse_remote", "upload"]

logger = logging.getLogger("npuprofile")

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Local staging directories of remote output directories live under ``<tmp>/<STAGING>/``.
STAGING = "npuprofile-upload"


@dataclasses.dataclass(frozen=True)
class RemoteDir:
    """A remote output directory and the local directory its files are staged in."""

    uri: str
    staging: Path


def is_uri(text: str) -> bool:
    """Whether ``text`` names a location by URI scheme (``s3://``, ``gs://``, ``file://``...)."""
    return bool(_SCHEME.match(text.strip()))


def _fsspec() -> Any:
    return importlib.import_module("fsspec")


def parse_remote(value: str, source: str) -> RemoteDir:
    """A :class:`RemoteDir` for the URI ``value``, or a ConfigError naming it when fsspec is missing."""
    uri = value.strip().rstrip("/")
    try:
        fsspec = _fsspec()
    except ImportError:
        raise ConfigError(
            f"{source}={value!r} is a URI, and writing there needs fsspec, which is not installed "
            "(pip install npuprofile[remote]); allowed: a local directory, or a URI once fsspec is installed"
        ) from None
    try:
        fsspec.core.url_to_fs(uri)
    except Exception as exc:  # an unknown protocol, or its driver package missing
        raise ConfigError(f"{source}={value!r} cannot be opened by fsspec: {type(exc).__name__}: {exc}") from None
    digest = hashlib.sha1(uri.encode("utf-8")).hexdigest()[:12]
    return RemoteDir(uri, Path(tempfile.gettempdir()) / STAGING / digest)


def upload(paths: Iterable[Path], staging: Path, uri: str) -> list[str]:
    """Copy each file or directory under ``staging`` to the same place under ``uri``; return where each went.

    A path that was uploaded is removed locally; one that failed stays, is
    logged, and is returned as its local path.
    """
    fs, root = _fsspec().core.url_to_fs(uri)
    done: list[str] = []
    for path in paths:
        if not path.exists():
            continue
        try:
            relative = path.relative_to(staging).as_posix()
        except ValueError:
            relative = path.name
        target = f"{root.rstrip('/')}/{relative}"
        try:
            fs.makedirs(target.rpartition("/")[0], exist_ok=True)
            fs.put(str(path), target, recursive=path.is_dir())
        except Exception as exc:
            logger.error("npuprofile: could not upload %s to %s: %s: %s; the local copy stays",
                         path, uri, type(exc).__name__, exc)
            done.append(str(path))
            continue
        done.append(f"{uri.rstrip('/')}/{relative}")
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return done
