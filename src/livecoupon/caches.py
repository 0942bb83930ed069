"""livecoupon's cache folder: what a command could rebuild but would rather not at every start.

pypinyin's dictionaries (engine/pinyin.py) are kept in ``$LIVECOUPON_CACHE``, else
``$XDG_CACHE_HOME/livecoupon/``, else ``~/.cache/livecoupon/``. Nothing there is ever
needed: an entry missing, stale or unreadable is rebuilt, and one that cannot be written
only costs speed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CACHE_ENV = "LIVECOUPON_CACHE"  # a folder for livecoupon's caches alone (the tests point it at their own)


def cache_folder() -> Path:
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(root, "livecoupon")
    return Path(folder)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all, also for a process reading it meanwhile; a failure is ignored."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError:
        with contextlib.suppress(OSError):  # not even a folder there: ENOTDIR is no FileNotFoundError
            partial.unlink(missing_ok=True)
