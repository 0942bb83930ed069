"""Text normalisation for passphrases and comment keywords (SPEC §4)."""

from __future__ import annotations

import unicodedata

_DROPPED = frozenset("PSZC")


def normalise(text: str) -> str:
    """NFKC, lower case, then drop every punctuation, symbol, separator and control."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in _DROPPED)
