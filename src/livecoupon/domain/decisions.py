"""Decisions: a trigger firing for one user, and what became of it (SPEC §4).

Compiled (livecoupon/compiled.py: a replay decides tens of thousands of times); the records it
makes, and the reasons, live in :mod:`livecoupon.domain.records`, which is not, and are imported
from here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from livecoupon.domain.campaign import Limits
from livecoupon.domain.coupons import Coupon, CouponTemplate
from livecoupon.domain.records import DecisionRecord as DecisionRecord
from livecoupon.domain.records import Reason as Reason
from livecoupon.domain.records import Silence as Silence

MANUAL = "manual"  # the trigger name of an operator's manual issue: its coupon ids repeat with its key


def coupon_id_for(campaign: str, room: str, broadcast: int, trigger: str, firing: str, user: str) -> str:
    """The coupon id of a decision, derived from the decision itself.

    The same decision always yields the same id, so re-applying an event can never
    issue twice and a replay reproduces the ids a live run handed out.
    """
    key = f"{campaign}\x1f{room}\x1f{broadcast}\x1f{trigger}\x1f{firing}\x1f{user}"  # the fields, 0x1f between
    return "cp_" + hashlib.sha256(key.encode()).hexdigest()[:24]


# Requests, decisions and records are values: nothing assigns to one once built (a changed
# request is a new one, ``dataclasses.replace``). They are not ``frozen`` because every decision
# builds all three, and a frozen dataclass's ``__init__`` sets each field through
# ``object.__setattr__``: 5.1 µs for a request against 1.2 µs (measured, Python 3.11). Each writes its
# ``__init__`` out (dataclass keeps one a class defines): compiled, the one dataclass generates stays
# interpreted Python, which mypyc calls as any Python function (0.79 µs a request against 0.2, measured).
@dataclass(slots=True)
class IssueRequest:
    """A trigger fired for a user and wants ``template`` issued (None: holdout)."""

    coupon_id: str
    campaign: str
    room: str
    broadcast: int  # the broadcast's start time in ms: stable across live and replay
    trigger: str
    user: str
    template: CouponTemplate | None
    at: int  # ms
    experiment: str | None = None
    variant: str | None = None
    risk: float | None = None  # the user's latest risk score
    device_key: str | None = None  # what the trigger's per_device counts (see device_key_for)
    per_device: int | None = None
    blocked: bool = False  # on the operator's blocklist, by user or by device
    # An offer trigger's: the probability ``template`` was given with, by its policy, or 1.0 by an experiment's fixed
    # variant (SPEC §6: every line of an offer trigger carries its arm and propensity). None: not an offer trigger's
    propensity: float | None = None
    trigger_budget: int | None = None  # the trigger's own budget (fen), if it has one
    holdout: bool = False  # an experiment's holdout variant (coupon: null), not an offer of nothing

    def __init__(self, coupon_id: str, campaign: str, room: str, broadcast: int, trigger: str, user: str,
                 template: CouponTemplate | None, at: int, experiment: str | None = None, variant: str | None = None,
                 risk: float | None = None, device_key: str | None = None, per_device: int | None = None,
                 blocked: bool = False, propensity: float | None = None, trigger_budget: int | None = None,
                 holdout: bool = False) -> None:
        self.coupon_id = coupon_id
        self.campaign = campaign
        self.room = room
        self.broadcast = broadcast
        self.trigger = trigger
        self.user = user
        self.template = template
        self.at = at
        self.experiment = experiment
        self.variant = variant
        self.risk = risk
        self.device_key = device_key
        self.per_device = per_device
        self.blocked = blocked
        self.propensity = propensity
        self.trigger_budget = trigger_budget
        self.holdout = holdout


def device_key_for(trigger: str, forever: bool, room: str, broadcast: int, device: str | None, user: str) -> str:
    """The key ``per_device`` counts coupons under: the trigger and the device (a user with
    no known device is a device of their own), and, unless the cap is forever, the broadcast."""
    who = _device_of(device, user)
    return "\x1f".join((trigger, who) if forever else (trigger, room, str(broadcast), who))


def _device_of(device: str | None, user: str) -> str:
    """A device key's last part: the device, or the user where none is known."""
    return f"d:{device}" if device is not None else f"u:{user}"


def knows_device(request: IssueRequest) -> bool:
    """Whether the request's device cap counts a device its engine knows of the user (else the user is a device of
    their own: :func:`device_key_for`), or it has no device cap."""
    key = request.device_key
    return key is None or not key.endswith("\x1f" + _device_of(None, request.user))


def learnt_elsewhere(request: IssueRequest, device: str | None, risk: float | None) -> IssueRequest:
    """The request with what the deployment's rooms told of its user, the latest by the request's time (scaled out,
    each partition's engine hears only the rooms it holds): their risk, which stands over the one its engine knew
    (every room's events are told there, its own too: the engine's can only be older), and the device its cap counts
    on, where the engine knew none."""
    risk = risk if risk is not None else request.risk
    key = request.device_key
    if device is not None and key is not None and not knows_device(request):
        key = key.removesuffix(_device_of(None, request.user)) + _device_of(device, request.user)
    if risk == request.risk and key == request.device_key:
        return request
    return replace(request, risk=risk, device_key=key)


@dataclass(slots=True)
class Decision:
    """The outcome of one request: issued (with expiry) or suppressed (with reason)."""

    request: IssueRequest
    reason: Reason | None = None
    expires_at: int | None = None

    def __init__(self, request: IssueRequest, reason: Reason | None = None, expires_at: int | None = None) -> None:
        self.request = request
        self.reason = reason
        self.expires_at = expires_at

    @property
    def issued(self) -> bool:
        return self.reason is None

    def record(self) -> DecisionRecord:
        r = self.request
        return DecisionRecord(r.coupon_id, r.room, r.broadcast, r.trigger, r.user, r.at,
                              r.template.name if r.template is not None else None, self.reason, self.expires_at,
                              r.experiment, r.variant, r.propensity)


BroadcastKey = tuple[str, int, str]  # (room, broadcast, user)


@dataclass(slots=True)
class IssueCounters:
    """What steps 2 and 3 read for one campaign: the backend loads it under its write
    lock (or keeps it, in memory), :func:`decide` moves it, the backend writes back
    what moved with conditional writes."""

    in_broadcast: dict[BroadcastKey, int] = field(default_factory=dict)
    on_device: dict[str, int] = field(default_factory=dict)  # device key -> issued
    trigger_spent: dict[str, int] = field(default_factory=dict)  # trigger -> fen issued (triggers with a budget)
    room_spent: dict[str, int] = field(default_factory=dict)  # room -> fen issued (with limits.room_budget)
    last_issued: dict[str, int] = field(default_factory=dict)  # user -> ms, campaign-wide
    stock_used: dict[str, int] = field(default_factory=dict)  # template -> issued
    budget_spent: int = 0  # fen


def cap_reason(limits: Limits, counters: IssueCounters, request: IssueRequest) -> Reason | None:
    """SPEC §4 step 2 for one request: the blocklist, risk, the device cap, then the user's caps."""
    if request.blocked:
        return Reason.BLOCKED
    if limits.max_risk is not None and request.risk is not None and request.risk > limits.max_risk:
        return Reason.RISK
    cap, device = request.per_device, request.device_key
    if cap is not None and device is not None and counters.on_device.get(device, 0) >= cap:
        return Reason.DEVICE_CAP
    if limits.per_user is not None:
        key = (request.room, request.broadcast, request.user)
        if counters.in_broadcast.get(key, 0) >= limits.per_user:
            return Reason.PER_USER_CAP
    if limits.min_interval_ms is not None:
        last = counters.last_issued.get(request.user)
        if last is not None and request.at - last < limits.min_interval_ms:
            return Reason.MIN_INTERVAL
    return None


def supply_reason(limits: Limits, counters: IssueCounters, template: CouponTemplate,
                  at: int) -> Reason | None:
    """SPEC §4 step 3: the template's validity, its stock, then the campaign budget."""
    if template.is_past_validity(at):
        return Reason.TEMPLATE_EXPIRED
    if template.stock is not None and counters.stock_used.get(template.name, 0) >= template.stock:
        return Reason.OUT_OF_STOCK
    face = template.terms.face_value or 0
    if limits.budget is not None and counters.budget_spent + face > limits.budget:
        return Reason.OVER_BUDGET
    return None


def share_reason(limits: Limits, counters: IssueCounters, request: IssueRequest, face: int) -> Reason | None:
    """After step 3, the shares of the budget (extensions): the trigger's own budget, each room's."""
    own = request.trigger_budget
    if own is not None and counters.trigger_spent.get(request.trigger, 0) + face > own:
        return Reason.OVER_BUDGET
    if limits.room_budget is not None and counters.room_spent.get(request.room, 0) + face > limits.room_budget:
        return Reason.OVER_BUDGET
    return None


def nothing_reason(request: IssueRequest) -> Reason:
    """Why a request without a template issues nothing: its user is in an experiment's holdout, or an offer's policy
    chose to offer nothing."""
    return Reason.HOLDOUT if request.holdout or request.propensity is None else Reason.NO_OFFER


def decide_one(request: IssueRequest, limits: Limits, counters: IssueCounters) -> Decision:
    """Steps 2-4 for one request; an issue moves ``counters``."""
    template = request.template
    if template is None:
        return Decision(request, nothing_reason(request))
    reason = cap_reason(limits, counters, request) or supply_reason(limits, counters, template, request.at)
    if reason is not None:  # most requests stop here, at a user's cap
        return Decision(request, reason)
    face = template.terms.face_value or 0
    reason = share_reason(limits, counters, request, face)
    if reason is not None:
        return Decision(request, reason)
    key = (request.room, request.broadcast, request.user)
    counters.in_broadcast[key] = counters.in_broadcast.get(key, 0) + 1
    if request.device_key is not None:
        counters.on_device[request.device_key] = counters.on_device.get(request.device_key, 0) + 1
    counters.last_issued[request.user] = request.at
    counters.stock_used[template.name] = counters.stock_used.get(template.name, 0) + 1
    counters.budget_spent += face
    if request.trigger_budget is not None:
        counters.trigger_spent[request.trigger] = counters.trigger_spent.get(request.trigger, 0) + face
    if limits.room_budget is not None:
        counters.room_spent[request.room] = counters.room_spent.get(request.room, 0) + face
    return Decision(request, None, template.expires_at(request.at))


def coupon_of(decision: Decision) -> Coupon:
    """The coupon an issuing decision puts into the user's account."""
    request, template = decision.request, decision.request.template
    assert template is not None and decision.expires_at is not None
    return Coupon(
        coupon_id=request.coupon_id, user=request.user, campaign=request.campaign,
        template=template.name, title=template.title, terms=template.terms,
        issued_at=request.at, expires_at=decision.expires_at, room=request.room,
        trigger=request.trigger,
    )
