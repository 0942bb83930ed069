"""Money as integer fen and durations as integer ms (SPEC §2, §3)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from livecoupon.domain.durations import DurationError, format_duration, parse_duration_ms
from livecoupon.domain.money import MoneyError, fen_to_yuan, format_yuan, yuan_to_fen


@pytest.mark.parametrize(
    ("yuan", "fen"),
    [
        (0, 0),
        (99, 9900),
        (19.9, 1990),
        (1.99, 199),
        (1.990, 199),  # judged by value: trailing zeros are not decimals
        (0.01, 1),
        (0.1, 10),
        (1e3, 100_000),
        ("12.50", 1250),
        ("1.990", 199),
        (Decimal("3.10"), 310),
        (123456789.12, 12345678912),
        (999999999.99, 99999999999),
        (1_000_000_000, 100_000_000_000),  # MAX_YUAN itself
    ],
)
def test_yuan_to_fen_accepts_at_most_two_decimals_by_value(yuan: object, fen: int) -> None:
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("yuan", [1_000_000_000.01, 1_000_000_001, "1000000000.01", 12345678901234.56, 2**80])
def test_yuan_to_fen_refuses_more_than_a_billion_yuan(yuan: object) -> None:
    with pytest.raises(MoneyError, match="at most 1,000,000,000 yuan"):
        yuan_to_fen(yuan)


@pytest.mark.parametrize("yuan", [1.999, 0.001, "1.999", 0.1 + 0.2, Decimal("0.005")])
def test_yuan_to_fen_rejects_a_third_decimal(yuan: object) -> None:
    with pytest.raises(MoneyError, match="at most 2 decimals"):
        yuan_to_fen(yuan)


@pytest.mark.parametrize("yuan", [-1, -0.01, "-3"])
def test_yuan_to_fen_rejects_negative_money(yuan: object) -> None:
    with pytest.raises(MoneyError, match="negative"):
        yuan_to_fen(yuan)


@pytest.mark.parametrize("yuan", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity"])
def test_yuan_to_fen_rejects_non_finite_money(yuan: object) -> None:
    with pytest.raises(MoneyError, match="finite"):
        yuan_to_fen(yuan)


@pytest.mark.parametrize("yuan", [True, False, None, [1], {"yuan": 1}, "abc", ""])
def test_yuan_to_fen_rejects_what_is_not_a_number(yuan: object) -> None:
    with pytest.raises(MoneyError):
        yuan_to_fen(yuan)


def test_fen_back_to_yuan_and_to_text() -> None:
    assert fen_to_yuan(1990) == 19.9
    assert fen_to_yuan(1) == 0.01
    assert fen_to_yuan(0) == 0.0
    assert format_yuan(2000) == "20"
    assert format_yuan(1990) == "19.90"
    assert format_yuan(5) == "0.05"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (300, 300_000),
        ("300", 300_000),
        (1.5, 1_500),
        ("30s", 30_000),
        ("5m", 300_000),
        ("2h", 7_200_000),
        ("1h30m", 5_400_000),
        ("1m30s", 90_000),
        ("1h0m5s", 3_605_000),
        ("5M", 300_000),
        (" 15m ", 900_000),
        (0, 0),
    ],
)
def test_parse_duration_reads_seconds_and_unit_strings(text: object, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5x", "m", "30 s", "5m1h", "1d", "-5", "abc", "1h 30m"])
def test_parse_duration_rejects_unreadable_strings(text: str) -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration_ms(text)


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf")])
def test_parse_duration_rejects_negative_or_non_finite_seconds(value: float) -> None:
    with pytest.raises(DurationError, match="finite, non-negative"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", [True, None, [5], {"m": 5}])
def test_parse_duration_rejects_other_types(value: object) -> None:
    with pytest.raises(DurationError):
        parse_duration_ms(value)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(300_000, "5m"), (5_400_000, "1h30m"), (45_000, "45s"), (1_500, "1.5s"), (0, "0s"), (7_200_000, "2h"),
     (3_605_000, "1h5s")],
)
def test_format_duration_gives_the_short_form(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse_duration_ms(text) == ms
