"""Atomic file writes: a checkpoint, a state or an output file is either whole or not there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import CheckpointError


def write_atomic(path: str | Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write {path}: it is a folder, not a file; give a file's path")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise CheckpointError(f"cannot write {path} ({e.strerror}); choose another folder") from None
    try:
        # mkstemp creates the file private (0600); give it the mode any new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a lost network share: the old file is still whole
            kept = f"; the previous {path.name} is intact" if path.exists() else ""
            raise CheckpointError(f"cannot write {path} ({e.strerror or e}){kept}") from None
        raise
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)
