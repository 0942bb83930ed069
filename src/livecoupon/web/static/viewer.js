/* The demo viewer page: sign in with a viewer token, the widget, chat, and "我的券 My coupons".
 *
 * The token is pasted into the sign-in form (never read from this page's URL) and kept in this
 * tab's sessionStorage; every call carries it in a header, and the widget's socket in its own
 * URL. Who the viewer is comes from the token. Joins and heartbeats are the live platform's
 * business (server to server), so the page posts none: it only chats, as the token's user.
 */
(function () {
  "use strict";
  var room = new URLSearchParams(location.search).get("room") || "room-1";
  var TOKEN_STORE = "livecoupon:viewer-token";
  var STATES = { issued: "可用 Available", reserved: "已锁定 Reserved", redeemed: "已使用 Used", expired: "已过期 Expired" };
  var $ = function (id) { return document.getElementById(id); };
  var token = null, user = null, widget = null, refresh = null;

  /** A token put in the address bar by an old link: drop it from the URL (and history) unread. */
  function scrubUrl() {
    var url = new URL(location.href), dirty = false;
    ["token", "key"].forEach(function (name) {
      if (url.searchParams.has(name)) { url.searchParams.delete(name); dirty = true; }
    });
    if (dirty) history.replaceState(null, "", url.href);
  }

  /** A JWT's claims, read for display only: the service checks the signature on every call. */
  function claims(jwt) {
    var parts = String(jwt).split(".");
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
      b64 += "===".slice((b64.length + 3) % 4);
      var bytes = Uint8Array.from(atob(b64), function (ch) { return ch.charCodeAt(0); });
      var body = JSON.parse(new TextDecoder().decode(bytes));
      return body && typeof body === "object" ? body : null;
    } catch (e) {
      return null;
    }
  }

  /** fetch as the signed-in viewer; resolves the JSON body, rejects with the server's message. */
  function call(path, init) {
    init = init || {};
    init.headers = Object.assign({ Authorization: "Bearer " + token }, init.headers);
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) return data;
        if (r.status === 401) signOut("令牌已失效，请重新登录 · The token was refused: sign in again");
        var error = new Error((data.error && data.error.message) || "HTTP " + r.status);
        error.status = r.status;
        throw error;
      });
    });
  }

  /** Check a pasted token (its shape here, its signature at GET /v1/session), then enter the room. */
  function signIn(candidate) {
    var c = claims(candidate);
    if (!c || typeof c.sub !== "string" || !c.sub) {
      return Promise.reject(new Error("这不是观众令牌 · This is not a viewer token"));
    }
    if (typeof c.exp === "number" && c.exp * 1000 < Date.now()) {
      return Promise.reject(new Error("令牌已过期 · The token has expired"));
    }
    return fetch("/v1/session", { headers: { Authorization: "Bearer " + candidate } }).then(function (r) {
      if (r.status === 401) throw new Error("令牌无效或已过期 · The token was refused");
      if (!r.ok) throw new Error("登录失败 · Sign-in failed: HTTP " + r.status);
      return r.json();
    }).then(function (who) {
      if (who.role !== "viewer" || who.user !== c.sub) throw new Error("这不是观众令牌 · This is not a viewer token");
      enter(candidate, c);
    });
  }

  function enter(t, c) {
    token = t;
    user = c.sub;
    sessionStorage.setItem(TOKEN_STORE, t);
    $("signin").hidden = true;
    $("signin").token.value = "";
    var until = c.exp ? " · 令牌有效至 Token valid until " + new Date(c.exp * 1000).toLocaleTimeString("zh-CN", { hour12: false }) : "";
    $("who").textContent = "观众 Viewer: " + user + " · 直播间 Room: " + room + until;
    $("signout").hidden = false;
    widget = LiveCoupon.init({ room: room, token: t, mount: $("dock"), onCoupon: pick, onAuthError: refused });
    window.livecoupon = widget;
    loadCoupons();
    refresh = setInterval(loadCoupons, 30000);
  }

  function refused(code) {
    signOut(code === 4403 ? "这个令牌不能进入本直播间 · This token does not open this room"
      : "令牌已失效，请重新登录 · The token was refused: sign in again");
  }

  /** Forget the token and show the sign-in form (signed out, or the service refused the token). */
  function signOut(message) {
    token = user = null;
    sessionStorage.removeItem(TOKEN_STORE);
    clearInterval(refresh);
    if (widget) { widget.close(); widget = window.livecoupon = null; }
    $("who").textContent = "";
    $("signout").hidden = true;
    $("coupons").innerHTML = '<div class="empty">登录后显示你的券 · Sign in to see your coupons</div>';
    showForm(message);
  }

  function showForm(message) {
    var form = $("signin");
    $("signin-error").textContent = message || "";
    form.hidden = false;
    form.token.focus();
  }

  function say(who, text, cls) {
    var line = document.createElement("div");
    line.className = "msg" + (cls ? " " + cls : "");
    if (who) { var b = document.createElement("b"); b.textContent = who; line.append(b); }
    line.append(document.createTextNode(text));
    var box = $("msgs");
    box.append(line);
    while (box.children.length > 30) box.firstChild.remove();
    return line;
  }

  /** A chat line, as the token's user: POST /v1/rooms/{room}/comments (the service stamps the time). The line
   * shows as sending until the service takes it; one it refuses stays, marked 未发送 Not sent. */
  function comment(text) {
    text = text.trim();
    if (!text || !token) return;
    var line = say(user + "：", text, "pending");
    call("/v1/rooms/" + encodeURIComponent(room) + "/comments", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text })
    }).then(function () {
      line.classList.remove("pending");
    }, function (err) {
      line.classList.replace("pending", "failed");
      var tag = document.createElement("small");
      tag.textContent = "未发送 · Not sent";
      line.append(tag);
      if (err.status === 401) return; // the sign-in form says why
      toast(bilingual(err.status === 429 ? ["发言太快了", "Too fast"] : ["发送失败", "Not sent"],
        err.status ? err.message : "连不上服务 / cannot reach the service"));
    });
  }

  /** "发送失败：中文 · Not sent: English" from a label and the server's "中文 / English" message (or an
   * English-only one: "发送失败 · Not sent: English"). */
  function bilingual(label, message) {
    var cut = message.indexOf(" / "), zh = message.slice(0, cut);
    if (cut < 0 || !/[\u3400-\u9fff]/.test(zh)) return label[0] + " · " + label[1] + ": " + message;
    return label[0] + "：" + zh + " · " + label[1] + ": " + message.slice(cut + 3);
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
    var until = new Date(c.expires_at).toLocaleString("zh-CN", { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
    node.innerHTML = '<div class="val"><b>' + value + '</b><small></small></div><div class="body">' +
      '<div class="t"><em></em><span class="state-' + c.state + '"></span></div><div class="m"></div></div>';
    node.querySelector(".val > small").textContent = LiveCoupon.terms.condition(c);
    node.querySelector(".t em").textContent = c.title;
    node.querySelector(".t span").textContent = STATES[c.state] || c.state;
    node.querySelector(".m").textContent = "有效期至 Valid until " + until + " · " + LiveCoupon.terms.scope(c.scope);
    return node;
  }

  function loadCoupons() {
    if (!token) return Promise.resolve();
    return call("/v1/users/" + encodeURIComponent(user) + "/coupons").then(function (body) {
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

  scrubUrl();
  $("room-name").textContent = room;
  $("say").addEventListener("submit", function (e) { e.preventDefault(); comment($("text").value); $("text").value = ""; });
  $("chips").addEventListener("click", function (e) { if (e.target.tagName === "BUTTON") comment(e.target.textContent); });
  $("signout").addEventListener("click", function () { signOut(); });
  $("signin").addEventListener("submit", function (e) {
    e.preventDefault();
    var form = e.target, button = form.querySelector("button");
    button.disabled = true;
    signIn(form.token.value.trim()).catch(function (err) { showForm(err.message); })
      .then(function () { button.disabled = false; });
  });
  document.addEventListener("livecoupon:coupon", function (e) {
    say("", "【券】" + e.detail.title + " 已到账 · coupon received", "sys");
    loadCoupons();
  });

  say("", "欢迎来到直播间，文明发言 · Welcome to the live room", "sys");
  var stored = sessionStorage.getItem(TOKEN_STORE);
  if (stored) signIn(stored).catch(function (err) { signOut(err.message); });
  else showForm();
})();
