"""Money is an integer number of fen (1 yuan = 100 fen) everywhere inside livecoupon."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

FEN_PER_YUAN = 100
# Beyond any real amount. Below it, every yuan amount with two decimals is a double of its own, so the JSON
# number written for it (the log, an answer) reads back as the same fen; above 2**53 fen, two gifts would read
# back as one value, and a replay could rank them otherwise than the live run did.
MAX_YUAN = 1_000_000_000


class MoneyError(ValueError):
    """A yuan amount that livecoupon cannot accept; its words Chinese first, then English."""


def yuan_to_fen(value: object) -> int:
    """Convert a yuan amount (int, float or numeric string) to fen.

    At most two decimals are allowed, judged by value (``1.990`` is fine), and the
    amount may not be negative or non-finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise MoneyError("必须是金额（元） / must be a number of yuan")
    if isinstance(value, int):
        if value < 0:
            raise MoneyError("不能为负数 / must not be negative")
        if value > MAX_YUAN:
            raise _too_much()
        return value * FEN_PER_YUAN
    if isinstance(value, float) and not math.isfinite(value):
        raise MoneyError("必须是有限的数值 / must be a finite number")
    try:
        exact = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise MoneyError(f"不是数字 / not a number: {value!r}") from None
    if not exact.is_finite():
        raise MoneyError("必须是有限的数值 / must be a finite number")
    if exact < 0:
        raise MoneyError("不能为负数 / must not be negative")
    if exact > MAX_YUAN:
        raise _too_much()
    fen = exact * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyError("最多两位小数 / at most 2 decimals allowed")
    return int(fen)


def _too_much() -> MoneyError:
    return MoneyError(f"不能超过 {MAX_YUAN:,} 元 / must be at most {MAX_YUAN:,} yuan")


def fen_to_yuan(fen: int) -> float:
    """Fen as a yuan number with two decimals, for JSON answers."""
    return round(fen / FEN_PER_YUAN, 2)


def format_yuan(fen: int) -> str:
    """Fen as a human string: ``20`` or ``19.90``."""
    yuan, cents = divmod(fen, FEN_PER_YUAN)
    return f"{yuan}" if cents == 0 else f"{yuan}.{cents:02d}"
