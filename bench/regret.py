"""The offer policy's regret curve against the oracle, on the simulated audiences of
tests/integration/test_offer_simulation.py (seeds 1-5, 10,000 viewers, 60 minutes, 80,000 元).

Prints the cumulative gain (order value over what the same viewers pay with nothing) of the
policy, of the oracle that knows each level's best arm (first come, first served within the
budget) and of the best fixed arm, every 6 minutes, averaged over the seeds; writes
docs/regret.svg. Run: .venv/bin/python bench/regret.py  (~1 minute)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT / "tests")]

import test_offer_simulation as sim  # noqa: E402

from livecoupon.sim.truth import best_face  # noqa: E402

STEP_S = 6 * 60
SEEDS = range(1, 6)


def first_come(people: list[sim.Asker], face_of: dict[str, float], budget: float) -> list[tuple[float, float]]:
    """(time, gain) of each asker offered ``face_of[level]`` while the budget lasts."""
    spent, out = 0.0, []
    for a in people:
        face = face_of[a.viewer.level]
        face = face if spent + face <= budget else 0.0
        spent += face
        out.append((a.asks, a.gain(face)))
    return out


def curves() -> dict[str, list[float]]:
    marks = list(range(STEP_S, sim.MINUTES * 60 + STEP_S, STEP_S))
    out = {"minutes": [m / 60 for m in marks], "policy": [0.0] * len(marks), "oracle": [0.0] * len(marks),
           "fixed": [0.0] * len(marks)}
    budget = sim.BUDGET_PER_VIEWER * sim.VIEWERS
    for seed in SEEDS:
        people = sim.askers(seed)
        offer = sim.run(sim.campaign("offer"), people)
        fixed = max(sim.FIXED_ARMS, key=lambda arm: sim.run(sim.campaign(arm), people).gain)
        series = {
            "policy": [(o.t, o.gain) for o in offer.offered],
            "oracle": first_come(people, {level: best_face(level) for level in ("gold", "silver", "new")}, budget),
            "fixed": first_come(people, dict.fromkeys(("gold", "silver", "new"), float(fixed[1:])), budget),
        }
        for name, points in series.items():
            for i, mark in enumerate(marks):
                out[name][i] += sum(g for t, g in points if t <= mark) / len(SEEDS)
    return out


def svg(data: dict[str, list[float]]) -> str:
    width, height, left, bottom, top_pad, right = 640, 320, 70, 40, 20, 20
    ceiling = 50_000 * (int(max(data["oracle"]) // 50_000) + 1)

    def x(minute: float) -> float:
        return left + (width - left - right) * minute / sim.MINUTES

    def y(value: float) -> float:
        return height - bottom - (height - bottom - top_pad) * value / ceiling

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>']
    for value in range(0, ceiling + 1, 50_000):
        parts.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value // 1000}k</text>')
    for minute in range(0, sim.MINUTES + 1, 10):
        parts.append(f'<text x="{x(minute):.1f}" y="{height - bottom + 16}" text-anchor="middle">{minute}</text>')
    parts.append(f'<text x="{(width + left) / 2}" y="{height - 6}" text-anchor="middle">分钟 minutes into the '
                 'broadcast · 累计增益 cumulative gain (元), mean of 5 seeds</text>')
    legend = (("oracle", "#999", "已知真相 oracle (truth known)"), ("policy", "#d33", "策略 policy (offer)"),
              ("fixed", "#36c", "最佳固定券 best fixed arm"))
    for i, (name, colour, label) in enumerate(legend):
        points = " ".join(f"{x(m):.1f},{y(v):.1f}" for m, v in zip([0.0, *data["minutes"]], [0.0, *data[name]],
                                                                   strict=True))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{points}"/>')
        ly = top_pad + 10 + 18 * i
        parts.append(f'<line x1="{left + 12}" y1="{ly}" x2="{left + 36}" y2="{ly}" stroke="{colour}" '
                     f'stroke-width="2.5"/><text x="{left + 42}" y="{ly + 4}">{label}</text>')
    return "\n".join([*parts, "</svg>"]) + "\n"


def main() -> None:
    data = curves()
    print("| minute | policy | oracle | regret (oracle − policy) | best fixed arm |")
    print("|---|---|---|---|---|")
    for i, minute in enumerate(data["minutes"]):
        p, o, f = data["policy"][i], data["oracle"][i], data["fixed"][i]
        print(f"| {minute:.0f} | {p:,.0f} | {o:,.0f} | {o - p:,.0f} | {f:,.0f} |")
    (ROOT / "docs" / "regret.svg").write_text(svg(data), encoding="utf-8")
    print(json.dumps({"wrote": "docs/regret.svg"}))


if __name__ == "__main__":
    main()
