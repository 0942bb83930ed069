"""``livecoupon demo --headless`` end to end (a real service process), and ``livecoupon report``
on the stream it recorded giving the same figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "campaign.yaml"
TRIGGER_KEYS = {"decisions", "issued", "suppressed", "redeemed", "redemption_rate", "orders", "gmv", "aov",
                "discount_cost"}
VARIANT_KEYS = {"users", "converted", "conversion", "orders", "aov"}
LIFT_KEYS = {"diff", "ci95", "p_value"}

pytestmark = pytest.mark.slow


def livecoupon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livecoupon", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=100, check=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = livecoupon("demo", "--out", str(out), "--viewers", "120", "--minutes", "6", "--speed", "120",
                      "--headless", cwd=out)  # its own campaign (examples/campaign.yaml), from a folder of no project
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def metrics(demo: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((demo / "metrics.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def offline(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("report")
    done = livecoupon("report", str(demo / "events.jsonl"), "--config", str(CONFIG), "--out", str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "report.html").is_file()
    data: dict[str, Any] = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return data


def test_demo_writes_its_three_files(demo: Path) -> None:
    for name in ("events.jsonl", "report.html", "metrics.json"):
        assert (demo / name).stat().st_size > 0, name
    lines = (demo / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) > 500
    types = {json.loads(line)["type"] for line in lines}
    assert {"live_start", "join", "heartbeat", "online_count", "transcript", "order", "live_end"} <= types
    html = (demo / "report.html").read_text(encoding="utf-8")
    assert "模拟数据" in html and "http://" not in html and "https://" not in html


def test_metrics_json_follows_the_spec_contract(metrics: dict[str, Any]) -> None:
    campaign_triggers = ["newcomer", "dwell", "milestone", "lucky", "passphrase", "thanks-top", "flash", "kou1"]
    assert list(metrics["triggers"]) == campaign_triggers
    for name, m in metrics["triggers"].items():
        assert set(m) >= TRIGGER_KEYS, name
        assert m["decisions"] == m["issued"] + sum(m["suppressed"].values()), name
        assert m["redeemed"] <= m["issued"] and m["redeemed"] <= m["orders"], name
    exp = metrics["experiments"]["dwell-value"]
    assert "srm_p_value" in exp
    assert set(exp["variants"]) == {"control", "ten", "twenty", "policy"}
    for name, v in exp["variants"].items():
        assert set(v) >= VARIANT_KEYS, name
        if name == "control":
            assert "lift" not in v
        else:
            assert set(v["lift"]) == {"conversion", "aov"}
            for lift in v["lift"].values():
                assert set(lift) >= LIFT_KEYS, name
    assert sum(v["users"] for v in exp["variants"].values()) == metrics["triggers"]["dwell"]["decisions"]
    assert metrics["simulated"] is True


def test_the_live_run_replays_to_the_same_coupons(metrics: dict[str, Any]) -> None:
    demo = metrics["demo"]
    assert demo["replay_matches_live"] is True
    assert demo["viewers"] == 120 and demo["minutes"] == 6
    assert metrics["totals"]["issued"] > 0
    # every paid order the simulated shoppers made is an ``order`` event of the stream
    assert metrics["totals"]["orders"] == demo["orders"]
    assert metrics["totals"]["orders_with_coupon"] == demo["orders_with_coupon"]


def test_offline_report_of_the_recorded_stream_agrees_with_the_demo(metrics: dict[str, Any],
                                                                    offline: dict[str, Any]) -> None:
    assert list(offline["triggers"]) == list(metrics["triggers"])
    for name, live in metrics["triggers"].items():
        replayed = offline["triggers"][name]
        for key in ("decisions", "issued", "suppressed", "redeemed", "orders", "gmv", "discount_cost"):
            assert replayed[key] == live[key], (name, key)
    assert sum(m["redeemed"] for m in offline["triggers"].values()) > 0
    live_exp, replayed_exp = metrics["experiments"]["dwell-value"], offline["experiments"]["dwell-value"]
    for variant, v in live_exp["variants"].items():
        for key in VARIANT_KEYS:
            assert replayed_exp["variants"][variant][key] == v[key], (variant, key)
    assert replayed_exp["srm_p_value"] == live_exp["srm_p_value"]
    assert offline["totals"] == metrics["totals"]
    assert "demo" not in offline and "simulated" not in offline
