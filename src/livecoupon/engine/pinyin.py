"""pypinyin, its dictionaries read from a per-user cache instead of rebuilt at every import.

Importing pypinyin reads its two JSON dictionaries (turning the single characters' keys into
ints) and trains its segmenter's prefix set over every phrase: ~0.2 s of every replay with
transcripts. Those three structures are all the import computes, so they are kept in one
marshal file (``$LIVECOUPON_CACHE``, else ``$XDG_CACHE_HOME/livecoupon/``, else
``~/.cache/livecoupon/``) and handed to the import, which then has nothing to compute.
pypinyin's own code still segments and converts: ``lazy_pinyin`` answers exactly as after a
plain import.

The file is used only when its key matches: the format, the interpreter, and the path, size
and mtime of every pypinyin file the structures come from (its ``__init__.py`` holds its
version). Otherwise, or unreadable, the import is the plain one, and the file is written
afterwards (atomically) for the next process. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import sys
import threading
import types
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# 2: the phrases' syllable lists shared (_shared); 3: the readers of each reading (reading_index); 4: those readings
# written by pypinyin's own conversion alone. Bump it whenever what the file holds is built otherwise, reading_index
# included: a file's key names pypinyin's files, not ours.
FORMAT = 4
# What pypinyin's import builds the structures from: its data, the modules that read it, the version.
SOURCES = ("__init__.py", "constants.py", "pinyin_dict.py", "pinyin_dict.json", "phrases_dict.py",
           "phrases_dict.json", "seg/mmseg.py")
# pypinyin's switches that change what its import builds: with either set, the plain import.
SWITCHES = ("PYPINYIN_NO_PHRASES", "PYPINYIN_NO_DICT_COPY")

LazyPinyin = Callable[[str], list[str]]
Key = tuple[Any, ...]  # marshal's types only: the format, strings, ints
CACHE_ENV = "LIVECOUPON_CACHE"  # a folder for livecoupon's caches alone (the tests point it at their own)


def cache_file() -> Path:
    folder = os.environ.get(CACHE_ENV)
    if not folder:
        root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(root, "livecoupon")
    return Path(folder) / f"pypinyin-{FORMAT}.marshal"


def cache_key(package: Path) -> Key:
    files = []
    for name in SOURCES:
        stat = (package / name).stat()
        files.append((name, stat.st_size, stat.st_mtime_ns))
    return (FORMAT, sys.version, marshal.version, str(package), tuple(files))


_loading = threading.Lock()
_readers: dict[str, str] | None = None  # the reading index of the dictionaries imported, once known


def load_lazy_pinyin() -> LazyPinyin:
    """``pypinyin.lazy_pinyin``, imported with the cached dictionaries when the cache is valid."""
    with _loading:  # another thread would otherwise find pypinyin imported before its phrases are filled in
        return _load()


def _load() -> LazyPinyin:
    package = _package()
    if package is None or "pypinyin" in sys.modules or any(os.environ.get(s) for s in SWITCHES):
        return _plain_import()
    try:
        key = cache_key(package)
    except OSError:  # a pypinyin whose files are not the ones this module knows
        return _plain_import()
    global _readers
    cached = read_cache(cache_file(), key)
    if cached is None:
        lazy_pinyin = _plain_import()
        write_cache(cache_file(), key)
        return lazy_pinyin
    characters, phrases, prefixes, _readers = cached
    return _import_with(characters, phrases, prefixes)


def _package() -> Path | None:
    spec = importlib.util.find_spec("pypinyin")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0])


def _plain_import() -> LazyPinyin:
    from pypinyin import lazy_pinyin

    pinyin: LazyPinyin = lazy_pinyin
    return pinyin


Dictionaries = tuple[dict[int, str], dict[str, list[list[str]]], set[str], dict[str, str]]


def read_cache(path: Path, key: Key) -> Dictionaries | None:
    """The single characters, the phrases, the segmenter's prefixes and the reading index, if ``path`` holds them
    for ``key``."""
    try:
        found: Any = marshal.loads(path.read_bytes())  # loads of the bytes: marshal.load reads a file piecemeal
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not (isinstance(found, tuple) and len(found) == 5 and found[0] == key):
        return None
    _, characters, phrases, prefixes, readers = found
    if not (isinstance(characters, dict) and isinstance(phrases, dict) and isinstance(prefixes, set)
            and isinstance(readers, dict)):
        return None
    return characters, phrases, prefixes, readers


def write_cache(path: Path, key: Key) -> None:
    """Keep the structures of the pypinyin imported (plainly) in this process; a failure only costs speed."""
    try:  # (a pypinyin laid out otherwise than the one this module knows: no cache, the plain import each time)
        from pypinyin import pinyin_dict
        from pypinyin.constants import PHRASES_DICT
        from pypinyin.seg import mmseg

        data = marshal.dumps((key, pinyin_dict.pinyin_dict, _shared(PHRASES_DICT), mmseg.p_set._set, readers()))
    except (ImportError, AttributeError, ValueError):
        return
    write_atomically(path, data)
    for earlier in range(1, FORMAT):  # an earlier format's file is never read again (a later one's may be)
        with contextlib.suppress(OSError):
            (path.parent / f"pypinyin-{earlier}.marshal").unlink()


def readers() -> dict[str, str]:
    """:func:`reading_index` of the dictionaries pypinyin was imported with (:func:`load_lazy_pinyin` first): from
    the cache, else worked out once (~0.1 s)."""
    global _readers
    if _readers is None:
        from pypinyin import pinyin_dict
        from pypinyin.constants import PHRASES_DICT

        _readers = reading_index(pinyin_dict.pinyin_dict, PHRASES_DICT)
    return _readers


def reading_index(characters: dict[int, str], phrases: dict[str, list[list[str]]]) -> dict[str, str]:
    """Every toneless reading ``lazy_pinyin`` may give a character, alone or in any phrase of its dictionary, and
    the characters that may get it (engine/phrases.py: a passphrase's pinyin can be heard in a transcript only
    if, for each of its syllables, one of these characters is there). A reading is written toneless by pypinyin's
    own ``Style.NORMAL`` conversion, once for each of its ~1,600 distinct readings."""
    from pypinyin import Style
    from pypinyin.style import convert

    forms: dict[str, str] = {}
    found: dict[str, set[str]] = defaultdict(set)

    def may_read(character: str, reading: str) -> None:
        form = forms.get(reading)
        if form is None:
            form = forms[reading] = convert(reading, Style.NORMAL, True)
        found[form].add(character)

    for code, readings in characters.items():
        for reading in readings.split(","):
            may_read(chr(code), reading)
    for phrase, per_character in phrases.items():
        for character, choices in zip(phrase, per_character, strict=False):
            for reading in choices:
                may_read(character, reading)
    return {form: "".join(sorted(chars)) for form, chars in found.items()}


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


def _shared(phrases: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """The phrases with each distinct list of a character's readings one object, which marshal writes once and
    loads as one: 143,861 lists, 1,249 distinct (loading the phrases: 34 -> 9 ms). pypinyin changes none of
    them: it copies a phrase's lists before converting them (converter.py, ``deepcopy``)."""
    distinct: dict[tuple[str, ...], list[str]] = {}
    return {phrase: [distinct.setdefault(tuple(readings), readings) for readings in characters]
            for phrase, characters in phrases.items()}


def _import_with(characters: dict[int, str], phrases: dict[str, list[list[str]]], prefixes: set[str]) -> LazyPinyin:
    """Import pypinyin with its two dictionary modules already in place (so no JSON is read).

    The phrases' module is empty while pypinyin imports, so its segmenter trains over nothing;
    the phrases then go into pypinyin's one table of them (as its ``load_phrases_dict`` does) and
    the trained prefixes into the segmenter."""
    modules = {"pinyin_dict": _module("pypinyin.pinyin_dict", pinyin_dict=characters),
               "phrases_dict": _module("pypinyin.phrases_dict", phrases_dict={})}
    for module in modules.values():
        sys.modules[module.__name__] = module
    lazy_pinyin = _plain_import()
    from pypinyin.constants import PHRASES_DICT
    from pypinyin.seg import mmseg

    PHRASES_DICT.update(phrases)
    mmseg.p_set._set = prefixes
    modules["phrases_dict"].__dict__["phrases_dict"] = phrases
    # a module found in sys.modules is not made an attribute of its package, as an imported one is
    sys.modules["pypinyin"].__dict__.update(modules)
    return lazy_pinyin


def _module(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module
