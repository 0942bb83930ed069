"""A decision as the log keeps it, and the words for why a firing issued nothing.

Their own module, and never compiled (livecoupon/compiled.py): msgspec decodes records off
the bus (cluster/wire.py), and reads only a Python class's fields. :mod:`livecoupon.domain.decisions`,
compiled, makes them; import them from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Why a decision issued nothing."""

    HOLDOUT = "holdout"
    NO_OFFER = "no_offer"  # a personalised offer chose to offer nothing
    BLOCKED = "blocked"
    RISK = "risk"
    DEVICE_CAP = "device_cap"
    PER_USER_CAP = "per_user_cap"
    MIN_INTERVAL = "min_interval"
    TEMPLATE_EXPIRED = "template_expired"
    OUT_OF_STOCK = "out_of_stock"
    OVER_BUDGET = "over_budget"


class Silence(enum.StrEnum):
    """Why a firing reached a user without a decision (``explain``): nothing is written for these."""

    PAUSED = "paused"
    NOT_PRESENT = "not_present"
    NOT_A_COMMENTER = "not_a_commenter"
    NOT_A_TOP_GIFTER = "not_a_top_gifter"
    NOT_DRAWN = "not_drawn"
    FAILED_CAPS = "failed_caps"  # a lottery draws only among users who pass step 2
    DEVICE_DRAWN = "device_drawn"  # drawn, but the device had its per_device winners in the same draw
    COOLDOWN = "cooldown"
    DWELL_INTERRUPTED = "dwell_interrupted"
    ORDERED = "ordered_during_dwell"
    OFF_AIR = "off_air"
    OFF_SCHEDULE = "off_schedule"  # outside the campaign's schedule
    EARLIER_VERSION = "earlier_version"  # a trigger published while the room was on air: from its next broadcast


@dataclass(slots=True)
class DecisionRecord:
    """A decision as the log keeps it: the template by name."""

    coupon_id: str
    room: str
    broadcast: int
    trigger: str
    user: str
    at: int
    template: str | None
    reason: Reason | None
    expires_at: int | None
    experiment: str | None = None
    variant: str | None = None
    propensity: float | None = None  # an offer's choice; its arm is ``template`` (None: nothing)

    @property
    def issued(self) -> bool:
        return self.reason is None

    @property
    def offered(self) -> bool:
        return self.propensity is not None
