"""The simulated audience's ground truth (千人千面): how each member level answers a coupon.

The simulator knows it and livecoupon does not: a personalised ``offer`` has to learn it from
the orders that follow its offers. Viewers carry their level in the ``profile`` of their join
(``{"level": "gold"}``), and their chance of an order after a coupon reaches them depends
only on their level and the coupon's face value, as this table says:

======  =====  ============  =======  =========  =========  ========
level   share  basket (元)   nothing  10 元 off  20 元 off  best arm
======  =====  ============  =======  =========  =========  ========
gold    25 %   median 260    50 %     50 %       52 %       nothing
silver  35 %   median 140     8 %     38 %       40 %       10 元
new     40 %   median 100     3 %      5 %       38 %       20 元
======  =====  ============  =======  =========  =========  ========

Gold members buy anyway, so a coupon only takes its face value off an order they would have
paid in full; silver members answer 10 元 as well as 20 元; new users hardly move for 10 元
but do for 20 元. A face value between two columns counts as the lower one, one above 20 元
as 20 元. The basket is log-normal around its median (σ 0.5, clipped to 40–800 元).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

LEVEL_KEY = "level"  # the profile key the simulator sends the level under


@dataclass(frozen=True, slots=True)
class Response:
    """How one member level answers coupons: its share of the audience, basket and order chances."""

    share: float
    basket_median: float  # yuan
    chances: tuple[tuple[float, float], ...]  # (least face value in yuan, chance of an order), ascending

    def chance(self, face: float) -> float:
        """The chance of an order after a coupon of ``face`` yuan (0: nothing) reached the viewer."""
        return next(p for least, p in reversed(self.chances) if face >= least)


TRUTH: dict[str, Response] = {
    "gold": Response(0.25, 260.0, ((0, 0.50), (10, 0.50), (20, 0.52))),
    "silver": Response(0.35, 140.0, ((0, 0.08), (10, 0.38), (20, 0.40))),
    "new": Response(0.40, 100.0, ((0, 0.03), (10, 0.05), (20, 0.38))),
}
LEVELS = tuple(TRUTH)
FACES = (0.0, 10.0, 20.0)  # the columns of the table


def draw_level(rng: random.Random) -> str:
    return rng.choices(LEVELS, weights=[r.share for r in TRUTH.values()])[0]


def draw_basket(rng: random.Random, level: str) -> float:
    """What a viewer of ``level`` would put in the cart, in yuan."""
    return round(min(800.0, max(40.0, rng.lognormvariate(math.log(TRUTH[level].basket_median), 0.5))), 2)


def order_chance(level: str, face: float) -> float:
    return TRUTH[level].chance(face)


def paid(basket: float, face: float) -> float:
    """What an order of ``basket`` yuan pays with a coupon of ``face`` yuan off (at least 0.01)."""
    return round(max(0.01, basket - face), 2)


def expected_gain(level: str, face: float) -> float:
    """Order value (paid) gained per viewer reached by a coupon of ``face`` yuan, over offering nothing.

    The mean of the clipped log-normal basket is taken as the unclipped one's (the clip moves it
    by well under 1 %).
    """
    r = TRUTH[level]
    basket = r.basket_median * math.exp(0.5**2 / 2)
    return r.chance(face) * (basket - face) - r.chance(0.0) * basket


def best_face(level: str, faces: tuple[float, ...] = FACES, price: float = 0.0) -> float:
    """The face value of largest expected gain, less ``price`` per yuan of face value (ties: the smaller)."""
    return max(sorted(faces), key=lambda f: expected_gain(level, f) - price * f)
