"""A simulated live broadcast: who arrives, what they do, and whether coupons make them buy.

Everything here is seeded and pure (no I/O, no clock): :class:`Broadcast` yields each
simulated second's events, and :class:`Shopper` decides purchases when a coupon
arrives. Every figure that comes from it is simulated, and the report says so.

The model, in short:
- arrivals are a Poisson process whose rate surges for a few minutes after each host
  hook (a passphrase announcement, a flash sale), on top of a base rate;
- watch time is heavy-tailed (log-normal, median ``watch_median`` minutes);
- viewers heartbeat every 20 s, comment, like, follow and send gifts (Pareto values);
- the room's reported online count is the present sample scaled up to the full room,
  so the 10,000 and 20,000 milestones are crossed;
- each viewer has a member level (gold, silver, new), sent as ``profile.level`` on their
  join, and buys as the ground truth of :mod:`livecoupon.sim.truth` says: gold members
  buy anyway, silver ones answer a 10-yuan coupon, new ones only a 20-yuan one; a
  threshold coupon far above the basket moves them less (凑单 tops a basket up to it).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from livecoupon.sim.truth import LEVEL_KEY, draw_basket, draw_level, order_chance

HEARTBEAT_S = 20
ORGANIC_S = 600  # the truth's chance of an order with nothing is that of 10 minutes of watching
COMMENTS = ["主播好美", "这个颜色好看", "多少钱", "有优惠吗", "上链接", "好好看", "已下单", "扣1", "扣1扣1", "想要"]
PASSPHRASES = ["宝宝们发券啦", "宝宝们发劝啦", "宝宝们 发券啦！", "保保们发券啦"]  # with ASR homophones
PRODUCTS = [("sku-1001", "dress", 129.0), ("sku-1002", "dress", 89.0), ("sku-2001", "shoes", 199.0),
            ("sku-3001", "beauty", 59.9), ("sku-3002", "beauty", 299.0)]


@dataclass(frozen=True, slots=True)
class HostCue:
    second: int
    kind: str  # passphrase | thanks | flash_sale | talk
    text: str = ""
    duration: int = 0


@dataclass(slots=True)
class Viewer:
    user: str
    arrives: int
    leaves: int
    level: str  # member level, a key of livecoupon.sim.truth.TRUTH
    chattiness: float
    basket: float  # yuan the viewer would spend without a coupon
    bought: bool = False

    @property
    def profile(self) -> dict[str, str]:
        """What the platform tells of the viewer (SPEC §2 ``profile``)."""
        return {LEVEL_KEY: self.level}


def host_script(minutes: int) -> list[HostCue]:
    """The host's run of show: hooks every few minutes, thanks to the top gifter, flash sales."""
    cues: list[HostCue] = [HostCue(20, "talk", "欢迎来到直播间，今天福利多多")]
    for minute in range(3, minutes, 7):
        cues.append(HostCue(minute * 60, "talk", "关注主播，马上发券"))
        cues.append(HostCue(minute * 60 + 45, "passphrase", PASSPHRASES[(minute // 7) % len(PASSPHRASES)]))
    for minute in range(6, minutes, 10):
        cues.append(HostCue(minute * 60 + 30, "thanks", "恭喜榜一的宝宝，感谢支持"))
    for minute in range(8, minutes, 12):
        cues.append(HostCue(minute * 60, "flash_sale", "sku-1001", duration=120))
    return sorted(cues, key=lambda c: c.second)


class Broadcast:
    """One broadcast in room ``room`` of ``minutes`` simulated minutes with ~``viewers`` viewers."""

    def __init__(self, room: str, viewers: int, minutes: int, seed: int, *, watch_median: float = 6.0,
                 room_scale: float | None = None) -> None:
        self.room = room
        self.minutes = minutes
        self.seconds = minutes * 60
        self.rng = random.Random(seed)
        self.script = host_script(minutes)
        self.room_scale = room_scale if room_scale is not None else max(1.0, 25_000 / max(1, viewers * 0.45))
        self.viewers = self._audience(viewers, watch_median)
        self._by_arrival: dict[int, list[Viewer]] = defaultdict(list)
        for v in self.viewers:
            self._by_arrival[v.arrives].append(v)
        self.present: dict[str, Viewer] = {}
        self._next_beat: dict[str, int] = {}
        self._cues = {c.second: c for c in self.script}

    def _rate(self, second: int) -> float:
        surge = sum(3.0 * math.exp(-(second - c.second) / 150) for c in self.script
                    if c.kind in ("passphrase", "flash_sale", "talk") and c.second <= second)
        return 1.0 + surge

    def _audience(self, n: int, watch_median: float) -> list[Viewer]:
        weights = [self._rate(s) for s in range(self.seconds)]
        arrivals = sorted(self.rng.choices(range(self.seconds), weights=weights, k=n))
        viewers = []
        for i, arrives in enumerate(arrivals):
            stay = int(60 * self.rng.lognormvariate(math.log(watch_median), 1.0)) + 10
            level = draw_level(self.rng)
            viewers.append(Viewer(
                user=f"viewer-{i:05d}", arrives=arrives, leaves=min(self.seconds, arrives + stay), level=level,
                chattiness=self.rng.betavariate(1.2, 8), basket=draw_basket(self.rng, level)))
        return viewers

    def events_at(self, second: int, ts: float) -> list[dict[str, Any]]:
        """The room's events in simulated second ``second``, stamped ``ts``."""
        room, rng = self.room, self.rng
        out: list[dict[str, Any]] = []
        if second == 0:
            out.append({"type": "live_start", "room": room, "ts": ts})
        for v in self._by_arrival.get(second, ()):
            self.present[v.user] = v
            self._next_beat[v.user] = second + HEARTBEAT_S
            out.append({"type": "join", "room": room, "ts": ts, "user": v.user, "profile": v.profile})
        for user, v in list(self.present.items()):
            if second >= v.leaves:
                del self.present[user]
                out.append({"type": "leave", "room": room, "ts": ts, "user": user})
                continue
            if self._next_beat[user] <= second:
                self._next_beat[user] = second + HEARTBEAT_S
                out.append({"type": "heartbeat", "room": room, "ts": ts, "user": user})
            out.extend(self._interactions(v, ts))
        cue = self._cues.get(second)
        if cue is not None:
            out.extend(self._cue_events(cue, ts))
        if second % 15 == 0 and second:
            count = int(len(self.present) * self.room_scale * rng.uniform(0.97, 1.03))
            out.append({"type": "online_count", "room": room, "ts": ts, "count": count})
        if second == self.seconds - 1:
            out.append({"type": "live_end", "room": room, "ts": ts})
        return out

    def _interactions(self, v: Viewer, ts: float) -> list[dict[str, Any]]:
        rng, room, out = self.rng, self.room, []
        if rng.random() < v.chattiness / 30:
            out.append({"type": "comment", "room": room, "ts": ts, "user": v.user, "text": rng.choice(COMMENTS)})
        if rng.random() < v.chattiness / 20:
            out.append({"type": "like", "room": room, "ts": ts, "user": v.user, "count": rng.randint(1, 20)})
        if rng.random() < v.chattiness / 400:
            value = round(min(2000.0, rng.paretovariate(1.3)), 1)
            out.append({"type": "gift", "room": room, "ts": ts, "user": v.user, "value": value})
        return out

    def _cue_events(self, cue: HostCue, ts: float) -> list[dict[str, Any]]:
        if cue.kind == "flash_sale":
            return [{"type": "transcript", "room": self.room, "ts": ts, "text": "秒杀开始啦，手慢无"},
                    {"type": "flash_sale", "room": self.room, "ts": ts, "duration": cue.duration,
                     "product": cue.text}]
        return [{"type": "transcript", "room": self.room, "ts": ts, "text": cue.text}]


@dataclass(slots=True)
class Purchase:
    user: str
    cart: list[dict[str, Any]]
    use_coupon: bool


@dataclass(slots=True)
class Shopper:
    """Decides, for one viewer and one arriving coupon, whether and what they buy (the ground truth).

    A coupon of face value f reaching a viewer who has not bought makes them buy at once with
    the chance the truth adds to buying with nothing, (chance(f) − chance(0)) / (1 − chance(0)),
    less for a threshold above their basket; buying with nothing is a per-second rate giving
    chance(0) over 10 minutes of watching. A viewer holding a coupon uses it when they buy.
    """

    rng: random.Random
    made: dict[str, int] = field(default_factory=dict)
    holding: set[str] = field(default_factory=set)  # viewers a coupon reached

    def on_coupon(self, viewer: Viewer, coupon: dict[str, Any], second: int) -> tuple[int, Purchase] | None:
        """A purchase ``delay`` seconds after the coupon arrived, or None."""
        if viewer.bought:
            return None
        self.holding.add(viewer.user)
        basket = viewer.basket
        face = float(coupon.get("amount") or min(coupon.get("max_discount") or 30.0,
                                                 basket * (coupon.get("percent") or 10) / 100))
        threshold = float(coupon.get("threshold") or 0.0)
        reach = 1.0 if basket >= threshold else max(0.0, 1 - (threshold - basket) / threshold) ** 2
        without = order_chance(viewer.level, 0.0)
        p = (order_chance(viewer.level, face) - without) / (1 - without) * reach
        if self.rng.random() >= p:
            return None
        if basket < threshold:
            basket = threshold + self.rng.uniform(0, 30)  # 凑单: top up to reach the threshold
        viewer.bought = True
        return self.rng.randint(5, 240), Purchase(viewer.user, self.cart_for(basket, coupon), True)

    def organic(self, viewer: Viewer, second: int) -> Purchase | None:
        """A purchase without a coupon prompt, at the viewer's rate per second of watching."""
        rate = -math.log(1 - order_chance(viewer.level, 0.0)) / ORGANIC_S
        if viewer.bought or self.rng.random() >= rate:
            return None
        viewer.bought = True
        return Purchase(viewer.user, self.cart_for(viewer.basket, None), viewer.user in self.holding)

    def cart_for(self, basket: float, coupon: dict[str, Any] | None) -> list[dict[str, Any]]:
        scope = coupon.get("scope") if coupon else None
        fitting = [p for p in PRODUCTS if isinstance(scope, dict) and p[0] in scope.get("products", ())]
        product, category, price = self.rng.choice(fitting or PRODUCTS)
        qty = max(1, round(basket / price))
        return [{"product": product, "category": category, "price": price, "qty": qty}]
