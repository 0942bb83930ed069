"""Personalised offers (千人千面, SPEC §4): a policy chooses each user's coupon among a trigger's arms.

The policy is a contextual bandit over small segments of the audience, priced by a budget dual:

- **Context.** What livecoupon knows of the user at that moment (:class:`Context`): their member
  level (from the platform's ``profile``), how long they have watched this broadcast, whether
  they commented or sent gifts in it, whether they have ordered in the campaign, what became of
  the offers that reached them before (none, one an order followed, or only ignored ones), and
  their device (unknown, their own, or shared: another account on it reached an offer before).
- **Value.** For each arm, the mean order value that followed its offers (orders in the offer's
  room within the campaign's attribution window), per segment, shrunk towards the arm's mean
  in the segment's member level, itself shrunk towards the arm's mean over everyone, while
  each has few offers: what a segment has not shown yet, its level says, and what the level
  has not shown, the whole audience does. The gain of an arm is its value over the value of
  offering nothing (the ``null`` arm, or 0 where the trigger has none).
- **Price.** Each fen of face value costs λ fen of gain. λ paces the budget on the assumption
  that the requests still to come look like those seen so far (their segments, in the same
  proportions, as many again): it is the least price at which offering each segment seen so
  far its best arm would spend no more per request than the budget left allows per request
  seen. Early on that is free; as the budget goes, only the segments whose gain per fen clears
  the price get coupons, so the budget is neither spent in the first minutes nor left over.
  Recomputed every ``PACE_EVERY`` requests. No budget: λ = 0.
- **Choice.** With probability ``explore`` an arm uniformly at random; otherwise the cheapest arm,
  unless a dearer one's gain over every cheaper arm clears the extra face value × λ by
  ``CAUTION`` standard errors of that difference (order values are noisy). The propensity of
  the chosen arm is exact: explore / K, plus (1 − explore) for the greedy arm.
- **Determinism.** The random draws come from the decision's own coupon id and the campaign
  seed, and the statistics change only as events are applied, so replay makes the same
  choices with the same propensities.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from livecoupon.domain.coupons import CouponTemplate

SHRINK = 20.0  # pseudo-offers of the wider mean (the level's, the arm's) in every segment
CAUTION = 1.0  # standard errors a coupon's gain must clear
PACE_EVERY = 32  # requests between two recomputations of the price
PLAN_WARMUP_MS = 60_000  # with a plan, the request rate is measured over at least this long
MAX_PRICE = 1_000.0  # fen of gain per fen of face value: beyond any coupon's worth


@dataclass(frozen=True, slots=True)
class Offer:
    """A trigger's ``offer``: its arms (template names; None offers nothing) and exploration rate."""

    arms: tuple[str | None, ...]
    explore: float = 0.1
    plan_ms: int | None = None  # how long the budget should last, from the trigger's first request


@dataclass(frozen=True, slots=True)
class Choice:
    arm: CouponTemplate | None
    propensity: float
    segment: str


@dataclass(slots=True)
class _Tally:
    offers: int = 0
    value: int = 0  # fen of orders that followed
    squares: int = 0  # the sum of each offer's value squared (for the spread)

    def mean(self, prior: float) -> float:
        return (self.value + prior * SHRINK) / (self.offers + SHRINK)

    def variance_of_mean(self) -> float:
        """How uncertain the plain mean still is (its variance); large while offers are few."""
        n = self.offers
        if n < 2:
            return float("inf")
        mean = self.value / n
        return max(0.0, self.squares / n - mean * mean) / n


@dataclass(slots=True)
class Policy:
    """One ``offer`` trigger's policy; its state lives in the engine (and so in snapshots)."""

    offer: Offer
    templates: tuple[CouponTemplate | None, ...]
    by_segment: dict[tuple[str, int], _Tally] = field(default_factory=dict)  # (segment, arm index)
    by_level: dict[tuple[str, int], _Tally] = field(default_factory=dict)  # (member level, arm index)
    by_arm: dict[int, _Tally] = field(default_factory=dict)
    by_face: tuple[int, ...] = ()  # arm indexes, cheapest first (ties: file order)
    exhausted: set[int] = field(default_factory=set)  # arms whose coupon ran out of stock or validity
    demand: dict[str, int] = field(default_factory=dict)  # requests seen per segment
    requests: int = 0
    price: float = 0.0  # λ as last paced
    first_at: int | None = None  # the first request's time (ms), where a plan starts

    @classmethod
    def of(cls, offer: Offer, coupons: dict[str, CouponTemplate]) -> Policy:
        templates = tuple(None if a is None else coupons[a] for a in offer.arms)
        cheapest_first = sorted(range(len(templates)), key=lambda i: (_face(templates[i]), i))
        return cls(offer, templates, by_face=tuple(cheapest_first))

    def choose(self, draw: random.Random, segment: str, left: int | None, at: int = 0) -> Choice:
        """The arm for one user in ``segment`` at ``at`` (ms), with ``left`` fen of budget to spend
        (None: no budget)."""
        self.demand[segment] = self.demand.get(segment, 0) + 1
        self.requests += 1
        if self.first_at is None:
            self.first_at = at
        if left is None:
            self.price = 0.0
        elif left <= 0:
            self.price = float("inf")
        elif self.requests % PACE_EVERY == 1 or self.price == float("inf"):
            self.price = self.pace(left, self.to_come(at))
        arms = self.available
        greedy = self._best(segment, self.price)
        explore = self.offer.explore
        index = arms[int(draw.random() * len(arms))] if draw.random() < explore else greedy
        propensity = explore / len(arms) + ((1 - explore) if index == greedy else 0.0)
        return Choice(self.templates[index], propensity, segment)

    @property
    def available(self) -> list[int]:
        """The arms still to be had, in file order (a coupon out of stock or past its validity is not)."""
        return [i for i in range(len(self.templates)) if i not in self.exhausted]

    def run_out(self, index: int) -> None:
        """Arm ``index``'s coupon can no longer be issued: choose among the others from now on."""
        if len(self.available) > 1:
            self.exhausted.add(index)

    def _best(self, segment: str, price: float) -> int:
        return _dearest_worth_it(self._stats(segment), price)

    def _stats(self, segment: str) -> list[tuple[int, float, int, float]]:
        """Per arm still available, cheapest first: (arm index, gain, face value, variance of its level's mean)."""
        level = level_of(segment)
        nothing = self._nothing(segment)
        return [(i, self.value(segment, i) - nothing, _face(self.templates[i]), self._variance(level, i))
                for i in self.by_face if i not in self.exhausted]

    def _variance(self, level: str, index: int) -> float:
        tally = self.by_level.get((level, index))
        return tally.variance_of_mean() if tally is not None else float("inf")

    def to_come(self, at: int) -> float:
        """How many requests are still to come: as many again as so far (the future as the past), or,
        with a ``plan``, as many as the rate so far brings in the planned time left (none past it)."""
        plan = self.offer.plan_ms
        if plan is None or self.first_at is None:
            return float(self.requests)
        elapsed = max(at - self.first_at, PLAN_WARMUP_MS)
        return self.requests * max(0, plan - (at - self.first_at)) / elapsed

    def pace(self, left: int, to_come: float | None = None) -> float:
        """The least λ at which the greedy arms of the segments seen so far, with exploration's share,
        spend per request no more than ``left`` allows for each request ``to_come`` (default: as many
        as seen so far)."""
        allowed = left / max(1.0, self.requests if to_come is None else to_come)
        faces = [_face(t) for t in self.templates]
        arms = self.available
        exploring = self.offer.explore * sum(faces[i] for i in arms) / len(arms)
        seen = [(n, self._stats(segment)) for segment, n in self.demand.items()]

        def spend(price: float) -> float:
            greedy = sum(n * faces[_dearest_worth_it(stats, price)] for n, stats in seen)
            return exploring + (1 - self.offer.explore) * greedy / self.requests

        if spend(0.0) <= allowed:
            return 0.0
        low, high = 0.0, MAX_PRICE
        if spend(high) > allowed:
            return high
        for _ in range(24):
            middle = (low + high) / 2
            low, high = (low, middle) if spend(middle) <= allowed else (middle, high)
        return high

    def gain(self, segment: str, index: int) -> float:
        return self.value(segment, index) - self._nothing(segment)

    def _nothing(self, segment: str) -> float:
        """The value of offering nothing: the ``null`` arm's, or 0 where the trigger has none."""
        return self.value(segment, self.templates.index(None)) if None in self.templates else 0.0

    def value(self, segment: str, index: int) -> float:
        overall = self.by_arm.get(index)
        prior = overall.mean(0.0) if overall is not None else 0.0
        level = self.by_level.get((level_of(segment), index))
        if level is not None:
            prior = level.mean(prior)
        tally = self.by_segment.get((segment, index))
        return tally.mean(prior) if tally is not None else prior

    def offered(self, segment: str, index: int) -> None:
        for tally in self._tallies(segment, index):
            tally.offers += 1

    def followed(self, segment: str, index: int, amount: int) -> None:
        """An order of ``amount`` fen followed an offer of arm ``index`` to a user in ``segment``
        (the spread counts each order as one offer's value: a second order after the same offer is rare)."""
        for tally in self._tallies(segment, index):
            tally.squares += amount * amount
            tally.value += amount

    def index_of(self, template: CouponTemplate | None) -> int:
        return self.templates.index(template)

    def _tallies(self, segment: str, index: int) -> tuple[_Tally, _Tally, _Tally]:
        return (self.by_segment.setdefault((segment, index), _Tally()),
                self.by_level.setdefault((level_of(segment), index), _Tally()),
                self.by_arm.setdefault(index, _Tally()))


def _dearest_worth_it(stats: list[tuple[int, float, int, float]], price: float) -> int:
    """The dearest arm that has shown itself better than every cheaper arm, net of the extra face value
    at ``price``, by ``CAUTION`` standard errors of each difference (order values are noisy: a dearer
    coupon is not paid for on a lucky streak, nor before the cheaper ones are known). Otherwise the
    cheapest; among arms of one face value, the first in the file. ``stats`` come cheapest first."""
    held = stats[0][0]
    for position in range(1, len(stats)):
        _, gain, face, variance = stats[position]
        for _, cheaper_gain, cheaper_face, cheaper_variance in stats[:position]:
            extra = face - cheaper_face
            margin = gain - cheaper_gain - price * extra
            if not (margin > CAUTION * (variance + cheaper_variance) ** 0.5 if extra else margin > 0):
                break
        else:
            held = stats[position][0]
    return held


@dataclass(frozen=True, slots=True)
class Context:
    """What a policy tells users apart by, at the moment of an offer."""

    level: str | None  # member level from the profile
    watched_ms: int | None  # in this broadcast; None if not present
    engaged: bool  # commented or sent a gift in this broadcast
    ordered: bool  # has ordered in the campaign
    history: str  # "first": no offer reached them before; "took": an order followed one; "ignored"
    device: str  # "-" unknown; "own"; "shared": another account on the device reached an offer before

    @property
    def segment(self) -> str:
        """The segment's key; its first part is the member level (:func:`level_of`)."""
        w = self.watched_ms
        watched = "-" if w is None else "<1m" if w < 60_000 else "<5m" if w < 300_000 else "5m+"
        return "|".join((self.level if self.level is not None else "-", watched,
                         "engaged" if self.engaged else "quiet", "buyer" if self.ordered else "new",
                         self.history, self.device))


def level_of(segment: str) -> str:
    return segment.split("|", 1)[0]


def _face(template: CouponTemplate | None) -> int:
    return 0 if template is None else template.terms.face_value or 0
