"""Atomic file writes: write to a temporary name beside the target, rename
when complete (``os.replace`` is atomic on POSIX within one file system)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = True):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    On an exception (or Ctrl-C) the temporary file is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir():
                import shutil

                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        raise
