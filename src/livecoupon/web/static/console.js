/* What the host and operator consoles share: the key, API calls, the live socket, words. */
(function (global) {
  "use strict";
  var KEY_STORE = "livecoupon:key";

  var WHEN = {
    first_visit: "新人券 First visit", dwell: "观望鼓励 Dwell", online_reached: "满人福利 Milestone",
    host_says: "发券口令 Passphrase", flash_sale: "限量秒杀 Flash sale", comment: "评论口令 Comment", manual: "手动发券 Manual"
  };
  var REASONS = {
    holdout: "对照组 Holdout", per_user_cap: "每人上限 Per-user cap", min_interval: "发券间隔 Min interval",
    template_expired: "券已失效 Template expired", out_of_stock: "库存不足 Out of stock",
    over_budget: "预算用尽 Over budget", paused: "已暂停 Paused"
  };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text != null) node.textContent = text;
    return node;
  }

  /** The operator key: ?key=K, or what was typed into the key form in this tab. */
  function key() {
    var k = new URLSearchParams(location.search).get("key");
    if (k) sessionStorage.setItem(KEY_STORE, k);
    return k || sessionStorage.getItem(KEY_STORE) || "";
  }

  /** Ask for the key (none given, or the server refused it), then start again. */
  function askKey(message) {
    if (document.getElementById("keyform")) return;
    var form = el("form", "keyform");
    form.id = "keyform";
    form.innerHTML = '<div class="card"><h2>请输入运营密钥 <small>Operator API key</small></h2><p></p>' +
      '<input name="key" type="password" autocomplete="off" placeholder="X-API-Key"><button class="btn">进入 Enter</button></div>';
    form.querySelector("p").textContent = message || "启动服务时打印的 API key · printed by livecoupon serve";
    form.onsubmit = function (e) {
      e.preventDefault();
      sessionStorage.setItem(KEY_STORE, form.key.value.trim());
      var url = new URL(location.href);
      url.searchParams.delete("key");
      location.replace(url.href);
    };
    document.body.append(form);
    form.key.focus();
  }

  /** fetch with the operator key; resolves the JSON body, rejects with the server's message. */
  function api(path, body) {
    var init = { headers: { "X-API-Key": key() } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.status === 401) askKey("密钥无效，请重新输入 · The key was refused");
        if (!r.ok) {
          var error = new Error((data.error && data.error.message) || "HTTP " + r.status);
          error.status = r.status;
          throw error;
        }
        return data;
      });
    });
  }

  /** The console feed (WS /v1/console/live), reconnecting with backoff; onState(true|false). */
  function feed(onMessage, onState) {
    var retries = 0;
    (function connect() {
      var url = location.origin.replace(/^http/, "ws") + "/v1/console/live?key=" + encodeURIComponent(key());
      var ws = new WebSocket(url), opened = false;
      var retry = function () { setTimeout(connect, Math.min(10000, 500 * Math.pow(2, retries++))); };
      ws.onopen = function () { opened = true; retries = 0; onState(true); };
      ws.onmessage = function (e) {
        try { onMessage(JSON.parse(e.data)); } catch (err) { console.error(err); }
      };
      ws.onclose = function (e) {
        onState(false);
        if (e.code === 4401) return askKey("密钥无效，请重新输入 · The key was refused");
        if (opened) return retry();
        // A refused handshake looks like any network error to a page: ask over HTTP whether it was the key.
        api("/v1/admin/stats").then(retry, function (err) { if (err.status !== 401) retry(); });
      };
    })();
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
    el: el, key: key, askKey: askKey, api: api, feed: feed, n: n, yuan: yuan, time: time, bar: bar,
    stockBars: stockBars, whenWords: whenWords, reasonWords: reasonWords, sum: sum, setOnline: setOnline
  };
})(window);
