/* The demo viewer page: the widget, a chat that posts events, and "我的券 My coupons". */
(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var room = params.get("room") || "room-1";
  var user = params.get("user") || guestName();
  var HEARTBEAT_MS = 20000;
  var STATES = { issued: "可用 Available", reserved: "已锁定 Reserved", redeemed: "已使用 Used", expired: "已过期 Expired" };
  var $ = function (id) { return document.getElementById(id); };
  var joined = false;

  function guestName() {
    var name = sessionStorage.getItem("livecoupon:guest");
    if (!name) sessionStorage.setItem("livecoupon:guest", name = "guest-" + Math.random().toString(36).slice(2, 8));
    return name;
  }

  function event(type, extra) {
    return Object.assign({ type: type, room: room, ts: Date.now() / 1000, user: user }, extra || {});
  }

  function post(events) {
    return fetch("/v1/events", { method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
      body: JSON.stringify(events) }).then(function (r) { return r.json(); });
  }

  function say(who, text, cls) {
    var line = document.createElement("div");
    line.className = "msg" + (cls ? " " + cls : "");
    if (who) { var b = document.createElement("b"); b.textContent = who; line.append(b); }
    line.append(document.createTextNode(text));
    var box = $("msgs");
    box.append(line);
    while (box.children.length > 30) box.firstChild.remove();
  }

  function comment(text) {
    text = text.trim();
    if (!text) return;
    say(user + "：", text);
    post([event("comment", { text: text })]);
  }

  function toast(text) {
    var t = $("toast");
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.classList.remove("show"); }, 2600);
  }

  function num(x) { return String(Math.round(Number(x) * 100) / 100); }

  function ticket(c) {
    var node = document.createElement("div");
    node.className = "ticket" + (c.state === "issued" ? "" : " off");
    node.dataset.couponId = c.coupon_id;
    var value = c.kind === "percent" ? num((100 - c.percent) / 10) + "<small>折</small>" : "<small>¥</small>" + num(c.amount);
    var cond = Number(c.threshold) > 0 ? "满" + num(c.threshold) + "可用" : "无门槛";
    var until = new Date(c.expires_at).toLocaleString("zh-CN", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
    node.innerHTML = '<div class="val"><b>' + value + '</b><small></small></div><div class="body">' +
      '<div class="t"><em></em><span class="state-' + c.state + '"></span></div><div class="m"></div></div>';
    node.querySelector(".val > small").textContent = cond;
    node.querySelector(".t em").textContent = c.title;
    node.querySelector(".t span").textContent = STATES[c.state] || c.state;
    node.querySelector(".m").textContent = "有效期至 " + until + (c.scope === "all" ? " · 全场通用" : " · 指定商品");
    return node;
  }

  function loadCoupons() {
    return fetch("/v1/users/" + encodeURIComponent(user) + "/coupons").then(function (r) { return r.json(); })
      .then(function (body) {
        var order = { issued: 0, reserved: 1, redeemed: 2, expired: 3 };
        var list = (body.coupons || []).slice().sort(function (a, b) {
          return (order[a.state] - order[b.state]) || (a.issued_at < b.issued_at ? 1 : -1);
        });
        var box = $("coupons");
        box.replaceChildren.apply(box, list.map(ticket));
        if (!list.length) box.innerHTML = '<div class="empty">还没有券，多看一会儿吧 · No coupons yet</div>';
      }).catch(function () { /* the next refresh tries again */ });
  }

  function pick(c) {
    loadCoupons().then(function () {
      var node = document.querySelector('.ticket[data-coupon-id="' + c.coupon_id + '"]');
      if (node) { node.classList.add("picked"); node.scrollIntoView({ block: "nearest", behavior: "smooth" }); }
    });
    toast("已选择「" + c.title + "」，下单自动抵扣 · Applied at checkout");
  }

  function join() {
    if (joined) return;
    joined = true;
    post([event("join")]).then(function () { document.body.dataset.joined = "1"; });
    setInterval(function () { post([event("heartbeat")]); }, HEARTBEAT_MS);
  }

  $("room-name").textContent = room;
  $("who").textContent = "观众 Viewer: " + user + " · 直播间 Room: " + room;
  $("say").addEventListener("submit", function (e) { e.preventDefault(); comment($("text").value); $("text").value = ""; });
  $("chips").addEventListener("click", function (e) { if (e.target.tagName === "BUTTON") comment(e.target.textContent); });
  document.addEventListener("livecoupon:coupon", function (e) {
    say("", "【券】" + e.detail.title + " 已到账 · coupon received", "sys");
    loadCoupons();
  });
  addEventListener("pagehide", function () { if (joined) post([event("leave")]); });

  window.livecoupon = LiveCoupon.init({ room: room, user: user, mount: $("dock"), onCoupon: pick, onConnect: join });
  say("", "欢迎来到直播间，文明发言 · Welcome to the live room", "sys");
  loadCoupons();
  setInterval(loadCoupons, 30000);
})();
