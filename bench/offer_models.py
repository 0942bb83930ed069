"""Our offer policy's value model against river's, on the simulated audiences of
tests/integration/test_offer_simulation.py (10,000 viewers, 60 minutes, 80,000 元 a seed).

Only the value model changes: per arm, river's ``BayesianLinearRegression`` on one-hot context
features (member level, watch-time bucket, engaged, buyer, offer history, device, and a bias)
instead of per-segment means shrunk to the member level and the arm. Everything else is
``livecoupon.domain.offers.Policy``'s own code: the budget price λ and its pacing, the caution
rule (a dearer arm must beat every cheaper one by one standard error of the difference, here the
posterior standard deviation of the two predictions), exploration and the exact propensities.

What the model learns from is what ours learns from: an offer counts at once as an offer that
no order followed (label 0), and an order attributed to it later raises that offer's label. The
posterior mean is linear in the labels, so raising a label already learnt is exact
(:meth:`Relabelled.relabel`), through river's natural-mean accumulator: the one place the
script reaches past river's public API. ``--labels matured`` uses the public API only: each
offer is learnt once, ``--horizon`` seconds after it was made, with the orders that followed by
then (the simulator's orders come 5-240 s after the offer; the attribution window is 30 minutes).
``--features level`` gives the models the member level alone; ``--noise`` sets the spread of an
offer's value the model assumes (river's ``beta``; our model measures it), 100 元 by default.
Targets are scaled rather than ``alpha`` set: river 0.26.1 starts the precision at I / alpha but
its inverse also at I / alpha, which agree only at alpha = 1.

Prints, per seed, each model's gain over the best fixed arm's (c10 or c20 alone, same viewers and
budget), what it spent, and its policy's own time per choice (choosing, pacing and learning),
both models timed in the same run. Run: .venv/bin/python bench/offer_models.py [--seeds 1-20]
(~3 minutes on 2 cores). Needs ``pip install river``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from river.linear_model import BayesianLinearRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests"), str(ROOT / "bench")]

import test_offer_simulation as sim  # noqa: E402
from processes import cpu_model  # noqa: E402

from livecoupon.domain.coupons import CouponTemplate  # noqa: E402
from livecoupon.domain.offers import Choice, Offer, Policy  # noqa: E402
from livecoupon.engine import offering  # noqa: E402

FEATURES = ("level", "watched", "engaged", "buyer", "history", "device")  # Context.segment's parts, in order
UNIT = 10_000  # fen: the model sees order values in hundreds of yuan, where river's default prior
# (weights ~ N(0, 1)) and noise (σ = 1) are of the right size: an offer is worth 0 or ~1-3 units
NOISE = 100.0  # yuan: the assumed spread of one offer's order value around its mean (river's beta = 1)


def features(segment: str, used: tuple[str, ...] = FEATURES) -> dict[str, float]:
    """One-hot context features of a segment key (``gold|<5m|engaged|new|first|-``), those ``used``, and a bias."""
    parts = dict(zip(FEATURES, segment.split("|"), strict=True))
    return {"bias": 1.0} | {f"{name}={parts[name]}": 1.0 for name in used}


class Relabelled(BayesianLinearRegression):
    """river's Bayesian linear regression, with the label of a sample already learnt raisable."""

    def relabel(self, x: dict[str, float], more: float) -> None:
        """A sample ``x`` learnt earlier turns out ``more`` higher: the posterior mean shifts as if it
        had been learnt so, the precision stays (it does not depend on labels)."""
        row = np.zeros(self._cap)
        for name, value in x.items():
            row[self._idx[name]] = value
        self._eta_arr += self.beta * more * row
        self._m_dirty = True


@dataclass(slots=True)
class TimedPolicy(Policy):
    """Our policy, unchanged, with the time spent in it counted (choosing, pacing, learning)."""

    seconds: float = 0.0
    choices: int = 0

    @contextmanager
    def timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def choose(self, draw: random.Random, segment: str, left: int | None, at: int = 0) -> Choice:
        self.choices += 1
        with self.timed():
            self.learn_matured(at)
            return Policy.choose(self, draw, segment, left, at)

    def offered(self, segment: str, index: int) -> None:
        with self.timed():
            self.learn_offer(segment, index)

    def followed(self, segment: str, index: int, amount: int) -> None:
        with self.timed():
            self.learn_order(segment, index, amount)

    def learn_matured(self, at: int) -> None:
        """Ours learns nothing with time alone."""

    def learn_offer(self, segment: str, index: int) -> None:
        Policy.offered(self, segment, index)

    def learn_order(self, segment: str, index: int, amount: int) -> None:
        Policy.followed(self, segment, index, amount)


@dataclass(slots=True)
class RiverPolicy(TimedPolicy):
    """The same policy with per-arm river regressions as its value model."""

    models: dict[int, Relabelled] = field(default_factory=dict)
    used: tuple[str, ...] = FEATURES  # the context features the models see
    beta: float = 1.0  # the noise's precision in units⁻² (river's parameter): (UNIT / noise in fen)²
    horizon_ms: int | None = None  # None: learn each offer at once, raise its label as orders follow
    pending: dict[tuple[str, int], deque[list[int]]] = field(default_factory=dict)  # [made at, fen] per offer
    now: int = 0

    def model(self, index: int) -> Relabelled:
        return self.models.setdefault(index, Relabelled(alpha=1.0, beta=self.beta))

    def value(self, segment: str, index: int) -> float:
        return float(self.model(index).predict_one(features(segment, self.used))) * UNIT

    def _stats(self, segment: str) -> list[tuple[int, float, int, float]]:
        """Per arm still available, cheapest first: (index, gain over nothing, face value, variance of
        the predicted mean), as ``Policy._stats`` gives them."""
        x = features(segment, self.used)
        predicted = {i: self.model(i).predict_one(x, with_dist=True) for i in self.by_face}
        nothing = predicted[self.templates.index(None)].mu * UNIT if None in self.templates else 0.0
        return [(i, predicted[i].mu * UNIT - nothing, _face(self, i), max(0.0, predicted[i].sigma ** 2 - 1 / self.beta)
                 * UNIT ** 2) for i in self.by_face if i not in self.exhausted]

    def learn_offer(self, segment: str, index: int) -> None:
        if self.horizon_ms is None:
            self.model(index).learn_one(features(segment, self.used), 0.0)
        else:
            self.pending.setdefault((segment, index), deque()).append([self.now, 0])

    def learn_order(self, segment: str, index: int, amount: int) -> None:
        if self.horizon_ms is None:
            self.model(index).relabel(features(segment, self.used), amount / UNIT)
        elif waiting := self.pending.get((segment, index)):
            waiting[0][1] += amount  # same features: which of the cell's offers gets it does not matter
        # (an order after its offer was learnt is lost: none in the simulation, with a horizon ≥ 240 s)

    def learn_matured(self, at: int) -> None:
        self.now = at  # the offer this choice makes is decided at this time
        if self.horizon_ms is None:
            return
        for (segment, index), waiting in self.pending.items():
            while waiting and waiting[0][0] + self.horizon_ms <= at:
                self.model(index).learn_one(features(segment, self.used), waiting.popleft()[1] / UNIT)


def _face(policy: Policy, index: int) -> int:
    template = policy.templates[index]
    return 0 if template is None else template.terms.face_value or 0


@dataclass(frozen=True, slots=True)
class Outcome:
    gain: float  # yuan
    spent: int  # fen
    per_choice_us: float  # the policy's own time


def outcome(policy_class: type[TimedPolicy], people: list[sim.Asker], **options: Any) -> Outcome:
    """The offer campaign on ``people`` with ``policy_class(..., **options)`` as the offer trigger's policy
    (the engine's book builds its policies through ``offering.Policy.of``, replaced for the run)."""
    made: list[TimedPolicy] = []

    def build(offer: Offer, coupons: dict[str, CouponTemplate]) -> TimedPolicy:
        made.append(replace(policy_class.of(offer, coupons), **options))
        return made[-1]

    original = offering.Policy
    offering.Policy = SimpleNamespace(of=build)
    try:
        result = sim.run(sim.campaign("offer"), people)
    finally:
        offering.Policy = original
    (policy,) = made
    return Outcome(result.gain, result.spent, policy.seconds / max(1, policy.choices) * 1e6)


def seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1-20", help="a seed or a range, e.g. 1-20")
    parser.add_argument("--labels", choices=("relabel", "matured"), default="relabel",
                        help="river learns each offer at once and raises its label as orders follow, "
                             "or learns it once, --horizon seconds after it was made")
    parser.add_argument("--horizon", type=float, default=300.0, help="seconds, with --labels matured")
    parser.add_argument("--features", choices=("all", "level"), default="all",
                        help="every part of the context, or the member level alone")
    parser.add_argument("--noise", type=float, default=NOISE, help="yuan: the spread river's model assumes")
    args = parser.parse_args()
    horizon_ms = None if args.labels == "relabel" else int(args.horizon * 1000)
    used = FEATURES if args.features == "all" else ("level",)
    beta = (UNIT / 100 / args.noise) ** 2
    print(f"machine: nproc {os.cpu_count()}, {cpu_model()}, CPython {sys.version.split()[0]}, "
          f"river {version('river')}, numpy {np.__version__}, load {os.getloadavg()[0]:.2f}")
    labels = args.labels if horizon_ms is None else f"matured after {args.horizon:g} s"
    print(f"river: BayesianLinearRegression per arm (alpha 1, beta {beta:g}: noise σ {args.noise:g} 元; "
          f"targets in 100 元), features {'+'.join(used)}, labels {labels}\n")
    print("| seed | best fixed arm (元) | ours ÷ best fixed | river ÷ best fixed | ours spent | river spent "
          "| ours µs/choice | river µs/choice |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for seed in seeds(args.seeds):
        people = sim.askers(seed)
        fixed = max(0.0, *(sim.run(sim.campaign(arm), people).gain for arm in sim.FIXED_ARMS))
        ours = outcome(TimedPolicy, people)
        river = outcome(RiverPolicy, people, used=used, beta=beta, horizon_ms=horizon_ms)
        rows.append((ours, river, fixed))
        print(f"| {seed} | {fixed:,.0f} | {ours.gain / fixed:.2f} | {river.gain / fixed:.2f} | "
              f"{ours.spent / 100:,.0f} | {river.spent / 100:,.0f} | {ours.per_choice_us:.0f} | "
              f"{river.per_choice_us:.0f} |", flush=True)
    for name, column in (("ours", 0), ("river", 1)):
        ratios = [row[column].gain / row[2] for row in rows]
        times = [row[column].per_choice_us for row in rows]
        print(f"\n{name}: ÷ best fixed {min(ratios):.2f}-{max(ratios):.2f}, median {statistics.median(ratios):.2f}, "
              f"≥ {sim.BAR} in {sum(r >= sim.BAR for r in ratios)} of {len(ratios)}; "
              f"median {statistics.median(times):.0f} µs per choice", end="")
    print(f"\nload {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
