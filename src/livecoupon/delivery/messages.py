"""What a viewer sees when a coupon arrives: the push message and its reason in words."""

from __future__ import annotations

import datetime as dt
from typing import Any

from livecoupon.domain.campaign import Audience, Campaign, When
from livecoupon.domain.coupons import Coupon, CouponKind, CouponTemplate, Terms
from livecoupon.domain.events import LAST_MS
from livecoupon.domain.money import fen_to_yuan, format_yuan

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso(ms: int) -> str:
    """ISO 8601 in UTC to the ms; a time past the year 9999 (a coupon issued at the calendar's end) as its last ms."""
    at = _EPOCH + dt.timedelta(milliseconds=min(ms, LAST_MS))  # exact: no float between
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def coupon_words(terms: Terms) -> str:
    if terms.kind is CouponKind.NO_THRESHOLD:
        return f"一张{format_yuan(terms.amount)}元无门槛券"
    if terms.kind is CouponKind.THRESHOLD:
        return f"一张满{format_yuan(terms.threshold)}减{format_yuan(terms.amount)}券"
    return f"一张{(1000 - terms.percent_tenths) / 100:g}折券"


def describe_coupon(t: CouponTemplate) -> str:
    """A template's terms as operators say them: 满99减20, 无门槛10元, 8.5折（最高减50）."""
    terms = t.terms
    if terms.kind is CouponKind.THRESHOLD:
        text = f"满{format_yuan(terms.threshold)}减{format_yuan(terms.amount)}"
    elif terms.kind is CouponKind.NO_THRESHOLD:
        text = f"无门槛{format_yuan(terms.amount)}元"
    else:
        text = f"{(1000 - terms.percent_tenths) / 100:g}折"
        if terms.threshold:
            text = f"满{format_yuan(terms.threshold)}享" + text
        if terms.max_discount is not None:
            text += f"（最高减{format_yuan(terms.max_discount)}）"
    return text


def _minutes(ms: int) -> str:
    """A watch time as a viewer reads it: 5分钟, 1分40秒, 1小时30分钟 (100 s read "1.66667分钟")."""
    hours, rest = divmod(round(ms / 1000), 3600)
    minutes, seconds = divmod(rest, 60)
    words = [f"{hours}小时"] if hours else []
    if minutes:
        words.append(f"{minutes}分" if seconds else f"{minutes}分钟")
    if seconds:
        words.append(f"{seconds}秒")
    return "".join(words) or "0秒"


def reason_words(campaign: Campaign, coupon: Coupon) -> str:
    """Why the viewer got this coupon, as the popup says it (Chinese, then English)."""
    gift = coupon_words(coupon.terms)
    trigger = next((t for t in campaign.triggers if t.name == coupon.trigger), None)
    if trigger is None:
        return f"直播间专属福利，送你{gift} / A gift from the live room"
    if trigger.when is When.HOST_SAYS and trigger.audience is Audience.TOP_GIFTERS:
        return f"恭喜榜一，送你{gift} / Congratulations, top supporter"
    words = {
        When.FIRST_VISIT: f"欢迎第一次来直播间，送你{gift} / Welcome, first-time viewer",
        When.DWELL: f"感谢观看{_minutes(trigger.after_ms)}，送你{gift} / Thanks for watching",
        When.ONLINE_REACHED: f"直播间人数突破{trigger.count:,}，送你{gift} / The room passed {trigger.count:,} viewers",
        When.HOST_SAYS: f"主播口令福利，送你{gift} / The host's passphrase coupon",
        When.FLASH_SALE: f"限时秒杀进行中，送你{gift} / Flash sale on now",
        When.COMMENT: f"感谢互动，送你{gift} / Thanks for joining the chat",
    }
    return words[trigger.when]


def coupon_message(campaign: Campaign, coupon: Coupon) -> dict[str, Any]:
    """The ``{"type": "coupon", …}`` frame of SPEC §6."""
    terms = coupon.terms
    message: dict[str, Any] = {
        "type": "coupon", "coupon_id": coupon.coupon_id, "title": coupon.title, "kind": terms.kind.value,
        "threshold": fen_to_yuan(terms.threshold), "expires_at": iso(coupon.expires_at),
        "expires_at_ms": coupon.expires_at, "issued_at_ms": coupon.issued_at,
        "reason": reason_words(campaign, coupon), "room": coupon.room, "trigger": coupon.trigger,
        "scope": terms.scope.to_json(),
    }
    if terms.kind is CouponKind.PERCENT:
        message["percent"] = terms.percent
        message["max_discount"] = None if terms.max_discount is None else fen_to_yuan(terms.max_discount)
    else:
        message["amount"] = fen_to_yuan(terms.amount)
    return message
