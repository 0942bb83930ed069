"""The trigger engine: room events and timers in, coupon decisions out (SPEC §2, §4).

One code path for live and replay: the engine never reads a clock. Replay feeds it
events in ``ts`` order; the live service also calls :meth:`Engine.advance` as its
clock ticks, so timers fire on time between events.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from livecoupon.domain.campaign import OFFER, Audience, Campaign, Trigger, When
from livecoupon.domain.commands import (
    ChangeBlocklist,
    ClockReached,
    Command,
    IssueManually,
    IssueToPresent,
    PauseTrigger,
    PublishCampaign,
    addressee,
)
from livecoupon.domain.coupons import CouponTemplate
from livecoupon.domain.decisions import MANUAL, Decision, IssueRequest, Silence, coupon_id_for, device_key_for
from livecoupon.domain.events import INTERACTION_TYPES, Event, Facts, Profile
from livecoupon.domain.experiments import assign
from livecoupon.engine.manual_issues import ManualCommand, ManualIssue
from livecoupon.engine.offering import OfferBook
from livecoupon.engine.plans import Plan
from livecoupon.engine.rooms import FlashSale, Rebuild, Room, Viewer, by_fields
from livecoupon.store.port import ClaimsLedger


@dataclass(slots=True)
class Firing:
    """A trigger fired: for ``users``, or (None) for the audience its trigger names."""

    trigger: Trigger
    firing: str  # distinguishes firings of one trigger within a broadcast
    at: int
    users: Sequence[str] | None = None

    def __init__(self, trigger: Trigger, firing: str, at: int, users: Sequence[str] | None = None) -> None:
        """Written out: compiled, dataclass's own stays interpreted (see ``IssueRequest``)."""
        self.trigger = trigger
        self.firing = firing
        self.at = at
        self.users = users


QUIET_TYPES = frozenset({"heartbeat", "like", "follow"})  # from a present viewer, these only refresh presence
_VIEWING_TYPES: Final = QUIET_TYPES | {"join", "comment", "gift"}  # a viewer is seen: presence, then triggers

# The members looked up per event or firing, as C statics in the compiled build: read off its class,
# an enum's member is a descriptor's call (~0.2 µs on Python 3.11), dearer than the look-up it keys
_FIRST_VISIT: Final = When.FIRST_VISIT
_ONLINE_REACHED: Final = When.ONLINE_REACHED
_HOST_SAYS: Final = When.HOST_SAYS
_COMMENT: Final = When.COMMENT
_FLASH_SALE: Final = When.FLASH_SALE
_LOTTERY: Final = Audience.LOTTERY
_COMMENTERS: Final = Audience.COMMENTERS
_TOP_GIFTERS: Final = Audience.TOP_GIFTERS

# (due, order set, room, user, joined_at, broadcast, trigger index)
Timer = tuple[int, int, str, str, int, int, int]
NO_TIME = -(2**63)  # before the first event


@dataclass(frozen=True, slots=True)
class Published:
    """A version of the campaign an operator published: when, its file, and their words on it."""

    version: int
    at: int
    note: str
    source: str
    campaign: Campaign

    def __reduce__(self) -> Rebuild:
        return by_fields(self)


@dataclass(slots=True)
class UserFacts:
    """What the platform told of a user (SPEC §2): each the latest one given."""

    device: str | None = None
    ip: str | None = None
    risk: float | None = None
    profile: Profile | None = None

    def __reduce__(self) -> Rebuild:
        return by_fields(self)

    def learn(self, event: Event) -> None:
        self.note(event.device, event.ip, event.risk, event.profile)

    def note(self, device: str | None, ip: str | None, risk: float | None, profile: Profile | None) -> None:
        if device is not None:
            self.device = device
        if ip is not None:
            self.ip = ip
        if risk is not None:
            self.risk = risk
        if profile is not None:
            self.profile = profile


class Engine:
    """Applies events to room state and decides, through the store, what to issue.

    The ``_silent`` hooks say where a firing reaches a user without a decision; they do
    nothing here, and :class:`livecoupon.engine.explaining.ExplainingEngine` records them.
    """

    explaining = False  # whether firings of paused triggers and cooldowns are looked for at all

    def __init__(self, campaign: Campaign, store: ClaimsLedger) -> None:
        """An engine applies every event it is given: repeated ids are dropped before (engine/campaigns.py)."""
        self.campaign = campaign
        self.store = store
        self.rooms: dict[str, Room] = {}
        self.paused: set[str] = set()  # trigger names an operator paused
        self.facts: dict[str, UserFacts] = {}
        self.blocked_users: set[str] = set()
        self.blocked_devices: set[str] = set()
        self.manual_issues: dict[str, ManualIssue] = {}  # an operator's idempotency key -> its first use
        self.time = NO_TIME  # the latest time applied: an event's ts, or where the clock advanced to
        self._timers: list[Timer] = []
        self._timer_seq = 0
        self._gifts_seen = 0  # orders gift totals by when they were reached (top-gifter ties)
        self.plan = Plan(1, campaign)  # the version in force: each broadcast that begins takes it
        self.published: list[Published] = []  # the versions published after the first, in order
        self.offers = OfferBook.of(campaign)
        self._handlers: dict[str, Callable[[Room, Event], list[Firing]]] = {  # and _VIEWING_TYPES: _on_viewing
            "leave": self._on_leave, "order": self._on_order, "online_count": self._on_online_count,
            "transcript": self._on_transcript, "flash_sale": self._on_flash_sale,
        }

    def index_triggers(self) -> None:
        """Index every version in use by ``when``, the paused triggers apart (after a pause, a resume, a restore)."""
        plans = {id(room.plan): room.plan for room in self.rooms.values()}
        plans[id(self.plan)] = self.plan
        for plan in plans.values():
            plan.index(self.paused)

    def template_named(self, request: IssueRequest, name: str) -> CouponTemplate | None:
        """Template ``name`` as a decision on ``request`` had it: the request's own; an arm of its trigger's
        offer policy (the version in force's, in every room); its room's campaign version's; the version in
        force's (an operator's manual issue)."""
        if request.template is not None and request.template.name == name:
            return request.template
        policy = self.offers.policies.get(request.trigger)
        arm = next((t for t in policy.templates if t is not None and t.name == name), None) if policy else None
        if arm is not None:
            return arm
        state = self.rooms.get(request.room)
        known = state.plan.campaign.coupons.get(name) if state is not None else None
        return known if known is not None else self.campaign.coupons.get(name)

    def _plan_for(self, room: str) -> Plan:
        """The version a broadcast of ``room`` that begins now runs."""
        return self.plan if self.campaign.listens_to(room) else self.plan.silent()

    def publish(self, published: PublishCampaign, ts: int) -> None:
        """A new version: its limits and schedule hold from now, its triggers from each room's next broadcast."""
        campaign = published.campaign
        if campaign.campaign != self.campaign.campaign:
            return  # another campaign's file: the API refuses it; in a replayed file it changes nothing
        self.campaign = campaign
        self.plan = Plan(published.version, campaign)
        self.plan.index(self.paused)
        self.offers.adopt(campaign)
        self.published.append(Published(published.version, ts, published.note, published.source, campaign))

    # -- where a firing reaches someone without a decision (see ExplainingEngine) -------------
    def _silent(self, room: Room, trigger: Trigger, ts: int, users: Sequence[str] | None, why: Silence) -> None:
        """``trigger`` reached ``users`` (None: everyone present) at ``ts`` and decided nothing, because ``why``."""

    def _missed(self, room: Room, firing: Firing, audience: Sequence[str]) -> None:
        """A firing for an audience was decided for ``audience``; who else was in the room was not in it."""

    def _drawn(self, room: Room, firing: Firing, present: Sequence[str], eligible: Sequence[str],
               drawn: Sequence[str], winners: Sequence[str]) -> None:
        """A lottery drew ``drawn`` among ``eligible`` of ``present``; ``winners``: those it decides for (the drawn
        its coupon goes to, and any its offer chose nothing for)."""

    # -- the two ways time moves --------------------------------------------------------
    def apply(self, event: Event) -> list[Decision]:
        """Fire the timers due at or before the event, then apply the event."""
        if event.ts > self.time:
            self.time = event.ts
        if event.command is not None:
            return self._command(event.command, event.ts)
        room = self.rooms.get(event.room)
        if room is None:
            if not self.campaign.listens_to(event.room):
                return []
            room = self.rooms[event.room] = Room(event.room, self.campaign.presence_timeout_ms, self.plan)
        ts, kind = event.ts, event.type
        # Off air only a live_start applies: even a second live_end is not applied, so it
        # neither fires timers nor moves the point where a replay stops.
        if room.broadcast is None and room.seen_any and kind != "live_start":
            return []
        timers = self._timers
        decisions = self.advance(ts) if timers and timers[0][0] <= ts else []
        if event.user is not None and event.has_facts:  # applied on air, here: a broadcast's first event included
            self._learn(event)
        if (kind in QUIET_TYPES and room.broadcast is not None and not room.sales
                and room.see_again(event.user, ts)):  # type: ignore[arg-type]
            return decisions
        firings = self._apply_to_room(room, event)
        if firings:
            decisions.extend(self._decide(room, firings))
        return decisions

    def touch(self, room_name: str, user: str, ts: int, facts: Facts | None = None) -> bool:
        """A heartbeat, like or follow from ``user`` at ``ts`` (with what the platform knows of them, ``facts``),
        when it can only refresh presence.

        True: applied, exactly as :meth:`apply` would have applied it. False: the viewer is not present, a timer is
        due, a flash sale runs…: apply the event instead (the facts it learned here it learns again, alike).
        Replay calls this without building an :class:`Event`.
        """
        room = self.rooms.get(room_name)
        if room is None or room.broadcast is None or room.sales:
            return False
        timers = self._timers
        if timers and timers[0][0] <= ts:
            return False
        if ts > self.time:
            self.time = ts
        if facts is not None:
            device, ip, risk, profile = facts
            self._facts_of(user).note(device, ip, risk, profile)
        return room.see_again(user, ts)

    def advance(self, to: int) -> list[Decision]:
        """Fire every timer due at or before ``to``, in due order (ties: order set)."""
        decisions: list[Decision] = []
        if to > self.time:
            self.time = to
        timers = self._timers
        while timers and timers[0][0] <= to:
            due, _, room_name, user, joined_at, broadcast, index = heapq.heappop(timers)
            firing = self._dwell_firing(room_name, user, joined_at, broadcast, index, due)
            if firing is not None:
                decisions.extend(self._decide(self.rooms[room_name], [firing]))
        return decisions

    def next_timer_due(self) -> int | None:
        return self._timers[0][0] if self._timers else None

    # -- operator commands ----------------------------------------------------------------
    def _command(self, command: Command, ts: int) -> list[Decision]:
        """An operator's action, in its place among the events; timers due by then fire first."""
        decisions = self.advance(ts) if self._timers and self._timers[0][0] <= ts else []
        if addressee(command) not in (None, self.campaign.campaign):
            return decisions  # another campaign's, in a deployment of several
        match command:
            case PauseTrigger(trigger, paused, _):
                (self.paused.add if paused else self.paused.discard)(trigger)
                self.index_triggers()
            case ChangeBlocklist(users, devices, blocked):
                for names, listed in ((users, self.blocked_users), (devices, self.blocked_devices)):
                    (listed.update if blocked else listed.difference_update)(names)
            case IssueManually() | IssueToPresent():
                decisions.extend(self._issue_under_key(command, ts))
            case ClockReached():
                pass
            case PublishCampaign():
                self.publish(command, ts)
        return decisions

    def _issue_under_key(self, command: ManualCommand, ts: int) -> list[Decision]:
        """A manual issue; a repeat of its key gets the first use's decisions (whoever is present now), and
        another request under the key decides nothing (the service refuses it before logging it)."""
        first = self.manual_issues.get(command.key)
        if first is None:
            if command.template not in self.campaign.coupons:
                return []
            state = self.rooms.get(command.room)
            if isinstance(command, IssueManually):
                users = tuple(dict.fromkeys(command.users))
            elif state is not None and state.on_air:
                users = tuple(state.present_users(ts))
            else:
                return []  # nobody to send to: the key stays unused
            broadcast = state.broadcast if state is not None and state.broadcast is not None else 0
            first = self.manual_issues[command.key] = ManualIssue.first(command, users, broadcast, ts)
        elif not first.answers(command):
            return []
        template = self.campaign.coupons.get(first.template)
        return self._issue(self.manual_requests(first, command.key, template)) if template is not None else []

    def manual_requests(self, first: ManualIssue, key: str, template: CouponTemplate | None) -> list[IssueRequest]:
        """The requests of a manual issue under ``key`` (its first use, ``first``): the same coupon ids each time."""
        name, room, broadcast = self.campaign.campaign, first.room, first.broadcast
        return [self._with_facts(IssueRequest(coupon_id_for(name, room, broadcast, MANUAL, key, user), name, room,
                                              broadcast, MANUAL, user, template, first.at), None)
                for user in first.users]

    def _issue(self, requests: list[IssueRequest]) -> list[Decision]:
        made = self.store.issue(requests, self.campaign.limits)
        self.offers.decided(made)
        return made

    def _learn(self, event: Event) -> None:
        assert event.user is not None
        self._facts_of(event.user).learn(event)

    def _facts_of(self, user: str) -> UserFacts:
        facts = self.facts.get(user)
        if facts is None:
            facts = self.facts[user] = UserFacts()
        return facts

    # -- applying one event --------------------------------------------------------------
    def _apply_to_room(self, room: Room, event: Event) -> list[Firing]:
        kind = event.type
        first = not room.seen_any
        room.seen_any = True
        if kind == "live_start" or first:
            room.begin_broadcast(event.ts, self._plan_for(room.name))
            if kind == "live_start":
                return []
        if kind == "live_end":
            room.end_broadcast()
            return []
        if not room.on_air:
            return []
        if event.ts >= room.sweep_due:
            room.expire(event.ts)
        if kind in _VIEWING_TYPES:  # most events: called directly (compiled, a C call, not a bound method's)
            return self._on_viewing(room, event)
        return self._handlers[kind](room, event)

    def _on_viewing(self, room: Room, event: Event) -> list[Firing]:
        user, ts = event.user, event.ts
        assert user is not None
        firings: list[Firing] = []
        scheduled = self.plan.scheduled(ts)  # outside the schedule, presence and totals are still kept
        viewer = room.present(user, ts)
        if viewer is None:
            self._join(room, user, ts, firings, scheduled)
        else:
            if ts > viewer.last_seen:
                viewer.last_seen = ts
            room.viewers.move_to_end(user)
        kind = event.type
        if kind == "comment":
            room.last_comment[user] = ts
            if scheduled:
                self._comment_firings(room, user, event.text or "", ts, firings)
        elif kind == "gift":
            known = room.gifts.get(user)
            if known is None or event.value > 0:  # a 0 gift keeps when the total was reached (ties)
                self._gifts_seen += 1
                room.gifts[user] = ((known[0] if known else 0) + event.value, self._gifts_seen)
        if room.sales and kind in INTERACTION_TYPES and scheduled:  # sales first: rarely any
            self._flash_firings(room, user, ts, firings)
        if viewer is None and scheduled:
            self._present_count_firings(room, ts, firings)
        return firings

    def _join(self, room: Room, user: str, ts: int, firings: list[Firing], scheduled: bool) -> None:
        room.viewers.pop(user, None)
        room.viewers[user] = Viewer(ts)
        if scheduled and self.store.mark_visited(self.campaign.campaign, user):
            firings.extend(Firing(t, "", ts, (user,)) for t in room.plan.by_when[_FIRST_VISIT])
            for paused in room.plan.paused_by_when[_FIRST_VISIT]:
                self._silent(room, paused, ts, (user,), Silence.PAUSED)
        assert room.broadcast is not None
        for trigger in room.plan.dwell:  # paused ones too: a resume before the timer is due still counts
            if user not in room.decided_for(trigger.index):
                self._timer_seq += 1
                heapq.heappush(self._timers, (ts + trigger.after_ms, self._timer_seq, room.name, user, ts,
                                              room.broadcast, trigger.index))

    def _on_leave(self, room: Room, event: Event) -> list[Firing]:
        assert event.user is not None
        if room.present(event.user, event.ts) is not None:
            del room.viewers[event.user]
        return []

    def _on_order(self, room: Room, event: Event) -> list[Firing]:
        assert event.user is not None
        if event.ts > room.last_order.get(event.user, event.ts - 1):
            room.last_order[event.user] = event.ts
        self.offers.ordered(room.name, event.user, event.ts, event.amount)
        return []

    def _on_online_count(self, room: Room, event: Event) -> list[Firing]:
        count = event.count or 0
        if not self.plan.scheduled(event.ts):
            return []
        if self.explaining:
            for t in room.plan.paused_by_when[_ONLINE_REACHED]:
                if t.source == "reported" and t.index not in room.fired and count >= t.count:
                    self._silent(room, t, event.ts, None, Silence.PAUSED)
        return [self._milestone(room, t, event.ts) for t in room.plan.by_when[_ONLINE_REACHED]
                if t.source == "reported" and t.index not in room.fired and count >= t.count]

    def _present_count_firings(self, room: Room, ts: int, firings: list[Firing]) -> None:
        reached = room.plan.by_when[_ONLINE_REACHED]
        if not reached:
            return
        room.expire(ts)
        count = len(room.viewers)
        firings.extend(self._milestone(room, t, ts) for t in reached
                       if t.source == "present" and t.index not in room.fired and count >= t.count)

    def _milestone(self, room: Room, trigger: Trigger, ts: int) -> Firing:
        room.fired.add(trigger.index)
        return Firing(trigger, str(ts), ts)

    def _on_transcript(self, room: Room, event: Event) -> list[Firing]:
        firings: list[Firing] = []
        text = event.text or ""
        plan = room.plan
        if not self.plan.scheduled(event.ts):
            return firings
        if self.explaining:
            for paused in plan.paused_by_when[_HOST_SAYS]:
                if plan.phrases[paused.index].matches(text):
                    self._silent(room, paused, event.ts, None, Silence.PAUSED)
        for trigger in plan.by_when[_HOST_SAYS]:
            last = room.last_fired.get(trigger.index)
            if last is not None and event.ts - last < trigger.cooldown_ms:
                if self.explaining and plan.phrases[trigger.index].matches(text):
                    self._silent(room, trigger, event.ts, None, Silence.COOLDOWN)
                continue
            if plan.phrases[trigger.index].matches(text):
                room.last_fired[trigger.index] = event.ts
                firings.append(Firing(trigger, f"{room.next_firing(trigger.index)}@{event.ts}", event.ts))
        if self.explaining and plan is not self.plan:
            for newer in self._published_since(plan, _HOST_SAYS):
                if self.plan.phrases[newer.index].matches(text):
                    self._silent(room, newer, event.ts, None, Silence.EARLIER_VERSION)
        return firings

    def _published_since(self, plan: Plan, when: When) -> list[Trigger]:
        """Triggers of ``when`` in the version in force that ``plan`` (a room's earlier one) lacks or has otherwise."""
        had = {t.name: t for t in plan.triggers}
        return [t for t in self.plan.by_when[when]
                if (known := had.get(t.name)) is None or replace(known, index=t.index) != t]

    def _on_flash_sale(self, room: Room, event: Event) -> list[Firing]:
        room.sales_started += 1
        room.sales.append(FlashSale(room.sales_started, event.ts, event.ts + event.duration))
        return []

    def _comment_firings(self, room: Room, user: str, text: str, ts: int, firings: list[Firing]) -> None:
        plan = room.plan
        if self.explaining:
            for paused in plan.paused_by_when[_COMMENT]:
                if user not in room.decided_for(paused.index) and plan.keywords[paused.index].matches(text):
                    self._silent(room, paused, ts, (user,), Silence.PAUSED)
        if self.explaining and plan is not self.plan:
            for newer in self._published_since(plan, _COMMENT):
                if self.plan.keywords[newer.index].matches(text):
                    self._silent(room, newer, ts, (user,), Silence.EARLIER_VERSION)
        for trigger in plan.by_when[_COMMENT]:
            decided = room.decided_for(trigger.index)
            if user not in decided and plan.keywords[trigger.index].matches(text):
                decided.add(user)
                firings.append(Firing(trigger, "", ts, (user,)))

    def _flash_firings(self, room: Room, user: str, ts: int, firings: list[Firing]) -> None:
        room.sales = [sale for sale in room.sales if ts < sale.ends]
        for sale in room.sales:
            if ts < sale.starts:
                continue
            for paused in room.plan.paused_by_when[_FLASH_SALE] if self.explaining else ():
                if f"{paused.index}:{user}" not in sale.served:
                    self._silent(room, paused, ts, (user,), Silence.PAUSED)
            for trigger in room.plan.by_when[_FLASH_SALE]:
                key = f"{trigger.index}:{user}"
                if key not in sale.served:
                    sale.served.add(key)
                    firings.append(Firing(trigger, f"sale{sale.number}@{sale.starts}", ts, (user,)))

    def _dwell_firing(self, room_name: str, user: str, joined_at: int, broadcast: int, index: int,
                      due: int) -> Firing | None:
        room = self.rooms[room_name]
        if room.broadcast != broadcast:
            return None  # the broadcast ended: the viewer left then (noted as they were seen off air)
        trigger = room.plan.triggers[index]
        decided = room.decided_for(index)
        if user in decided:
            return None
        viewer = room.present(user, due)
        last_order = room.last_order.get(user)
        why = (Silence.DWELL_INTERRUPTED if viewer is None or viewer.joined_at != joined_at
               else Silence.ORDERED if last_order is not None and joined_at <= last_order < due
               else Silence.PAUSED if trigger.name in self.paused
               else Silence.OFF_SCHEDULE if not self.plan.scheduled(due) else None)
        if why is not None:
            self._silent(room, trigger, due, (user,), why)
            return None
        decided.add(user)
        return Firing(trigger, str(joined_at), due, (user,))

    # -- from firings to decisions --------------------------------------------------------
    def _decide(self, room: Room, firings: list[Firing]) -> list[Decision]:
        if len(firings) > 1:
            firings.sort(key=lambda f: f.trigger.index)
        decisions: list[Decision] = []
        for firing in firings:
            if firing.trigger.audience is _LOTTERY:
                decisions.extend(self._draw(room, firing))
            else:
                audience = self._audience(room, firing)
                if self.explaining and firing.users is None:
                    self._missed(room, firing, audience)
                if firing.trigger.offer is None:
                    decisions.extend(self._issue([self._request(room, firing, user) for user in audience]))
                else:
                    decisions.extend(self._offer(room, firing, audience))
        return decisions

    def _stock_used(self) -> dict[str, int]:
        return self.store.stock_used(self.campaign.campaign)

    def _offer(self, room: Room, firing: Firing, audience: Sequence[str]) -> list[Decision]:
        """An offer trigger's firing: its policy chooses among the arms in stock, an arm whose last coupons this
        firing's choices took left out of its later ones (engine/offering.py)."""
        book, trigger = self.offers, firing.trigger
        left = book.firing(trigger, self._stock_used, firing.at)
        held: list[int] = []
        requests = []
        for user in audience:
            request = self._request(room, firing, user)
            if left:
                book.taken(trigger, request.template, left, held)
            requests.append(request)
        made = self._issue(requests)
        if held:
            book.release(trigger, held)
        return made

    def _audience(self, room: Room, firing: Firing) -> Sequence[str]:
        if firing.users is not None:
            return firing.users
        trigger, at = firing.trigger, firing.at
        if trigger.audience is _COMMENTERS:
            since = at - trigger.within_ms
            recent = [u for u, t in room.last_comment.items()
                      if since <= t <= at and room.present(u, at) is not None]
            return room.join_order(recent)
        if trigger.audience is _TOP_GIFTERS:
            ranked = sorted(room.gifts.items(), key=lambda item: (-item[1][0], item[1][1]))
            return [user for user, _ in ranked[:trigger.top]]
        return room.present_users(at)

    def _draw(self, room: Room, firing: Firing) -> list[Decision]:
        trigger, limits, campaign = firing.trigger, self.campaign.limits, room.plan.campaign
        present = room.present_users(firing.at)
        if trigger.offer is not None:  # the arms out of stock or validity (a lottery's choices take nothing yet)
            self.offers.firing(trigger, self._stock_used, firing.at)
        requests = [self._request(room, firing, u) for u in present]
        nothing: list[IssueRequest] = []
        if trigger.offer is not None:  # the policy chose before step 2 (SPEC §4): a viewer offered nothing is decided
            nothing = [r for r in requests if r.template is None]  # so (no_offer), and is not in the draw
            requests = [r for r in requests if r.template is not None]
        # as the claims passed them: scaled out, with the devices other rooms told (the winners' device caps count on
        # them, so the claims never refuse a winner a step-2 reason, which a lottery's lines never carry)
        passing = {r.user: r for r in self.store.passing_caps(requests, limits)}
        eligible = sorted(passing)
        k = min(trigger.winners, len(eligible))
        draw = random.Random(f"{campaign.seed}:{campaign.campaign}:{trigger.name}:{firing.at / 1000!r}")
        drawn = draw.sample(eligible, k)
        winners = [*nothing, *within_device_caps([passing[user] for user in drawn])]
        if self.explaining:
            self._drawn(room, firing, present, eligible, drawn, [r.user for r in winners])
        return self._issue(winners)

    def _request(self, room: Room, firing: Firing, user: str) -> IssueRequest:
        trigger, campaign = firing.trigger, room.plan.campaign
        assert room.broadcast is not None
        coupon_id = coupon_id_for(campaign.campaign, room.name, room.broadcast, trigger.name, firing.firing, user)
        coupon = trigger.coupon if trigger.offer is None else OFFER
        experiment = room.plan.experiments.get(trigger.name)
        experiment_name = variant_name = None
        if experiment is not None:  # step 1
            variant = assign(experiment, user)
            experiment_name, variant_name, coupon = experiment.name, variant.name, variant.coupon
        template: CouponTemplate | None = None
        propensity = None
        if coupon == OFFER:  # between steps 1 and 2: the trigger's policy chooses
            profile, device = self._known(user)
            name = campaign.campaign
            trigger_spent = self.store.spent(name, trigger.name) if trigger.budget is not None else 0
            template, propensity = self.offers.choose(trigger, user, coupon_id, room, profile, device,
                                                      self.store.spent(name), trigger_spent, firing.at)
        else:
            template = None if coupon is None else campaign.coupons[coupon]
            if trigger.offer is not None:  # an experiment's fixed variant: the policy learns from it too, and its line
                propensity = 1.0  # carries the arm it gave, with certainty, as every line of an offer trigger does
                profile, device = self._known(user)
                self.offers.assigned(trigger, user, coupon_id, room, profile, device, template, firing.at)
        request = IssueRequest(coupon_id, campaign.campaign, room.name, room.broadcast, trigger.name, user,
                               template, firing.at, experiment_name, variant_name, propensity=propensity,
                               trigger_budget=trigger.budget, holdout=experiment is not None and coupon is None)
        return self._with_facts(request, trigger)

    def _known(self, user: str) -> tuple[Profile | None, str | None]:
        """The user's profile and device, for an offer policy's context (only offer triggers look)."""
        facts = self.facts.get(user)
        return (facts.profile, facts.device) if facts is not None else (None, None)

    def _with_facts(self, request: IssueRequest, trigger: Trigger | None) -> IssueRequest:
        """The request with what step 2 checks of its user: blocklist, risk, device cap."""
        facts = self.facts.get(request.user)
        device = facts.device if facts is not None else None
        blocked = request.user in self.blocked_users or (device is not None and device in self.blocked_devices)
        risk = facts.risk if facts is not None else None
        if not blocked and risk is None and (trigger is None or trigger.per_device is None):
            return request
        device_key = None
        if trigger is not None and trigger.per_device is not None:
            device_key = device_key_for(trigger.name, trigger.when is When.FIRST_VISIT, request.room,
                                        request.broadcast, device, request.user)
        return replace(request, risk=risk, device_key=device_key,
                       per_device=trigger.per_device if trigger is not None else None, blocked=blocked)


def within_device_caps(drawn: list[IssueRequest]) -> list[IssueRequest]:
    """A lottery's winners in the order drawn, past the first ``per_device`` of each device: those after them are no
    decision, as users who fail the caps are none in a lottery (SPEC §4: its lines never carry a step 2 reason).

    Every one drawn passed step 2 alone, and a lottery fires once a broadcast, so no device had a coupon of it
    before: the cap can only bind among the winners (two accounts on one phone, both drawn)."""
    taken: dict[str, int] = {}
    kept: list[IssueRequest] = []
    for request in drawn:
        key, cap = request.device_key, request.per_device
        if key is not None and cap is not None:
            already = taken.get(key, 0)
            if already >= cap:
                continue
            taken[key] = already + 1
        kept.append(request)
    return kept
