"""Does the host's speech contain a passphrase? Text or toneless pinyin (SPEC §4).

pypinyin's dictionaries take a quarter of a second to load, so they load the first time a
transcript does not contain a passphrase as text: a replay without transcripts never pays.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Final

from livecoupon.domain.text import normalise
from livecoupon.store.port import collector_paused


def toneless(text: str) -> tuple[str, ...]:
    """``pypinyin.lazy_pinyin`` of already normalised text."""
    return tuple(_pinyin()(text))


@lru_cache(maxsize=1)
def _pinyin() -> Callable[[str], list[str]]:
    """``pypinyin.lazy_pinyin``, imported on first use.

    Its dictionaries (~190,000 lists) live as long as the process, so they are read with the
    collector paused (its passes over them were 40% of the import: 0.185 s against 0.105 for the
    phrases' JSON, measured) and then frozen out of it, which would otherwise scan them in every
    full collection (0.06 s each) and once more as the process exits."""
    with collector_paused():
        from livecoupon.engine.pinyin import load_lazy_pinyin

        pinyin = load_lazy_pinyin()  # its dictionaries from a cache file when it is valid (engine/pinyin.py)
    gc.freeze()
    return pinyin


def _contains_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    if n == 0 or n > len(haystack):
        return False
    first = needle[0]
    return any(haystack[i] == first and list(haystack[i:i + n]) == list(needle)
               for i in range(len(haystack) - n + 1))


@lru_cache(maxsize=4096)
def hear(text: str) -> str:
    """A transcript as every passphrase trigger compares it, normalised.

    Cached: one transcript is checked by every passphrase trigger, and hosts repeat themselves.
    """
    return normalise(text)


@lru_cache(maxsize=4096)
def hear_pinyin(said: str) -> tuple[str, ...]:
    return toneless(said)


_VERDICTS: Final = 4096  # transcripts a matcher remembers its answer for (hosts repeat themselves)


class PhraseMatcher:
    """Matches normalised text, then pinyin so that 发劝 still says 发券."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases = tuple(normalise(p) for p in phrases)
        self._pinyin: tuple[tuple[str, ...], ...] | None = None
        self._sounds: tuple[tuple[tuple[str, frozenset[str]], ...], ...] = ()  # each phrase's syllables' readers
        self._verdicts: dict[str, bool] = {}

    def matches(self, text: str) -> bool:
        said = hear(text)
        if any(phrase in said for phrase in self.phrases):
            return True
        verdict = self._verdicts.get(said)
        if verdict is None:
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[said] = self._heard_in(said)
        return verdict

    def _heard_in(self, said: str) -> bool:
        """Whether a phrase's pinyin is a run of the transcript's (SPEC §4).

        The transcript's pinyin (~50 µs for ten characters, pypinyin) is worked out only if, for each syllable
        of a phrase, the transcript holds a character that may be read so (engine/pinyin.py ``reading_index``:
        every reading of every character, alone or in any phrase) or the syllable itself as written (a run of
        other characters is one token): a transcript without them cannot sound like the phrase."""
        if self._pinyin is None:  # both worked out before either is kept: a failure, or a thread, finds neither
            pinyin = tuple(toneless(p) for p in self.phrases)
            readers = _readers()
            self._sounds = tuple(tuple((token, frozenset(readers.get(token, ""))) for token in tokens)
                                 for tokens in pinyin)
            self._pinyin = pinyin
        maybe = [tokens for tokens, sounds in zip(self._pinyin, self._sounds, strict=True)
                 if all(token in said or not chars.isdisjoint(said) for token, chars in sounds)]
        if not maybe:
            return False
        heard = hear_pinyin(said)
        return any(_contains_run(heard, tokens) for tokens in maybe)


def _readers() -> dict[str, str]:
    from livecoupon.engine.pinyin import readers

    _pinyin()  # pypinyin imported first, its reading index with it when the cache holds one
    return readers()


@lru_cache(maxsize=4096)
def read(comment: str) -> str:
    """A comment as every keyword trigger compares it, normalised.

    Cached: a third of a busy room's events are comments, and viewers repeat each
    other (扣1, 666, 来了): normalising each anew was ~1 µs, most of a comment's matching.
    """
    return normalise(comment)


class KeywordMatcher:
    """Comment keywords: a substring of the normalised comment, no pinyin."""

    def __init__(self, keywords: Sequence[str]) -> None:
        self.keywords = tuple(normalise(k) for k in keywords)

    def matches(self, text: str) -> bool:
        said = read(text)
        return any(keyword in said for keyword in self.keywords)
