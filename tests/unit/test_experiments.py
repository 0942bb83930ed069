"""Experiment variant assignment (SPEC §4 step 1)."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecoupon.domain import experiments
from livecoupon.domain.campaign import Experiment, Variant
from livecoupon.domain.experiments import assign, bucket

DWELL = Experiment("dwell-value", "dwell", "dwell-value-v1", (
    Variant("control", 1, None), Variant("ten", 1, "dwell10"), Variant("twenty", 1, "dwell20")))


@pytest.mark.parametrize(
    ("salt", "user", "first_8_hex"),
    [
        # sha256("dwell-value-v1:u1") starts 66576d42, and so on
        ("dwell-value-v1", "u1", 0x66576D42),
        ("dwell-value-v1", "u2", 0xFC8F1DE9),
        ("dwell-value-v1", "alice", 0x3F9D8438),
        ("s", "u", 0xB5AA2620),
    ],
)
def test_bucket_is_the_first_32_bits_of_sha256_salt_colon_user(salt: str, user: str, first_8_hex: int) -> None:
    assert bucket(salt, user) == first_8_hex / 2**32


def test_bucket_depends_on_salt_and_user() -> None:
    assert bucket("dwell-value-v1", "u1") == pytest.approx(0.39977152692)
    assert bucket("exp", "u1") == pytest.approx(0.92454667715)


@pytest.mark.parametrize(
    ("user", "variant"),
    [("alice", "control"),  # 0.2485 < 1/3
     ("u1", "ten"),  # 1/3 <= 0.3998 < 2/3
     ("bob", "ten"),  # 0.3877
     ("u3", "ten"),  # 0.4527
     ("u2", "twenty")],  # 0.9866 >= 2/3
)
def test_equal_weights_split_the_bucket_into_thirds(user: str, variant: str) -> None:
    assert assign(DWELL, user).name == variant


def test_weights_set_the_cumulative_shares() -> None:
    skewed = Experiment("e", "t", "dwell-value-v1", (Variant("big", 3, "a"), Variant("small", 1, "b")))
    assert assign(skewed, "u1").name == "big"  # 0.3998 < 0.75
    assert assign(skewed, "u3").name == "big"  # 0.4527 < 0.75
    assert assign(skewed, "u2").name == "small"  # 0.9866 >= 0.75
    halves = Experiment("e", "t", "dwell-value-v1", (Variant("a", 0.5, "a"), Variant("b", 0.5, "b")))
    assert [assign(halves, u).name for u in ("alice", "u1", "u3", "u2")] == ["a", "a", "a", "b"]  # .25 .40 .45 .99


def test_a_bucket_on_the_boundary_goes_to_the_next_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    halves = Experiment("e", "t", "s", (Variant("a", 1, "a"), Variant("b", 1, "b")))
    monkeypatch.setattr(experiments, "bucket", lambda salt, user: 0.5)
    assert assign(halves, "anyone").name == "b"  # bucket < 1/2 is false
    monkeypatch.setattr(experiments, "bucket", lambda salt, user: 0.0)
    assert assign(halves, "anyone").name == "a"


def test_weight_zero_variants_are_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    ex = Experiment("e", "t", "s", (Variant("zero-first", 0, None), Variant("a", 1, "a"), Variant("zero-mid", 0, "x"),
                                    Variant("b", 1, "b"), Variant("zero-last", 0, None)))
    for b, expected in [(0.0, "a"), (0.4999, "a"), (0.5, "b"), (0.9999999, "b")]:
        monkeypatch.setattr(experiments, "bucket", lambda salt, user, b=b: b)
        assert assign(ex, "anyone").name == expected


def test_assignment_uses_the_experiment_salt() -> None:
    one = Experiment("e", "t", "dwell-value-v1", DWELL.variants)
    other = Experiment("e", "t", "exp", DWELL.variants)
    assert assign(one, "u1").name == "ten"  # 0.3998
    assert assign(other, "u1").name == "twenty"  # 0.9245


def reference_variant(ex: Experiment, user: str) -> str:
    """SPEC §4 step 1 in exact arithmetic."""
    total = sum(Fraction(v.weight) for v in ex.variants)
    b = Fraction(int(hashlib.sha256(f"{ex.salt}:{user}".encode()).hexdigest()[:8], 16), 2**32)
    running = Fraction(0)
    for v in ex.variants:
        running += Fraction(v.weight)
        if b < running / total:
            return v.name
    raise AssertionError("no variant")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=5).filter(lambda ws: sum(ws) > 0),
       st.text(min_size=1, max_size=12), st.text(max_size=8))
def test_assignment_matches_the_spec_and_skips_weight_zero(weights: list[int], user: str, salt: str) -> None:
    ex = Experiment("e", "t", salt, tuple(Variant(f"v{i}", float(w), None) for i, w in enumerate(weights)))
    chosen = assign(ex, user)
    assert chosen.weight > 0
    assert chosen.name == reference_variant(ex, user)
    assert assign(ex, user) == chosen  # deterministic
