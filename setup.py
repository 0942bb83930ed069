"""Build: the hot path compiled with mypyc and Cython, unless LIVECOUPON_PURE=1 (everything else: pyproject.toml).

The modules of ``livecoupon.compiled.MODULES`` (engine, domain, recordings) are the same
sources, type-checked by mypy --strict, turned into C by mypyc and built by the machine's
C compiler into extensions beside them; ``livecoupon.compiled.NATIVE``, the recordings'
line reader, is written in Cython (it has no Python source: without it the recordings read
every line as the pure build does). ``LIVECOUPON_PURE=1 pip install .`` builds pure
Python, which decides byte for byte the same (tests/unit/test_builds.py). In an editable
install, a module edited after the build runs from its source until the next
``make compile`` (``make test`` does it first; see livecoupon/compiled.py).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
# read without importing the package: its dependencies need not be installed to build it
BUILD = runpy.run_path(str(HERE / "src" / "livecoupon" / "compiled.py"))


def ext_modules() -> list[object]:
    if BUILD["wants_pure"](os.environ):
        return []
    from Cython.Build import cythonize
    from mypyc.build import mypycify
    from setuptools import Extension

    paths = [str(Path("src", *module.split("."))) + ".py" for module in BUILD["MODULES"]]
    native = BUILD["NATIVE"]
    reader = Extension(native, [str(Path("src", *native.split("."))) + ".pyx"], extra_compile_args=["-O3"])
    return [*mypycify(["--config-file", "pyproject.toml", *paths], opt_level="3", debug_level="0",
                      group_name=BUILD["GROUP"]),
            *cythonize([reader], language_level=3, quiet=True)]


setup(ext_modules=ext_modules())
