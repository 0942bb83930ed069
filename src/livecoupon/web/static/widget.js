/*!
 * livecoupon widget — 直播间优惠券弹窗 / live-room coupon popup. No dependencies.
 *
 *   <script src="https://coupons.example.com/web/widget.js"></script>
 *   <script>LiveCoupon.init({room: "room-1", token: viewerToken, onCoupon: c => openCheckout(c.coupon_id)})</script>
 *
 * Options: room, token (required: the viewer's token from the merchant's backend, a JWT whose sub
 * is the user; or a function returning the current one, read on every connect); user (optional:
 * must be the token's sub); base (service URL, default: where this script came from);
 * onCoupon(coupon) on "立即使用"; onConnect() each time the socket opens; onAuthError(code, reason)
 * when the service refuses the token (4401 invalid or expired, 4403 another user's): the widget
 * stops, and a new one starts with a fresh token; mount (element for the do-not-disturb switch,
 * default: fixed bottom-right); dndMinutes (how long do-not-disturb lasts, default 60);
 * autoCloseMs (default 15000; 0 keeps each popup until closed). DOM events bubble to document:
 * "livecoupon:coupon" (a popup is shown) and "livecoupon:use" (立即使用), detail = the coupon.
 * See docs/web.md.
 */
(function (global) {
  "use strict";

  var DND_KEY = "livecoupon:dnd-until";
  var P = "lcw-"; // class prefix: nothing here touches the host page's own styles
  var scriptOrigin = (function () {
    var s = document.currentScript;
    try { return s && s.src ? new URL(s.src, location.href).origin : location.origin; } catch (e) { return location.origin; }
  })();

  var CSS = [
    ".lcw-overlay{position:fixed;inset:0;z-index:2147483000;display:flex;align-items:center;justify-content:center;",
    "background:rgba(20,8,8,.38);font:14px/1.4 -apple-system,'PingFang SC','Noto Sans CJK SC','Microsoft YaHei',sans-serif;",
    "animation:lcw-fade .18s ease-out}",
    ".lcw-card{position:relative;width:300px;max-width:86vw;border-radius:20px;overflow:hidden;color:#3a1a10;",
    "background:linear-gradient(180deg,#ff3b30 0,#ff5a36 38%,#fff4ec 38.1%,#fff 100%);",
    "box-shadow:0 18px 50px rgba(120,20,0,.45);animation:lcw-pop .32s cubic-bezier(.2,1.4,.4,1)}",
    ".lcw-x{position:absolute;top:8px;right:10px;width:28px;height:28px;border:0;border-radius:50%;cursor:pointer;",
    "background:rgba(255,255,255,.22);color:#fff;font-size:18px;line-height:28px;padding:0}",
    ".lcw-head{padding:18px 18px 12px;text-align:center;color:#fff}",
    ".lcw-h1{font-size:20px;font-weight:800;letter-spacing:1px;text-shadow:0 1px 2px rgba(120,0,0,.35)}",
    ".lcw-h2{font-size:11px;opacity:.85;text-transform:uppercase;letter-spacing:.5px}",
    ".lcw-tag{display:inline-block;margin-top:6px;padding:1px 8px;border-radius:9px;background:#ffd84d;color:#8a3a00;font-size:11px}",
    ".lcw-ticket{display:flex;margin:0 14px;border-radius:12px;background:#fff;box-shadow:0 4px 14px rgba(255,80,40,.18);",
    "border:1px solid #ffd9c9}",
    ".lcw-value{flex:0 0 104px;display:flex;flex-direction:column;align-items:center;justify-content:center;",
    "padding:12px 4px;color:#ff2d1a;border-right:2px dashed #ffd0bd}",
    ".lcw-amount{font-size:34px;font-weight:800;line-height:1.05;white-space:nowrap}",
    ".lcw-amount small{font-size:16px;font-weight:700}",
    ".lcw-cond{margin-top:2px;font-size:12px;color:#b4533a}",
    ".lcw-info{flex:1;min-width:0;padding:12px 12px 10px}",
    ".lcw-title{font-size:15px;font-weight:700;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
    ".lcw-scope{font-size:12px;color:#8c6f66;margin-top:2px}",
    ".lcw-timer{margin:10px auto 0;width:max-content;padding:2px 10px;border-radius:10px;background:#fff0e8;",
    "font-size:12px;color:#ff4d1a}",
    ".lcw-timer b{font-variant-numeric:tabular-nums;font-size:13px}",
    ".lcw-reason{margin:12px 18px 0;font-size:13px;color:#5a3a30;text-align:center}",
    ".lcw-reason small{display:block;font-size:11px;color:#a08a83}",
    ".lcw-use{display:block;width:calc(100% - 36px);margin:14px 18px 18px;padding:11px 0;border:0;border-radius:24px;",
    "cursor:pointer;color:#fff;font-size:16px;font-weight:800;letter-spacing:2px;",
    "background:linear-gradient(90deg,#ff7a18,#ff2d55);box-shadow:0 6px 16px rgba(255,60,40,.35)}",
    ".lcw-use small{font-size:11px;font-weight:600;letter-spacing:0;opacity:.9;margin-left:4px}",
    ".lcw-use:disabled{background:#ccc;box-shadow:none;cursor:default}",
    ".lcw-dnd{position:fixed;right:16px;bottom:16px;z-index:2147482999;display:inline-flex;align-items:center;gap:5px;",
    "padding:6px 11px;border:0;border-radius:16px;cursor:pointer;font:12px/1.2 -apple-system,'PingFang SC','Noto Sans CJK SC',sans-serif;",
    "color:#fff;background:rgba(0,0,0,.45);backdrop-filter:blur(6px)}",
    ".lcw-dnd.lcw-docked{position:relative;right:auto;bottom:auto}",
    ".lcw-dnd svg{width:14px;height:14px;fill:currentColor}",
    ".lcw-dnd[aria-pressed=true]{color:#ffd6c9}",
    ".lcw-badge{min-width:16px;padding:0 4px;border-radius:8px;background:#ff2d1a;color:#fff;font-weight:700;",
    "font-size:11px;line-height:16px;text-align:center}",
    ".lcw-badge[hidden]{display:none}",
    "@keyframes lcw-pop{from{transform:scale(.6);opacity:0}to{transform:none;opacity:1}}",
    "@keyframes lcw-fade{from{opacity:0}}"
  ].join("");

  var BELL = "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z";
  var BELL_OFF = BELL + "M3.3 2.3 2 3.6l18.4 18.4 1.3-1.3Z";

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls.split(" ").map(function (c) { return P + c; }).join(" ");
    if (text != null) node.textContent = text;
    return node;
  }

  function injectStyle() {
    if (document.getElementById(P + "style")) return;
    var style = el("style");
    style.id = P + "style";
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function num(x) { return String(Math.round(Number(x) * 100) / 100); }

  /** ¥10 · 8.5折, and the condition under it: 满99可用 · over ¥99 / 无门槛 · no minimum (a percent coupon's cap
   * joins each language: 满99可用，最高减30 · over ¥99, up to ¥30 off). */
  function faceValue(c) {
    if (c.kind === "percent") return { big: num((100 - c.percent) / 10), unit: "折", prefix: "" };
    return { big: num(c.amount), unit: "", prefix: "¥" };
  }

  function condition(c) {
    var over = Number(c.threshold) > 0, t = num(c.threshold);
    var zh = over ? "满" + t + "可用" : "无门槛", en = over ? "over ¥" + t : "no minimum";
    if (c.kind === "percent" && c.max_discount != null) {
      zh += "，最高减" + num(c.max_discount);
      en += ", up to ¥" + num(c.max_discount) + " off";
    }
    return zh + " · " + en;
  }

  function scopeWords(scope) {
    if (!scope || scope === "all") return "全场通用 · All products";
    if (scope.products && scope.products.length) return "指定商品可用 · Selected products";
    if (scope.categories && scope.categories.length) return "指定品类可用 · Selected categories";
    return "部分商品可用 · Some products";
  }

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000)), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60;
    var mmss = (m < 10 ? "0" : "") + m + ":" + (s % 60 < 10 ? "0" : "") + (s % 60);
    return h ? h + ":" + mmss : mmss;
  }

  var audio = null;
  function unlockAudio() {
    var AC = global.AudioContext || global.webkitAudioContext, ua = navigator.userActivation;
    if (!AC || (!audio && ua && !ua.hasBeenActive)) return null; // browsers only let sound start after a tap
    audio = audio || new AC();
    if (audio.state === "suspended") audio.resume().catch(function () {});
    return audio;
  }

  /** A short rising "coin" chime: three sine notes with soft attack and decay. */
  function chime() {
    var ctx;
    try { ctx = unlockAudio(); } catch (e) { return; }
    if (!ctx) return;
    var t0 = ctx.currentTime + 0.02;
    [987.77, 1318.51, 1975.53].forEach(function (freq, i) {
      var osc = ctx.createOscillator(), gain = ctx.createGain(), t = t0 + i * 0.085;
      osc.type = i === 2 ? "triangle" : "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.22, t + 0.015);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.45);
      osc.connect(gain);
      gain.connect(ctx.destination);
      osc.start(t);
      osc.stop(t + 0.5);
    });
  }

  function Widget(opts) {
    if (!opts || !opts.room || !opts.token) throw new Error("LiveCoupon.init needs {room, token}");
    this.opts = opts;
    this.base = String(opts.base || scriptOrigin).replace(/\/+$/, "");
    this.dndMinutes = opts.dndMinutes || 60;
    this.autoCloseMs = opts.autoCloseMs == null ? 15000 : opts.autoCloseMs;
    this.seen = {};      // coupon_id -> "queued" | "held" | "shown"
    this.queue = [];     // waiting for their popup, one at a time
    this.held = [];      // arrived during do-not-disturb
    this.current = null; // the popup on screen: {coupon, node, overlay, ticker, auto}
    this.retries = 0;
    this.closed = false;
    this.skew = 0;       // server clock minus ours, learned from live pushes
    injectStyle();
    this._buildSwitch();
    this._armDnd();
    this._connect();
    var unlock = function () { try { unlockAudio(); } catch (e) { /* no audio: stay silent */ } };
    document.addEventListener("pointerdown", unlock, { once: true, capture: true });
  }

  Widget.prototype = {
    /** Is do-not-disturb on? */
    muted: function () { return this.dndUntil > Date.now(); },

    /** Turn do-not-disturb on (for `minutes`, default dndMinutes) or off. */
    setMuted: function (on, minutes) {
      this.dndUntil = on ? Date.now() + (minutes || this.dndMinutes) * 60000 : 0;
      try {
        if (on) localStorage.setItem(DND_KEY, String(this.dndUntil)); else localStorage.removeItem(DND_KEY);
      } catch (e) { /* storage blocked: the switch lasts for this page only */ }
      this._send(on ? { type: "mute", minutes: this._minutesLeft() } : { type: "unmute" });
      if (on) this.queue.slice().forEach(this._hold, this);
      this._armDnd();
      if (!on) this._release();
    },

    /** Stop: close the socket and any popup. */
    close: function () {
      this.closed = true;
      clearTimeout(this.reconnect);
      clearTimeout(this.dndTimer);
      if (this.ws) this.ws.close();
      if (this.current) this._dismiss();
      this.toggle.remove();
    },

    _connect: function () {
      var self = this, o = this.opts;
      var token = typeof o.token === "function" ? o.token() : o.token;
      var url = this.base.replace(/^http/, "ws") + "/v1/rooms/" + encodeURIComponent(o.room) +
        "/live?token=" + encodeURIComponent(token) + (o.user ? "&user=" + encodeURIComponent(o.user) : "") +
        "&ack=1"; // a popup counts as delivered once acked here, when shown: not once the socket carried it
      var ws = this.ws = new WebSocket(url);
      ws.onopen = function () {
        self.retries = 0;
        self.toggle.dataset.online = "1";
        if (self.muted()) self._send({ type: "mute", minutes: self._minutesLeft() });
        if (self.opts.onConnect) self.opts.onConnect();
      };
      ws.onmessage = function (e) {
        var m;
        try { m = JSON.parse(e.data); } catch (err) { return; }
        if (m && m.type === "coupon" && m.coupon_id) self._receive(m);
        else if (m && m.type === "held" && m.coupon_id) self._hold(m);
      };
      ws.onclose = function (e) {
        self.toggle.dataset.online = "0";
        if (self.closed) return;
        if (e.code === 4401 || e.code === 4403) { // retrying the same token cannot help
          self.close();
          if (self.opts.onAuthError) self.opts.onAuthError(e.code, e.reason);
          return;
        }
        var floor = e.code === 4429 ? 5000 : 0; // too many tabs open, or too fast: back off further
        var delay = Math.max(floor, Math.min(15000, 500 * Math.pow(2, self.retries++))) * (0.75 + Math.random() / 2);
        self.reconnect = setTimeout(function () { self._connect(); }, delay);
      };
    },

    _send: function (message) {
      if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
    },

    _receive: function (c) {
      var state = this.seen[c.coupon_id];
      if (state === "shown") return this._send({ type: "ack", coupon_id: c.coupon_id }); // an ack that got lost
      if (!c.missed && c.issued_at_ms) this.skew = c.issued_at_ms - Date.now();
      if (state === "held") { // the full coupon for a "held" notice: keep it for later
        this.held = this.held.map(function (h) { return h.coupon_id === c.coupon_id ? c : h; });
        if (!this.muted()) this._release();
        return;
      }
      if (state) return;
      if (this.muted()) return this._hold(c);
      this.seen[c.coupon_id] = "queued";
      this.queue.push(c);
      this._next();
    },

    _hold: function (c) {
      if (this.seen[c.coupon_id] && this.seen[c.coupon_id] !== "queued") return;
      this.queue = this.queue.filter(function (q) { return q.coupon_id !== c.coupon_id; });
      this.seen[c.coupon_id] = "held";
      this.held.push(c);
      this._renderSwitch();
    },

    /** Do-not-disturb ended: what arrived meanwhile pops up now (notices wait for the server's resend). */
    _release: function () {
      var self = this;
      this.held = this.held.filter(function (c) {
        if (c.type !== "coupon") return true;
        self.seen[c.coupon_id] = "queued";
        self.queue.push(c);
        return false;
      });
      this._renderSwitch();
      this._next();
    },

    _next: function () {
      if (this.closed || this.current || this.muted()) return;
      var c;
      while ((c = this.queue.shift()) && this._left(c) <= 0) this.seen[c.coupon_id] = "expired"; // left to the list
      if (!c) return;
      this.seen[c.coupon_id] = "shown";
      this._show(c);
      this._send({ type: "ack", coupon_id: c.coupon_id });
      chime();
      this.current.node.dispatchEvent(new CustomEvent("livecoupon:coupon", { detail: c, bubbles: true }));
    },

    _show: function (c) {
      var self = this, face = faceValue(c);
      var overlay = el("div", "overlay"), card = el("div", "card");
      card.setAttribute("role", "dialog");
      card.setAttribute("aria-label", "专属优惠券已到账 Your exclusive coupon has arrived");
      card.dataset.couponId = c.coupon_id;
      var x = el("button", "x", "×");
      x.setAttribute("aria-label", "关闭 Close");
      var head = el("div", "head");
      head.append(el("div", "h1", "专属优惠券已到账"), el("div", "h2", "Your exclusive coupon has arrived"));
      if (c.missed) head.append(el("div", "tag", "离线期间到账 · While you were away"));
      var amount = el("div", "amount");
      if (face.prefix) amount.append(el("small", null, face.prefix));
      amount.append(document.createTextNode(face.big));
      if (face.unit) amount.append(el("small", null, face.unit));
      var value = el("div", "value");
      value.append(amount, el("div", "cond", condition(c)));
      var timer = el("div", "timer");
      var info = el("div", "info");
      info.append(el("div", "title", c.title || "直播间优惠券"), el("div", "scope", scopeWords(c.scope)));
      var ticket = el("div", "ticket");
      ticket.append(value, info);
      var words = String(c.reason || "").split(" / ");
      var reason = el("p", "reason", words[0]);
      if (words[1]) reason.append(el("small", null, words[1]));
      var use = el("button", "use", "立即使用");
      use.append(el("small", null, "Use now"));
      card.append(x, head, ticket, timer, reason, use);
      overlay.append(card);
      document.body.appendChild(overlay);

      var tick = function () {
        var left = self._left(c);
        timer.textContent = "";
        if (left <= 0) { timer.textContent = "已过期 · Expired"; use.disabled = true; return; }
        timer.append(el("b", null, clock(left)), document.createTextNode(" 后过期 · Expires in " + clock(left)));
      };
      tick();
      this.current = { coupon: c, node: card, overlay: overlay, ticker: setInterval(tick, 1000),
        auto: this.autoCloseMs ? setTimeout(function () { self._dismiss(); }, this.autoCloseMs) : null };
      x.onclick = function () { self._dismiss(); };
      overlay.onclick = function (e) { if (e.target === overlay) self._dismiss(); };
      use.onclick = function () {
        card.dispatchEvent(new CustomEvent("livecoupon:use", { detail: c, bubbles: true }));
        if (self.opts.onCoupon) self.opts.onCoupon(c);
        self._dismiss();
      };
    },

    /** Milliseconds until the coupon expires, by the server's clock. */
    _left: function (c) {
      return (Number(c.expires_at_ms) || Date.parse(c.expires_at)) - (Date.now() + this.skew);
    },

    _dismiss: function () {
      var cur = this.current;
      clearInterval(cur.ticker);
      clearTimeout(cur.auto);
      cur.overlay.remove();
      this.current = null;
      var self = this;
      setTimeout(function () { self._next(); }, 250);
    },

    _buildSwitch: function () {
      var self = this, b = this.toggle = el("button", "dnd");
      b.type = "button";
      b.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path/></svg><span></span>';
      this.badge = el("span", "badge");
      b.append(this.badge);
      if (this.opts.mount) { b.classList.add(P + "docked"); this.opts.mount.appendChild(b); } else document.body.appendChild(b);
      b.onclick = function () { self.setMuted(!self.muted()); };
    },

    _renderSwitch: function () {
      var on = this.muted(), b = this.toggle;
      b.setAttribute("aria-pressed", String(on));
      b.title = on ? "免打扰已开启，点击恢复券提醒 / Do not disturb is on" : "点击开启免打扰 / Turn on do not disturb";
      b.querySelector("path").setAttribute("d", on ? BELL_OFF : BELL);
      b.querySelector("span").textContent = on ? "免打扰 DND" : "券提醒 On";
      this.badge.textContent = String(this.held.length);
      this.badge.hidden = !this.held.length;
    },

    /** Read the persisted switch and end do-not-disturb by itself when its time is up. */
    _armDnd: function () {
      var self = this;
      if (this.dndUntil == null) {
        try { this.dndUntil = Number(localStorage.getItem(DND_KEY)) || 0; } catch (e) { this.dndUntil = 0; }
      }
      clearTimeout(this.dndTimer);
      if (this.muted()) this.dndTimer = setTimeout(function () { self.setMuted(false); }, Math.min(this.dndUntil - Date.now(), 2147483647));
      this._renderSwitch();
    },

    _minutesLeft: function () { return Math.max(1, Math.ceil((this.dndUntil - Date.now()) / 60000)); }
  };

  global.LiveCoupon = {
    version: "1.0.0",
    /** Start the widget for one viewer in one room; returns {muted(), setMuted(on, minutes?), close()}. */
    init: function (opts) { return new Widget(opts); },
    /** A coupon's terms in the popup's words, for pages that list coupons too (viewer.html's "我的券"). */
    terms: { condition: condition, scope: scopeWords }
  };
})(window);
