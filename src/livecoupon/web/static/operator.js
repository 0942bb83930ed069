/* The operator console: counters, charts, pause/resume, send to everyone present, dead letters,
 * and one viewer explained; the campaign panel is campaign-editor.js.
 *
 * Where the deployment runs several campaigns (the stats list them in ``campaigns``), a picker in
 * the header chooses the one the panels show: only its stats frames are drawn, and its id goes with
 * every call about one campaign. The pick is kept in the address (#campaign=) and in localStorage. */
(function () {
  "use strict";
  var C = lcConsole, $ = function (id) { return document.getElementById(id); };
  var PALETTE = ["#ff7a18", "#ff2d55", "#ffb020", "#c2255c", "#845ef7", "#20c997", "#868e96"];
  var PICK_KEY = "livecoupon:operator-campaign";
  var rateChart, reasonChart, deadCount = -1, lastStats = null, lastOffers = null, explaining = 0;
  var picked = null;  // the campaign the panels show, where the deployment runs several (null: it runs one)

  function charts() {
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#8a7a74";
    var ctx = $("rate").getContext("2d"), fill = ctx.createLinearGradient(0, 0, 0, 230);
    fill.addColorStop(0, "rgba(255,90,40,.35)");
    fill.addColorStop(1, "rgba(255,90,40,0)");
    rateChart = new Chart(ctx, {
      type: "line",
      data: { labels: [], datasets: [{ label: "已发 Issued", data: [], borderColor: "#ff5a28", backgroundColor: fill,
        fill: true, tension: .35, pointRadius: 0, borderWidth: 2 }] },
      options: { maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
        scales: { x: { grid: { display: false }, ticks: { maxTicksLimit: 8 } },
                  y: { beginAtZero: true, grid: { color: "#f3ebe7" }, ticks: { precision: 0 } } } }
    });
    reasonChart = new Chart($("reasons"), {
      type: "bar",
      data: { labels: [], datasets: [{ data: [], backgroundColor: PALETTE, borderRadius: 6, barThickness: 16 }] },
      options: { indexAxis: "y", maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, grid: { color: "#f3ebe7" }, ticks: { precision: 0 } }, y: { grid: { display: false } } } }
    });
  }

  function drawCharts(s) {
    rateChart.data.labels = s.issue_rate.map(function (p) { return C.time(p.minute).slice(0, 5); });
    rateChart.data.datasets[0].data = s.issue_rate.map(function (p) { return p.issued; });
    rateChart.update();
    var reasons = Object.keys(s.suppressed).sort(function (a, b) { return s.suppressed[b] - s.suppressed[a]; });
    reasonChart.data.labels = reasons.length ? reasons.map(C.reasonWords) : ["暂无拦截 None yet"];
    reasonChart.data.datasets[0].data = reasons.length ? reasons.map(function (r) { return s.suppressed[r]; }) : [0];
    reasonChart.update();
  }

  function kpis(s) {
    var suppressed = C.sum(s.suppressed), rooms = Object.keys(s.rooms);
    var top = Object.keys(s.suppressed).sort(function (a, b) { return s.suppressed[b] - s.suppressed[a]; })[0];
    var lastMinute = s.issue_rate.length ? s.issue_rate[s.issue_rate.length - 1].issued : 0;
    $("campaign").textContent = "活动 " + s.campaign;
    $("k-issued").textContent = C.n(s.issued);
    $("k-rate").textContent = "本分钟 " + C.n(lastMinute) + " 张 · this minute";
    $("k-suppressed").textContent = C.n(suppressed);
    $("k-top").textContent = top ? "最多：" + C.reasonWords(top) : "暂无 None";
    $("k-budget").textContent = C.yuan(s.budget.spent);
    $("k-budget-of").textContent = s.budget.limit == null ? "不限 Unlimited" :
      "共 " + C.yuan(s.budget.limit) + " · " + Math.round((100 * s.budget.spent) / s.budget.limit) + "%";
    $("k-present").textContent = C.n(rooms.reduce(function (t, r) { return t + s.rooms[r].present; }, 0));
    $("k-rooms").textContent = rooms.filter(function (r) { return s.rooms[r].on_air; }).length + " / " + rooms.length + " 直播中 on air";
    $("k-dead").textContent = C.n(s.dead_letters);
  }

  function triggerRow(name, t) {
    var tr = document.createElement("tr");
    tr.dataset.trigger = name;
    var who = C.el("td");
    who.append(C.el("b", null, name), C.el("div", "when", C.whenWords(t.when)));
    var held = C.el("td");
    Object.keys(t.suppressed).forEach(function (reason) {
      var chip = C.el("span", "chip", C.reasonWords(reason));
      chip.dataset.reason = reason;
      chip.append(C.el("b", null, C.n(t.suppressed[reason])));
      held.append(chip);
    });
    if (!held.children.length) held.append(C.el("span", "muted", "—"));
    var issued = C.el("td", "num issued", C.n(t.issued));
    var state = C.el("td");
    state.append(C.el("span", "state " + (t.paused ? "off" : "on"), t.paused ? "已暂停 Paused" : "运行中 Running"));
    var action = C.el("td");
    if (t.when !== "manual") {
      var button = C.el("button", "btn small" + (t.paused ? "" : " ghost"), t.paused ? "恢复 Resume" : "暂停 Pause");
      button.type = "button";
      button.onclick = function () { pause(name, !t.paused, button); };
      action.append(button);
    }
    tr.append(who, issued, held, state, action);
    return tr;
  }

  function pause(name, paused, button) {
    var asked = picked;
    button.disabled = true;
    C.api("/v1/admin/triggers/" + encodeURIComponent(name), addressed({ paused: paused }))
      .then(function () {
        if (asked !== picked || !lastStats) return; // another campaign is shown now: its own frames say
        lastStats.triggers[name].paused = paused;
        render(lastStats);
      })
      .catch(function (e) { alert(e.message); button.disabled = false; });
  }

  function options(select, values, labels) {
    var keep = select.value;
    if (select.dataset.values === values.join("\n")) return;
    select.dataset.values = values.join("\n");
    select.replaceChildren.apply(select, values.map(function (v, i) {
      var o = C.el("option", null, labels ? labels[i] : v);
      o.value = v;
      return o;
    }));
    if (values.indexOf(keep) >= 0) select.value = keep;
  }

  /* ---- several campaigns: the one the panels show ------------------------------------------ */

  /** ``path`` about the picked campaign (as it was with one campaign: the server then needs none). */
  function scoped(path) {
    return picked == null ? path : path + (path.indexOf("?") < 0 ? "?" : "&") + "campaign=" + encodeURIComponent(picked);
  }

  /** ``body`` naming the picked campaign (as it was with one campaign). */
  function addressed(body) {
    if (picked != null) body.campaign = picked;
    return body;
  }

  /** The pick this tab's address holds (#campaign=), else this browser's last, else the first of ``names``. */
  function remembered(names) {
    var inAddress = new URLSearchParams(location.hash.slice(1)).get("campaign"), stored = null;
    try { stored = localStorage.getItem(PICK_KEY); } catch (e) { /* storage turned off: the address alone */ }
    return [inAddress, stored].filter(function (n) { return names.indexOf(n) >= 0; })[0] || names[0];
  }

  function remember(name) {
    try { localStorage.setItem(PICK_KEY, name); } catch (e) { /* storage turned off: the address alone */ }
    history.replaceState(null, "", "#campaign=" + encodeURIComponent(name));
  }

  /** Whether ``s`` is the shown campaign's; where the stats list several, the picker follows the list. */
  function following(s) {
    var names = s.campaigns && s.campaigns.length > 1 ? s.campaigns : [];
    $("campaign-pick").hidden = !names.length;
    $("campaign").hidden = names.length > 0;
    options($("campaign-select"), names);
    var want = !names.length ? null : names.indexOf(picked) >= 0 ? picked : remembered(names);
    if (want !== picked) show(want, s);
    return picked == null || s.campaign === picked;
  }

  /** Show ``name``'s panels: what the last campaign left is cleared, its stats, results and file asked for. */
  function show(name, s) {
    picked = name;
    $("campaign-select").value = name || "";
    lastStats = null;
    lastOffers = null;
    ["triggers", "offers"].forEach(function (id) { $(id).dataset.sig = ""; }); // same names, another campaign
    ["results", "experiments", "offers"].forEach(function (id) { $(id).replaceChildren(); });
    $("offers-card").hidden = true;
    $("present-result").className = "result";
    $("present-result").textContent = "";
    lcCampaignEditor.campaign(name);
    loadResults();
    if (name != null && (!s || s.campaign !== name)) {
      C.api(scoped("/v1/admin/stats")).then(render).catch(function () { /* the feed brings the next one */ });
    }
  }

  function picking() {
    var name = $("campaign-select").value;
    if (name === picked) return;
    remember(name);
    show(name);
  }

  function render(s) {
    if (s.room) return; // a host console's frame: the feed brings operators those too
    if (!following(s)) return;
    var first = !lastStats;
    lastStats = s;
    if (first && lastOffers) renderOffers(lastOffers); // their headings name each trigger's kind, from the stats
    kpis(s);
    drawCharts(s);
    var body = $("triggers"), sig = JSON.stringify(s.triggers);
    if (body.dataset.sig !== sig) { // rebuilt only on change, so a click never lands on a replaced button
      body.dataset.sig = sig;
      body.replaceChildren.apply(body, Object.keys(s.triggers).map(function (n) { return triggerRow(n, s.triggers[n]); }));
    }
    $("bars").replaceChildren.apply($("bars"), C.stockBars(s));
    var rooms = Object.keys(s.rooms);
    $("rooms").replaceChildren.apply($("rooms"), rooms.length ? rooms.map(function (r) {
      var line = C.el("div"), info = s.rooms[r];
      line.append(C.el("span", null, r), C.el("span", "state " + (info.on_air ? "on" : "off"),
        (info.on_air ? "直播中 LIVE · " : "未开播 Off air · ") + C.n(info.present) + " 人在场"));
      return line;
    }) : [C.el("div", "empty", "还没有直播间事件 · No room events yet")]);
    var form = $("present");
    options(form.room, rooms.length ? rooms : [""], rooms.length ? null : ["（暂无直播间 no room yet）"]);
    options(form.template, s.templates);
    var names = $("room-names");
    if (names.dataset.values !== rooms.join("\n")) {
      names.dataset.values = rooms.join("\n");
      names.replaceChildren.apply(names, rooms.map(function (r) { var o = C.el("option"); o.value = r; return o; }));
    }
    $("updated").textContent = "更新于 " + new Date().toLocaleTimeString("zh-CN", { hour12: false });
    if (s.dead_letters !== deadCount) { deadCount = s.dead_letters; loadDeadLetters(); }
    lcCampaignEditor.stats(s);
  }

  function pct(x) { return x == null ? "—" : (x * 100).toFixed(1) + "%"; }

  function liftText(l) {
    if (!l || l.ci95 == null) return "数据不足 not enough data";
    return (l.diff >= 0 ? "+" : "") + pct(l.diff) + " [" + pct(l.ci95[0]) + ", " + pct(l.ci95[1]) + "] p=" +
      (l.p_value_holm != null ? l.p_value_holm : l.p_value).toPrecision(2);
  }

  /** metrics.json of SPEC §6, live: what each trigger's coupons did, and each experiment. */
  function loadResults() {
    var asked = picked;
    C.api(scoped("/v1/admin/metrics")).then(function (m) {
      if (asked !== picked) return; // another campaign was picked meanwhile
      var rows = Object.keys(m.triggers).filter(function (n) { return m.triggers[n].issued; }).map(function (n) {
        var t = m.triggers[n], tr = document.createElement("tr");
        tr.append(C.el("td", null, n), C.el("td", "num", C.n(t.issued)), C.el("td", "num", C.n(t.redeemed)),
          C.el("td", "num", pct(t.redemption_rate)), C.el("td", "num", C.yuan(t.gmv)), C.el("td", "num", C.yuan(t.aov)),
          C.el("td", "num", C.yuan(t.discount_cost)));
        return tr;
      });
      $("results").replaceChildren.apply($("results"), rows);
      var blocks = Object.keys(m.experiments).map(function (name) {
        var e = m.experiments[name], box = C.el("div", "experiment");
        box.append(C.el("h3", null, "实验 " + name + " · 触发 " + e.trigger + " · SRM p=" +
          (e.srm_p_value == null ? "—" : e.srm_p_value.toPrecision(2)) + (e.srm_flag ? " ⚠ 分流异常" : "")));
        Object.keys(e.variants).forEach(function (v) {
          var x = e.variants[v], lift = x.lift ? liftText(x.lift.conversion) : "对照 control";
          box.append(C.el("p", null, v + "：曝光 " + C.n(x.users) + "，转化 " + pct(x.conversion) + "，客单价 " +
            C.yuan(x.aov) + " · " + lift));
        });
        return box;
      });
      $("experiments").replaceChildren.apply($("experiments"), blocks);
      renderOffers(m.offers || {});
      $("results-at").textContent = new Date().toLocaleTimeString("zh-CN", { hour12: false });
    }).catch(function () { /* tried again in ten seconds */ });
  }

  /** Signed yuan, as the interval bounds of a mean can go below zero. */
  function money(x) { return (x < 0 ? "−" : "") + C.yuan(Math.abs(x)); }

  function bounds(e) { return "[" + money(e.ci95[0]) + ", " + money(e.ci95[1]) + "]"; }

  function interval(e) { return e && e.ci95 ? money(e.value) + " " + bounds(e) : "—"; }

  function offerSummary(o) {
    var box = C.el("div", "offer-sum");
    var policy = C.el("div", "policy");
    policy.append(C.el("span", null, "策略每次决策的订单额 Policy value per decision"),
      C.el("b", null, o.policy && o.policy.ci95 ? money(o.policy.value) : "—"),
      C.el("em", null, o.policy && o.policy.ci95 ? "95% 区间 interval " + bounds(o.policy) : "尚无决策 no decisions yet"));
    var spend = C.bar("预算 Budget", o.spend.spent, o.spend.budget, C.yuan);
    spend.classList.add("spend");
    var whose = o.spend.of === "trigger" ? "本触发器已发面额 face value issued by this trigger"
      : "全活动已发面额 face value issued, whole campaign";
    if (o.spend.plan_minutes != null) whose += " · 计划 " + o.spend.plan_minutes + " 分钟 planned over " + o.spend.plan_minutes + " min";
    if (o.spend.planned != null) whose += " · 按计划此时 planned by now " + C.yuan(o.spend.planned);
    spend.append(C.el("em", null, whose + (o.spend.budget == null ? "" :
      " · " + ((100 * o.spend.spent) / o.spend.budget).toFixed(1) + "% · 剩余 left " + C.yuan(o.spend.budget - o.spend.spent))));
    box.append(policy, spend);
    if ("price" in o) {  // the live policy's λ (a report of a recorded stream has none)
      var price = C.el("div", "lambda");
      price.append(C.el("span", null, "预算价格 λ budget price"),
        C.el("b", null, o.price === null ? "∞" : String(Number(o.price.toPrecision(3)))),
        C.el("em", null, "每元面额须换回的订单增益，按剩余预算与已见请求配速 · the extra order yuan one yuan of face " +
          "value must buy, paced to the budget left per request seen"));
      box.append(price);
    }
    return box;
  }

  function armName(arm) { return arm === "null" ? "不发 none" : arm; }

  function armRow(arm, a, index) {
    var tr = document.createElement("tr"), est = a.estimate || {};
    tr.dataset.arm = arm;
    var share = C.el("td"), meter = C.el("div", "share"), track = C.el("i");
    track.style.setProperty("--w", (100 * a.share) + "%");
    meter.append(track, C.el("span", null, pct(a.share)));
    meter.dataset.share = a.share;
    share.append(meter);
    var dr = C.el("td", "est");
    if (est.dr && a.decisions) dr.append(C.el("b", null, money(est.dr.value)), C.el("small", null, " " + bounds(est.dr)));
    else dr.append(C.el("span", "muted", "尚无数据 no data")); // never chosen: the estimate is the model's bare 0
    dr.title = ["ips", "snips", "dr"].filter(function (k) { return est[k]; }).map(function (k) {
      return k.toUpperCase() + " " + interval(est[k]);
    }).join("\n") + "\n若每次都发此方案，每次决策的订单额估计（95% 区间）· per decision, had every offer been this arm";
    var name = C.el("td");
    name.append(C.el("i", "swatch arm-" + index), armName(arm));
    tr.append(name, share,
      C.el("td", "num", a.mean_propensity == null ? "—" : a.mean_propensity.toFixed(3)),
      C.el("td", "num", C.n(a.converted) + " / " + C.n(a.decisions)),
      C.el("td", "num", C.yuan(a.reward)), C.el("td", "num", C.yuan(a.face_value)), dr);
    return tr;
  }

  /** How the choices moved: the arms' shares in each quarter of the decisions, in time order. */
  function phaseStrip(arms, phases) {
    var box = C.el("div", "phases");
    box.append(C.el("span", "muted", "选择如何变化 How the choices moved"));
    phases.forEach(function (p, i) {
      var col = C.el("div", "phase");
      col.dataset.phase = i;
      col.title = p.decisions + " 次决策 decisions · " + arms.map(function (a) {
        return armName(a) + " " + pct(p.shares[a]);
      }).join(" · ");
      arms.forEach(function (a, index) {
        var seg = C.el("i", "arm-" + index);
        seg.style.setProperty("--h", (100 * p.shares[a]) + "%");
        col.append(seg);
      });
      col.append(C.el("small", null, (i + 1) + "/" + phases.length));
      box.append(col);
    });
    return box;
  }

  /** metrics.offers: per offer trigger, its arms, the policy's value, off-policy estimates, spend. */
  function renderOffers(offers) {
    lastOffers = offers;
    var names = Object.keys(offers), box = $("offers"), sig = JSON.stringify(offers) + (lastStats ? "+stats" : "");
    $("offers-card").hidden = !names.length;
    if (box.dataset.sig === sig) return; // unchanged: a tooltip being read stays put
    box.dataset.sig = sig;
    box.replaceChildren.apply(box, names.map(function (name) {
      var o = offers[name], block = C.el("div", "offer"), head = C.el("h3");
      var trigger = lastStats && lastStats.triggers[name];
      block.dataset.trigger = name;
      head.append(C.el("span", null, name), C.el("span", "muted", [trigger ? C.whenWords(trigger.when) : "",
        C.n(o.decisions) + " 次决策 decisions"].filter(Boolean).join(" · ")));
      var table = C.el("table"), thead = C.el("thead"), body = C.el("tbody"), row = document.createElement("tr");
      ["方案 Arm", "占比 Share", "平均概率 Mean propensity", "转化 Converted", "订单额 Order value", "面额 Face value",
        "一直发它 If always this arm (DR)"].forEach(function (h) { row.append(C.el("th", null, h)); });
      thead.append(row);
      body.append.apply(body, Object.keys(o.arms).map(function (arm, i) { return armRow(arm, o.arms[arm], i); }));
      table.append(thead, body);
      block.append(head, offerSummary(o), table);
      if (o.phases && o.phases.length > 1) block.append(phaseStrip(Object.keys(o.arms), o.phases));
      return block;
    }));
  }

  function loadDeadLetters() {
    C.api("/v1/admin/webhooks/dead-letters").then(function (body) {
      var rows = body.dead_letters.map(function (d) {
        var tr = document.createElement("tr");
        var url = C.el("td");
        url.append(C.el("code", null, d.url));
        tr.append(C.el("td", null, new Date(d.at).toLocaleString("zh-CN", { hour12: false })), C.el("td", null, d.coupon_id),
          url, C.el("td", "num", d.attempts), C.el("td", null, d.last_error));
        return tr;
      });
      var box = $("dead");
      if (!rows.length) {
        var empty = C.el("td", "empty", "没有死信，回调都已送达 · Nothing undelivered");
        empty.colSpan = 5;
        rows = [document.createElement("tr")];
        rows[0].append(empty);
      }
      box.replaceChildren.apply(box, rows);
    }).catch(function () { /* shown again on the next change */ });
  }

  function newKey() { return "present-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 6); }

  function sendToPresent(e) {
    e.preventDefault();
    var form = e.target, out = $("present-result"), button = form.querySelector("button");
    button.disabled = true;
    out.className = "result";
    out.textContent = "发放中… Sending";
    C.api("/v1/admin/rooms/" + encodeURIComponent(form.room.value) + "/issue-present",
      addressed({ template: form.template.value, idempotency_key: form.key.value }))
      .then(function (r) {
        out.className = "result ok";
        out.textContent = "已发放 " + C.n(r.issued) + " 张，拦截 " + C.n(r.suppressed) + " · issued " + r.issued + ", suppressed " + r.suppressed;
        form.key.value = newKey();
      })
      .catch(function (err) { out.className = "result err"; out.textContent = "发放失败 Failed: " + err.message; })
      .then(function () { button.disabled = false; });
  }

  /** A host token for one room, shown once to hand to the host (it opens host.html's sign-in). */
  function mintHostToken(e) {
    e.preventDefault();
    var form = e.target, out = $("host-token-result");
    out.className = "result";
    out.textContent = "";
    C.api("/v1/admin/rooms/" + encodeURIComponent(form.room.value.trim()) + "/host-token", {})
      .then(function (r) {
        out.className = "result ok";
        out.append(C.el("span", null, "直播间 " + r.room + " 的主播令牌（24 小时有效）· Host token for " + r.room + ":"),
          C.el("output", null, r.token));
      })
      .catch(function (err) { out.className = "result err"; out.textContent = "生成失败 Failed: " + err.message; });
  }

  var OUTCOMES = {
    issued: ["ok", "已发券 Issued"],
    suppressed: ["amber", "已拦截 Suppressed"],
    no_decision: ["", "未决定 No decision"]
  };

  /** The server's "中文 / English" words as two lines (the last "/ " parts them; a title may hold one). */
  function whyWords(text) {
    var p = /\s*\/ (?!.*\/ )/.exec(text || "");
    var why = C.el("p", "why", p ? text.slice(0, p.index) : text);
    if (p) why.append(C.el("span", null, text.slice(p.index + p[0].length)));
    return why;
  }

  function explainEntry(e, day) {
    var at = new Date(e.ts * 1000), kind = OUTCOMES[e.outcome] || ["", e.outcome];
    var li = C.el("li", e.outcome);
    li.dataset.outcome = e.outcome;
    if (e.trigger) li.dataset.trigger = e.trigger;
    var time = C.el("time", null, at.toLocaleTimeString("zh-CN", { hour12: false }));
    time.dateTime = at.toISOString();
    if (day) time.append(C.el("small", null, day));
    var what = C.el("div", "what"), head = C.el("div", "head");
    var shown = lastStats && (!e.campaign || e.campaign === lastStats.campaign); // a name can be in several
    var trigger = e.trigger && shown && lastStats.triggers[e.trigger];
    if (e.campaign) li.dataset.campaign = e.campaign;
    head.append(C.el("span", kind[0] ? "chip " + kind[0] : "chip", kind[1]));
    if (e.trigger) head.append(C.el("b", null, e.trigger));
    head.append(C.el("span", "muted", [trigger ? C.whenWords(trigger.when) : e.trigger ? "" : "无触发器 no trigger",
      e.room ? "直播间 " + e.room : "", e.campaign ? "活动 " + e.campaign : ""].filter(Boolean).join(" · ")));
    what.append(head, whyWords(e.why));
    var meta = C.el("div", "meta");
    if (e.coupon_id) {
      var coupon = C.el("span", "chip", "券 " + e.coupon + " ");
      coupon.append(C.el("code", null, e.coupon_id));
      meta.append(coupon);
    }
    if (e.experiment) meta.append(C.el("span", "chip", "实验 " + e.experiment + " · 组 variant " + e.variant));
    if (e.propensity != null) {
      meta.append(C.el("span", "chip", "策略选 arm " + (e.arm == null ? "不发 none" : e.arm) + " · 概率 propensity " +
        Number(e.propensity).toFixed(3)));
    }
    if (e.reason) meta.append(C.el("span", "chip", e.reason));
    what.append(meta);
    li.append(time, what);
    return li;
  }

  function explainSummary(user, entries) {
    if (!entries.length) {
      return "没有与 " + user + " 有关的记录：没有发券决定，也没有触及 Ta 的触发（未知的 ID 也是如此）" +
        " · Nothing for " + user + ": no decision, and no firing reached them (an unknown id looks the same)";
    }
    var count = { issued: 0, suppressed: 0, no_decision: 0 };
    entries.forEach(function (e) { count[e.outcome] = (count[e.outcome] || 0) + 1; });
    return user + "：已发 " + count.issued + " 张，拦截 " + count.suppressed + " 次，未决定 " + count.no_decision + " 次 · " +
      entries.length + " entries: " + count.issued + " issued, " + count.suppressed + " suppressed, " +
      count.no_decision + " no decision";
  }

  /** GET /v1/admin/users/{user}/explain, drawn as a timeline; a slower earlier answer is dropped. */
  function explainViewer(e) {
    e.preventDefault();
    var form = e.target, user = form.user.value.trim(), out = $("explain-result"), list = $("explain-entries");
    if (!user) return;
    var mine = ++explaining;
    form.querySelector("button").disabled = true;
    out.className = "result";
    out.textContent = "查询中… Looking up " + user;
    list.replaceChildren();
    C.api("/v1/admin/users/" + encodeURIComponent(user) + "/explain")
      .then(function (body) {
        if (mine !== explaining) return;
        var lastDay = null;
        out.className = "result" + (body.entries.length ? "" : " empty");
        out.textContent = explainSummary(body.user, body.entries);
        list.replaceChildren.apply(list, body.entries.map(function (entry) {
          var day = new Date(entry.ts * 1000).toLocaleDateString("zh-CN");
          var shown = day !== lastDay ? day : null;
          lastDay = day;
          return explainEntry(entry, shown);
        }));
      })
      .catch(function (err) {
        if (mine !== explaining) return;
        out.className = "result err";
        out.textContent = "查询失败 Failed: " + err.message;
      })
      .then(function () { if (mine === explaining) form.querySelector("button").disabled = false; });
  }

  function start() {
    charts();
    $("present").key.value = newKey();
    $("present").addEventListener("submit", sendToPresent);
    $("host-token").addEventListener("submit", mintHostToken);
    $("explain").addEventListener("submit", explainViewer);
    $("dl-refresh").onclick = loadDeadLetters;
    $("campaign-select").addEventListener("change", picking);
    lcCampaignEditor.start();
    C.api("/v1/admin/stats").then(render).catch(function () { /* the feed brings the next one */ });
    loadResults();
    setInterval(loadResults, 10000);
    C.feed(function (m) { if (m.type === "stats") render(m); }, C.setOnline);
  }

  C.signIn({
    roles: ["operator"],
    title: "请输入运营密钥 <small>Operator API key</small>",
    hint: "启动服务时的 LIVECOUPON_API_KEY · the operator key livecoupon serve was started with",
    placeholder: "运营密钥 Operator key",
    refused: "密钥无效，请重新输入 · The key was refused",
    wrongRole: "运营台需要运营密钥（主播令牌只能打开主播台）· The operator console needs the operator key",
    expired: "登录已过期，请重新输入密钥 · Signed out: enter the key again",
    ready: start
  });
})();
