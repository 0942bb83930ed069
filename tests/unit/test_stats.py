"""Experiment statistics against references: scipy, textbook formulas, hand-worked
examples, GrowthBook's engine where installed, and coverage over simulated experiments."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from livecoupon.analytics.stats import Lift, holm, ratio_lift, srm_p_value, welch_lift

Z_975 = 1.959963984540054  # standard normal 97.5 % quantile


def _scipy_welch(a: np.ndarray, b: np.ndarray) -> tuple[float, tuple[float, float]]:
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(0.95)
    return float(result.pvalue), (float(ci.low), float(ci.high))


@pytest.mark.parametrize(("seed", "n_a", "n_b", "sd_a", "sd_b", "shift"), [
    (1, 50, 80, 3.0, 5.0, 1.0),
    (2, 12, 400, 1.0, 10.0, -2.5),
    (3, 3, 3, 0.5, 0.5, 0.0),
    (4, 1000, 900, 40.0, 55.0, 5.0),
    (5, 2, 7, 2.0, 0.1, 30.0),
])
def test_welch_lift_matches_scipy_ttest_ind_unequal_variance(seed: int, n_a: int, n_b: int, sd_a: float,
                                                             sd_b: float, shift: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(100 + shift, sd_a, n_a)
    b = rng.normal(100, sd_b, n_b)
    lift = welch_lift(list(a), list(b))
    assert lift is not None
    p, (lo, hi) = _scipy_welch(a, b)
    assert lift.diff == pytest.approx(a.mean() - b.mean(), rel=1e-12, abs=1e-12)
    assert lift.p_value == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert lift.ci95 == pytest.approx((lo, hi), rel=1e-9)


def test_welch_lift_on_conversion_data_matches_scipy() -> None:
    rng = np.random.default_rng(7)
    a = (rng.random(700) < 0.14).astype(float)
    b = (rng.random(650) < 0.10).astype(float)
    lift = welch_lift(a, b)
    assert lift is not None
    p, ci = _scipy_welch(a, b)
    assert lift.p_value == pytest.approx(p, rel=1e-9)
    assert lift.ci95 == pytest.approx(ci, rel=1e-9)


def test_welch_lift_hand_worked_example() -> None:
    # variant 3/4 converted, control 1/4: each side has sample variance 0.25, so
    # se² = 0.25/4 + 0.25/4 = 0.125 and Welch's df = 0.125² / (2 · 0.0625² / 3) = 6;
    # t(0.975, 6) = 2.446912 (tables), t = 0.5 / √0.125 = 1.414214, two-sided p = 0.20703.
    lift = welch_lift([1, 0, 1, 1], [0, 0, 1, 0])
    assert lift is not None
    half = 2.446912 * math.sqrt(0.125)
    assert lift.diff == pytest.approx(0.5)
    assert lift.ci95 == pytest.approx((0.5 - half, 0.5 + half), abs=1e-5)
    assert lift.p_value == pytest.approx(0.20703, abs=1e-4)


def test_welch_lift_agrees_with_the_unpooled_z_interval_for_large_samples() -> None:
    rng = np.random.default_rng(11)
    n_a, n_b = 6000, 5000
    a = (rng.random(n_a) < 0.12).astype(float)
    b = (rng.random(n_b) < 0.10).astype(float)
    p_a, p_b = a.sum() / n_a, b.sum() / n_b
    diff = p_a - p_b
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    z_p = math.erfc(abs(diff) / se / math.sqrt(2))
    lift = welch_lift(a, b)
    assert lift is not None
    assert lift.diff == pytest.approx(diff, rel=1e-12)
    half = (lift.ci95[1] - lift.ci95[0]) / 2
    assert half == pytest.approx(Z_975 * se, rel=1e-3)
    assert (lift.ci95[0] + lift.ci95[1]) / 2 == pytest.approx(diff, rel=1e-9)
    assert lift.p_value == pytest.approx(z_p, abs=1e-3)


@pytest.mark.parametrize(("variant", "control"), [
    ([1.0], [0.0, 1.0, 1.0]),  # one observation
    ([], [1.0, 2.0]),
    ([0.0, 0.0, 0.0], [0.0, 0.0]),  # no spread on either side
])
def test_welch_lift_is_none_without_enough_data(variant: list[float], control: list[float]) -> None:
    assert welch_lift(variant, control) is None


def test_welch_lift_handles_one_side_without_spread() -> None:
    # variant has no spread, control has variance 1: se² = 1/3, df = (1/3)² / ((1/3)² / 2) = 2,
    # t(0.975, 2) = 4.302653; with 2 df the t tail is closed-form: sf(t) = (1 − t/√(t² + 2)) / 2.
    lift = welch_lift([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    assert lift is not None
    se = math.sqrt(1 / 3)
    t = 3.0 / se
    assert lift.diff == pytest.approx(3.0)
    assert lift.ci95 == pytest.approx((3.0 - 4.302653 * se, 3.0 + 4.302653 * se), abs=1e-5)
    assert lift.p_value == pytest.approx(1 - t / math.sqrt(t * t + 2), rel=1e-9)


def test_lift_json_shape() -> None:
    assert Lift(0.02, (-0.01, 0.05), 0.2).to_json() == {"diff": 0.02, "ci95": [-0.01, 0.05], "p_value": 0.2}


# --- GrowthBook's frequentist engine, on the same summary statistics -------------------------------------------

def _gbstats() -> tuple[Any, Any]:
    # gbstats 0.8.0 pins numpy<2 and pandas<2 in its metadata; its frequentist module
    # itself imports neither pandas nor anything numpy-2-incompatible, so it is used
    # when present and the comparison is skipped (with this reason) when it is not.
    tests = pytest.importorskip("gbstats.frequentist.tests",
                                reason="gbstats (GrowthBook stats engine) is not installed in this environment")
    statistics = pytest.importorskip("gbstats.models.statistics")
    return tests, statistics


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_welch_lift_matches_gbstats_absolute_ttest_on_sample_means(seed: int) -> None:
    tests, statistics = _gbstats()
    rng = np.random.default_rng(seed)
    variant = rng.lognormal(math.log(120), 0.6, 300)
    control = rng.lognormal(math.log(110), 0.5, 260)

    def summary(x: np.ndarray) -> Any:
        return statistics.SampleMeanStatistic(n=len(x), sum=float(x.sum()), sum_squares=float((x * x).sum()))

    gb = tests.TwoSidedTTest(summary(control), summary(variant),
                             tests.FrequentistConfig(difference_type="absolute")).compute_result()
    lift = welch_lift(variant, control)
    assert lift is not None
    assert lift.diff == pytest.approx(gb.expected, rel=1e-9)
    assert list(lift.ci95) == pytest.approx(gb.ci, rel=1e-7)
    assert lift.p_value == pytest.approx(gb.p_value, rel=1e-6, abs=1e-12)


def test_welch_lift_close_to_gbstats_proportion_test_for_large_samples() -> None:
    tests, statistics = _gbstats()
    rng = np.random.default_rng(31)
    variant = (rng.random(5000) < 0.12).astype(float)
    control = (rng.random(5200) < 0.10).astype(float)
    gb = tests.TwoSidedTTest(statistics.ProportionStatistic(n=len(control), sum=float(control.sum())),
                             statistics.ProportionStatistic(n=len(variant), sum=float(variant.sum())),
                             tests.FrequentistConfig(difference_type="absolute")).compute_result()
    lift = welch_lift(variant, control)
    assert lift is not None
    # gbstats uses p(1-p) (ddof 0) for a proportion; Welch uses the sample variance (ddof 1).
    assert lift.diff == pytest.approx(gb.expected, rel=1e-12)
    assert list(lift.ci95) == pytest.approx(gb.ci, rel=1e-3)
    assert lift.p_value == pytest.approx(gb.p_value, abs=1e-3)


# --- coverage: the 95 % interval covers the true difference about 95 % of the time ------------------------------

def test_conversion_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(20240611)
    p_control, p_variant, runs = 0.10, 0.12, 400
    covered = 0
    for _ in range(runs):
        n_c, n_v = rng.integers(1500, 3500, size=2)
        control = (rng.random(n_c) < p_control).astype(float)
        variant = (rng.random(n_v) < p_variant).astype(float)
        lift = welch_lift(variant, control)
        assert lift is not None
        covered += lift.ci95[0] <= p_variant - p_control <= lift.ci95[1]
    assert 0.92 <= covered / runs <= 0.98


def test_aov_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(97)
    # order values: gamma with shape 2 (right-skewed like real baskets), means 100 and 112 yuan
    mean_control, mean_variant, runs = 100.0, 112.0, 400
    covered = 0
    for _ in range(runs):
        n_c, n_v = rng.integers(150, 400, size=2)
        control = rng.gamma(2.0, mean_control / 2.0, n_c)
        variant = rng.gamma(2.0, mean_variant / 2.0, n_v)
        lift = welch_lift(variant, control)
        assert lift is not None
        covered += lift.ci95[0] <= mean_variant - mean_control <= lift.ci95[1]
    assert 0.92 <= covered / runs <= 0.98


def test_p_value_is_uniform_enough_under_the_null() -> None:
    rng = np.random.default_rng(5)
    p_values = []
    for _ in range(400):
        a = (rng.random(2000) < 0.1).astype(float)
        b = (rng.random(2000) < 0.1).astype(float)
        lift = welch_lift(a, b)
        assert lift is not None
        p_values.append(lift.p_value)
    false_positives = sum(p < 0.05 for p in p_values) / len(p_values)
    assert 0.02 <= false_positives <= 0.08


# --- sample-ratio mismatch ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("observed", "weights"), [
    ([1000, 1200], [1, 1]),
    ([1000, 1010], [1, 1]),
    ([480, 1020, 500], [1, 2, 1]),
    ([300, 330, 290], [1, 1, 1]),
    ([90, 10], [0.9, 0.1]),
])
def test_srm_p_value_matches_scipy_chisquare(observed: list[int], weights: list[float]) -> None:
    total = sum(observed)
    expected = [total * w / sum(weights) for w in weights]
    assert srm_p_value(observed, weights) == pytest.approx(stats.chisquare(observed, expected).pvalue, rel=1e-9)


def test_srm_hand_worked_example() -> None:
    # 1000 vs 1200 at 1:1: expected 1100 each, χ² = 2 · 100² / 1100 = 18.18 on 1 df
    p = srm_p_value([1000, 1200], [1, 1])
    assert p is not None and p < 0.001
    assert p == pytest.approx(math.erfc(math.sqrt(200 / 11) / math.sqrt(2)))
    assert srm_p_value([1100, 1100], [1, 1]) == pytest.approx(1.0)


def test_srm_ignores_an_empty_zero_weight_variant_and_flags_a_populated_one() -> None:
    assert srm_p_value([500, 0, 520], [1, 0, 1]) == pytest.approx(stats.chisquare([500, 520]).pvalue)
    assert srm_p_value([500, 7, 520], [1, 0, 1]) == 0.0


def test_srm_is_none_without_users_or_a_comparison() -> None:
    assert srm_p_value([0, 0], [1, 1]) is None
    assert srm_p_value([10], [1]) is None


# --- Holm ---------------------------------------------------------------------------------------------------------

def test_holm_hand_worked_example() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_input_order() -> None:
    assert holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == pytest.approx([0.2])
    assert holm([]) == []
    assert holm([0.04, 0.001, 0.5]) == pytest.approx([0.08, 0.003, 0.5])


def test_the_order_value_lift_of_users_with_one_order_each_is_welchs_over_the_orders() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.gamma(2.0, 30.0, 40), rng.gamma(2.0, 35.0, 55)
    per_order, per_user = ratio_lift([[x] for x in a], [[x] for x in b]), welch_lift(a, b)
    assert per_order is not None and per_user is not None
    assert per_order.diff == pytest.approx(per_user.diff)
    assert per_order.ci95 == pytest.approx(per_user.ci95) and per_order.p_value == pytest.approx(per_user.p_value)


def test_the_order_value_lift_holds_its_level_when_users_order_many_times() -> None:
    # 200 experiments in which the coupon changes nothing: each user places 1-15 orders of their own typical amount.
    # Taking each order for an independent draw called that significant in about half of them; over users, ~5 %
    rng = np.random.default_rng(20261201)

    def users(n: int) -> list[list[float]]:
        return [list(rng.lognormal(math.log(typical), 0.2, rng.integers(1, 16)))
                for typical in rng.lognormal(math.log(60.0), 0.8, n)]

    runs = 200
    false_alarms = 0
    for _ in range(runs):
        lift = ratio_lift(users(120), users(120))
        assert lift is not None
        false_alarms += lift.p_value < 0.05
    assert false_alarms / runs < 0.1, false_alarms
