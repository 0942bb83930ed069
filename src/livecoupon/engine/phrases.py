"""Does the host's speech contain a passphrase? Text or toneless pinyin (SPEC §4)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from pypinyin import lazy_pinyin

from livecoupon.domain.text import normalise


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    return any(haystack[i] == first and list(haystack[i:i + n]) == list(needle)
               for i in range(len(haystack) - n + 1))


@lru_cache(maxsize=4096)
def hear(text: str) -> tuple[str, tuple[str, ...]]:
    """A transcript as every passphrase trigger compares it: normalised text and its pinyin.

    Cached: one transcript is checked by every passphrase trigger, and hosts repeat themselves.
    """
    said = normalise(text)
    return said, tuple(lazy_pinyin(said))


class PhraseMatcher:
    """Matches normalised text, then pinyin so that 发劝 still says 发券."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases = tuple(normalise(p) for p in phrases)
        self._pinyin = tuple(lazy_pinyin(p) for p in self.phrases)

    def matches(self, text: str) -> bool:
        said, heard = hear(text)
        if any(phrase in said for phrase in self.phrases):
            return True
        return any(_contains_run(heard, tokens) for tokens in self._pinyin)


class KeywordMatcher:
    """Comment keywords: a substring of the normalised comment, no pinyin."""

    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = tuple(normalise(k) for k in keywords)

    def matches(self, text: str) -> bool:
        said = normalise(text)
        return any(keyword in said for keyword in self.keywords)
