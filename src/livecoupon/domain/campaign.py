"""A campaign as livecoupon runs it: coupon templates, triggers, limits, experiments.

Built from the campaign file by :mod:`livecoupon.campaign_file`; plain values only.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from livecoupon.domain.coupons import CouponTemplate
from livecoupon.domain.offers import Offer

OFFER = "offer"  # a variant's coupon that lets the trigger's policy choose


class When(enum.StrEnum):
    FIRST_VISIT = "first_visit"
    DWELL = "dwell"
    ONLINE_REACHED = "online_reached"
    HOST_SAYS = "host_says"
    FLASH_SALE = "flash_sale"
    COMMENT = "comment"


class Audience(enum.StrEnum):
    USER = "user"  # the one viewer whose event fired the trigger
    PRESENT = "present"
    LOTTERY = "lottery"
    COMMENTERS = "commenters"
    TOP_GIFTERS = "top_gifters"


@dataclass(frozen=True, slots=True)
class Trigger:
    """One line of the campaign's ``triggers`` list. ``index`` is its file position."""

    index: int
    name: str
    when: When
    coupon: str | None  # None: the trigger has an ``offer`` instead
    audience: Audience = Audience.USER
    after_ms: int = 0  # dwell
    count: int = 0  # online_reached
    source: str = "reported"  # online_reached: reported | present
    winners: int = 0  # lottery
    within_ms: int = 60_000  # commenters
    top: int = 1  # top_gifters
    phrases: tuple[str, ...] = ()  # host_says
    cooldown_ms: int = 60_000  # host_says
    keywords: tuple[str, ...] = ()  # comment
    per_device: int | None = None  # coupons of this trigger per device (first_visit: forever; else per broadcast)
    offer: Offer | None = None  # a policy chooses each user's coupon among its arms
    budget: int | None = None  # fen of face value this trigger may issue, campaign-wide

    @property
    def coupons(self) -> tuple[str, ...]:
        """Every template this trigger may issue."""
        if self.offer is not None:
            return tuple(a for a in self.offer.arms if a is not None)
        return (self.coupon,) if self.coupon is not None else ()


@dataclass(frozen=True, slots=True)
class Limits:
    per_user: int | None = None
    min_interval_ms: int | None = None
    budget: int | None = None  # fen
    max_risk: float | None = None  # users whose risk is above it get nothing
    room_budget: int | None = None  # fen of face value each room may issue


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """Delivery-side frequency control on top of the caps: when popups reach screens.

    A popup never gets dropped here: the coupon is already in the account; pacing only
    decides when the viewer sees it.
    """

    quiet_period_ms: int = 0  # least time between two popups to one viewer; later ones wait (0: off)
    room_rate: float | None = None  # popups per second per room; a burst is smoothed, not dropped (None: off)
    max_mute_ms: int = 2 * 3_600_000  # the longest do-not-disturb a viewer may ask for


@dataclass(frozen=True, slots=True)
class Ledger:
    """The merchant's own coupon system, where every coupon is created before it counts (SPEC §6)."""

    url: str
    secret_env: str  # the environment variable holding the signing secret (whsec_…), or the platform's secret
    timeout_ms: int = 2_000
    platform: str = "webhook"  # "webhook": the SPEC's signed request; "douyin": Douyin's send-coupon API
    app_id: str | None = None  # douyin: the mini-app's app_id
    client_key: str | None = None  # douyin: the app's client_key
    activities: tuple[tuple[str, str], ...] = ()  # douyin: (template, activity_id) for every template
    rate: float | None = None  # requests a second the system takes (None: no limit)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: float
    coupon: str | None  # None: holdout; OFFER: the trigger's policy chooses


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    trigger: str
    salt: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign: str
    rooms: tuple[str, ...] | None  # None: every room ("*")
    coupons: dict[str, CouponTemplate]
    triggers: tuple[Trigger, ...]
    presence_timeout_ms: int = 60_000
    seed: int = 0
    attribution_window_ms: int = 30 * 60_000
    limits: Limits = field(default_factory=Limits)
    experiments: tuple[Experiment, ...] = ()
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    ledger: Ledger | None = None
    starts_at: int | None = None  # ms: triggers fire from then (schedule.start; None: from the first event)
    ends_at: int | None = None  # ms: and no longer from then (schedule.end; None: no end)

    def listens_to(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def scheduled(self, at: int) -> bool:
        """Whether triggers fire at ``at`` (ms): within the campaign's schedule."""
        return (self.starts_at is None or at >= self.starts_at) and (self.ends_at is None or at < self.ends_at)

    def experiment_for(self, trigger: str) -> Experiment | None:
        return next((e for e in self.experiments if e.trigger == trigger), None)


def with_history(versions: Sequence[Campaign]) -> Campaign:
    """The latest of ``versions`` (oldest first), with the coupons and triggers only earlier ones had
    appended: what reports, consoles and popups read, so every decision of the campaign finds the
    template and trigger it was made with. What it decides and checks is the latest version alone."""
    latest = versions[-1]
    coupons, triggers = dict(latest.coupons), list(latest.triggers)
    names = {t.name for t in triggers}
    for older in reversed(versions[:-1]):
        for name, template in older.coupons.items():
            coupons.setdefault(name, template)
        for trigger in older.triggers:
            if trigger.name not in names:
                names.add(trigger.name)
                triggers.append(trigger)
    return replace(latest, coupons=coupons, triggers=tuple(triggers))
