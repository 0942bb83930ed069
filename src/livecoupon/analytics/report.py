"""``report.html``: one self-contained offline page answering the operator's questions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape
from typing import Any

from livecoupon.analytics.charts import bar_chart, column_chart, interval_chart
from livecoupon.analytics.insights import face_value_effect, recommendations, timing_effect, trigger_ranking
from livecoupon.analytics.metrics import OrderSeen, redemptions
from livecoupon.delivery.messages import describe_coupon
from livecoupon.domain.campaign import Audience, Campaign, Trigger, When
from livecoupon.domain.decisions import DecisionRecord
from livecoupon.domain.durations import format_duration
from livecoupon.domain.money import format_yuan

STYLE = """
body{font-family:"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",system-ui,sans-serif;margin:0;background:#f6f7f9;
color:#222}main{max-width:980px;margin:0 auto;padding:24px}h1{color:#e4393c;margin:0 0 4px}
h2{border-left:4px solid #e4393c;padding-left:10px;margin-top:36px}.sub{color:#666}
.badge{display:inline-block;background:#fff3cd;color:#8a6d00;border:1px solid #f0d98c;border-radius:4px;
padding:2px 8px;font-size:13px}table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0 16px;
font-size:14px}th,td{border:1px solid #e3e3e3;padding:6px 8px;text-align:left}th{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.card b{display:block;font-size:22px;color:#e4393c}svg.chart{width:100%;height:auto;background:#fff;
border-radius:8px;margin:8px 0}svg text{font-size:12px;fill:#333}svg .chart-title{font-size:14px;font-weight:600}
svg .small{font-size:11px}.advice li{margin:6px 0}.empty{color:#999}.flag{color:#c0392b;font-weight:600}
"""

EXPERIMENTS_HEADING = "<h2>分组实验 A/B / Experiments</h2>"

WHEN_WORDS = {
    When.FIRST_VISIT: "新人首次进房 / first visit",
    When.DWELL: "连续观看未下单 / watched without ordering",
    When.ONLINE_REACHED: "在线人数达标 / online count reached",
    When.HOST_SAYS: "主播说口令 / host says a passphrase",
    When.FLASH_SALE: "秒杀期间互动 / interacts during a flash sale",
    When.COMMENT: "评论含关键词 / comment with keyword",
}


def _condition(t: Trigger) -> str:
    if t.when is When.DWELL:
        after = format_duration(t.after_ms)
        return f"进房后 {after} 仍在看且未下单 / still watching {after} after joining, no order"
    if t.when is When.ONLINE_REACHED:
        source = "在场人数 present" if t.source == "present" else "平台在线数 online count"
        return f"{source} ≥ {t.count:,}（每场一次 / once a broadcast）"
    if t.when is When.HOST_SAYS:
        cooldown = format_duration(t.cooldown_ms)
        return (f"口令 {' / '.join(t.phrases)}（含同音，冷却 {cooldown} / homophones too, cooldown {cooldown}）")
    if t.when is When.COMMENT:
        return f"评论含 / a comment with {' / '.join(t.keywords)}"
    if t.when is When.FLASH_SALE:
        return "秒杀开始后首次评论/点赞/关注/送礼 / first comment, like, follow or gift in the sale"
    return "首次进入本活动任一直播间 / first visit to any room of the campaign"


def _audience(t: Trigger) -> str:
    within = format_duration(t.within_ms)
    return {Audience.USER: "该用户 / that viewer", Audience.PRESENT: "全部在场观众 / everyone present",
            Audience.LOTTERY: f"抽奖 {t.winners} 人 / a lottery of {t.winners}",
            Audience.COMMENTERS: f"{within} 内评论者 / commenters of the last {within}",
            Audience.TOP_GIFTERS: f"礼物榜前 {t.top} / the top {t.top} gifters"}[t.audience]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{escape(_fmt(c))}</td>' if isinstance(c, (int, float)) else f"<td>{escape(str(c))}</td>"
        for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def render_report(campaign: Campaign, metrics: dict[str, Any], decisions: Sequence[DecisionRecord],
                  orders: Sequence[OrderSeen], *, simulated: bool = False,
                  generated_at: dt.datetime | None = None) -> str:
    ranking = trigger_ranking(metrics["triggers"])
    faces = face_value_effect(campaign, decisions, redemptions(decisions, orders))
    timing = timing_effect(campaign, decisions, orders)
    advice = recommendations(metrics, ranking)
    totals = metrics["totals"]
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    badge = '<span class="badge">模拟数据 / simulated data</span>' if simulated else ""
    sections = [
        f"<h1>直播发券效果报告</h1><p class='sub'>Live coupon report — 活动 campaign <b>{escape(campaign.campaign)}</b>"
        f" · 生成于 {when} {badge}</p>",
        "<div class='cards'>" + "".join(f"<div class='card'><b>{escape(v)}</b>{escape(k)}</div>" for k, v in [
            ("发放 issued", f"{totals['issued']:,}"), ("决策 decisions", f"{totals['decisions']:,}"),
            ("订单 orders", f"{totals['orders']:,}"), ("用券订单 with coupon", f"{totals['orders_with_coupon']:,}"),
            ("GMV (元)", f"{totals['gmv']:,.2f}")]) + "</div>",
        "<h2>关键数据指标分析表 / Key metrics</h2>",
        _table(["触发 trigger", "决策 decisions", "发放 issued", "核销 redeemed", "核销率 rate", "订单 orders",
                "GMV", "客单价 AOV", "优惠成本 cost", "未发原因 suppressed"],
               [[n, m["decisions"], m["issued"], m["redeemed"], _pct(m["redemption_rate"]), m["orders"], m["gmv"],
                 m["aov"], m["discount_cost"], ", ".join(f"{k}:{v}" for k, v in m["suppressed"].items()) or "—"]
                for n, m in metrics["triggers"].items()]),
        "<h2>常见触发逻辑示例 / Trigger logic of this campaign</h2>",
        _table(["#", "名称 name", "场景 when", "条件 condition", "对象 audience", "券 coupon"],
               [[t.index + 1, t.name, WHEN_WORDS[t.when], _condition(t), _audience(t),
                 _coupon_cell(campaign, t)] for t in campaign.triggers]),
        _limits(campaign),
        "<h2>一、哪个触发核销最好？ / Which trigger redeems best?</h2>",
        bar_chart([r["trigger"] for r in ranking], [r["redemption_rate"] for r in ranking],
                  title="核销率 redemption rate by trigger"),
        _table(["触发 trigger", "核销率 rate", "GMV", "优惠成本 cost", "GMV/成本 ROI"],
               [[r["trigger"], _pct(r["redemption_rate"]), r["gmv"], r["discount_cost"],
                 "—" if r["roi"] is None else r["roi"]] for r in ranking]),
        "<h2>二、面额如何影响客单价？ / How face value moves order value</h2>",
        column_chart([f"¥{f['face_value']:g}" for f in faces], [f["aov"] for f in faces],
                     title="用券订单客单价 AOV of coupon orders by face value (元)", fmt="{:.0f}"),
        _table(["面额 face value", "发放 issued", "用券订单 orders", "核销率 rate", "客单价 AOV"],
               [[f["face_value"], f["issued"], f["orders"], _pct(f["redemption_rate"]), f["aov"]] for f in faces]),
        "<h2>三、发券时机如何影响转化？ / How timing moves conversion</h2>",
        column_chart([f"{b['minute']}′" for b in timing["buckets"]], [b["conversion"] for b in timing["buckets"]],
                     title="按开播后发券时间的转化率 conversion by minute of issue (attribution window)"),
        f"<p>领券到下单的中位时间 / median minutes from issue to order: "
        f"<b>{'—' if timing['median_minutes_to_order'] is None else timing['median_minutes_to_order']}</b></p>",
        EXPERIMENTS_HEADING,
        *(_experiment(name, e) for name, e in metrics["experiments"].items()),
        *(_offers(name, o) for name, o in metrics.get("offers", {}).items()),
        "<h2>下一步建议 / What to change next</h2>",
        "<ol class='advice'>" + "".join(f"<li>{escape(a)}</li>" for a in advice) + "</ol>",
        "<p class='sub'>发券 → 核销 → 分析 → 优化 · issue → redeem → analyse → optimise. "
        "转化归因窗口 attribution window: " + format_duration(campaign.attribution_window_ms) + ".</p>",
    ]
    if not metrics["experiments"]:
        sections.insert(sections.index(EXPERIMENTS_HEADING) + 1, "<p class='empty'>本活动未配置实验。</p>")
    return ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            f"<title>直播发券效果报告 · {escape(campaign.campaign)}</title><style>{STYLE}</style></head>"
            "<body><main>" + "".join(sections) + "</main></body></html>")


def _offers(name: str, offer: dict[str, Any]) -> str:
    """One personalised-offer trigger: arm shares, the policy's own value, off-policy estimates per arm."""
    def est(arm: dict[str, Any], method: str) -> str:
        found = arm["estimate"].get(method)
        return "—" if not found else f"{found['value']:.2f} [{found['ci95'][0]:.2f}, {found['ci95'][1]:.2f}]"

    policy = offer["policy"]
    value = "—" if not policy else f"{policy['value']:.2f} [{policy['ci95'][0]:.2f}, {policy['ci95'][1]:.2f}]"
    spend = offer["spend"]
    budget = "不限 unlimited" if spend["budget"] is None else f"{spend['budget']:.2f}"
    whose = "本触发器 this trigger's" if spend.get("of") == "trigger" else "活动 the campaign's"
    plan = "" if spend.get("plan_minutes") is None else f"，计划 {spend['plan_minutes']:g} 分钟 planned over " \
                                                        f"{spend['plan_minutes']:g} min"
    if spend.get("planned") is not None:
        plan += f"，按计划此时应花 planned by the last decision {spend['planned']:.2f}"
    arms = list(offer["arms"])
    moved = _table(["决策 decisions", "从 from (UTC)", "到 to (UTC)", *(f"{a} 占比 share" for a in arms)],
                   [[p["decisions"], _clock(p["from"]), _clock(p["to"]), *(_pct(p["shares"][a]) for a in arms)]
                    for p in offer.get("phases", [])])
    return (f"<h2>千人千面 · {escape(name)} / Personalised offers</h2>"
            f"<p>策略决策 {offer['decisions']} 次；每次决策后的订单额（元）/ order value per decision (yuan): "
            f"<b>{value}</b>；已花费 spent {spend['spent']:.2f} / {whose}预算 budget {budget}{plan}</p>"
            + _table(["选项 arm", "占比 share", "平均倾向 mean propensity", "转化 converted", "订单额 orders (元)",
                      "面额 face (元)", "IPS", "SNIPS", "DR"],
                     [[arm, _pct(a["share"]), a["mean_propensity"] if a["mean_propensity"] is not None else "—",
                       a["converted"], a["reward"], a["face_value"], est(a, "ips"), est(a, "snips"), est(a, "dr")]
                      for arm, a in offer["arms"].items()])
            + "<p class='sub'>IPS/SNIPS/DR：若每次都给该选项，每次决策后的订单额估计（95% 区间），"
              "由记录的倾向得分离线估计。 Off-policy estimates, from the logged propensities, of the order "
              "value per decision had every offer been that arm (95% intervals).</p>"
            + "<h3>选择如何变化 / How the choices moved</h3>" + moved
            + "<p class='sub'>按时间把策略的决策分成四段，各段中每个选项的占比：冷启动时多为最便宜的选项，"
              "学到哪些用户值得发券后占比随之变化。 The policy's decisions in four runs, in time order, and each "
              "arm's share in each: the cold start holds the cheapest arm; the shares move as it learns.</p>")


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%H:%M:%S")


def _terms(campaign: Campaign, name: str) -> str:
    return describe_coupon(campaign.coupons[name])


def _coupon_cell(campaign: Campaign, trigger: Trigger) -> str:
    if trigger.offer is None:
        assert trigger.coupon is not None
        return f"{campaign.coupons[trigger.coupon].title}（{_terms(campaign, trigger.coupon)}）"
    arms = " / ".join("不发 nothing" if a is None else f"{campaign.coupons[a].title}（{_terms(campaign, a)}）"
                      for a in trigger.offer.arms)
    return f"千人千面 personalised: {arms}"


def _limits(campaign: Campaign) -> str:
    lim = campaign.limits
    gap = format_duration(lim.min_interval_ms or 0)
    parts = [f"每人每场最多 {lim.per_user} 张 / at most {lim.per_user} a viewer a broadcast"
             if lim.per_user is not None else "",
             f"两张券至少间隔 {gap} / {gap} between two coupons at least" if lim.min_interval_ms else "",
             f"总预算 {format_yuan(lim.budget)} 元 / a budget of ¥{format_yuan(lim.budget)}"
             if lim.budget is not None else ""]
    text = "；".join(p for p in parts if p)
    return f"<p>频控与预算 / limits: {escape(text) if text else '无 none'}</p>"


def _experiment(name: str, e: dict[str, Any]) -> str:
    srm = e["srm_p_value"]
    srm_text = "—" if srm is None else f"{srm:.3g}"
    flag = ("<span class='flag'>⚠ 分流比例异常 SRM</span>" if e["srm_flag"]
            else "分流正常 no SRM" if srm is not None else "暂无数据 no data yet")
    rows, labels, intervals = [], [], []
    for vname, v in e["variants"].items():
        lift = _tested((v.get("lift") or {}).get("conversion"))
        aov = _tested((v.get("lift") or {}).get("aov"))
        seen = bool(v["users"])  # a variant no one was exposed to has no rates, not rates of zero
        rows.append([vname + (" (对照 control)" if vname == e["control"] else ""), v["coupon"] or "—", v["users"],
                     v["converted"], _pct(v["conversion"] if seen else None), v["orders"],
                     v["aov"] if v["orders"] else "—",
                     "—" if not lift else f"{_points(lift['diff'])} [{_points(lift['ci95'][0])}, "
                                          f"{_points(lift['ci95'][1])}]",
                     "—" if not lift else f"{lift['p_value']:.3g} / {lift.get('p_value_holm', lift['p_value']):.3g}",
                     "—" if not aov else f"{aov['diff']:+.2f} [{aov['ci95'][0]:+.2f}, {aov['ci95'][1]:+.2f}]"])
        if lift:
            labels.append(vname)
            intervals.append((lift["diff"] * 100, lift["ci95"][0] * 100, lift["ci95"][1] * 100))  # points
    return (f"<h3>{escape(name)} · 触发 {escape(e['trigger'])}</h3><p>SRM p = {srm_text} · {flag}</p>"
            + _table(["组 variant", "券 coupon", "曝光 users", "转化 converted", "转化率 conversion", "订单 orders",
                      "客单价 AOV", "转化率差（百分点） lift, points (95% CI)", "p / Holm p",
                      "客单价差 AOV diff (95% CI)"], rows)
            + interval_chart(labels, intervals, fmt="{:+.1f} pp",
                             title="转化率差（百分点）及95%置信区间 conversion difference vs control, points"))


def _points(diff: float) -> str:
    """A difference of two proportions in percentage points (+19.56 pp for 20.3 % against 39.9 %), not a %, which
    reads as a lift relative to the control."""
    return f"{diff * 100:+.2f} pp"


def _tested(lift: dict[str, Any] | None) -> dict[str, Any] | None:
    """A lift with an interval, or None where the data could not carry a test."""
    return lift if lift and lift.get("ci95") is not None and lift.get("p_value") is not None else None
