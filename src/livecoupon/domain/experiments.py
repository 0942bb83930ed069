"""Deterministic assignment of users to experiment variants (SPEC §4 step 1)."""

from __future__ import annotations

import hashlib

from livecoupon.domain.campaign import Experiment, Variant


def bucket(salt: str, user: str) -> float:
    """A number in [0, 1) fixed by salt and user."""
    digest = hashlib.sha256(f"{salt}:{user}".encode()).hexdigest()
    return int(digest[:8], 16) / 2**32


def assign(experiment: Experiment, user: str) -> Variant:
    """The first variant whose cumulative weight share exceeds the user's bucket."""
    total = sum(v.weight for v in experiment.variants)
    b = bucket(experiment.salt, user)
    running = 0.0
    for variant in experiment.variants:
        running += variant.weight
        if b < running / total:
            return variant
    # Only float rounding of the running sum can land here; a weight-0 variant is never chosen.
    return next(v for v in reversed(experiment.variants) if v.weight > 0)
