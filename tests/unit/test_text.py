"""normalise (SPEC §4 "Matching phrases"): NFKC, lower case, then every P, S, Z and C character dropped."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain.text import normalise

DROPPED = "PSZC"


def rule(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in DROPPED)


def test_no_letter_or_digit_nor_its_lower_case_is_a_character_normalise_drops() -> None:
    """What normalise's shortcut rests on (``str.isalnum`` text is kept whole), over every code point of this
    interpreter's Unicode."""
    dropped = [hex(code) for code in range(sys.maxunicode + 1) if chr(code).isalnum()
               and any(unicodedata.category(ch)[0] in DROPPED for ch in chr(code) + chr(code).lower())]
    assert dropped == []


@settings(max_examples=1000, deadline=None)
@given(st.text(st.one_of(st.characters(), st.sampled_from(list("宝发券扣1１Ａa_ ，!！😂¼ﬁİΣ\u0307\u200b")))))
def test_normalise_is_the_rule(text: str) -> None:
    assert normalise(text) == rule(text)
