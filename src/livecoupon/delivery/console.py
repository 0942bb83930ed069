"""What the host and operator consoles show: decision lines, read-aloud lines, live counters."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from livecoupon.delivery.messages import iso
from livecoupon.domain.campaign import Audience, Campaign, When
from livecoupon.domain.decisions import Decision, DecisionRecord
from livecoupon.domain.money import fen_to_yuan
from livecoupon.store.port import CampaignTotals

RATE_MINUTES = 30


def decision_line(d: Decision) -> dict[str, Any]:
    r = d.request
    return {"type": "decision", "ts": iso(r.at), "room": r.room, "user": r.user, "campaign": r.campaign,
            "trigger": r.trigger,
            "issued": d.issued, "reason": d.reason.value if d.reason else None,
            "title": r.template.title if r.template is not None else None,
            "coupon_id": r.coupon_id if d.issued else None, "variant": r.variant}


def announcements(campaign: Campaign, decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """Lines the host can read out: one per audience firing, and one per top-gifter thanks."""
    triggers = {t.name: t for t in campaign.triggers}
    groups: dict[tuple[str, str, int], list[Decision]] = defaultdict(list)
    for d in decisions:
        groups[(d.request.room, d.request.trigger, d.request.at)].append(d)
    lines = []
    for (room, name, _), made in groups.items():
        trigger = triggers.get(name)
        issued = [d for d in made if d.issued]
        if trigger is None or not issued or trigger.audience is Audience.USER:
            continue
        title = issued[0].request.template.title if issued[0].request.template else ""
        if trigger.audience is Audience.TOP_GIFTERS:
            users = "、".join(d.request.user for d in issued)
            text = f"恭喜榜一 {users}！{title}已送到 / Thanks to our top supporter {users}"
        else:
            label = {When.HOST_SAYS: "口令券", When.ONLINE_REACHED: "满人福利券"}.get(trigger.when, title)
            text = f"{label}已发出 {len(issued):,} 张 / {len(issued):,} coupons issued ({name})"
        lines.append({"type": "announcement", "room": room, "trigger": name, "text": text})
    return lines


class LiveStats:
    """Per-trigger counters and the issue rate per minute, kept as decisions commit, for the
    whole campaign and for each room (a host's console shows its own room's)."""

    def __init__(self, campaign: Callable[[], Campaign]) -> None:
        self.reading = campaign  # the campaign as it reads now: a publish adds triggers and coupons
        self.issued: Counter[str] = Counter()
        self.suppressed: dict[str, Counter[str]] = defaultdict(Counter)
        self.per_minute: Counter[int] = Counter()
        self._rooms: dict[str, LiveStats] = {}

    def add(self, records: Iterable[DecisionRecord]) -> None:
        for r in records:
            self._count(r)
            room = self._rooms.get(r.room)
            if room is None:
                room = self._rooms[r.room] = LiveStats(self.reading)
            room._count(r)

    def _count(self, r: DecisionRecord) -> None:
        if r.reason is None:
            self.issued[r.trigger] += 1
            self.per_minute[r.at // 60_000] += 1
        else:
            self.suppressed[r.trigger][r.reason.value] += 1

    def of_room(self, room: str) -> LiveStats:
        """The counters of one room's decisions."""
        return self._rooms.get(room) or LiveStats(self.reading)
    def snapshot(self, totals: CampaignTotals, rooms: dict[str, dict[str, Any]], paused: set[str],
                 now_ms: int, dead_letters: int) -> dict[str, Any]:
        c = self.reading()
        configured = [t.name for t in c.triggers]
        names = configured + sorted((set(self.issued) | set(self.suppressed)) - set(configured))
        when = {t.name: t.when.value for t in c.triggers}
        all_suppressed: Counter[str] = Counter()
        for counts in self.suppressed.values():
            all_suppressed.update(counts)
        current = now_ms // 60_000
        return {
            "type": "stats", "campaign": c.campaign, "issued": sum(self.issued.values()),
            "suppressed": dict(all_suppressed),
            "triggers": {n: {"when": when.get(n, "manual"), "issued": self.issued[n],
                             "suppressed": dict(self.suppressed.get(n, {})), "paused": n in paused} for n in names},
            "budget": {"spent": fen_to_yuan(totals.budget_spent),
                       "limit": None if c.limits.budget is None else fen_to_yuan(c.limits.budget)},
            "stock": {name: {"issued": totals.stock_used.get(name, 0), "stock": t.stock}
                      for name, t in c.coupons.items()},
            "rooms": rooms, "templates": list(c.coupons),
            "issue_rate": [{"minute": iso(m * 60_000), "issued": self.per_minute.get(m, 0)}
                           for m in range(current - RATE_MINUTES + 1, current + 1)],
            "dead_letters": dead_letters,
        }
