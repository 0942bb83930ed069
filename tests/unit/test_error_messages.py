"""Error answers read Chinese first, English second, whatever raised them (the project's rule for text people read)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

from livecoupon.domain.coupons import CouponState
from livecoupon.domain.orders import OrderState
from livecoupon.errors import CHINESE, NotFound, error_json, in_chinese_first

SOURCE = Path(__file__).resolve().parents[2] / "src" / "livecoupon"
RAISING = {"LivecouponError", "Malformed", "Refused", "NotFound", "Unauthorized", "Forbidden"}
ANSWERING = {"refuse", "_error", "error_json"}  # the edges that build an error body from a code


def codes_in_source() -> set[str]:
    """Every error code written as a literal where an error is raised or an error body built."""
    codes: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            arguments = [*node.args, *(k.value for k in node.keywords if k.arg == "code")]
            literals = [a.value for a in arguments if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in RAISING and node.args and isinstance(node.args[0], ast.Constant):
                codes.add(node.args[0].value)
            elif name in ANSWERING:
                codes.update(c for c in literals if c.isidentifier() and c.islower() and "_" in c)
            codes.update(k.value.value for k in node.keywords  # code=... wherever given (Unavailable's kinds)
                         if k.arg == "code" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str))
    return codes


def test_every_code_raised_or_answered_has_its_chinese_words() -> None:
    codes = codes_in_source()
    assert {"unauthorized", "unknown_coupon", "too_large", "store_unavailable", "claims_rebuilding"} <= codes
    codes.add("bus_unavailable")  # Unavailable's own
    # the codes made from a state: coupon_<state>, order_<state>
    codes |= {f"coupon_{s.value}" for s in CouponState if s is not CouponState.ISSUED}
    codes |= {f"order_{s.value}" for s in OrderState}
    missing = sorted(codes - CHINESE.keys())
    assert not missing, f"codes without Chinese words (errors.CHINESE): {missing}"


def test_a_message_gets_the_codes_chinese_words_first() -> None:
    assert in_chinese_first("unknown_coupon", "no coupon 'x'") == "没有这张券 / no coupon 'x'"
    assert NotFound("unknown_order", "no order 'o'").to_json()["error"] == {
        "code": "unknown_order", "message": "没有这笔订单 / no order 'o'", "field": None}


def test_a_message_in_both_languages_already_is_left_as_it_is() -> None:
    both = "你还不在这个直播间 / you are not in this room"
    assert error_json("not_in_room", both, None)["error"]["message"] == both
    assert in_chinese_first("no_such_code", "plain") == "plain"


def test_a_fields_message_in_both_languages_is_left_as_it_is() -> None:
    assert in_chinese_first("malformed", "paused: 必须是 true 或 false / Input should be a valid boolean") == \
        "paused: 必须是 true 或 false / Input should be a valid boolean"
    assert in_chinese_first("malformed", "cart[0].price: must be a number") == \
        "请求格式有误 / cart[0].price: must be a number"


def test_a_chinese_name_quoted_in_an_english_message_still_gets_the_chinese_words() -> None:
    assert in_chinese_first("unknown_template", "no coupon template '新人券'") == \
        "没有这个券模板 / no coupon template '新人券'"


def test_a_fields_problem_is_said_in_chinese_by_its_kind_before_pydantics_words() -> None:
    """A 422 for a request's field read 请求格式有误 / paused: Input should be a valid boolean: the code's words
    alone in Chinese, the problem itself in English only."""
    from pydantic import BaseModel, Field, ValidationError

    from livecoupon.errors import validation_words

    class Request(BaseModel):
        paused: bool
        note: str = Field(max_length=3)
        kind: Literal["a", "b"] = "a"
        count: int = Field(default=1, ge=1)

    def said(data: dict[str, object]) -> list[str]:
        try:
            Request.model_validate(data)
        except ValidationError as exc:
            return [validation_words(e) for e in exc.errors()]
        raise AssertionError("accepted")

    assert said({"paused": "maybe", "note": "long", "kind": "c", "count": 0}) == [
        "必须是 true 或 false / Input should be a valid boolean, unable to interpret input",
        "最多 3 个字符 / String should have at most 3 characters",
        "只能是 'a' 或 'b' / Input should be 'a' or 'b'",
        "不能小于 1 / Input should be greater than or equal to 1"]
    assert said({}) == ["必填 / Field required"] * 2  # paused, note
    assert validation_words({"type": "value_error", "msg": "Value error, 不能为负数 / must not be negative"}) == \
        "不能为负数 / must not be negative"  # a validator's own words, in both already
    assert validation_words({"type": "something_new", "msg": "odd"}) == "取值不合要求 / odd"
