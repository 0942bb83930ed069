"""A passphrase's pinyin is worked out against a transcript's only when the transcript could sound like it
(engine/phrases.py): the reading index must hold every reading ``lazy_pinyin`` gives, and the matcher must
answer exactly as SPEC §4's rule written plainly."""

from __future__ import annotations

import random
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st
from pypinyin import Style, lazy_pinyin, pinyin
from pypinyin.constants import PHRASES_DICT
from pypinyin.pinyin_dict import pinyin_dict

from livecoupon.domain.text import normalise
from livecoupon.engine.phrases import PhraseMatcher
from livecoupon.engine.pinyin import readers


@cache
def readings_of() -> dict[str, set[str]]:
    """The index turned around: each character's toneless readings."""
    found: dict[str, set[str]] = {}
    for form, characters in readers().items():
        for character in characters:
            found.setdefault(character, set()).add(form)
    return found


def test_every_reading_of_every_character_is_in_the_index() -> None:
    missing = [(chr(code), reading) for code in pinyin_dict
               for reading in pinyin(chr(code), style=Style.NORMAL, heteronym=True)[0]
               if reading not in readings_of().get(chr(code), ())]
    assert missing == []


def test_every_reading_a_phrase_gives_its_characters_is_in_the_index() -> None:
    sample = sorted(PHRASES_DICT)[::7]  # ~7,000 of them: pypinyin takes ~30 µs a phrase
    missing = [(phrase, character, token) for phrase in sample if len(tokens := lazy_pinyin(phrase)) == len(phrase)
               for character, token in zip(phrase, tokens, strict=True)
               if token not in readings_of().get(character, ())]
    assert missing == []


def rule(phrase: str, text: str) -> bool:
    """SPEC §4, as written: a substring of the normalised text, or a run of its toneless pinyin."""
    said, wanted = normalise(text), normalise(phrase)
    if wanted in said:
        return True
    heard, tokens = lazy_pinyin(said), lazy_pinyin(wanted)
    return bool(tokens) and any(heard[i:i + len(tokens)] == tokens for i in range(len(heard) - len(tokens) + 1))


PHRASES = ["宝宝们发券啦", "发券", "恭喜榜一", "评论", "Hello 发券", "618抢券", "扣1", "乐亭", "银行行长"]


@cache
def sounding_alike() -> dict[str, list[str]]:
    """Characters by the toneless reading pypinyin gives each alone: homophones to put in a transcript."""
    found: dict[str, list[str]] = {}
    for code in sorted(pinyin_dict):
        found.setdefault(lazy_pinyin(chr(code))[0], []).append(chr(code))
    return found


@st.composite
def transcripts(draw: st.DrawFn) -> str:
    """Pieces of a phrase, the phrase with characters swapped for homophones, other text and punctuation."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    pieces = []
    for _ in range(draw(st.integers(0, 4))):
        phrase = rng.choice(PHRASES)
        kind = draw(st.sampled_from(["as is", "homophones", "part", "other"]))
        if kind == "homophones":
            phrase = "".join(rng.choice(sounding_alike().get(lazy_pinyin(c)[0], [c])) for c in phrase)
        elif kind == "part":
            phrase = phrase[:rng.randint(0, len(phrase))]
        elif kind == "other":
            phrase = draw(st.text(st.one_of(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
                                            st.sampled_from(list("abc quan fa 1 ，！…"))), max_size=8))
        pieces.append(phrase)
    return "".join(pieces)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PHRASES), transcripts())
def test_a_phrase_matches_exactly_as_the_rule_says(phrase: str, text: str) -> None:
    matcher = PhraseMatcher([phrase])
    assert matcher.matches(text) is rule(phrase, text)
    assert matcher.matches(text) is rule(phrase, text)  # and again, from what it remembers


def test_a_transcript_that_cannot_sound_like_a_phrase_is_not_converted() -> None:
    """The point of the index: most of a host's speech holds no syllable of the passphrase."""
    from livecoupon.engine.phrases import hear_pinyin

    matcher = PhraseMatcher(["宝宝们发券啦"])
    hear_pinyin.cache_clear()  # other tests heard these transcripts before
    before = hear_pinyin.cache_info().misses
    assert matcher.matches("今天天气真不错") is False
    assert hear_pinyin.cache_info().misses == before
    assert matcher.matches("宝宝们发劝啦") is True
    assert hear_pinyin.cache_info().misses == before + 1
