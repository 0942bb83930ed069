"""Personalised offers (千人千面, SPEC §4): a policy chooses each user's coupon among a trigger's arms.

The policy is a contextual bandit over small segments of the audience, priced by a budget dual:

- **Context.** What livecoupon knows of the user at that moment: their member level (from the
  platform's ``profile``), how long they have watched this broadcast, whether they have
  ordered in the campaign, and whether an earlier offer reached them.
- **Value.** For each arm, the mean order value that followed its offers (orders in the offer's
  room within the campaign's attribution window), per segment, shrunk towards the arm's mean
  over all segments while a segment has few offers. The gain of an arm is its value over the
  value of offering nothing (the ``null`` arm, or 0 where the trigger has none).
- **Price.** Each fen of face value costs λ fen of gain, λ = spent / (budget − spent): free
  while the budget is whole, one-for-one at half of it, prohibitive near the end, so spend is
  paced yet never left unspent for want of trying. No budget: λ = 0.
- **Choice.** With probability ``explore`` an arm uniformly at random, otherwise the arm of the
  largest gain − λ × face value (ties: the first in the file). The propensity of the chosen
  arm is exact: explore / K, plus (1 − explore) for the greedy arm.
- **Determinism.** The random draws come from the decision's own coupon id and the campaign
  seed, and the statistics change only as events are applied, so replay makes the same
  choices with the same propensities.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from livecoupon.domain.coupons import CouponTemplate

SHRINK = 20.0  # pseudo-offers of the arm's overall mean in every segment


@dataclass(frozen=True, slots=True)
class Offer:
    """A trigger's ``offer``: its arms (template names; None offers nothing) and exploration rate."""

    arms: tuple[str | None, ...]
    explore: float = 0.1


@dataclass(frozen=True, slots=True)
class Choice:
    arm: CouponTemplate | None
    propensity: float
    segment: str


@dataclass(slots=True)
class _Tally:
    offers: int = 0
    value: int = 0  # fen of orders that followed

    def mean(self, prior: float) -> float:
        return (self.value + prior * SHRINK) / (self.offers + SHRINK)


@dataclass(slots=True)
class Policy:
    """One ``offer`` trigger's policy; its state lives in the engine (and so in snapshots)."""

    offer: Offer
    templates: tuple[CouponTemplate | None, ...]
    by_segment: dict[tuple[str, int], _Tally] = field(default_factory=dict)  # (segment, arm index)
    by_arm: dict[int, _Tally] = field(default_factory=dict)

    @classmethod
    def of(cls, offer: Offer, coupons: dict[str, CouponTemplate]) -> Policy:
        return cls(offer, tuple(None if a is None else coupons[a] for a in offer.arms))

    def choose(self, draw: random.Random, segment: str, price: float) -> Choice:
        """The arm for one user in ``segment``, at ``price`` (λ) per fen of face value."""
        k = len(self.templates)
        greedy = max(range(k), key=lambda i: (self.gain(segment, i) - _cost(price, self.templates[i]), -i))
        explore = self.offer.explore
        index = int(draw.random() * k) if draw.random() < explore else greedy
        propensity = explore / k + ((1 - explore) if index == greedy else 0.0)
        return Choice(self.templates[index], propensity, segment)

    def gain(self, segment: str, index: int) -> float:
        baseline = next((self.value(segment, i) for i, t in enumerate(self.templates) if t is None), 0.0)
        return self.value(segment, index) - baseline

    def value(self, segment: str, index: int) -> float:
        overall = self.by_arm.get(index)
        prior = overall.mean(0.0) if overall is not None else 0.0
        tally = self.by_segment.get((segment, index))
        return tally.mean(prior) if tally is not None else prior

    def offered(self, segment: str, index: int) -> None:
        for tally in (self._tally(segment, index), self.by_arm.setdefault(index, _Tally())):
            tally.offers += 1

    def followed(self, segment: str, index: int, amount: int) -> None:
        """An order of ``amount`` fen followed an offer of arm ``index`` to a user in ``segment``."""
        for tally in (self._tally(segment, index), self.by_arm.setdefault(index, _Tally())):
            tally.value += amount

    def index_of(self, template: CouponTemplate | None) -> int:
        return self.templates.index(template)

    def _tally(self, segment: str, index: int) -> _Tally:
        return self.by_segment.setdefault((segment, index), _Tally())


def budget_price(spent: int, budget: int | None) -> float:
    """λ: how many fen of gain one fen of face value must buy, as the budget is used."""
    if budget is None:
        return 0.0
    left = budget - spent
    return spent / left if left > 0 else float("inf")


def segment_of(level: object, watched_ms: int | None, ordered: bool, offered_before: bool) -> str:
    """The context a policy tells users apart by: member level, watch time, ordered, offered before."""
    watched = "-" if watched_ms is None else "<1m" if watched_ms < 60_000 else "<5m" if watched_ms < 300_000 else "5m+"
    return f"{level if level is not None else '-'}|{watched}|{'buyer' if ordered else 'new'}|" \
           f"{'again' if offered_before else 'first'}"


def _cost(price: float, template: CouponTemplate | None) -> float:
    face = 0 if template is None else template.terms.face_value or 0
    return price * face if face else 0.0
