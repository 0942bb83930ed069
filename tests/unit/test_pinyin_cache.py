"""pypinyin imported with its dictionaries from the cache file answers exactly as a plain import (engine/pinyin.py).

Each import lives in a child process of its own (one process imports pypinyin once): a plain one, and
one through the cache, which says whether it did read the cache. Both answer ``lazy_pinyin`` of the
texts they are sent, one JSON string a line.
"""

from __future__ import annotations

import json
import marshal
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.engine.pinyin import (
    CACHE_ENV,
    FORMAT,
    cache_file,
    cache_key,
    read_cache,
    reading_index,
    write_atomically,
)

PLAIN = "from pypinyin import lazy_pinyin\nread_cache = False\n"
CACHED = ("from livecoupon.engine.pinyin import load_lazy_pinyin\nlazy_pinyin = load_lazy_pinyin()\n"
          "read_cache = getattr(sys.modules['pypinyin.pinyin_dict'], '__file__', None) is None\n")
ANSWER = ("print(json.dumps(read_cache), flush=True)\n"
          "for line in sys.stdin:\n    print(json.dumps(lazy_pinyin(json.loads(line))), flush=True)\n")

HETERONYMS = ["银行", "行走", "重庆", "重要", "发券", "优惠券", "长大", "长度", "音乐", "快乐", "还钱", "还有",
              "朝阳", "朝代", "觉得", "睡觉", "都市", "都是", "一行行", "重重", "宝宝们发劝啦", "了解", "好了"]


class Pinyin:
    """A child process answering ``lazy_pinyin`` of each text sent to it."""

    def __init__(self, setup: str, cache_home: Path, **switches: str) -> None:
        env = {**{k: v for k, v in os.environ.items() if k != CACHE_ENV}, "XDG_CACHE_HOME": str(cache_home), **switches}
        self.home = cache_home
        self.process = subprocess.Popen([sys.executable, "-c", "import json, sys\n" + setup + ANSWER], env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self.read_cache: bool = self._answer()

    def _answer(self) -> object:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the child process ended"
        return json.loads(line)

    def __call__(self, text: str) -> object:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(text) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        self.process.communicate(timeout=30)  # closes its stdin, so it ends, and its stdout


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pinyin, Pinyin]]:
    home = tmp_path_factory.mktemp("cache")
    Pinyin(CACHED, home).close()  # the first import writes the cache
    plain, cached = Pinyin(PLAIN, home), Pinyin(CACHED, home)
    yield plain, cached
    plain.close()
    cached.close()


def package() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pypinyin")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0])


def all_phrases() -> dict[str, list[list[str]]]:
    found: dict[str, list[list[str]]] = json.loads((package() / "phrases_dict.json").read_text(encoding="utf-8"))
    return found


def phrases() -> list[str]:
    """A deterministic sample of pypinyin's own phrases: random characters seldom make one."""
    return sorted(all_phrases())[::40]


cjk = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
others = st.sampled_from(list("abcXYZ019 ，。！？、：；“”‘’（）《》…—,.!?'\"-~·〇㐀豈𠀀"))
pieces = st.one_of(st.sampled_from(HETERONYMS), st.sampled_from(phrases()), st.text(cjk, max_size=6),
                   st.text(others, max_size=4))
texts = st.lists(pieces, max_size=8).map("".join)


def test_the_cached_import_reads_the_cache(both: tuple[Pinyin, Pinyin]) -> None:
    plain, cached = both
    assert (plain.read_cache, cached.read_cache) == (False, True)


def test_the_cache_holds_pypinyin_s_phrases_with_each_list_of_readings_once(both: tuple[Pinyin, Pinyin]) -> None:
    found = read_cache(both[1].home / "livecoupon" / f"pypinyin-{FORMAT}.marshal", cache_key(package()))
    assert found is not None
    _, cached, _, _ = found
    assert cached == all_phrases()
    lists = [readings for characters in cached.values() for readings in characters]
    assert len({id(readings) for readings in lists}) == len({tuple(readings) for readings in lists}) < len(lists) / 10


def test_the_cache_holds_the_reading_index_of_pypinyin_s_dictionaries(both: tuple[Pinyin, Pinyin]) -> None:
    from pypinyin.constants import PHRASES_DICT
    from pypinyin.pinyin_dict import pinyin_dict

    found = read_cache(both[1].home / "livecoupon" / f"pypinyin-{FORMAT}.marshal", cache_key(package()))
    assert found is not None
    assert found[3] == reading_index(pinyin_dict, PHRASES_DICT)
    assert {"发", "伐", "乏"} <= set(found[3]["fa"]) and "乐" in found[3]["lao"]  # 乐亭: lào in a phrase alone


@pytest.mark.parametrize("text", [*HETERONYMS, "".join(HETERONYMS), "", "abc", "宝宝们, 发券啦!!"])
def test_heteronym_phrases_read_alike(both: tuple[Pinyin, Pinyin], text: str) -> None:
    plain, cached = both
    assert cached(text) == plain(text)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_any_text_reads_alike(both: tuple[Pinyin, Pinyin], text: str) -> None:
    plain, cached = both
    assert cached(text) == plain(text)


@pytest.mark.parametrize("content", [b"", b"not marshal at all", b"\xff" * 64])
def test_a_corrupt_cache_falls_back_to_the_plain_import_and_is_written_again(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "livecoupon" / f"pypinyin-{FORMAT}.marshal"
    path.parent.mkdir()
    path.write_bytes(content)
    first = Pinyin(CACHED, tmp_path)
    assert (first.read_cache, first("银行行长")) == (False, ["yin", "hang", "hang", "zhang"])
    first.close()
    again = Pinyin(CACHED, tmp_path)
    assert (again.read_cache, again("银行行长")) == (True, ["yin", "hang", "hang", "zhang"])
    again.close()


def test_writing_the_cache_removes_an_earlier_format_s(tmp_path: Path) -> None:
    folder = tmp_path / "livecoupon"
    folder.mkdir()
    (folder / f"pypinyin-{FORMAT - 1}.marshal").write_bytes(b"an earlier format")
    Pinyin(CACHED, tmp_path).close()
    assert [p.name for p in folder.iterdir()] == [f"pypinyin-{FORMAT}.marshal"]


def test_an_absent_cache_is_written_where_xdg_cache_home_says(tmp_path: Path) -> None:
    first = Pinyin(CACHED, tmp_path)
    assert (first.read_cache, first("重庆")) == (False, ["chong", "qing"])
    first.close()
    assert (tmp_path / "livecoupon" / f"pypinyin-{FORMAT}.marshal").is_file()
    assert [p.name for p in (tmp_path / "livecoupon").iterdir()] == [f"pypinyin-{FORMAT}.marshal"]  # no .tmp left


def test_pypinyin_s_own_switches_mean_the_plain_import(both: tuple[Pinyin, Pinyin]) -> None:
    """Its import reads no phrases with PYPINYIN_NO_PHRASES: the cache, which holds them, must not add them."""
    home = both[1].home
    plain, cached = Pinyin(PLAIN, home, PYPINYIN_NO_PHRASES="1"), Pinyin(CACHED, home, PYPINYIN_NO_PHRASES="1")
    assert (cached.read_cache, cached("银行"), plain("银行")) == (False, ["yin", "xing"], ["yin", "xing"])
    plain.close()
    cached.close()


def test_the_cache_file_is_in_livecoupon_cache_else_under_xdg_cache_home_else_home(monkeypatch: pytest.MonkeyPatch,
                                                                                   tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "ours"))
    assert cache_file() == tmp_path / "ours" / f"pypinyin-{FORMAT}.marshal"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_file() == tmp_path / "livecoupon" / f"pypinyin-{FORMAT}.marshal"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_file() == tmp_path / "home" / ".cache" / "livecoupon" / f"pypinyin-{FORMAT}.marshal"


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


KEY = (FORMAT, "a key")
GOOD = (KEY, {0x94F6: "yín"}, {"银行": [["yín"], ["háng"]]}, {"银", "银行"}, {"yin": "银", "hang": "行"})


@pytest.mark.parametrize(("written", "expected"), [
    (GOOD, GOOD[1:]),
    (((FORMAT, "another key"), *GOOD[1:]), None),  # pypinyin changed since: its files' sizes or times differ
    (GOOD[:4], None),  # the format before the reading index
    ((KEY, {}, [], set(), {}), None),
    ((*GOOD[:4], ["yin"]), None),
    ([*GOOD], None),
])
def test_a_cache_is_read_only_for_its_key_and_shape(tmp_path: Path, written: object, expected: object) -> None:
    path = tmp_path / "cache.marshal"
    path.write_bytes(marshal.dumps(written))
    assert read_cache(path, KEY) == expected


def test_a_truncated_or_missing_cache_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "cache.marshal"
    assert read_cache(path, KEY) is None
    path.write_bytes(marshal.dumps(GOOD)[:-20])
    assert read_cache(path, KEY) is None
