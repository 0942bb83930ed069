"""The campaign file (SPEC §3): every key, its default, and errors that name their path."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from livecoupon.campaign_file import CampaignError, campaign_files, load_campaign, load_campaigns, parse_campaign
from livecoupon.domain.campaign import Audience, Campaign, When
from livecoupon.domain.coupons import CouponKind, Scope

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "campaign.yaml"
SEC, MIN, HOUR = 1_000, 60_000, 3_600_000

MINIMAL: dict[str, Any] = {
    "campaign": "c1",
    "rooms": ["room-1"],
    "coupons": {"dwell10": {"title": "观望鼓励券", "kind": "no_threshold", "amount": 10, "valid_for": "15m"}},
    "triggers": [{"name": "newcomer", "when": "first_visit", "coupon": "dwell10"}],
}


def build(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    data.update(changes)
    return data


def load(data: dict[str, Any]) -> Campaign:
    return parse_campaign(yaml.safe_dump(data, allow_unicode=True))


def errors_of(data: dict[str, Any] | str) -> list[str]:
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    with pytest.raises(CampaignError) as info:
        parse_campaign(text)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def with_coupon(**coupon: Any) -> dict[str, Any]:
    data = build()
    data["coupons"]["x"] = coupon
    return data


def with_trigger(**trigger: Any) -> dict[str, Any]:
    data = build()
    data["triggers"].append({"name": "t", "coupon": "dwell10", **trigger})
    return data


def one_error(data: dict[str, Any] | str, prefix: str) -> str:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    assert errors[0].startswith(prefix), errors
    return errors[0]


# --- the example and the defaults --------------------------------------------------------------------------------


def test_example_campaign_loads_with_every_trigger_kind() -> None:
    c = load_campaign(EXAMPLE)
    assert c.campaign == "double11-live"
    assert c.rooms == ("room-1",)
    assert (c.presence_timeout_ms, c.seed, c.attribution_window_ms) == (60 * SEC, 42, 30 * MIN)
    assert [(t.name, t.when) for t in c.triggers] == [
        ("newcomer", When.FIRST_VISIT), ("dwell", When.DWELL), ("milestone", When.ONLINE_REACHED),
        ("lucky", When.ONLINE_REACHED), ("passphrase", When.HOST_SAYS), ("thanks-top", When.HOST_SAYS),
        ("flash", When.FLASH_SALE), ("kou1", When.COMMENT)]
    assert [t.index for t in c.triggers] == list(range(8))
    assert (c.limits.per_user, c.limits.min_interval_ms, c.limits.budget) == (3, 2 * MIN, 30_000_000)
    newcomer = c.coupons["newcomer"]
    assert (newcomer.terms.kind, newcomer.terms.threshold, newcomer.terms.amount) == (CouponKind.THRESHOLD, 9900, 2000)
    assert (newcomer.valid_for_ms, newcomer.valid_until_ms, newcomer.stock) == (30 * MIN, None, 10000)
    assert newcomer.terms.scope == Scope()
    pct = c.coupons["pct15"].terms
    assert (pct.kind, pct.threshold, pct.percent_tenths, pct.max_discount) == (CouponKind.PERCENT, 0, 150, 5000)
    flash = c.coupons["flash20"]
    assert flash.terms.scope == Scope(products=frozenset({"sku-1001"})) and flash.stock == 500
    assert c.coupons["bonus"].valid_for_ms == HOUR
    dwell, lucky, passphrase, top = c.triggers[1], c.triggers[3], c.triggers[4], c.triggers[5]
    assert dwell.after_ms == 5 * MIN
    assert (lucky.audience, lucky.winners, lucky.count) == (Audience.LOTTERY, 100, 20000)
    assert (passphrase.phrases, passphrase.cooldown_ms) == (("宝宝们发券啦",), 60 * SEC)
    assert (top.audience, top.top) == (Audience.TOP_GIFTERS, 1)
    assert c.triggers[7].keywords == ("扣1",)
    (ex,) = c.experiments
    assert (ex.name, ex.trigger, ex.salt) == ("dwell-value", "dwell", "dwell-value-v1")
    assert [(v.name, v.weight, v.coupon) for v in ex.variants] == [
        ("control", 1, None), ("ten", 1, "dwell10"), ("twenty", 1, "dwell20"), ("policy", 3, "offer")]
    assert c.experiment_for("dwell") is ex and c.experiment_for("newcomer") is None


def test_top_level_defaults() -> None:
    c = load(build())
    assert c.presence_timeout_ms == 60 * SEC
    assert c.seed == 0
    assert c.attribution_window_ms == 30 * MIN
    assert (c.limits.per_user, c.limits.min_interval_ms, c.limits.budget) == (None, None, None)
    assert c.experiments == ()
    assert c.coupons["dwell10"].stock is None
    assert c.coupons["dwell10"].terms.scope == Scope()


def test_top_level_keys_are_read() -> None:
    c = load(build(presence_timeout="90s", seed=7, attribution_window="1h30m"))
    assert (c.presence_timeout_ms, c.seed, c.attribution_window_ms) == (90 * SEC, 7, 90 * MIN)


def test_rooms_star_means_every_room() -> None:
    c = load(build(rooms="*"))
    assert c.rooms is None
    assert c.listens_to("anything")
    listed = load(build(rooms=["a", "b"]))
    assert listed.listens_to("a") and not listed.listens_to("c")


@pytest.mark.parametrize(("text", "ms"), [(300, 300 * SEC), ("30s", 30 * SEC), ("5m", 5 * MIN), ("2h", 2 * HOUR),
                                          ("1h30m", 90 * MIN), (1.5, 1500)])
def test_durations_in_every_form(text: object, ms: int) -> None:
    assert load(build(presence_timeout=text)).presence_timeout_ms == ms
    data = build()
    data["coupons"]["dwell10"]["valid_for"] = text
    assert load(data).coupons["dwell10"].valid_for_ms == ms


def test_trigger_defaults() -> None:
    data = build()
    data["coupons"]["pct"] = {"title": "P", "kind": "percent", "percent": 15, "valid_for": "15m"}
    data["triggers"] += [
        {"name": "m", "when": "online_reached", "count": 100, "coupon": "dwell10"},
        {"name": "p", "when": "host_says", "phrases": ["发券"], "coupon": "pct"},
        {"name": "cm", "when": "host_says", "phrases": ["发券"], "coupon": "pct", "audience": "commenters"},
        {"name": "tg", "when": "host_says", "phrases": ["恭喜榜一"], "coupon": "pct", "audience": "top_gifters"},
        {"name": "f", "when": "flash_sale", "coupon": "dwell10"},
        {"name": "k", "when": "comment", "keywords": ["扣1"], "coupon": "dwell10"},
    ]
    c = load(data)
    first, m, p, cm, tg, f, k = c.triggers
    assert first.audience is Audience.USER
    assert (m.audience, m.source, m.count) == (Audience.PRESENT, "reported", 100)
    assert (p.audience, p.cooldown_ms) == (Audience.PRESENT, 60 * SEC)
    assert (cm.audience, cm.within_ms) == (Audience.COMMENTERS, 60 * SEC)
    assert (tg.audience, tg.top) == (Audience.TOP_GIFTERS, 1)
    assert (f.when, f.audience) == (When.FLASH_SALE, Audience.USER)
    assert k.keywords == ("扣1",)
    assert c.coupons["pct"].terms.threshold == 0


def test_trigger_keys_are_read() -> None:
    data = build()
    data["triggers"] += [
        {"name": "d", "when": "dwell", "after": 300, "coupon": "dwell10"},
        {"name": "m", "when": "online_reached", "count": 5, "source": "present", "coupon": "dwell10"},
        {"name": "l", "when": "online_reached", "count": 5, "audience": "lottery", "winners": 3, "coupon": "dwell10"},
        {"name": "cm", "when": "host_says", "phrases": ["a"], "coupon": "dwell10", "audience": "commenters",
         "within": "2m", "cooldown": "30s"},
        {"name": "tg", "when": "host_says", "phrases": ["b"], "coupon": "dwell10", "audience": "top_gifters",
         "top": 3},
    ]
    _, d, m, lot, cm, tg = load(data).triggers
    assert d.after_ms == 300 * SEC
    assert (m.source, m.count) == ("present", 5)
    assert (lot.audience, lot.winners) == (Audience.LOTTERY, 3)
    assert (cm.within_ms, cm.cooldown_ms) == (2 * MIN, 30 * SEC)
    assert tg.top == 3


def test_every_coupon_key_is_read() -> None:
    data = build(limits={"per_user": 3, "min_interval": "2m", "budget": 500.5})
    data["coupons"]["x"] = {
        "title": "折扣", "kind": "percent", "threshold": 99.9, "percent": 12.5, "max_discount": 50,
        "scope": {"products": ["p1"], "categories": ["c1"], "exclude_products": ["p2"],
                  "exclude_categories": ["c2"]},
        "valid_for": "1h", "stock": 0,
    }
    c = load(data)
    x = c.coupons["x"]
    assert (x.name, x.title, x.stock, x.valid_for_ms) == ("x", "折扣", 0, HOUR)
    assert (x.terms.threshold, x.terms.percent_tenths, x.terms.max_discount) == (9990, 125, 5000)
    assert x.terms.scope == Scope(frozenset({"p1"}), frozenset({"c1"}), frozenset({"p2"}), frozenset({"c2"}))
    assert c.limits.budget == 50050


def test_valid_until_with_offset_as_yaml_timestamp_or_string() -> None:
    for value in ("2026-11-11T23:59:59+08:00", "'2026-11-11T23:59:59+08:00'", "2026-11-11T15:59:59Z"):
        text = yaml.safe_dump(MINIMAL, allow_unicode=True).replace("valid_for: 15m", f"valid_until: {value}")
        template = parse_campaign(text).coupons["dwell10"]
        # 2026-11-11 15:59:59 UTC = 1767225600 (2026-01-01) + 314 days + 57599 s
        assert (template.valid_until_ms, template.valid_for_ms) == (1_794_412_799_000, None)


@pytest.mark.parametrize("value", ["2026-11-11T23:59:59", "'2026-11-11T23:59:59'", "2026-11-11 23:59:59"])
def test_valid_until_without_utc_offset_is_rejected(value: str) -> None:
    text = yaml.safe_dump(MINIMAL, allow_unicode=True).replace("valid_for: 15m", f"valid_until: {value}")
    one_error(text, "coupons.dwell10.valid_until: 必须带时区（如 +08:00） / must carry its UTC offset")


# --- shape errors: unknown keys, types, money --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "path"),
    [
        ((), "colour: 未知的键 / unknown key"),
        (("coupons", "dwell10"), "coupons.dwell10.colour: 未知的键 / unknown key"),
        (("triggers", 0), "triggers[0].colour: 未知的键 / unknown key"),
        (("limits",), "limits.colour: 未知的键 / unknown key"),
        (("experiments", 0), "experiments[0].colour: 未知的键 / unknown key"),
        (("experiments", 0, "variants", 1), "experiments[0].variants[1].colour: 未知的键 / unknown key"),
        (("coupons", "dwell10", "scope"), "coupons.dwell10.scope.colour: 未知的键 / unknown key"),
    ],
)
def test_unknown_keys_are_errors_naming_their_path(where: tuple[Any, ...], path: str) -> None:
    data = build(limits={"per_user": 1},
                 experiments=[{"name": "e", "trigger": "newcomer",
                               "variants": [{"name": "a", "coupon": None}, {"name": "b", "coupon": "dwell10"}]}])
    data["coupons"]["dwell10"]["scope"] = {"products": ["p"]}
    node: Any = data
    for part in where:
        node = node[part]
    node["colour"] = "red"
    assert errors_of(data) == [path]


def test_a_typo_in_a_trigger_key_is_an_error() -> None:
    assert errors_of(with_trigger(when="dwell", aftr="5m")) == ["triggers[1].aftr: 未知的键 / unknown key"]


@pytest.mark.parametrize("key", ["campaign", "rooms", "coupons", "triggers"])
def test_required_top_level_keys(key: str) -> None:
    data = build()
    del data[key]
    assert errors_of(data) == [f"{key}: 必填 / required"]


@pytest.mark.parametrize(("key", "path"), [("title", "coupons.dwell10.title: 必填 / required"),
                                           ("kind", "coupons.dwell10.kind: 必填 / required")])
def test_required_coupon_keys(key: str, path: str) -> None:
    data = build()
    del data["coupons"]["dwell10"][key]
    assert errors_of(data) == [path]


@pytest.mark.parametrize("key", ["name", "when", "coupon"])
def test_required_trigger_keys(key: str) -> None:
    data = build()
    del data["triggers"][0][key]
    assert errors_of(data) == [f"triggers[0].{key}: 必填 / required"]


def test_a_coupon_named_like_a_type_keeps_its_name_in_paths() -> None:
    data = build()
    data["coupons"]["int"] = {"title": "I", "kind": "no_threshold", "amount": 1.999, "valid_for": "1m"}
    assert errors_of(data) == ["coupons.int.amount: 最多两位小数 / at most 2 decimals allowed"]


@pytest.mark.parametrize(("key", "value"), [("amount", 10.999), ("amount", 0.001), ("threshold", 99.999)])
def test_money_with_more_than_two_decimals_is_rejected(key: str, value: float) -> None:
    data = with_coupon(title="X", kind="threshold", threshold=99, amount=10, valid_for="1m")
    data["coupons"]["x"][key] = value
    assert errors_of(data) == [f"coupons.x.{key}: 最多两位小数 / at most 2 decimals allowed"]


def test_money_by_value_with_a_trailing_zero_is_fine() -> None:
    text = yaml.safe_dump(MINIMAL, allow_unicode=True).replace("amount: 10", "amount: 19.990")
    assert parse_campaign(text).coupons["dwell10"].terms.amount == 1999


def test_budget_and_max_discount_are_money_too() -> None:
    assert errors_of(build(limits={"budget": 1.001})) == ["limits.budget: 最多两位小数 / at most 2 decimals allowed"]
    data = with_coupon(title="P", kind="percent", percent=10, max_discount=5.555, valid_for="1m")
    assert errors_of(data) == ["coupons.x.max_discount: 最多两位小数 / at most 2 decimals allowed"]
    one_error(with_coupon(title="N", kind="no_threshold", amount=-5, valid_for="1m"), "coupons.x.amount: ")
    one_error(with_coupon(title="N", kind="no_threshold", amount=True, valid_for="1m"), "coupons.x.amount: ")


def test_bad_durations_name_their_path() -> None:
    one_error(build(presence_timeout="5x"), "presence_timeout: 不是时长 / not a duration")
    assert errors_of(build(presence_timeout=0)) == ["presence_timeout: 必须大于 0 / must be > 0"]
    one_error(with_trigger(when="dwell", after="soon"), "triggers[1].after: 不是时长 / not a duration")
    assert errors_of(with_trigger(when="dwell", after=0)) == ["triggers[1].after: 必须大于 0 / must be > 0"]
    one_error(build(limits={"min_interval": "2 minutes"}), "limits.min_interval: 不是时长 / not a duration")
    data = build()
    data["coupons"]["dwell10"]["valid_for"] = 0
    assert errors_of(data) == ["coupons.dwell10.valid_for: 必须大于 0 / must be > 0"]


def test_wrong_types_name_their_path() -> None:
    one_error(build(seed="forty-two"), "seed: ")
    one_error(build(triggers=[{"name": "n", "when": "sometimes", "coupon": "dwell10"}]), "triggers[0].when: ")
    one_error(with_coupon(title="X", kind="coupon", amount=1, valid_for="1m"), "coupons.x.kind: ")
    one_error(with_coupon(title="X", kind="no_threshold", amount=1, valid_for="1m", stock="many"), "coupons.x.stock: ")
    one_error(with_trigger(when="online_reached", count=5, source="guess"), "triggers[1].source: ")
    one_error(with_trigger(when="comment", keywords=["a", 5]), "triggers[1].keywords[1]: ")


def test_scope_is_all_or_a_mapping() -> None:
    data = build()
    data["coupons"]["dwell10"]["scope"] = "everything"
    assert all(e.startswith("coupons.dwell10.scope: ") for e in errors_of(data))
    data["coupons"]["dwell10"]["scope"] = {"products": "sku-1"}
    assert errors_of(data) == ["coupons.dwell10.scope.products: 必须是列表 / must be a list"]


def test_rooms_must_be_a_list_or_star() -> None:
    assert all(e.startswith("rooms: ") for e in errors_of(build(rooms="room-1")))
    assert errors_of(build(rooms=[])) == [
        'rooms: 至少列出一个直播间，或写 "*" 表示全部 / list at least one room, or "*" for every room']
    assert errors_of(build(rooms=["ok", ""])) == ["rooms[1]: 直播间 id 不能为空 / a room id must not be empty"]
    assert errors_of(build(rooms=["room-1", "*"])) == [
        'rooms[1]: "*" 表示全部直播间，应单独写 / "*" is every room: write it alone (rooms: "*")']


def test_rooms_star_in_a_list_is_every_room_as_the_bare_star_is() -> None:
    """SPEC §3's comment reads `"*" for all` beside a list: written ``["*"]``, it means what it says."""
    everywhere = load(build(rooms=["*"]))
    assert everywhere.rooms == load(build(rooms="*")).rooms
    assert everywhere.listens_to("any-room") and everywhere.listens_to("room-2")


def test_campaign_id_characters() -> None:
    assert errors_of(build(campaign="Double11_Live")) == [
        "campaign: 活动 id 只能包含 a-z、0-9 和 '-' / 'Double11_Live' must use only a-z, 0-9 and '-'"]


def test_not_a_mapping_or_not_yaml() -> None:
    assert errors_of("- a\n- b\n")[0].startswith("活动文件必须是键值映射（campaign、rooms、coupons、triggers 等） / "
                                                "the campaign file must be a mapping")
    assert errors_of("campaign: [unclosed\n")[0].startswith("YAML 格式有误 / not valid YAML")


def test_a_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("campaign: c\nrooms: [\n", encoding="utf-8")
    for load_it in (lambda: load_campaign(path), lambda: load_campaigns([path])):
        with pytest.raises(CampaignError) as info:
            load_it()
        assert f'in "{path}", line 3' in info.value.errors[0] and "<unicode string>" not in info.value.errors[0]


def test_a_file_with_a_wrong_shape_lists_its_unknown_coupons_in_the_same_pass() -> None:
    """`check` lists every problem: a misspelt coupon is named beside the unknown keys, not once they are fixed."""
    data = build(bogus=1, triggers=[{"name": "t", "when": "dwell", "after": "5m", "coupon": "dwel10", "typo": 3},
                                    {"name": "o", "when": "dwell", "after": "9m", "offer": {"arms": ["dwell10", "x"]}}],
                 experiments=[{"name": "e", "trigger": "o", "variants": [{"name": "a", "coupon": "nope"},
                                                                         {"name": "b", "coupon": "offer"}]}],
                 ledger={"url": "https://shop.example/coupons", "secret_env": "S", "activities": {"gone": "a1"}})
    errors = errors_of(data)
    assert "bogus: 未知的键 / unknown key" in errors and "triggers[0].typo: 未知的键 / unknown key" in errors
    assert "triggers[0].coupon: 未知的券 / unknown coupon 'dwel10'" in errors
    assert "triggers[1].offer.arms[1]: 未知的券 / unknown coupon 'x'" in errors
    assert "experiments[0].variants[0].coupon: 未知的券 / unknown coupon 'nope'" in errors
    assert "ledger.activities.gone: 未知的券 / unknown coupon 'gone'" in errors
    assert not [e for e in errors if "'offer'" in e]  # a variant's "offer" names no coupon
    assert len(errors) == len(set(errors))


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(CampaignError) as info:
        load_campaign(missing)
    assert info.value.errors[0].startswith(f"{missing}: 无法读取 / cannot read")


# --- per-kind coupon rules ---------------------------------------------------------------------------------------


def test_threshold_coupon_needs_threshold_and_amount() -> None:
    assert errors_of(with_coupon(title="X", kind="threshold", valid_for="1m")) == [
        "coupons.x.amount: kind 为 threshold 时必填 / required for kind threshold",
        "coupons.x.threshold: kind 为 threshold 时必填 / required for kind threshold"]


def test_no_threshold_coupon_takes_no_threshold() -> None:
    assert errors_of(with_coupon(title="X", kind="no_threshold", threshold=5, amount=1, valid_for="1m")) == [
        "coupons.x.threshold: kind 为 no_threshold 时不适用 / not used by kind no_threshold"]
    assert errors_of(with_coupon(title="X", kind="no_threshold", valid_for="1m")) == [
        "coupons.x.amount: kind 为 no_threshold 时必填 / required for kind no_threshold"]


def test_percent_coupon_needs_percent_and_takes_no_amount() -> None:
    assert errors_of(with_coupon(title="X", kind="percent", valid_for="1m")) == [
        "coupons.x.percent: kind 为 percent 时必填 / required for kind percent"]
    assert errors_of(with_coupon(title="X", kind="percent", percent=10, amount=5, valid_for="1m")) == [
        "coupons.x.amount: kind 为 percent 时不适用 / not used by kind percent"]


def test_percent_and_max_discount_only_on_percent_coupons() -> None:
    assert errors_of(with_coupon(title="X", kind="threshold", threshold=9, amount=1, percent=10, max_discount=5,
                                 valid_for="1m")) == [
        "coupons.x.max_discount: kind 为 threshold 时不适用 / not used by kind threshold",
        "coupons.x.percent: kind 为 threshold 时不适用 / not used by kind threshold"]


@pytest.mark.parametrize("percent", [12.55, 0, -5, 100.5, 150])
def test_percent_has_one_decimal_within_0_and_100(percent: float) -> None:
    one_error(with_coupon(title="X", kind="percent", percent=percent, valid_for="1m"), "coupons.x.percent: ")


@pytest.mark.parametrize(("percent", "tenths"), [(12.5, 125), (100, 1000), (0.1, 1), (33.3, 333)])
def test_percent_in_tenths(percent: float, tenths: int) -> None:
    c = load(with_coupon(title="X", kind="percent", percent=percent, valid_for="1m"))
    assert c.coupons["x"].terms.percent_tenths == tenths


def test_exactly_one_of_valid_for_and_valid_until() -> None:
    assert errors_of(with_coupon(title="X", kind="no_threshold", amount=1)) == [
        "coupons.x: valid_for 与 valid_until 二选一 / give exactly one of valid_for or valid_until"]
    text = yaml.safe_dump(with_coupon(title="X", kind="no_threshold", amount=1, valid_for="1m"), allow_unicode=True)
    text = text.replace("valid_for: 1m", "valid_for: 1m\n    valid_until: 2026-11-11T23:59:59+08:00")
    assert errors_of(text) == ["coupons.x: valid_for 与 valid_until 二选一 / "
                               "give exactly one of valid_for or valid_until"]


def test_percent_without_max_discount_needs_no_budget() -> None:
    data = with_coupon(title="X", kind="percent", percent=10, valid_for="1m")
    assert load(data).coupons["x"].terms.max_discount is None
    data["limits"] = {"budget": 1000}
    assert errors_of(data) == ["coupons.x.max_discount: 设了 limits.budget 时，折扣券必须设 max_discount / "
                               "a percent coupon needs max_discount when limits.budget is set"]


def test_non_positive_values_of_a_coupon() -> None:
    assert errors_of(with_coupon(title="X", kind="no_threshold", amount=0, valid_for="1m")) == [
        "coupons.x.amount: 必须大于 0 / must be > 0"]
    assert errors_of(with_coupon(title="X", kind="percent", percent=5, max_discount=0, valid_for="1m")) == [
        "coupons.x.max_discount: 必须大于 0 / must be > 0"]
    assert errors_of(with_coupon(title="X", kind="no_threshold", amount=1, valid_for="1m", stock=-1)) == [
        "coupons.x.stock: 不能小于 0 / must be ≥ 0"]
    assert errors_of(with_coupon(title=" ", kind="no_threshold", amount=1, valid_for="1m")) == [
        "coupons.x.title: 不能为空 / must not be empty"]


def test_at_least_one_coupon() -> None:
    errors = errors_of(build(coupons={}, triggers=[]))
    assert "coupons: 至少要有一个券模板 / at least one coupon template is required" in errors


# --- triggers ----------------------------------------------------------------------------------------------------


def test_unknown_coupon_reference() -> None:
    data = build()
    data["triggers"] += [{"name": "a", "when": "first_visit", "coupon": "dwell10"},
                         {"name": "b", "when": "first_visit", "coupon": "dwel10"}]
    assert errors_of(data) == ["triggers[2].coupon: 未知的券 / unknown coupon 'dwel10'"]


def test_duplicate_trigger_names() -> None:
    assert errors_of(with_trigger(name="newcomer", when="first_visit")) == [
        "triggers[1].name: 触发器名称重复 / duplicate trigger name 'newcomer'"]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"when": "dwell"}, "triggers[1].after: when 为 dwell 时必填 / required for when: dwell"),
        ({"when": "online_reached"},
         "triggers[1].count: when 为 online_reached 时必填 / required for when: online_reached"),
        ({"when": "online_reached", "count": 5, "audience": "lottery"},
         "triggers[1].winners: audience 为 lottery 时必填 / required with audience: lottery"),
        ({"when": "host_says"},
         "triggers[1].phrases: when 为 host_says 时必填（非空列表） / required for when: host_says (a non-empty list)"),
        ({"when": "host_says", "phrases": []},
         "triggers[1].phrases: when 为 host_says 时必填（非空列表） / required for when: host_says (a non-empty list)"),
        ({"when": "comment"},
         "triggers[1].keywords: when 为 comment 时必填（非空列表） / required for when: comment (a non-empty list)"),
    ],
)
def test_kind_specific_required_keys(trigger: dict[str, Any], expected: str) -> None:
    assert errors_of(with_trigger(**trigger)) == [expected]


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"when": "first_visit", "after": "5m"},
         "triggers[1].after: when 为 first_visit 时不适用 / not used by when: first_visit"),
        ({"when": "flash_sale", "audience": "present"},
         "triggers[1].audience: when 为 flash_sale 时不适用 / not used by when: flash_sale"),
        ({"when": "dwell", "after": 5, "count": 3},
         "triggers[1].count: when 为 dwell 时不适用 / not used by when: dwell"),
        ({"when": "comment", "keywords": ["a"], "phrases": ["a"]},
         "triggers[1].phrases: when 为 comment 时不适用 / not used by when: comment"),
        ({"when": "host_says", "phrases": ["a"], "keywords": ["a"]},
         "triggers[1].keywords: when 为 host_says 时不适用 / not used by when: host_says"),
        ({"when": "online_reached", "count": 3, "within": 5},
         "triggers[1].within: when 为 online_reached 时不适用 / not used by when: online_reached"),
        ({"when": "online_reached", "count": 3, "cooldown": 5},
         "triggers[1].cooldown: when 为 online_reached 时不适用 / not used by when: online_reached"),
        ({"when": "host_says", "phrases": ["a"], "source": "present"},
         "triggers[1].source: when 为 host_says 时不适用 / not used by when: host_says"),
        ({"when": "host_says", "phrases": ["a"], "winners": 3},
         "triggers[1].winners: when 为 host_says 时不适用 / not used by when: host_says"),
        ({"when": "online_reached", "count": 3, "top": 2},
         "triggers[1].top: when 为 online_reached 时不适用 / not used by when: online_reached"),
        ({"when": "online_reached", "count": 3, "winners": 2},
         "triggers[1].winners: 仅在 audience 为 lottery 时使用 / only used with audience: lottery"),
        ({"when": "host_says", "phrases": ["a"], "within": 5},
         "triggers[1].within: 仅在 audience 为 commenters 时使用 / only used with audience: commenters"),
        ({"when": "host_says", "phrases": ["a"], "top": 2},
         "triggers[1].top: 仅在 audience 为 top_gifters 时使用 / only used with audience: top_gifters"),
        ({"when": "host_says", "phrases": ["a"], "audience": "lottery"},
         "triggers[1].audience: when 为 host_says 时没有这种发放对象 / "
         "'lottery' is not an audience of when: host_says"),
        ({"when": "online_reached", "count": 3, "audience": "commenters"},
         "triggers[1].audience: when 为 online_reached 时没有这种发放对象 / "
         "'commenters' is not an audience of when: online_reached"),
    ],
)
def test_kind_specific_forbidden_keys(trigger: dict[str, Any], expected: str) -> None:
    one_error(with_trigger(**trigger), expected)


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        ({"when": "online_reached", "count": 0}, "triggers[1].count: 至少为 1 / must be ≥ 1"),
        ({"when": "online_reached", "count": 3, "audience": "lottery", "winners": 0},
         "triggers[1].winners: 至少为 1 / must be ≥ 1"),
        ({"when": "host_says", "phrases": ["a"], "audience": "top_gifters", "top": 0},
         "triggers[1].top: 至少为 1 / must be ≥ 1"),
        ({"when": "host_says", "phrases": ["a"], "audience": "commenters", "within": 0},
         "triggers[1].within: 必须大于 0 / must be > 0"),
        ({"when": "host_says", "phrases": ["!!", "ok"]},
         "triggers[1].phrases[0]: 去掉标点和空格后什么也不剩，无法匹配 / "
         "has nothing left to match after removing punctuation and spaces"),
        ({"when": "comment", "keywords": ["ok", " 。"]},
         "triggers[1].keywords[1]: 去掉标点和空格后什么也不剩，无法匹配 / "
         "has nothing left to match after removing punctuation and spaces"),
    ],
)
def test_bad_trigger_values(trigger: dict[str, Any], expected: str) -> None:
    assert errors_of(with_trigger(**trigger)) == [expected]


def test_every_error_is_reported_at_once() -> None:
    data = build()
    data["triggers"] = [{"name": "a", "when": "dwell", "coupon": "nope"},
                        {"name": "a", "when": "comment", "keywords": ["k"], "coupon": "dwell10"}]
    assert errors_of(data) == ["triggers[0].coupon: 未知的券 / unknown coupon 'nope'",
                               "triggers[0].after: when 为 dwell 时必填 / required for when: dwell",
                               "triggers[1].name: 触发器名称重复 / duplicate trigger name 'a'"]


# --- limits and experiments --------------------------------------------------------------------------------------


def test_limits_values() -> None:
    assert errors_of(build(limits={"per_user": -1})) == ["limits.per_user: 不能小于 0 / must be ≥ 0"]
    c = load(build(limits={"per_user": 0, "min_interval": 0, "budget": 0}))
    assert (c.limits.per_user, c.limits.min_interval_ms, c.limits.budget) == (0, 0, 0)


def experiment(**fields: Any) -> dict[str, Any]:
    data = build()
    data["coupons"]["dwell20"] = {"title": "20", "kind": "no_threshold", "amount": 20, "valid_for": "15m"}
    data["triggers"] += [{"name": "dwell", "when": "dwell", "after": "5m", "coupon": "dwell10"},
                         {"name": "lucky", "when": "online_reached", "count": 5, "audience": "lottery", "winners": 1,
                          "coupon": "dwell10"}]
    exp = {"name": "dv", "trigger": "dwell",
           "variants": [{"name": "control", "coupon": None}, {"name": "twenty", "weight": 2, "coupon": "dwell20"}]}
    exp.update(fields)
    data["experiments"] = [exp]
    return data


def test_experiment_defaults() -> None:
    (ex,) = load(experiment()).experiments
    assert ex.salt == "dv"  # the experiment's name
    assert [(v.name, v.weight, v.coupon) for v in ex.variants] == [("control", 1, None), ("twenty", 2, "dwell20")]


def test_experiment_on_a_lottery_trigger_is_rejected() -> None:
    assert errors_of(experiment(trigger="lucky")) == [
        "experiments[0].trigger: 抽奖触发器不能做实验 / "
        "trigger 'lucky' draws a lottery; an experiment may not cover it"]


def test_at_most_one_experiment_per_trigger() -> None:
    data = experiment()
    data["experiments"].append({"name": "other", "trigger": "dwell", "variants": [{"name": "a", "coupon": None}]})
    assert errors_of(data) == ["experiments[1].trigger: 该触发器已有实验 / trigger 'dwell' already has an experiment"]


def test_experiment_references() -> None:
    assert errors_of(experiment(trigger="dwel")) == ["experiments[0].trigger: 未知的触发器 / unknown trigger 'dwel'"]
    data = experiment()
    data["experiments"][0]["variants"][1]["coupon"] = "dwell30"
    assert errors_of(data) == ["experiments[0].variants[1].coupon: 未知的券 / unknown coupon 'dwell30'"]


def test_variant_needs_a_name_and_a_coupon_key() -> None:
    data = experiment()
    del data["experiments"][0]["variants"][0]["coupon"]
    assert errors_of(data) == ["experiments[0].variants[0].coupon: 必填 / required"]
    data = experiment()
    del data["experiments"][0]["variants"][1]["name"]
    assert errors_of(data) == ["experiments[0].variants[1].name: 必填 / required"]


def test_variant_weights_non_negative_with_positive_sum() -> None:
    data = experiment()
    data["experiments"][0]["variants"][0]["weight"] = -1
    assert errors_of(data) == ["experiments[0].variants[0].weight: 必须是有限的非负数 / must be a finite number ≥ 0"]
    data = experiment()
    data["experiments"][0]["variants"][0]["weight"] = 0
    assert load(data).experiments[0].variants[0].weight == 0
    data["experiments"][0]["variants"][1]["weight"] = 0
    assert errors_of(data) == ["experiments[0].variants: 权重之和必须大于 0 / the weights must add up to more than 0"]
    data = experiment()
    data["experiments"][0]["variants"][1]["weight"] = float("inf")
    assert errors_of(data) == ["experiments[0].variants[1].weight: 必须是有限的非负数 / must be a finite number ≥ 0"]
    data = experiment()
    for variant in data["experiments"][0]["variants"]:  # each finite, their sum not: all users in one variant
        variant["weight"] = 1e308
    assert errors_of(data) == [
        "experiments[0].variants: 权重之和超出数值范围 / the weights must add up to a finite number"]


def test_experiment_names_and_variants() -> None:
    data = experiment(variants=[])
    assert errors_of(data) == ["experiments[0].variants: 至少列出一个分组 / list at least one variant"]
    data = experiment(variants=[{"name": "a", "coupon": None}, {"name": "a", "coupon": "dwell20"}])
    assert errors_of(data) == ["experiments[0].variants[1].name: 分组名称重复 / duplicate variant name 'a'"]
    data = experiment(salt="v2")
    assert load(data).experiments[0].salt == "v2"


@pytest.mark.parametrize(("old", "new", "error"), [
    ("seed: 42", "seed: true", "seed: 必须是整数 / Input should be a valid integer"),
    ("per_user: 3", "per_user: 2.5", "limits.per_user: 必须是整数 / Input should be a valid integer"),
    ("{name: ten, weight: 1,", "{name: ten, weight: true,",
     "experiments[0].variants[1].weight: 必须是数字，不能是 true/false / must be a number"),
    ("percent: 15", "percent: false", "coupons.pct15.percent: 必须是数字，不能是 true/false / must be a number"),
])
def test_true_and_false_are_not_numbers(old: str, new: str, error: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(CampaignError) as exc:
        parse_campaign(text.replace(old, new))
    assert exc.value.errors[0].startswith(error)


# --- schedule (an extension: docs/campaign.md) ------------------------------------------------------------------


def test_a_schedule_is_read_as_ms_either_end_optional() -> None:
    text = yaml.safe_dump(MINIMAL, allow_unicode=True)
    both = parse_campaign(text + "schedule: {start: 2026-11-11T20:00:00+08:00, end: '2026-11-11T22:00:00+08:00'}\n")
    assert (both.starts_at, both.ends_at) == (1_794_398_400_000, 1_794_405_600_000)
    assert both.scheduled(1_794_398_400_000) and not both.scheduled(1_794_405_600_000)
    assert not both.scheduled(1_794_398_399_999)
    open_ended = parse_campaign(text + "schedule: {start: 2026-11-11T12:00:00Z}\n")
    assert (open_ended.starts_at, open_ended.ends_at, open_ended.scheduled(2**53)) == (1_794_398_400_000, None, True)
    assert (load(MINIMAL).starts_at, load(MINIMAL).ends_at) == (None, None)


@pytest.mark.parametrize(("schedule", "error"), [
    ("{start: 2026-11-11 20:00:00}", "schedule.start: 必须带时区（如 +08:00） / must carry its UTC offset"),
    ("{end: '2026-11-11T20:00:00'}", "schedule.end: 必须带时区（如 +08:00） / must carry its UTC offset"),
    ("{start: 2026-11-11T22:00:00+08:00, end: 2026-11-11T20:00:00+08:00}",
     "schedule.end: 必须晚于 schedule.start / must be after"),
    ("{begin: 2026-11-11T22:00:00+08:00}", "schedule.begin: 未知的键 / unknown key"),
])
def test_schedule_errors_name_their_path(schedule: str, error: str) -> None:
    one_error(yaml.safe_dump(MINIMAL, allow_unicode=True) + f"schedule: {schedule}\n", error)


# -- what the file's YAML means (an audit's findings) --------------------------------------------------------------
def test_a_key_given_twice_is_an_error_naming_both_lines() -> None:
    """yaml.safe_load keeps the last: a second ``triggers:`` left from a paste dropped every trigger of the first."""
    again = "triggers:\n  - {name: k, when: comment, keywords: [扣1], coupon: dwell10}\n"
    text = yaml.safe_dump(MINIMAL, allow_unicode=True) + again
    [error] = errors_of(text)
    assert "duplicate key 'triggers' on line" in error and "(first on line" in error
    flow = ("campaign: c1\nrooms: [r1]\ncoupons:\n  c: {title: t, kind: no_threshold, amount: 10, amount: 500, "
            "valid_for: 15m}\ntriggers: [{name: n, when: first_visit, coupon: c}]\n")
    [error] = errors_of(flow)
    assert "duplicate key 'amount' on line 4 (first on line 4)" in error
    merged = yaml.safe_dump(MINIMAL, allow_unicode=True).replace("coupons:\n", "base: &b {title: x}\ncoupons:\n")
    assert "base" in errors_of(merged)[0]  # anchors and merges are still read (an unknown key here, no duplicate)


def test_a_whole_number_may_be_written_with_an_exponent() -> None:
    """``count: 1e4`` (满万) is a number in YAML 1.2: a whole one is taken where a count is, a fraction is not."""
    text = yaml.safe_dump(with_trigger(when="online_reached", count=5), allow_unicode=True)
    assert parse_campaign(text.replace("count: 5", "count: 1e4")).triggers[1].count == 10_000
    assert one_error(text.replace("count: 5", "count: 2.5e0"),
                     "triggers[1].count: 必须是整数 / Input should be a valid integer")


@pytest.mark.parametrize(("written", "read"), [("017", 17), ("0o17", 15), ("0x10", 16), ("1e3", 1000),
                                               ("1_000", 1000)])
def test_numbers_are_read_as_yaml_1_2_reads_them(written: str, read: int) -> None:
    """YAML 1.1 (PyYAML's) read 017 as octal 15 yuan; 1e3 as text."""
    text = yaml.safe_dump(MINIMAL, allow_unicode=True).replace("amount: 10", f"amount: {written}")
    assert parse_campaign(text).coupons["dwell10"].terms.amount == read * 100


def test_yes_no_on_off_are_words_and_a_sexagesimal_is_no_duration() -> None:
    text = yaml.safe_dump(build(triggers=[{"name": "k", "when": "comment", "keywords": ["x"], "coupon": "dwell10"}]),
                          allow_unicode=True).replace("- x", "- on")
    assert parse_campaign(text).triggers[0].keywords == ("on",)
    dwell = yaml.safe_dump(with_trigger(when="dwell", after="5m"), allow_unicode=True)
    dwell = dwell.replace("after: 5m", "after: 1:30")
    assert one_error(dwell, "triggers[1].after: 不是时长 / not a duration")


@pytest.mark.parametrize("number", [20261111, 2026, 1794412799.5])
def test_a_time_given_as_a_number_is_refused_not_read_as_unix_seconds(number: float) -> None:
    """valid_until: 20261111 was a day of 1970: every decision of its coupon said template_expired."""
    assert one_error(with_coupon(title="x", kind="no_threshold", amount=5, valid_until=number),
                     "coupons.x.valid_until: 必须是带时区的 ISO 8601 时间，不能是数字 / "
                     "must be an ISO 8601 time with its UTC offset")
    assert one_error(build(schedule={"end": number}),
                     "schedule.end: 必须是带时区的 ISO 8601 时间，不能是数字 / must be an ISO 8601 time")


@pytest.mark.parametrize(("written", "ms"), [("2026-11-11T23:59:59+08", 1_794_412_799_000),
                                             ("20261111T235959+0800", 1_794_412_799_000),
                                             ("2026-11-11 23:59:59Z", 1_794_441_599_000)])
def test_iso_8601_times_in_the_forms_python_reads(written: str, ms: int) -> None:
    campaign = load(with_coupon(title="x", kind="no_threshold", amount=5, valid_until=written))
    assert campaign.coupons["x"].valid_until_ms == ms


def test_times_and_durations_stay_within_what_a_date_can_name() -> None:
    """Past them, the service answered a user's coupons with a 500 (year 33714) or lost a batch (an integer SQLite
    cannot hold); a "never expires" 9999-12-31T23:59:59-08:00 is the year 10000 in UTC."""
    assert one_error(with_coupon(title="x", kind="no_threshold", amount=5, valid_until="9999-12-31T23:59:59-08:00"),
                     "coupons.x.valid_until: 必须早于公元 10000 年（UTC） / must be before the year 10000 in UTC")
    assert load(with_coupon(title="x", kind="no_threshold", amount=5, valid_until="9999-12-31T23:59:59+08:00"))
    assert one_error(with_coupon(title="x", kind="no_threshold", amount=5, valid_for=10**12),
                     "coupons.x.valid_for: 最长 100 年 / at most 100 years")
    assert one_error(with_trigger(when="dwell", after="1000000h"), "triggers[1].after: 最长 100 年 / at most 100 years")
    assert load(with_coupon(title="x", kind="no_threshold", amount=5, valid_for="876000h"))


def test_an_optional_section_left_empty_is_not_set() -> None:
    text = yaml.safe_dump(MINIMAL, allow_unicode=True) + "limits:\nexperiments:\nschedule:\ndelivery:\nledger:\n"
    campaign = parse_campaign(text)
    assert campaign.limits == load(MINIMAL).limits and campaign.experiments == () and campaign.ledger is None


def test_empty_experiment_and_variant_names_and_overlong_rooms_are_refused() -> None:
    variants = [{"name": "", "coupon": None}, {"name": "a", "coupon": "dwell10"}]
    experiment = {"name": "", "trigger": "newcomer", "variants": variants}
    empty = "不能为空 / must not be empty"
    assert errors_of(build(experiments=[experiment])) == [f"experiments[0].name: {empty}",
                                                          f"experiments[0].variants[0].name: {empty}"]
    assert one_error(build(rooms=["r" * 129]),
                     "rooms[0]: 超过 128 个字符，事件里不会有这样的直播间 / longer than 128 characters")


def test_a_folder_of_campaigns_reads_upper_case_suffixes(tmp_path: Path) -> None:
    from livecoupon.campaign_file import campaign_files

    (tmp_path / "A.YAML").write_text("x", encoding="utf-8")
    (tmp_path / "b.Yml").write_text("x", encoding="utf-8")
    assert [p.name for p in campaign_files([tmp_path])] == ["A.YAML", "b.Yml"]


def test_thousands_of_triggers_and_experiments_are_read() -> None:
    """(Each name was compared with every one before it: 8,000 triggers took 3.8 s; now each is looked up once.)"""
    many = [{"name": f"t{i}", "when": "comment", "keywords": [f"k{i}"], "coupon": "dwell10"} for i in range(8_000)]
    data = build(triggers=many, experiments=[{"name": f"e{i}", "trigger": f"t{i}", "variants": [
        {"name": "a", "coupon": None}, {"name": "b", "coupon": "dwell10"}]} for i in range(4_000)])
    assert len(parse_campaign(yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True)).triggers) == 8_000


# --- in Chinese first, then in English (an operator's words, then the words the docs and tests quote) ------------

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("data", "path", "english"), [
    (build(colour="red"), "colour", "unknown key"),
    ({k: v for k, v in MINIMAL.items() if k != "rooms"}, "rooms", "required"),
    (build(presence_timeout="5x"), "presence_timeout", "not a duration: '5x' (use 300, 30s, 5m, 2h or 1h30m)"),
    (build(limits={"per_user": -1}), "limits.per_user", "must be ≥ 0"),
    (with_coupon(title="N", kind="no_threshold", amount=-5, valid_for="1m"), "coupons.x.amount",
     "must not be negative"),
    (experiment(trigger="dwel"), "experiments[0].trigger", "unknown trigger 'dwel'"),
    (with_trigger(when="dwell", after="5m", count="many"), "triggers[1].count", "Input should be a valid integer"),
], ids=["unknown key", "missing key", "bad duration", "negative number", "negative money", "unknown trigger",
        "pydantic's words"])
def test_a_problem_is_said_in_chinese_then_in_english(data: dict[str, Any], path: str, english: str) -> None:
    [error] = errors_of(data)
    chinese, slash, rest = error.removeprefix(f"{path}: ").partition(" / ")
    assert error.startswith(f"{path}: ") and CJK.match(chinese) and slash and rest == english, error


def test_a_literal_names_its_values_in_both_languages() -> None:
    assert errors_of(with_coupon(title="X", kind="coupon", amount=1, valid_for="1m")) == [
        "coupons.x.kind: 只能是 'threshold'、'percent' 或 'no_threshold' / "
        "Input should be 'threshold', 'percent' or 'no_threshold'"]


def test_a_key_given_twice_is_said_in_chinese_then_in_english() -> None:
    [error] = errors_of("campaign: c1\nrooms: [r1]\ncampaign: c2\n")
    assert error.startswith("键 'campaign' 重复（第 3 行，首次在第 1 行），每个键只写一次 / "
                            "not valid YAML: duplicate key 'campaign' on line 3 (first on line 1): each key once")


SHAPE_MISTAKES: dict[str, Any] = {
    "campaign": 5, "rooms": "room-1", "colour": "red", "seed": 2.5, "presence_timeout": "soon",
    "attribution_window": -1,
    "coupons": {
        "a": {"kind": "coupon", "amount": -5, "threshold": "x", "percent": True, "valid_for": True,
              "valid_until": 20261111, "stock": "many", "scope": "everything"},
        "b": {"title": 5, "kind": "percent", "percent": "x", "valid_until": "someday", "max_discount": 10**10,
              "scope": {"products": "p"}},
    },
    "triggers": [{"when": "sometimes", "coupon": ["a"], "offer": "x", "keywords": "k"},
                 {"name": "n", "when": "comment", "offer": {"arms": "a", "explore": "x", "plan": "1:30"}}],
    "limits": {"max_risk": "x", "per_user": True, "budget": 1.001},
    "experiments": [{"name": "e", "variants": [{"name": "v", "weight": True}]}],
    "delivery": [1],
    "ledger": {"platform": "tiktok", "activities": {"a": 5}},
    "schedule": {"start": [1], "end": "later"},
}
RULE_MISTAKES: dict[str, Any] = {
    "campaign": "Bad_Id", "rooms": ["", "*", "r" * 129], "presence_timeout": 0,
    "coupons": {
        "p": {"title": " ", "kind": "percent", "percent": 12.55, "amount": 5, "valid_for": 0,
              "valid_until": "2026-11-11T23:59:59", "stock": -1},
        "q": {"title": "q", "kind": "threshold", "valid_until": "9999-12-31T23:59:59-08:00"},
        "r": {"title": "r", "kind": "no_threshold", "amount": 0, "max_discount": 0, "percent": 150, "valid_for": "1m"},
        "v": {"title": "v", "kind": "percent", "percent": 10, "valid_for": "1m"},
    },
    "triggers": [
        {"name": "", "when": "dwell", "coupon": "nope", "count": 3},
        {"name": "lucky", "when": "online_reached", "coupon": "v", "audience": "lottery", "count": 0, "winners": 0},
        {"name": "kw", "when": "online_reached", "coupon": "v", "audience": "commenters", "count": 1},
        {"name": "says", "when": "host_says", "phrases": ["!!"], "audience": "commenters", "within": 0, "top": 2},
        {"name": "top", "when": "host_says", "audience": "top_gifters", "top": 0, "per_device": 0, "budget": 0,
         "coupon": "v"},
        {"name": "kw", "when": "comment", "coupon": "v", "offer": {"arms": []}},
        {"name": "pick", "when": "comment", "keywords": ["k"],
         "offer": {"arms": ["nope", "v", "v", None, None], "explore": 0, "plan": 0}},
        {"name": "plain", "when": "first_visit", "coupon": "v"},
    ],
    "limits": {"per_user": -1, "max_risk": 2, "room_budget": 0, "budget": 10},
    "experiments": [
        {"name": "", "trigger": "nope", "variants": []},
        {"name": "x", "trigger": "lucky", "variants": [{"name": "a", "coupon": None}]},
        {"name": "x", "trigger": "plain", "variants": [{"name": "", "coupon": "offer", "weight": -1},
                                                      {"name": "b", "coupon": "nope", "weight": 0},
                                                      {"name": "b", "coupon": None, "weight": 0}]},
        {"name": "y", "trigger": "plain", "variants": [{"name": "a", "coupon": None, "weight": 0}]},
    ],
    "delivery": {"room_rate": 0, "max_mute": 0},
    "ledger": {"platform": "douyin", "secret_env": "1bad", "timeout": 0, "rate": 0, "activities": {"nope": "x"},
               "url": "ftp://x"},
    "schedule": {"start": "2026-11-11T22:00:00+08:00", "end": "2026-11-11T20:00:00+08:00"},
}
MORE_RULE_MISTAKES = build(
    rooms=[], coupons={"v": {"title": "v", "kind": "percent", "percent": 10, "valid_for": "1m"}},
    triggers=[{"name": "l", "when": "online_reached", "count": 5, "audience": "lottery", "coupon": "v"},
              {"name": "p", "when": "online_reached", "count": 5, "within": 5, "coupon": "v"}],
    limits={"room_budget": 5}, ledger={"secret_env": "S", "activities": {"v": "x"}})


def raised(call: Callable[[], object]) -> list[str]:
    with pytest.raises(CampaignError) as info:
        call()
    return info.value.errors


def test_every_problem_is_said_in_chinese_first(tmp_path: Path) -> None:
    """Files with many mistakes at once: every error has Chinese before its " / " (so one in English alone fails)."""
    errors = [e for data in (SHAPE_MISTAKES, RULE_MISTAKES, MORE_RULE_MISTAKES, build(coupons={}, triggers=[]))
              for e in errors_of(data)]
    errors += errors_of("- a\n") + errors_of("campaign: [unclosed\n") + errors_of("seed: 1\nseed: 2\n")
    errors += raised(lambda: load_campaign(tmp_path / "nope.yaml")) + raised(lambda: campaign_files([tmp_path]))
    # a folder: a with a ledger, b with a's id, c with a typo, d not UTF-8, e pacing popups unlike a
    text = yaml.safe_dump(MINIMAL, allow_unicode=True)
    (tmp_path / "a.yaml").write_text(text + "ledger: {url: 'https://shop.example', secret_env: S}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(text + "delivery: {quiet_period: 5}\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(text.replace("campaign: c1", "campaign: c3") + "colour: red\n", encoding="utf-8")
    (tmp_path / "d.yml").write_bytes(b"\xff")
    (tmp_path / "e.yaml").write_text(text.replace("campaign: c1", "campaign: c5") + "delivery: {quiet_period: 5}\n",
                                     encoding="utf-8")
    errors += raised(lambda: load_campaigns([tmp_path]))
    assert len(errors) > 130
    for error in errors:
        chinese, slash, _ = error.partition(" / ")
        assert slash and CJK.search(chinese), error
