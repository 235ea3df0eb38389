"""One way to replace a small state file so that a crash leaves the old file or the new one, never half.

Used for the log positions, the chain head and a bundle's manifest in the outbox: each is read
back by the next run, which must find either the previous state or the new one whole. The data
reach the disk (fsync) before the rename makes them visible, else a power cut after the rename
can leave an empty file under the new name.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path atomically, mode 0600 (the temporary file is created private)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
