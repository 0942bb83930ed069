"""The viewers' rate limits: a sliding window that forgets old keys, and a Retry-After that means it."""

from __future__ import annotations

import pytest

from livecoupon.api.throttle import Rate, Throttle
from livecoupon.errors import TooManyRequests


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_rate_allows_its_amount_per_window_then_slides() -> None:
    clock = Clock()
    throttle = Throttle(viewer="3/second", clock=clock)
    assert [throttle.allows(throttle.viewer, "u") for _ in range(4)] == [True, True, True, False]
    assert throttle.allows(throttle.viewer, "other")  # keys are counted apart
    clock.now += 1.5  # half the previous window still weighs 3 × 0.5 = 1.5: room for one more, and a half
    assert [throttle.allows(throttle.viewer, "u") for _ in range(3)] == [True, True, False]
    clock.now += 1.0
    assert throttle.allows(throttle.viewer, "u")


def test_check_raises_429_with_a_retry_after_of_at_least_a_second() -> None:
    clock = Clock()
    throttle = Throttle(failed_auth="2/minute", clock=clock)
    throttle.check(throttle.failed_auth, "ip")
    throttle.check(throttle.failed_auth, "ip")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check(throttle.failed_auth, "ip")
    assert 1 <= refused.value.retry_after <= 60 and refused.value.status == 429


def test_old_keys_are_forgotten() -> None:
    rate = Rate.parse("5/second")
    for i in range(5_000):
        rate.hit(f"k{i}", 10.0)
    for i in range(5_000):
        rate.hit(f"j{i}", 20.0)
    assert len(rate.windows) < 5_000 + 4_096


@pytest.mark.parametrize(("text", "amount", "period"), [("20/second", 20, 1), ("30/minute", 30, 60),
                                                        ("5/10second", 5, 10), ("100 / hour", 100, 3600)])
def test_rates_parse(text: str, amount: int, period: float) -> None:
    rate = Rate.parse(text)
    assert (rate.amount, rate.period) == (amount, period)


def test_a_bad_rate_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="N/second"):
        Rate.parse("fast")


def test_every_limit_can_be_set_from_the_environment() -> None:
    env = {"LIVECOUPON_VIEWER_RATE": "1/second", "LIVECOUPON_IP_RATE": "2/second", "LIVECOUPON_SOCKET_RATE": "3/second",
           "LIVECOUPON_FAILED_AUTH_RATE": "4/minute"}
    throttle = Throttle.from_env(env)
    assert [(r.amount, r.period) for r in (throttle.viewer, throttle.ip, throttle.socket, throttle.failed_auth)] == [
        (1, 1), (2, 1), (3, 1), (4, 60)]
    defaults = Throttle.from_env({})
    assert (defaults.failed_auth.amount, defaults.failed_auth.period) == (600, 60)  # a flood, not a mistyped key
