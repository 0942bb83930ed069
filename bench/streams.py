"""Seeded, deterministic event streams for benchmarks (SPEC §2 event format).

Reusable by any benchmark::

    from bench.streams import StreamSpec, broadcast_events, write_jsonl, write_stream, presence_events

    lines, spec = write_stream(path, 1_000_000)    # 10,000 viewers, one 4-hour broadcast
    n = write_jsonl(broadcast_events(StreamSpec(viewers=500), limit=20_000), path)  # a prefix

``broadcast_events`` simulates one room and one broadcast: viewers arrive over time
(an opening rush plus bumps before each flash sale), watch for a heavy-tailed
(log-normal) time, then leave, silently time out (a crashed client: heartbeats just
stop) or stay to the end; some come back later. Present viewers send a heartbeat every
20 s (with jitter) and, by their own heavy-tailed activity level, comments (some with
扣1, in several spellings), likes, follows, gifts and orders (some paid after they left).
The host's speech-to-text produces a transcript every few seconds, some with the
passphrase 宝宝们发券啦 or a homophone (发劝 / 发圈; 发卷 is a near miss), some with 恭喜榜一. The platform
reports ``online_count`` every 5 s, scaled so that it crosses 10,000 and 20,000. A few
flash sales run during the broadcast. Events carry platform message ids; a few are
sent twice (retries) and a handful of lines are malformed, as in a real recording.

Everything is derived from ``StreamSpec.seed``: the same spec always yields the same
bytes. Events come out in ``ts`` order (retried copies right after their original).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

Event = dict[str, Any]

# -- text pools -----------------------------------------------------------------------------
COMMENTS = [
    "主播好", "这个多少钱", "求链接", "上链接", "已拍", "666", "好看", "还有货吗", "尺码怎么选",
    "主播今天好美", "什么时候发货", "包邮吗", "有优惠吗", "等秒杀", "[赞][赞]", "👍👍👍", "来了来了",
    "第一次来", "宝宝们发券啦",  # a viewer quoting the host: not a transcript, never a passphrase
    "能便宜点吗", "质量怎么样", "黑色有吗", "M码还有吗", "支持主播", "抢到了", "没抢到",
]
KOU1 = ["扣1", "扣1扣1扣1", "主播我扣1了", "扣 1", "扣１", "扣1！！", "已扣1", "我要扣1"]
FLASH_COMMENTS = ["抢到了", "没抢到", "手慢了", "再来一波", "还有吗", "扣1"]
TRANSCRIPTS = [
    "家人们看一下这个面料", "今天直播间的价格是全网最低", "三二一上链接", "还有最后五十单",
    "喜欢的宝宝扣1", "这个颜色特别显白", "我们家是源头工厂", "新来的宝宝点个关注",
    "库存不多了抓紧时间", "给大家看一下细节", "这个价格只有今天有", "左上角福袋大家记得点",
    "宝宝们发现啦这个口袋是隐藏的",  # near miss: fa xian, not fa quan
]
# the passphrase as said, and as speech-to-text hears it: 发劝 / 发圈 are homophones of 发券
# (quan), 发卷 (juan) is not and must not match
PASSPHRASES = ["宝宝们发券啦", "宝宝们，发券啦！", "宝宝们发劝啦", "好的宝宝们发券啦赶紧去领", "宝宝们发圈啦",
               "宝宝们 发 券 啦", "宝宝们发卷啦"]
THANKS_TOP = ["恭喜榜一的宝宝", "恭喜榜一大哥", "感谢榜一的支持，恭喜榜一"]
GIFT_VALUES = [0.1, 0.1, 0.1, 1, 1, 1, 5, 5, 10, 10, 19.9, 52, 66, 99, 188, 520, 1314]
PRODUCTS = ["sku-1001", "sku-1002", "sku-2001", "sku-3005"]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What to simulate. ``for_events`` scales the audience to a wanted event count."""

    room: str = "bench-room-1"
    viewers: int = 10_000
    duration: float = 4 * 3600.0          # one broadcast, seconds
    start: float = 1_731_326_400.0        # 2024-11-11 20:00 +08:00
    seed: int = 20241111
    heartbeat: float = 20.0               # per present viewer
    presence_timeout: float = 60.0        # only used to model silent time-outs
    watch_median: float = 620.0           # log-normal watch time: median seconds ...
    watch_sigma: float = 1.3              # ... and shape (heavy tail)
    leave_share: float = 0.7              # of sessions ending early: explicit leave; rest time out
    rejoin_share: float = 0.2             # of sessions ending early: the viewer comes back later
    online_peak: int = 24_000             # peak of the platform-reported online_count
    online_every: float = 5.0
    flash_sales: tuple[tuple[float, float], ...] = ((0.15, 120.0), (0.4, 90.0), (0.62, 180.0), (0.85, 60.0))
    passphrase_every: float = 600.0       # mean seconds between passphrase attempts
    thanks_every: float = 1200.0
    transcript_gap: tuple[float, float] = (4.0, 12.0)  # seconds between the host's speech segments
    chatter_share: float = 0.45           # of viewers who comment at all ...
    chat_scale: float = 1.0               # ... and how much (a multiplier of the heavy-tailed rate)
    liker_share: float = 0.6
    like_scale: float = 1.0
    gifter_share: float = 0.04
    gift_scale: float = 1.0
    buyer_share: float = 0.08
    order_scale: float = 1.0
    with_ids: bool = True                 # platform message ids on every event
    retry_rate: float = 0.001             # events sent twice (same id)
    bad_rate: float = 0.00002             # malformed lines
    varied_text: bool = False             # comments and transcripts 2-4 characters longer: none alike (but the
                                          # flash sales' four calls)
    with_facts: bool = False              # every viewer event names the viewer's device, ip and profile

    @classmethod
    def for_events(cls, events: int, **overrides: Any) -> StreamSpec:
        """A spec whose broadcast has about ``events`` events (usually a little more).

        The defaults make ~100 events per viewer plus ~4,700 room events (transcripts,
        online_count): 1,000,000 events ask for 10,000 viewers (~1.02M events). Smaller
        counts shrink the audience, not the broadcast, so milestones, flash sales and
        passphrases still all happen.
        """
        viewers = max(20, math.ceil(max(events - 4_700, 2_000) / 99.53))
        return replace(cls(**overrides), viewers=viewers)

    @classmethod
    def mixed(cls, events: int, **overrides: Any) -> StreamSpec:
        """A mixed stream of about ``events`` events: few viewers (1,500 for 1,000,000
        events) who stay long and chat, like, gift and buy a lot; the host speaks every
        1-3 s with a passphrase attempt every ~2 minutes (each one decides for everyone present);
        ``online_count`` every second. Heartbeats are about a third of it, not nine tenths,
        so most events take the engine's checked paths and decisions are over 5% of events.
        """
        spec = cls(online_every=1.0, transcript_gap=(1.0, 3.0), passphrase_every=60.0, thanks_every=600.0,
                   watch_median=3000.0, watch_sigma=1.0, rejoin_share=0.4, chatter_share=0.8, chat_scale=8.0,
                   liker_share=0.8, like_scale=3.0, gifter_share=0.3, gift_scale=20.0, buyer_share=0.4, order_scale=6.0,
                   seed=20241112)
        viewers = max(20, math.ceil(max(events - 25_000, 2_000) / MIXED_EVENTS_PER_VIEWER))
        return replace(spec, viewers=viewers, **overrides)


MIXED_EVENTS_PER_VIEWER = 750.0  # measured on StreamSpec.mixed; room events add ~25,000


@dataclass(slots=True)
class _Session:
    user: str
    number: int           # the viewer's n-th session
    arrive: float         # seconds since live_start
    end: float            # last moment of activity (seconds since start)
    leaves: bool          # ends with an explicit leave (else: time-out, or live_end)
    chat: float           # comments per minute
    likes: float          # like bursts per minute
    gifts: float          # gifts per minute
    orders: int
    follows: bool
    rng_seed: str = field(default="")


def _arrival(rng: random.Random, spec: StreamSpec, sale_times: list[float]) -> float:
    d = spec.duration
    u = rng.random()
    if u < 0.35:  # the opening rush
        return min(d * 0.999, rng.expovariate(1 / 600.0))
    if u < 0.55 and sale_times:  # drawn in by the flash-sale preview
        t = rng.choice(sale_times) - abs(rng.gauss(0, 240.0))
        return min(max(0.0, t), d * 0.999)
    return rng.random() * d * 0.97


def _watch(rng: random.Random, spec: StreamSpec) -> float:
    return max(3.0, rng.lognormvariate(math.log(spec.watch_median), spec.watch_sigma))


def plan_sessions(spec: StreamSpec) -> list[_Session]:
    """Every viewing session of the broadcast, by arrival time (deterministic)."""
    rng = random.Random(f"{spec.seed}:sessions")
    sale_times = [frac * spec.duration for frac, _ in spec.flash_sales]
    sessions: list[_Session] = []
    for _ in range(spec.viewers):
        user = f"u{rng.getrandbits(40):010x}"
        # heavy-tailed activity: most viewers lurk, a few chat a lot
        chat = rng.paretovariate(1.6) * 0.15 * spec.chat_scale if rng.random() < spec.chatter_share else 0.0
        likes = rng.paretovariate(1.4) * 0.4 * spec.like_scale if rng.random() < spec.liker_share else 0.0
        gifts = rng.paretovariate(1.3) * 0.02 * spec.gift_scale if rng.random() < spec.gifter_share else 0.0
        orders = int(rng.paretovariate(2.0) * spec.order_scale) if rng.random() < spec.buyer_share else 0
        follows = rng.random() < 0.1
        arrive = _arrival(rng, spec, sale_times)
        number = 0
        while arrive < spec.duration:
            number += 1
            end = arrive + _watch(rng, spec)
            stays = end >= spec.duration
            leaves = not stays and rng.random() < spec.leave_share
            sessions.append(_Session(user, number, arrive, min(end, spec.duration), leaves, chat, likes, gifts,
                                     orders if number == 1 else 0, follows and number == 1,
                                     f"{spec.seed}:{user}:{number}"))
            if stays or rng.random() >= spec.rejoin_share:
                break
            arrive = end + rng.expovariate(1 / 900.0) + (spec.presence_timeout if not leaves else 1.0)
    sessions.sort(key=lambda s: (s.arrive, s.user, s.number))
    return sessions


def _session_events(s: _Session, spec: StreamSpec, sales: list[tuple[float, float]]) -> list[tuple[float, Event]]:
    """One session's viewer events (times relative to live_start), sorted."""
    rng = random.Random(s.rng_seed)
    say = random.Random(f"{s.rng_seed}:say")  # the words varied (StreamSpec.varied_text)
    room, user = spec.room, s.user
    out: list[tuple[float, Event]] = [(s.arrive, {"type": "join", "room": room, "user": user})]
    # heartbeats every ~20 s while present (jitter keeps them well under the 30 s contract)
    t = s.arrive + rng.uniform(1.0, spec.heartbeat)
    while t < s.end:
        out.append((t, {"type": "heartbeat", "room": room, "user": user}))
        t += spec.heartbeat + rng.uniform(-1.5, 1.5)

    def poisson(per_minute: float, boost: float) -> Iterator[float]:
        if per_minute <= 0:
            return
        t = s.arrive
        rate = per_minute / 60.0
        while True:
            t += rng.expovariate(rate * boost)
            if t >= s.end:
                return
            yield t

    def in_sale(t: float) -> bool:
        return any(a <= t < b for a, b in sales)

    for t in poisson(s.chat, 1.0):
        if in_sale(t) and rng.random() < 0.6:
            text = rng.choice(FLASH_COMMENTS)
        elif rng.random() < 0.08:
            text = rng.choice(KOU1)
        else:
            text = rng.choice(COMMENTS)
        out.append((t, {"type": "comment", "room": room, "user": user, "text": _varied(say, spec, text)}))
    # extra interaction during flash sales, when everyone taps and shouts
    for a, b in sales:
        if s.arrive <= a < s.end and rng.random() < 0.5:
            t = a + rng.expovariate(1 / 20.0)
            if t < min(b, s.end):
                out.append((t, {"type": "comment", "room": room, "user": user,
                                "text": _varied(say, spec, rng.choice(FLASH_COMMENTS))}))
    for t in poisson(s.likes, 1.0):
        out.append((t, {"type": "like", "room": room, "user": user, "count": rng.choice((1, 1, 1, 2, 3, 5, 10, 20))}))
    for t in poisson(s.gifts, 1.0):
        out.append((t, {"type": "gift", "room": room, "user": user, "value": rng.choice(GIFT_VALUES)}))
    if s.follows:
        out.append((s.arrive + rng.uniform(0, s.end - s.arrive), {"type": "follow", "room": room, "user": user}))
    for k in range(s.orders):
        # orders cluster in flash sales; some are paid after the viewer left the room
        if sales and rng.random() < 0.5:
            a, b = rng.choice(sales)
            t = rng.uniform(a, b + 120.0)
        else:
            t = rng.uniform(s.arrive, s.end + 600.0)
        t = min(t, spec.duration - 0.001)
        if t < s.arrive:
            t = s.arrive + rng.uniform(0, 60.0)
        amount = round(rng.choice((39.9, 59, 89, 99, 129, 199, 299, 599)) * rng.choice((1, 1, 1, 2)), 2)
        out.append((t, {"type": "order", "room": room, "user": user, "order_id": f"o-{user}-{s.number}-{k}",
                        "amount": amount}))
    if s.leaves and s.end < spec.duration:
        out.append((s.end, {"type": "leave", "room": room, "user": user}))
    out.sort(key=lambda item: item[0])
    return out


CITIES = ["杭州", "上海", "北京", "广州", "成都"]


def _facts(user: str) -> Event:
    """What a platform that sends them knows of a viewer (SPEC §2): a device (one in five shared by two
    accounts), an ip, and a profile of a member level and a city."""
    number = int(user[1:], 16)  # the simulated users are "u" and hex digits
    return {"device": f"dev-{number % 4_999:04x}", "ip": f"10.{number % 13}.{number % 251}.{number % 199}",
            "profile": {"level": number % 5, "city": CITIES[number % len(CITIES)]}}


def _varied(rng: random.Random, spec: StreamSpec, text: str) -> str:
    """``text``, or with ``spec.varied_text`` the same words and two to four random characters more, as people
    and speech recognition rarely say anything twice alike: no cache of texts seen helps. ``rng`` is the caller's
    own for this, so the stream's events and times are the same either way."""
    if not spec.varied_text:
        return text
    return text + "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(rng.randint(2, 4)))


def _room_events(spec: StreamSpec, sessions: list[_Session],
                 sales: list[tuple[float, float]]) -> list[tuple[float, Event]]:
    """live_start, transcripts, online_count, flash_sale (live_end is added at the end)."""
    rng = random.Random(f"{spec.seed}:room")
    say = random.Random(f"{spec.seed}:say")  # the words varied (StreamSpec.varied_text)
    room, d = spec.room, spec.duration
    out: list[tuple[float, Event]] = [(0.0, {"type": "live_start", "room": room})]
    for (a, _end), (_, seconds) in zip(sales, spec.flash_sales, strict=True):
        out.append((a, {"type": "flash_sale", "room": room, "duration": seconds, "product": "sku-1001"}))
        out.append((a - 8.0, {"type": "transcript", "room": room, "text": "秒杀马上开始，三二一上链接"}))
    # host speech: a final segment every 4-12 s, passphrases and thanks now and then
    t, next_pass, next_thanks = 3.0, rng.expovariate(1 / spec.passphrase_every), rng.expovariate(1 / spec.thanks_every)
    while t < d:
        if t >= next_pass:
            text = rng.choice(PASSPHRASES)
            out.append((t, {"type": "transcript", "room": room, "text": _varied(say, spec, text)}))
            if rng.random() < 0.3:  # the host repeats it: inside the 60 s cooldown
                out.append((t + rng.uniform(5, 40), {"type": "transcript", "room": room,
                                                     "text": _varied(say, spec, "宝宝们发券啦")}))
            next_pass = t + rng.expovariate(1 / spec.passphrase_every) + 30.0
        elif t >= next_thanks:
            out.append((t, {"type": "transcript", "room": room, "text": _varied(say, spec, rng.choice(THANKS_TOP))}))
            next_thanks = t + rng.expovariate(1 / spec.thanks_every) + 60.0
        else:
            out.append((t, {"type": "transcript", "room": room, "text": _varied(say, spec, rng.choice(TRANSCRIPTS))}))
        t += rng.uniform(*spec.transcript_gap)
    # the platform's online_count: it counts every client (lurkers, app in background),
    # so it is a multiple of the viewers sending events; scaled to peak at online_peak
    arrive = sorted(s.arrive for s in sessions)
    ends = sorted(s.end for s in sessions)
    times = [k * spec.online_every for k in range(1, int(d / spec.online_every))]
    present = [bisect.bisect_right(arrive, x) - bisect.bisect_right(ends, x) for x in times]
    peak = max(present, default=1) or 1
    for x, n in zip(times, present, strict=True):
        count = round(n / peak * spec.online_peak * rng.uniform(0.97, 1.03))
        out.append((x, {"type": "online_count", "room": room, "count": count}))
    out.sort(key=lambda item: item[0])
    return out


def _malformed(rng: random.Random, event: Event) -> Event:
    bad = dict(event)
    choice = rng.randrange(4)
    if choice == 0:
        bad.pop("room", None)
    elif choice == 1:
        bad["ts"] = str(bad["ts"])
    elif choice == 2:
        bad["type"] = "gift"
        bad["user"] = bad.get("user") or "u-bad"
        bad["value"] = 9.999
    else:
        bad["type"] = "reaction"
    return bad


def broadcast_events(spec: StreamSpec, limit: int | None = None) -> Iterator[Event]:
    """The broadcast's events in ``ts`` order; with ``limit``, the first ``limit - 1``
    events then a ``live_end`` (so a prefix is still a complete broadcast)."""
    sale_windows = [(frac * spec.duration, frac * spec.duration + seconds) for frac, seconds in spec.flash_sales]
    sessions = plan_sessions(spec)
    rng = random.Random(f"{spec.seed}:wire")
    heap: list[tuple[float, int, int, Event]] = []
    streams: list[Iterator[tuple[float, Event]] | None] = []
    seq = 0

    def activate(items: Iterable[tuple[float, Event]]) -> None:
        nonlocal seq
        it = iter(items)
        first = next(it, None)
        if first is None:
            return
        streams.append(it)
        seq += 1
        heapq.heappush(heap, (first[0], seq, len(streams) - 1, first[1]))

    activate(_room_events(spec, sessions, sale_windows))
    next_session = 0
    emitted = 0
    last_rel = 0.0
    while heap or next_session < len(sessions):
        # start sessions lazily so only the present audience is in memory
        while next_session < len(sessions) and (not heap or sessions[next_session].arrive <= heap[0][0]):
            activate(_session_events(sessions[next_session], spec, sale_windows))
            next_session += 1
        if not heap:
            continue
        rel, _, index, event = heapq.heappop(heap)
        stream = streams[index]
        assert stream is not None
        following = next(stream, None)
        if following is None:
            streams[index] = None
        else:
            seq += 1
            heapq.heappush(heap, (following[0], seq, index, following[1]))
        if rel >= spec.duration:
            continue
        if limit is not None and emitted >= limit - 1:
            break
        last_rel = rel
        emitted += 1
        event = {"type": event["type"], "room": event["room"], "ts": round(spec.start + rel, 3),
                 **{k: v for k, v in event.items() if k not in ("type", "room")}}
        if spec.with_ids:
            event = {"id": f"m{emitted:08d}", **event}
        if spec.with_facts and "user" in event:
            event |= _facts(event["user"])
        if spec.bad_rate and rng.random() < spec.bad_rate:
            yield _malformed(rng, event)
            continue
        yield event
        if spec.retry_rate and spec.with_ids and rng.random() < spec.retry_rate:
            yield event  # the SDK retried: same id, ignored by livecoupon
    yield {"type": "live_end", "room": spec.room, "ts": round(spec.start + max(last_rel, 0.0) + 0.001, 3),
           **({"id": "m-live-end"} if spec.with_ids else {})}


def write_stream(path: Path, events: int, **overrides: Any) -> tuple[int, StreamSpec]:
    """Write a whole broadcast of at least ``events`` lines (every viewer included).

    If the simulated audience happens to produce fewer events, it is enlarged and the
    stream generated again (deterministically). Returns (lines, the spec used)."""
    return _write_at_least(path, events, StreamSpec.for_events(events, **overrides))


def write_mixed_stream(path: Path, events: int, **overrides: Any) -> tuple[int, StreamSpec]:
    """Write :meth:`StreamSpec.mixed` broadcast of at least ``events`` lines; as :func:`write_stream`."""
    return _write_at_least(path, events, StreamSpec.mixed(events, **overrides))


def _write_at_least(path: Path, events: int, spec: StreamSpec) -> tuple[int, StreamSpec]:
    for _ in range(5):
        lines = write_jsonl(broadcast_events(spec), path)
        if lines >= events:
            break
        spec = replace(spec, viewers=math.ceil(spec.viewers * events / lines * 1.02))
    return lines, spec


def presence_users(viewers: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"u{rng.getrandbits(40):010x}" for _ in range(viewers)]


def presence_events(viewers: int, *, room: str = "bench-room-1", start: float = 1_731_326_400.0,
                    join_over: float = 60.0, heartbeat: float = 20.0, rounds: int = 3,
                    seed: int = 7, users: list[str] | None = None) -> Iterator[Event]:
    """``viewers`` joins spread over ``join_over`` seconds, then ``rounds`` heartbeats
    each (every ``heartbeat`` s), in ts order: everyone stays present to the end.
    ``users`` (from :func:`presence_users`) lets a caller allocate the ids up front."""
    if users is None:
        users = presence_users(viewers, seed)
    yield {"type": "live_start", "room": room, "ts": start}
    step = join_over / viewers
    for i, user in enumerate(users):
        yield {"type": "join", "room": room, "user": user, "ts": round(start + 0.001 + i * step, 3)}
    for r in range(1, rounds + 1):
        base = start + join_over + (r - 1) * heartbeat
        for i, user in enumerate(users):
            ts = round(base + 0.001 + i * heartbeat / viewers, 3)
            yield {"type": "heartbeat", "room": room, "user": user, "ts": ts}


def dumps(event: Event) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(events: Iterable[Event], path: Path) -> int:
    """Write events one JSON object a line; returns the number of lines."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as out:
        buf: list[str] = []
        for event in events:
            buf.append(dumps(event))
            n += 1
            if len(buf) >= 10_000:
                out.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            out.write("\n".join(buf) + "\n")
    return n


def _decode(line: str) -> Any:
    try:
        e = json.loads(line)
    except ValueError:
        return None
    return e if isinstance(e, dict) else None


def stream_stats(path: Path) -> dict[str, Any]:
    """Counts by type and a few shape figures of a written stream (for the report)."""
    by_type: dict[str, int] = {}
    users: set[str] = set()
    online_max = 0
    first = last = None
    with Path(path).open(encoding="utf-8") as lines:
        decoded = [_decode(line) for line in lines]
    for e in decoded:
        if e is None:
            continue
        kind = e.get("type", "?")
        by_type[kind] = by_type.get(kind, 0) + 1
        if "user" in e:
            users.add(e["user"])
        if kind == "online_count" and isinstance(e.get("count"), int):
            online_max = max(online_max, e["count"])
        if isinstance(e.get("ts"), (int, float)):
            first = e["ts"] if first is None else min(first, e["ts"])
            last = e["ts"] if last is None else max(last, e["ts"])
    return {"by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])), "users": len(users),
            "online_max": online_max, "span_s": (last - first) if first is not None and last is not None else 0}
