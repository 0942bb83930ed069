/* The host console: read-aloud lines, the live decision feed, stock and budget.
 *
 * Where several campaigns listen to the room, each sends its own stats frame every second: the
 * three big counters are their sum (labelled, with each campaign's issued beside), stock, budget
 * and the triggers are shown campaign by campaign. */
(function () {
  "use strict";
  var C = lcConsole, $ = function (id) { return document.getElementById(id); };
  var room = "";       // a host's session knows its room; the operator may pass ?room= (a hint, not a secret)
  var MAX_ROWS = 120;
  var triggers = {};   // name -> {when, ...} from the latest stats
  var pending = [];    // decision lines waiting for the next frame
  var seen = 0;
  var STALE_MS = 3500; // a campaign whose frames stopped coming (it no longer listens to the room) drops out
  var latest = {};     // campaign -> {s, at}: its latest stats frame, and when it came

  function split(text) {
    var i = text.indexOf(" / ");
    return i < 0 ? [text, ""] : [text.slice(0, i), text.slice(i + 3)];
  }

  function announce(m) {
    var say = $("say"), words = split(m.text);
    if (say.dataset.text) {
      var prev = $("prev");
      prev.prepend(C.el("div", null, say.dataset.time + "  " + say.dataset.text));
      while (prev.children.length > 3) prev.lastChild.remove();
    }
    say.textContent = words[0];
    say.dataset.text = words[0];
    say.dataset.time = new Date().toLocaleTimeString("zh-CN", { hour12: false });
    $("say-en").textContent = words[1];
    say.classList.remove("flash");
    void say.offsetWidth; // restart the animation
    say.classList.add("flash");
  }

  function row(m) {
    var r = C.el("div", "row");
    r.dataset.trigger = m.trigger;
    var t = triggers[m.trigger] || {};
    var why = C.el("span", "why", m.trigger);
    why.append(C.el("small", null, C.whenWords(t.when || (m.trigger === "manual" ? "manual" : ""))));
    var outcome = m.issued
      ? C.el("span", "chip ok", "✓ 已发 " + (m.title || "") + " · issued")
      : C.el("span", "chip no", "✕ " + C.reasonWords(m.reason));
    r.append(C.el("time", null, C.time(m.ts)), why, C.el("span", "who", m.user), outcome);
    return r;
  }

  function flush() {
    var rows = $("rows");
    if (!pending.length) return;
    if (!seen) rows.replaceChildren();
    seen += pending.length;
    var frag = document.createDocumentFragment();
    pending.splice(0).reverse().slice(0, MAX_ROWS).forEach(function (m) { frag.append(row(m)); });
    rows.prepend(frag);
    while (rows.children.length > MAX_ROWS) rows.lastChild.remove();
    $("feed-count").textContent = C.n(seen) + " 条 lines";
  }

  function allRooms(rooms) {
    return Object.keys(rooms).reduce(function (all, name) {
      return { on_air: all.on_air || rooms[name].on_air, present: all.present + rooms[name].present };
    }, { on_air: false, present: 0 });
  }

  function triggerLines(s) {
    var own = s.triggers || {};
    return Object.keys(own).map(function (name) {
      var t = own[name], line = C.el("div", "trig");
      line.dataset.trigger = name;
      var label = C.el("span", null, name + " · " + C.whenWords(t.when));
      if (t.paused) label.append(C.el("span", "paused", "已暂停 Paused"));
      line.append(label, C.el("b", null, C.n(t.issued)));
      return line;
    });
  }

  /** ``lines(s)`` of each campaign, under its name. */
  function byCampaign(all, lines) {
    return all.map(function (s) {
      var box = C.el("div", "of");
      box.dataset.campaign = s.campaign;
      box.append(C.el("h3", null, "活动 " + s.campaign));
      box.append.apply(box, lines(s));
      return box;
    });
  }

  /** The latest frame of each campaign still sending, by id; ``s`` has just come. */
  function current(s) {
    var now = Date.now(), old = latest[s.campaign];
    // an operator's ?room= view gets the whole campaign's frames too: its room's own win while they come
    if (!s.room && old && old.s.room && now - old.at < STALE_MS) return null;
    latest[s.campaign] = { s: s, at: now };
    Object.keys(latest).forEach(function (c) { if (now - latest[c].at > STALE_MS) delete latest[c]; });
    return Object.keys(latest).sort().map(function (c) { return latest[c].s; });
  }

  function stats(s) {
    var all = current(s);
    if (!all) return;
    triggers = {};
    all.slice().reverse().forEach(function (x) { Object.assign(triggers, x.triggers || {}); }); // a shared name: the first id's
    var r = room ? (s.rooms || {})[room] || { on_air: false, present: 0 } : allRooms(s.rooms || {});
    var several = all.length > 1;
    $("onair").textContent = r.on_air ? "直播中 LIVE" : "未开播 Off air";
    $("onair").className = "pill" + (r.on_air ? " live" : "");
    $("issued").textContent = C.n(all.reduce(function (t, x) { return t + x.issued; }, 0));
    $("suppressed").textContent = C.n(all.reduce(function (t, x) { return t + C.sum(x.suppressed); }, 0));
    $("present").textContent = C.n(r.present);
    $("campaigns").hidden = !several;
    $("campaigns").textContent = several ? "以上是 " + all.length + " 个活动的合计 · Sums of " + all.length +
      " campaigns — 已发 issued: " + all.map(function (x) { return x.campaign + " " + C.n(x.issued); }).join(" · ") : "";
    $("bars").replaceChildren.apply($("bars"), several ? byCampaign(all, C.stockBars) : C.stockBars(s));
    $("triggers").replaceChildren.apply($("triggers"), several ? byCampaign(all, triggerLines) : triggerLines(s));
  }

  function receive(m) {
    if (m.type === "stats" && m.room && m.room !== room) return; // another host's room: an operator's feed has all
    if (m.room && room && m.room !== room && m.type !== "stats") return;
    if (m.type === "decision") {
      if (!pending.length) requestAnimationFrame(flush);
      if (pending.length >= MAX_ROWS) { pending.shift(); seen++; } // a hidden tab keeps only what it can show
      pending.push(m);
    } else if (m.type === "announcement") announce(m);
    else if (m.type === "stats") stats(m);
  }

  C.signIn({
    roles: ["host", "operator"],
    title: "请输入主播令牌 <small>Host token</small>",
    hint: "运营在运营台为直播间生成主播令牌（运营密钥也可以）· The operator mints it on the operator console " +
      "(the operator key works too)",
    placeholder: "主播令牌 Host token",
    refused: "令牌或密钥无效，请重新输入 · The token was refused",
    wrongRole: "这个凭证不能打开主播台 · This credential does not open the host console",
    expired: "登录已过期，请重新输入 · Signed out: sign in again",
    ready: function (session) {
      room = session.role === "host" ? session.room : new URLSearchParams(location.search).get("room") || "";
      $("room").textContent = room ? "直播间 " + room : "全部直播间 All rooms";
      $("room").hidden = false;
      C.feed(receive, C.setOnline);
    }
  });
})();
