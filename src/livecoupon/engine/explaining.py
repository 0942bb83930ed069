"""``explain``: why a user got what they got, from the log (SPEC §6).

The log is replayed through an engine that, besides deciding exactly as the live service
did, notes every firing that reached the user without a decision: not present, not a
recent commenter, not among the top gifters, not drawn, cooldown, paused, dwell
interrupted, ordered during dwell, the room off air. Each entry says why in words,
Chinese first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from livecoupon.domain.campaign import Audience, Campaign, Trigger
from livecoupon.domain.decisions import Decision, IssueRequest, Reason, Silence
from livecoupon.domain.events import VIEWER_TYPES, Event, seconds
from livecoupon.engine.campaigns import Deployment
from livecoupon.engine.engine import Engine, Firing
from livecoupon.engine.rooms import Room
from livecoupon.store.memory import MemoryClaims

Words = tuple[str, str]  # Chinese, English
REASON_WORDS: dict[Reason, Words] = {
    Reason.HOLDOUT: ("对照组，不发券", "in the holdout group of an experiment"),
    Reason.NO_OFFER: ("千人千面策略选择不发券", "the personalised offer chose to offer nothing"),
    Reason.BLOCKED: ("在黑名单中", "on the operator's blocklist"),
    Reason.RISK: ("风险分过高", "risk score above the campaign's max_risk"),
    Reason.DEVICE_CAP: ("同一设备已领满", "this device already had its coupons of this trigger"),
    Reason.PER_USER_CAP: ("本场已领满", "had the most coupons allowed this broadcast (per_user)"),
    Reason.MIN_INTERVAL: ("距上一张券太近", "too soon after the previous coupon (min_interval)"),
    Reason.TEMPLATE_EXPIRED: ("券模板已过期", "the coupon template is past its valid_until"),
    Reason.OUT_OF_STOCK: ("券已发完", "the coupon is out of stock"),
    Reason.OVER_BUDGET: ("活动预算已用完", "the campaign's budget is spent"),
}
SILENCE_WORDS: dict[Silence, Words] = {
    Silence.PAUSED: ("触发器已暂停", "the trigger was paused"),
    Silence.NOT_PRESENT: ("当时不在直播间", "not present at that moment"),
    Silence.NOT_A_COMMENTER: ("最近没有评论", "did not comment within the trigger's window"),
    Silence.NOT_A_TOP_GIFTER: ("不在礼物榜前列", "not among the top gifters"),
    Silence.NOT_DRAWN: ("抽奖未中", "not drawn in the lottery"),
    Silence.FAILED_CAPS: ("未通过频控，不参与抽奖", "did not pass the caps, so was not in the draw"),
    Silence.DEVICE_DRAWN: ("同一设备已有账号中奖", "drawn, but another account on the same device was drawn first"
                                             " (per_device)"),
    Silence.COOLDOWN: ("口令冷却中", "the passphrase fired less than its cooldown ago"),
    Silence.DWELL_INTERRUPTED: ("观看中断（离开或超时）", "dwell interrupted: left or timed out before the time"),
    Silence.ORDERED: ("观看期间已下单", "ordered during the dwell time"),
    Silence.OFF_AIR: ("直播间未开播，事件未生效", "the room was off air: the event was not applied"),
    Silence.OFF_SCHEDULE: ("不在活动时间内", "outside the campaign's schedule"),
    Silence.EARLIER_VERSION: ("该触发器在本场开播后才发布，下一场生效",
                              "the trigger was published after this broadcast began: it applies from the next one"),
}
_MISSED = {Audience.PRESENT: Silence.NOT_PRESENT, Audience.COMMENTERS: Silence.NOT_A_COMMENTER,
           Audience.TOP_GIFTERS: Silence.NOT_A_TOP_GIFTER}


@dataclass(frozen=True, slots=True)
class Note:
    """A firing that reached the user and decided nothing."""

    at: int
    room: str
    trigger: str | None
    why: Silence


class ExplainingEngine(Engine):
    """The engine, deciding as ever, and noting for one ``user`` every silent firing."""

    explaining = True

    def __init__(self, campaign: Campaign, user: str) -> None:
        super().__init__(campaign, MemoryClaims())
        self.user = user
        self.notes: list[Note | Decision] = []  # the user's silences and decisions, in the order they came
        self._seen: dict[str, int] = {}  # room -> the broadcast the user was last seen in
        self._event_from = -1  # where the notes of the event being applied begin (-1: no event's firings yet)

    def apply(self, event: Event) -> list[Decision]:
        mine = event.user == self.user and event.type in VIEWER_TYPES
        room = self.rooms.get(event.room)
        if mine and room is not None and room.broadcast is None and room.seen_any:
            self.notes.append(Note(event.ts, event.room, None, Silence.OFF_AIR))
        made = super().apply(event)
        self._event_from = -1
        room = self.rooms.get(event.room)
        if mine and room is not None and room.broadcast is not None:
            self._seen[event.room] = room.broadcast
        return made

    def _apply_to_room(self, room: Room, event: Event) -> list[Firing]:
        self._event_from = len(self.notes)  # (the timers due by the event fired before)
        return super()._apply_to_room(room, event)

    def _decide(self, room: Room, firings: list[Firing]) -> list[Decision]:
        """The decisions, and the event's silences (a paused trigger, a cooldown: noted as its firings were found)
        among them in the order its triggers are decided (SPEC §2: campaign-file order)."""
        made = super()._decide(room, firings)
        start, self._event_from = self._event_from, -1
        if start >= 0:
            order = {t.name: t.index for t in room.plan.campaign.triggers}
            self.notes[start:] = sorted(self.notes[start:], key=lambda entry: order.get(_trigger_of(entry), -1))
        return made

    def _issue(self, requests: list[IssueRequest]) -> list[Decision]:
        made = super()._issue(requests)
        self.notes.extend(d for d in made if d.request.user == self.user)
        return made

    def _silent(self, room: Room, trigger: Trigger, ts: int, users: Sequence[str] | None, why: Silence) -> None:
        reached = room.present(self.user, ts) is not None if users is None else self.user in users
        if reached:
            self.notes.append(Note(ts, room.name, trigger.name, why))

    def _missed(self, room: Room, firing: Firing, audience: Sequence[str]) -> None:
        if self.user in audience or self._seen.get(room.name) != room.broadcast:
            return
        trigger = firing.trigger
        why = _MISSED.get(trigger.audience, Silence.NOT_PRESENT)
        if why is Silence.NOT_A_COMMENTER and room.present(self.user, firing.at) is None:
            why = Silence.NOT_PRESENT
        self.notes.append(Note(firing.at, room.name, trigger.name, why))

    def _drawn(self, room: Room, firing: Firing, present: Sequence[str], eligible: Sequence[str],
               drawn: Sequence[str], winners: Sequence[str]) -> None:
        if self.user in winners:
            return
        why = (Silence.NOT_PRESENT if self.user not in present else
               Silence.FAILED_CAPS if self.user not in eligible else
               Silence.DEVICE_DRAWN if self.user in drawn else Silence.NOT_DRAWN)
        if why is not Silence.NOT_PRESENT or self._seen.get(room.name) == room.broadcast:
            self.notes.append(Note(firing.at, room.name, firing.trigger.name, why))


def _trigger_of(entry: Note | Decision) -> str:
    return (entry.trigger or "") if isinstance(entry, Note) else entry.request.trigger


def explain(campaigns: Campaign | Sequence[Campaign], log: Iterable[Event], user: str,
            joining: Iterable[str] = (), recorded: Sequence[Decision] | None = None) -> list[dict[str, Any]]:
    """Every decision for ``user`` and every firing that reached them without one, in time order. With several
    campaigns (``joining``: those started part-way through the log) each entry names its campaign. ``recorded``:
    the user's decisions as they were made, given where a replay of ``log`` could decide otherwise (a scaled-out
    deployment's merged log, where rooms competed for shared limits): its decisions are then those, and the replay
    tells only the firings that reached the user without one."""
    deployed = [campaigns] if isinstance(campaigns, Campaign) else list(campaigns)
    several = len(deployed) > 1
    notes: dict[str, list[Note | Decision]] = {}

    def noting(campaign: Campaign) -> Engine:
        engine = ExplainingEngine(campaign, user)
        notes[campaign.campaign] = engine.notes
        return engine

    deployment = Deployment(deployed, MemoryClaims(), joining=joining, make=noting)
    entries: list[tuple[int, int, dict[str, Any]]] = []
    decided: set[str] = set()
    for event in log:
        before = {name: len(noted) for name, noted in notes.items()}
        deployment.apply(event)
        for name, noted in notes.items():
            for note in noted[before.get(name, 0):]:
                if isinstance(note, Note):
                    entries.append((note.at, len(entries), _note_json(note) | ({"campaign": name} if several else {})))
                elif recorded is None and note.request.coupon_id not in decided:  # (not one the store knew already)
                    decided.add(note.request.coupon_id)
                    entries.append((note.request.at, len(entries), _decision_entry(note, several)))
    for d in recorded or ():
        if d.request.user == user:
            entries.append((d.request.at, len(entries), _decision_entry(d, several)))
    entries.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry for _, _, entry in entries]


def _decision_entry(d: Decision, several: bool) -> dict[str, Any]:
    return _decision_json(d) | ({"campaign": d.request.campaign} if several else {})


def _decision_json(d: Decision) -> dict[str, Any]:
    r = d.request
    body: dict[str, Any] = {"ts": seconds(r.at), "room": r.room, "trigger": r.trigger}
    if d.issued:
        assert r.template is not None
        body.update(outcome="issued", coupon=r.template.name, coupon_id=r.coupon_id,
                    **_words((f"已发放 {r.template.title}", f"issued {r.template.name}")))
    else:
        assert d.reason is not None
        body.update(outcome="suppressed", reason=d.reason.value, **_words(REASON_WORDS[d.reason]))
    if r.experiment is not None:
        body.update(experiment=r.experiment, variant=r.variant)
    if r.propensity is not None:
        body.update(arm=r.template.name if r.template is not None else None, propensity=r.propensity)
    return body


def _note_json(note: Note) -> dict[str, Any]:
    return {"ts": seconds(note.at), "room": note.room, "trigger": note.trigger, "outcome": "no_decision",
            "reason": note.why.value, **_words(SILENCE_WORDS[note.why])}


def _words(words: Words) -> dict[str, str]:
    """``why`` in both languages (Chinese first), and each on its own."""
    zh, en = words
    return {"why": f"{zh} / {en}", "why_zh": zh, "why_en": en}
