"""The report's advice: each line grounded in a figure, and never more sure than its figures."""

from __future__ import annotations

from typing import Any

from livecoupon.analytics.insights import recommendations, trigger_ranking


def trigger(issued: int, redeemed: int) -> dict[str, Any]:
    return {"decisions": issued, "issued": issued, "suppressed": {}, "redeemed": redeemed,
            "redemption_rate": round(redeemed / issued, 6), "gmv": redeemed * 50.0, "discount_cost": redeemed * 5.0}


def lift(diff: float, p: float) -> dict[str, Any]:
    return {"lift": {"conversion": {"diff": diff, "ci95": [diff - 0.01, diff + 0.01], "p_value": p,
                                    "p_value_holm": p}}}


def advice(triggers: dict[str, Any], experiments: dict[str, Any] | None = None) -> str:
    metrics = {"triggers": triggers, "experiments": experiments or {}}
    return "\n".join(recommendations(metrics, trigger_ranking(triggers)))


def test_a_trigger_redeems_best_only_beyond_chance() -> None:
    assert "redeems best" not in advice({"a": trigger(1_000, 306), "b": trigger(1_000, 304)})  # 30.6 % vs 30.4 %
    said = advice({"a": trigger(1_000, 400), "b": trigger(1_000, 300)})
    assert "'a' redeems best" in said and "「a」" in said
    assert "'a' redeems best" in advice({"a": trigger(10, 4)})  # alone, it is the best there is


def test_one_variant_is_rolled_out_and_several_are_compared_first() -> None:
    triggers = {"a": trigger(1_000, 300)}
    one = {"x": {"srm_flag": False, "variants": {"control": {}, "ten": lift(0.05, 0.001)}}}
    assert "'ten' beats control in 'x': roll it out." in advice(triggers, one)
    two = {"x": {"srm_flag": False, "variants": {"control": {}, "ten": lift(0.03, 0.01), "twenty": lift(0.05, 0.001),
                                                  "fifty": lift(0.08, 0.2)}}}
    said = advice(triggers, two)
    assert "roll it out." not in said
    assert "'twenty', 'ten' each beat control in 'x', but not each other yet" in said and "「twenty」、「ten」" in said
