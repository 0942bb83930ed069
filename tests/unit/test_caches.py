"""livecoupon's cache folder (caches.py): where it is, and a write that cannot fail a command."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecoupon.caches import CACHE_ENV, cache_folder, write_atomically


def test_the_folder_is_livecoupon_cache_else_under_xdg_cache_home_else_home(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "ours"))
    assert cache_folder() == tmp_path / "ours"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == tmp_path / "livecoupon"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_folder() == tmp_path / "home" / ".cache" / "livecoupon"


def test_a_write_makes_its_folder_and_leaves_the_whole_file_only(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "entry"
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["entry"]


def test_a_write_that_cannot_be_done_is_only_skipped(tmp_path: Path) -> None:
    # a cache folder under a file: removing the partial raises NotADirectoryError, which is no FileNotFoundError
    blocked = tmp_path / "a-file"
    blocked.write_bytes(b"")
    write_atomically(blocked / "cache" / "entry", b"data")
    assert not (blocked / "cache" / "entry").exists()
