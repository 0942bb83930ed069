/* What the host and operator consoles share: signing in, API calls, the live socket, words.
 *
 * A console never holds a credential: the key (or a host's token) typed into the sign-in form
 * goes once, in a header, to POST /v1/session, which answers with an HttpOnly session cookie.
 * Every later call and the console socket ride on that cookie; nothing goes in a URL or storage.
 */
(function (global) {
  "use strict";

  var WHEN = {
    first_visit: "新人券 First visit", dwell: "观望鼓励 Dwell", online_reached: "满人福利 Milestone",
    host_says: "发券口令 Passphrase", flash_sale: "限量秒杀 Flash sale", comment: "评论口令 Comment", manual: "手动发券 Manual"
  };
  var REASONS = {
    holdout: "对照组 Holdout", no_offer: "策略不发 No offer", blocked: "黑名单 Blocked", risk: "风险过高 Risk",
    device_cap: "同设备上限 Device cap", per_user_cap: "每人上限 Per-user cap", min_interval: "发券间隔 Min interval",
    template_expired: "券已失效 Template expired", out_of_stock: "库存不足 Out of stock",
    over_budget: "预算用尽 Over budget", paused: "已暂停 Paused", blocked: "已拉黑 Blocked",
    risk: "风控拦截 Risk", device_cap: "设备上限 Device cap"
  };
  var ROLE_WORDS = { operator: "运营 Operator", host: "主播 Host" };

  var gate = null;     // the page's sign-in settings (see signIn)
  var session = null;  // {role, user, room} of the signed-in console
  var waiting = [];    // what resumes once signed in again (the feed)

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  /** Old links put the key in the address bar: take it out of the URL (and history) unread. */
  function scrubUrl() {
    var url = new URL(location.href), dirty = false;
    ["key", "token"].forEach(function (name) {
      if (url.searchParams.has(name)) { url.searchParams.delete(name); dirty = true; }
    });
    if (dirty) history.replaceState(null, "", url.href);
  }

  /** The server's {error: {code, message, field}} as an Error carrying status, code and field. */
  function problem(r, data) {
    var body = (data && data.error) || {};
    var error = new Error(body.message || "HTTP " + r.status);
    error.status = r.status;
    error.code = body.code || null;
    error.field = body.field || null;
    return error;
  }

  function json(r) {
    return r.json().catch(function () { return {}; }).then(function (data) {
      if (!r.ok) throw problem(r, data);
      return data;
    });
  }

  /** Who a credential is (GET /v1/session with it in a header; the cookie's session without). */
  function whoIs(credential) {
    var init = credential ? { headers: { Authorization: "Bearer " + credential } } : {};
    return fetch("/v1/session", init).then(json);
  }

  function accepts(who) { return who && gate.roles.indexOf(who.role) >= 0; }

  function signedIn(who) {
    session = who;
    var form = document.getElementById("keyform");
    if (form) form.remove();
    var badge = document.getElementById("who");
    if (badge) {
      badge.textContent = (ROLE_WORDS[who.role] || who.role) + (who.room ? " · " + who.room : "");
      badge.hidden = false;
    }
    var out = document.getElementById("signout");
    if (out) { out.hidden = false; out.onclick = signOut; }
    var first = gate.ready;
    gate.ready = null;
    if (first) first(who);
    waiting.splice(0).forEach(function (resume) { resume(who); });
  }

  /** Show the sign-in form (nothing signed in, or the server refused the session). */
  function askKey(message) {
    session = null;
    var form = document.getElementById("keyform");
    if (form) {
      if (message) say(form, message);
      return;
    }
    form = el("form", "keyform");
    form.id = "keyform";
    form.innerHTML = '<div class="card"><h2></h2><p></p><input name="key" type="password" autocomplete="off">' +
      '<button class="btn">进入 Sign in</button></div>';
    form.querySelector("h2").innerHTML = gate.title;
    say(form, message || gate.hint);
    form.key.placeholder = gate.placeholder;
    form.onsubmit = function (e) {
      e.preventDefault();
      var credential = form.key.value.trim(), button = form.querySelector("button");
      if (!credential) return;
      button.disabled = true;
      exchange(credential).then(signedIn, function (err) {
        say(form, err.message);
        form.key.select();
      }).then(function () { button.disabled = false; });
    };
    document.body.append(form);
    form.key.focus();
  }

  /** The form's line: the hint, or (in red) why the last try failed. */
  function say(form, message) {
    var p = form.querySelector("p");
    p.textContent = message;
    p.className = message === gate.hint ? "" : "err";
  }

  /** Check the credential opens this console, then trade it for the session cookie. */
  function exchange(credential) {
    return whoIs(credential).then(function (who) {
      if (!accepts(who)) throw new Error(gate.wrongRole);
      return fetch("/v1/session", { method: "POST", headers: { Authorization: "Bearer " + credential } }).then(json);
    }, function (err) {
      throw err.status === 401 ? new Error(gate.refused) : err;
    });
  }

  function signOut() {
    fetch("/v1/session", { method: "DELETE" }).then(function () {
      var out = document.getElementById("signout"), badge = document.getElementById("who");
      if (out) out.hidden = true;
      if (badge) badge.hidden = true;
      askKey(gate.hint);
    });
  }

  /**
   * Start a console once it is signed in: the session cookie if there is one, else the form.
   * opts: roles (which sessions open this page), title (HTML), hint, placeholder, refused,
   * wrongRole (messages), ready(session) (called once).
   */
  function signIn(opts) {
    gate = opts;
    scrubUrl();
    whoIs().then(function (who) {
      if (accepts(who)) signedIn(who); else askKey(opts.wrongRole);
    }, function () { askKey(); });
  }

  /** fetch with the session cookie; resolves the JSON body, rejects with the server's message. */
  function api(path, body) {
    var init = { headers: {} };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      if (r.status === 401) askKey(gate.expired);
      return json(r);
    });
  }

  /** The console feed (WS /v1/console/live, on the cookie), reconnecting with backoff; onState(true|false). */
  function feed(onMessage, onState) {
    var retries = 0;
    function connect() {
      var ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/v1/console/live");
      ws.onopen = function () { retries = 0; onState(true); };
      ws.onmessage = function (e) {
        try { onMessage(JSON.parse(e.data)); } catch (err) { console.error(err); }
      };
      ws.onclose = function (e) {
        onState(false);
        if (e.code === 4401 || e.code === 4403) {
          askKey(e.code === 4401 ? gate.expired : gate.wrongRole);
          return waiting.push(connect);
        }
        setTimeout(function () { session ? connect() : waiting.push(connect); },
          Math.min(10000, 500 * Math.pow(2, retries++)));
      };
    }
    connect();
  }

  function n(x) { return Number(x || 0).toLocaleString("zh-CN"); }
  function yuan(x) { return "¥" + Number(x || 0).toLocaleString("zh-CN", { maximumFractionDigits: 2 }); }
  function time(iso) { return new Date(iso).toLocaleTimeString("zh-CN", { hour12: false }); }
  function whenWords(when) { return WHEN[when] || when; }
  function reasonWords(reason) { return REASONS[reason] || reason; }
  function sum(counts) { return Object.keys(counts || {}).reduce(function (t, k) { return t + counts[k]; }, 0); }

  /** One labelled progress bar: used, of limit (null: unlimited). */
  function bar(label, used, limit, format) {
    format = format || n;
    var row = el("div", "bar");
    var pct = limit ? Math.min(100, (100 * used) / limit) : 0;
    var head = el("div", "bar-head");
    head.append(el("span", null, label), el("b", null, limit ? format(used) + " / " + format(limit) : format(used) + " · 不限 Unlimited"));
    var track = el("div", "bar-track" + (pct >= 90 ? " hot" : ""));
    var fill = el("i");
    fill.style.width = (limit ? pct : 100) + "%";
    if (!limit) track.classList.add("open");
    track.append(fill);
    row.append(head, track);
    return row;
  }

  /** Stock per template and the campaign budget, as bars. */
  function stockBars(stats) {
    var rows = [bar("预算 Budget", stats.budget.spent, stats.budget.limit, yuan)];
    Object.keys(stats.stock).forEach(function (name) {
      var s = stats.stock[name];
      rows.push(bar("库存 " + name, s.issued, s.stock));
    });
    return rows;
  }

  function setOnline(on) {
    var dot = document.getElementById("conn");
    if (!dot) return;
    dot.className = "conn " + (on ? "on" : "off");
    dot.textContent = on ? "实时 Live" : "重连中 Reconnecting";
  }

  global.lcConsole = {
    el: el, signIn: signIn, askKey: askKey, api: api, feed: feed, n: n, yuan: yuan, time: time, bar: bar,
    stockBars: stockBars, whenWords: whenWords, reasonWords: reasonWords, sum: sum, setOnline: setOnline
  };
})(window);
