"""Which modules a build compiles with mypyc, and when their Python sources run instead.

``pip install`` (and ``make install``) compiles :data:`MODULES` to C extensions beside
their sources (setup.py; ``LIVECOUPON_PURE=1`` at build time builds pure Python). Python
would then import an extension even after its ``.py`` was edited, so on import of
``livecoupon`` the sources are put first — every module of the list from its ``.py`` —

- when ``LIVECOUPON_PURE=1`` is set at run time (the pure build, for comparisons), or
- when a source is newer than its compiled module (an edit since the last build; ``make
  test`` rebuilds first, ``make compile`` rebuilds alone). :data:`outdated` names them.

All or none: the compiled modules call each other directly in C, so one stale module
would still run through its compiled callers.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

# The modules replay spends its time in (profiled on bench/engine.py's mixed stream). Not
# domain/offers.py nor engine/offering.py (offers are rare and their policies change often),
# nor domain/experiments.py (its tests replace ``bucket``, which a compiled caller would not see),
# nor domain/campaign.py and domain/coupons.py: snapshots pickle the campaign (engine/snapshots.py),
# and mypyc's unpickling assigns fields one by one, which a frozen dataclass refuses; nor
# domain/records.py: msgspec decodes its records off the bus (cluster/wire.py), and cannot
# read a compiled dataclass's fields.
MODULES = (
    "livecoupon.domain.commands",
    "livecoupon.domain.decisions",
    "livecoupon.domain.events",
    "livecoupon.domain.money",
    "livecoupon.domain.text",
    "livecoupon.engine.campaigns",
    "livecoupon.engine.engine",
    "livecoupon.engine.explaining",
    "livecoupon.engine.phrases",
    "livecoupon.engine.plans",
    "livecoupon.engine.recordings",
    "livecoupon.engine.replay",
    "livecoupon.engine.rooms",
    "livecoupon.store.memory",
)
# The recordings' line reader, written in Cython (engine/scan.pyx; setup.py builds it beside the others). It has no
# Python source: where it is not used (the pure build, or its .pyx edited since it was built), recordings.plain_fields
# reads every line itself, to the same fields.
NATIVE = "livecoupon.engine.scan"
PURE_ENV = "LIVECOUPON_PURE"
GROUP = "livecoupon"  # mypyc's group name: the shared library is livecoupon__mypyc (setup.py)
_ROOT = Path(__file__).resolve().parent.parent  # the directory holding the livecoupon package
_GRACE_S = 2.0  # a wheel writes a module's .py and .so within moments of each other


def wants_pure(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return environ.get(PURE_ENV, "") not in ("", "0")


def source_of(module: str, root: Path = _ROOT) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def extension_of(module: str, root: Path = _ROOT) -> Path | None:
    source = source_of(module, root)
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = source.with_name(source.stem + suffix)
        if candidate.exists():
            return candidate
    return None


def built_at(module: str, root: Path = _ROOT) -> float | None:
    """When ``module`` was last compiled (None: it is not). Its code is in the group's shared
    library (``livecoupon__mypyc``); its own extension is a shim a rebuild may leave as it was."""
    extension = extension_of(module, root)
    if extension is None:
        return None
    group = [root / f"{GROUP}__mypyc{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return max(path.stat().st_mtime for path in [extension, *group] if path.exists())


def stale(modules: Sequence[str] = MODULES, root: Path = _ROOT) -> list[str]:
    """The compiled modules whose source was changed after they were built."""
    found = []
    for module in modules:
        built = built_at(module, root)
        if built is not None and source_of(module, root).stat().st_mtime > built + _GRACE_S:
            found.append(module)
    return found


def native_line_reader(root: Path = _ROOT) -> Callable[[bytes | str], object] | None:
    """:data:`NATIVE`'s ``plain``, or None: the pure build is asked for, it was not built, or its source
    changed since it was (``make compile`` builds it again)."""
    extension = extension_of(NATIVE, root)
    if wants_pure() or extension is None:
        return None
    source = source_of(NATIVE, root).with_suffix(".pyx")
    if source.exists() and source.stat().st_mtime > extension.stat().st_mtime + _GRACE_S:
        return None
    reader: Callable[[bytes | str], object] = importlib.import_module(NATIVE).plain
    return reader


def is_compiled(module: ModuleType) -> bool:
    return not (module.__file__ or "").endswith(".py")


class _SourcesFirst(importlib.abc.MetaPathFinder):
    """Finds each module of :data:`MODULES` as its ``.py``, never its extension."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


outdated: list[str] = []  # compiled modules found older than their sources (then the sources run)


def choose_build() -> None:
    """Put the sources first when asked to, or when a compiled module is out of date."""
    if any(isinstance(finder, _SourcesFirst) for finder in sys.meta_path):
        return
    if not wants_pure():
        outdated[:] = stale()
        if not outdated:
            return
    sys.meta_path.insert(0, _SourcesFirst())
