"""Small typed errors carrying data; the API turns them into answers in one place."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

# What each answer's code means, in Chinese: people read an error's message Chinese first, English second (the
# project's rule for text people read). The code's words go before the English message as it is answered
# (:func:`error_json`); a message written in both already is answered as it is.
CHINESE: Final[dict[str, str]] = {
    # the caller and the request
    "unauthorized": "需要有效的凭证",
    "credential_required": "需要在请求头里带上凭证",
    "forbidden": "此凭证无权访问该接口",
    "not_your_user": "观众令牌只能代表本人",
    "not_your_coupon": "这张券属于其他用户",
    "not_your_order": "这笔订单属于其他用户",
    "bad_signature": "签名校验失败",
    "rate_limited": "请求过于频繁，请稍后再试",
    "malformed": "请求格式有误",
    "malformed_notice": "通知格式有误",
    "invalid_json": "不是有效的 JSON",
    "too_deep": "JSON 嵌套过深",
    "not_an_array": "请求体须是事件数组",
    "too_many_events": "单次请求的事件过多",
    "too_large": "请求体过大",
    "unsupported_encoding": "不支持的内容编码",
    "bad_encoding": "请求体编码有误",
    "missing_idempotency_key": "缺少幂等键",
    "idempotency_key_reused": "幂等键已用于另一个请求",
    "not_found": "未找到",
    "method_not_allowed": "不支持此请求方法",
    "http_error": "请求有误",
    # rooms, campaigns, operators
    "missing_room": "缺少直播间",
    "reserved_room": "此直播间名称为保留名",
    "unknown_room": "活动未包含此直播间",
    "room_off_air": "直播间未开播",
    "not_in_room": "你还不在这个直播间",
    "invalid_comment": "评论无效",
    "unknown_trigger": "没有这个触发器",
    "unknown_template": "没有这个券模板",
    "unknown_campaign": "没有这个活动",
    "campaign_unknown": "部署中没有这个活动",
    "campaign_required": "部署中有多个活动，请指定一个",
    "campaign_not_started": "活动尚未开始",
    "no_time_yet": "事件时钟还没有时间（请先发送直播流的事件）",
    "claims_rebuilding": "计数正在重建，请重试",
    "campaign_invalid": "活动配置无效",
    "campaign_fixed": "服务运行中不能修改此项",
    "version_conflict": "版本冲突：已有人发布了新版本",
    "empty_blocklist": "请至少填写一个用户或设备",
    # coupons and orders
    "unknown_coupon": "没有这张券",
    "coupon_not_applicable": "此券不适用于该购物车",
    "coupon_reserved": "优惠券已被订单占用",
    "coupon_redeemed": "优惠券已核销",
    "coupon_expired": "优惠券已过期",
    "coupon_unconfirmed": "商家券系统尚未确认此券",
    "unknown_order": "没有这笔订单",
    "order_exists": "订单已存在",
    "order_created": "订单尚未支付",
    "order_paid": "订单已支付",
    "order_cancelled": "订单已取消",
    "order_refunded": "订单已退款",
    "order_lapsed": "订单已失效（券的预留已过期）",
    "order_changed": "订单在支付过程中被修改",
    "reservation_lapsed": "券的预留已过期，请重新下单",
    "cart_too_large": "订单金额过大",
    # the service itself
    "bus_unavailable": "消息总线暂不可用，请稍后重试",
    "store_unavailable": "存储暂不可用，请稍后重试",
}


# pydantic's error types in Chinese (a request's field, a campaign file's key): what the value must be; pydantic's
# English follows, naming what it names (``Input should be 'webhook' or 'douyin'``)
VALIDATION_CHINESE: Final[dict[str, str]] = {
    "missing": "必填", "extra_forbidden": "未知的字段",
    "int_type": "必须是整数", "int_parsing": "必须是整数", "int_from_float": "必须是整数",
    "float_type": "必须是数字", "float_parsing": "必须是数字", "finite_number": "必须是有限的数值",
    "bool_type": "必须是 true 或 false", "bool_parsing": "必须是 true 或 false", "datetime_type": "必须是时间",
    "string_type": "必须是字符串", "list_type": "必须是列表",
    "dict_type": "必须是对象", "model_type": "必须是对象", "model_attributes_type": "必须是对象",
    "string_too_short": "至少 {min_length} 个字符", "string_too_long": "最多 {max_length} 个字符",
    "too_short": "至少 {min_length} 项", "too_long": "最多 {max_length} 项",
    "greater_than": "必须大于 {gt}", "greater_than_equal": "不能小于 {ge}",
    "less_than": "必须小于 {lt}", "less_than_equal": "不能大于 {le}",
    "multiple_of": "必须是 {multiple_of} 的倍数", "string_pattern_mismatch": "格式不对",
}


_FIELD: Final = re.compile(r"[\w.\[\]]+: ")  # a message's leading field name (``cart[0].price: ``)


def begins_in_chinese(text: str) -> bool:
    """Whether ``text`` starts with a Chinese character (or CJK punctuation): a message written in both already."""
    return "\u3000" <= text[:1] <= "\u9fff"


def in_chinese_first(code: str, message: str) -> str:
    """``message`` as people read it: the code's Chinese words, then the English (unless it is written in both
    already, ``中文 / English`` or ``field: 中文 / English``, or the code has none). A name it quotes may be Chinese:
    that is not Chinese first."""
    words = CHINESE.get(code)
    field = _FIELD.match(message)
    if words is None or begins_in_chinese(message[field.end():] if field else message):
        return message
    return f"{words} / {message}"


def dotted(loc: Iterable[int | str], head: str = "") -> str:
    """An error's location as people write it, after ``head``: ``cart[0].price`` (empty for none)."""
    text = head
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_words(error: Mapping[str, Any]) -> str:
    """A pydantic error's message, Chinese first: what the value must be, in Chinese by the error's type, then
    pydantic's English (without the name of the exception a validator raised: ``Value error, …``). Our validators'
    words are said as they are, where they are in both languages already."""
    english = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        english = english.removeprefix(prefix)
    if begins_in_chinese(english):
        return english
    kind, context = str(error.get("type", "")), error.get("ctx") or {}
    if kind == "literal_error" and "expected" in context:
        chinese = "只能是 " + str(context["expected"]).replace(", ", "、").replace(" or ", " 或 ")
    else:
        chinese = VALIDATION_CHINESE.get(kind, "取值不合要求")
        with contextlib.suppress(KeyError, IndexError, ValueError):
            chinese = chinese.format(**context)
    return f"{chinese} / {english}"


def error_json(code: str, message: str, field: str | None) -> dict[str, dict[str, str | None]]:
    """An error's answer, ``{"error": {"code", "message", "field"}}`` (SPEC §6), its message Chinese first."""
    return {"error": {"code": code, "message": in_chinese_first(code, message), "field": field}}


class LivecouponError(Exception):
    """Base: ``code`` is machine-readable, ``message`` is for people, ``field`` names the input."""

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def to_json(self) -> dict[str, dict[str, str | None]]:
        return error_json(self.code, self.message, self.field)


class Malformed(LivecouponError):
    """The request itself is wrong (422)."""

    status = 422


def key_reused() -> Malformed:
    """The same idempotency key with another request (SPEC §5: the same key always gets the same answer)."""
    return Malformed("idempotency_key_reused", "idempotency_key was already used for a different request",
                     "idempotency_key")


class Refused(LivecouponError):
    """The request is well-formed but the rules refuse it (409)."""

    status = 409


class NotFound(LivecouponError):
    status = 404


class Unauthorized(LivecouponError):
    status = 401


class Forbidden(LivecouponError):
    """A valid credential, but for another user or an endpoint it does not open (403)."""

    status = 403


class TooManyRequests(LivecouponError):
    """A rate limit; ``retry_after`` seconds until the caller may try again (429)."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__("rate_limited", message, None)
        self.retry_after = retry_after


class Unavailable(LivecouponError):
    """Something the service stands on is away for a moment — scaled out, the bus or the store (503,
    Retry-After): retry. (A batch the bus took before it failed to answer is applied once all the same.)"""

    status = 503

    def __init__(self, message: str, retry_after: int = 1, code: str = "bus_unavailable") -> None:
        super().__init__(code, message, None)
        self.retry_after = retry_after
