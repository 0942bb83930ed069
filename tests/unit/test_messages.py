"""What a popup says: the reason a viewer reads, Chinese first."""

from __future__ import annotations

import pytest
from engine_fixtures import campaign, ev, run

from livecoupon.delivery.messages import reason_words
from livecoupon.domain.decisions import coupon_of


@pytest.mark.parametrize(("after", "said"), [("5m", "感谢观看5分钟"), ("100s", "感谢观看1分40秒"),
                                             ("90m", "感谢观看1小时30分钟"), ("45s", "感谢观看45秒")])
def test_a_dwell_coupon_says_how_long_in_the_viewers_words(after: str, said: str) -> None:
    camp = campaign(f"  - {{name: stay, when: dwell, after: {after}, coupon: c10}}\n")
    seconds = {"5m": 300, "100s": 100, "90m": 5_400, "45s": 45}[after]
    events = [ev("live_start", 0), ev("join", 1, "u"), *[ev("heartbeat", t, "u") for t in range(20, seconds + 30, 20)]]
    [made] = [d for d in run(camp, events) if d.issued]
    assert reason_words(camp, coupon_of(made)).startswith(said)
