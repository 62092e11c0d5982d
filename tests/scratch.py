"""Temp dirs the harness's servers can enter: as root they run as `nobody`, and pytest's tmp_path is 0700."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["enterable_dir"]


@contextmanager
def enterable_dir(prefix: str, *, on_shm: bool = False) -> Iterator[Path]:
    """A fresh dir of mode 755, removed afterwards; ``on_shm`` puts it on /dev/shm when there is one (the
    harness's own choice for workdirs: creating files there is ~50x cheaper than under /tmp here)."""
    base = "/dev/shm" if on_shm and Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
