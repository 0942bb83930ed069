/* The operator console's campaign panel: the file in force in an editor, imported or exported as
 * YAML, checked (every error by its path), backtested on the service's log beside the version in
 * force, and published as the next version (POST /v1/admin/campaign/{check,backtest,publish},
 * GET /v1/admin/campaign/versions).
 *
 * A publish carries base_version, the version the editor loaded: one published meanwhile is never
 * overwritten (409 version_conflict). Limits and schedule hold at once; triggers, coupons and
 * experiments reach each room at its next broadcast, so a room on air keeps its version till it ends.
 *
 * In a deployment of several campaigns the panel edits the one the console's picker shows (the
 * versions GET names it; a publish's campaign is the file's own ``campaign:``, so a file of another
 * campaign is refused here); an unpublished edit waits while another campaign is shown.
 */
(function (global) {
  "use strict";
  var C = global.lcConsole, $ = function (id) { return document.getElementById(id); };
  var BASE = "/v1/admin/campaign/";
  var INDENT = "  ", MAX_CHARS = 1048576, REFRESH_MS = 15000;
  var PARTS = [["triggers", "触发器 Triggers"], ["coupons", "券 Coupons"], ["experiments", "实验 Experiments"],
    ["limits", "限额 Limits"], ["settings", "设置 Settings"]];
  var KINDS = { added: ["ok", "新增 added"], removed: ["no", "删除 removed"], changed: ["amber", "修改 changed"] };
  var METRICS = [["issued", "已发 Issued", C.n], ["face_value", "面额 Face value", C.yuan], ["users", "触达观众 Users", C.n]];

  var open = false;       // the panel is shown
  var base = null;        // the version the editor loaded (sent as base_version)
  var loaded = "";        // that version's file, to tell an edited editor
  var inForce = null;     // the version in force, as last read
  var note = null;        // [words, is-error] of the last import / export / reload, shown in the status line
  var onAir = null;       // the rooms on air in the last stats frame
  var leaveOnTab = false; // Esc was pressed: the next Tab moves focus instead of indenting
  var timer = null, runs = {}, ranOn = {};
  var scope = null;       // the campaign edited, in a deployment of several (null: the deployment's one)
  var drafts = {};        // campaign -> {text, base, loaded}: an edit left unpublished when another was picked

  function editor() { return $("cfg-yaml"); }

  /* ---- the editor ------------------------------------------------------------------------- */

  /** Insert ``text`` over [start, end) (the selection if omitted), on the browser's undo history. */
  function insert(ed, text, start, end) {
    if (start != null) ed.setSelectionRange(start, end);
    ed.focus();
    // execCommand edits whatever has the focus: only the editor's own (a hidden editor cannot take it)
    var mine = document.activeElement === ed;
    var done = mine && (text ? document.execCommand("insertText", false, text) : document.execCommand("delete"));
    if (!done) {
      ed.setRangeText(text, ed.selectionStart, ed.selectionEnd, "end");
      changed();
    }
  }

  function indentOf(line) { return /^[ ]*/.exec(line)[0]; }

  /** Indent (dir 1) or outdent (dir -1) every line the selection touches. */
  function shiftLines(ed, dir) {
    var v = ed.value, s = ed.selectionStart, e = ed.selectionEnd;
    var from = v.lastIndexOf("\n", s - 1) + 1;
    var stop = e > s && v[e - 1] === "\n" ? e - 1 : e;  // a selection ending at a line's start leaves that line
    var to = v.indexOf("\n", stop);
    if (to < 0) to = v.length;
    var lines = v.slice(from, to).split("\n");
    var moved = lines.map(function (l) { return dir > 0 ? INDENT + l : l.replace(/^ {1,2}/, ""); });
    var block = moved.join("\n");
    if (block === v.slice(from, to)) return;
    insert(ed, block, from, to);
    if (s === e) {
      var caret = Math.max(from, s + moved[0].length - lines[0].length);
      ed.setSelectionRange(caret, caret);
    } else {
      ed.setSelectionRange(from, from + block.length);
    }
  }

  /** Enter keeps the line's indentation, one step deeper after a key that opens a block ("coupons:"). */
  function newline(ed) {
    var v = ed.value, s = ed.selectionStart, e = ed.selectionEnd;
    var lineStart = v.lastIndexOf("\n", s - 1) + 1, lineEnd = v.indexOf("\n", s);
    var indent = indentOf(v.slice(lineStart, lineEnd < 0 ? v.length : lineEnd));
    if (/:\s*$/.test(v.slice(lineStart, s).replace(/\s#.*$/, ""))) indent += INDENT;
    var spaces = /^[ \t]*/.exec(v.slice(e))[0].length;  // the rest of the line comes over without its blanks
    insert(ed, "\n" + indent, s, e + spaces);
  }

  function onKey(e) {
    if (e.isComposing || e.keyCode === 229 || e.key === "Shift") return;
    if (e.key === "Escape") { leaveOnTab = true; return; }
    var leave = leaveOnTab, plain = !(e.ctrlKey || e.altKey || e.metaKey);
    leaveOnTab = false;
    var ed = e.target;
    if (e.key === "Tab" && plain && !leave) {
      e.preventDefault();
      var lines = ed.value.slice(ed.selectionStart, ed.selectionEnd).indexOf("\n") >= 0;
      if (e.shiftKey || lines) shiftLines(ed, e.shiftKey ? -1 : 1); else insert(ed, INDENT);
    } else if (e.key === "Enter" && plain && !e.shiftKey) {
      e.preventDefault();
      newline(ed);
    }
  }

  /** Line numbers beside the text, scrolled with it; ``bad`` lines (1-based) are marked. */
  function numberLines(bad) {
    var box = $("cfg-lines"), ed = editor(), count = 1, i;
    for (i = ed.value.indexOf("\n"); i >= 0; i = ed.value.indexOf("\n", i + 1)) count++;
    var add = document.createDocumentFragment();
    for (i = box.childElementCount; i < count; i++) add.append(C.el("span", null, String(i + 1)));
    box.append(add);
    while (box.childElementCount > count) box.lastChild.remove();
    if (bad) {
      Array.prototype.forEach.call(box.querySelectorAll(".bad"), function (n) { n.classList.remove("bad"); });
      bad.forEach(function (line) { if (box.children[line - 1]) box.children[line - 1].classList.add("bad"); });
    }
    scrolled();
  }

  function scrolled() { $("cfg-lines").style.transform = "translateY(" + -editor().scrollTop + "px)"; }

  function caret() {
    var ed = editor(), before = ed.value.slice(0, ed.selectionStart);
    var line = before.split("\n").length, col = ed.selectionStart - before.lastIndexOf("\n");
    $("cfg-caret").textContent = "行 " + line + "，列 " + col + " · Ln " + line + ", Col " + col;
  }

  /** Select line ``n`` (1-based) and scroll it into view. */
  function goTo(n) {
    var ed = editor(), v = ed.value, start = 0;
    for (var i = 1; i < n && start >= 0; i++) start = v.indexOf("\n", start) + 1;
    var end = v.indexOf("\n", start);
    ed.focus();
    ed.setSelectionRange(start + indentOf(v.slice(start, end < 0 ? v.length : end)).length, end < 0 ? v.length : end);
    var height = parseFloat(getComputedStyle(ed).lineHeight) || 20;
    ed.scrollTop = Math.max(0, (n - 1) * height - ed.clientHeight / 3);
    scrolled();
    caret();
  }

  /** After every edit: numbers (marks cleared), the status line, and results computed on other text. */
  function changed() {
    numberLines([]);
    status();
    caret();
    ["cfg-check-out", "cfg-backtest-out"].forEach(function (id) {
      $(id).classList.toggle("stale", ranOn[id] != null && ranOn[id] !== editor().value);
    });
  }

  /** Replace the whole text (undoable), e.g. with an imported file. */
  function replaceText(text) {
    var ed = editor();
    insert(ed, text, 0, ed.value.length);
    ed.setSelectionRange(0, 0);
    ed.scrollTop = 0;
    changed();
  }

  /* ---- where an error's path points ----------------------------------------------------- */

  function blank(line) { return /^\s*(#.*)?$/.test(line); }

  /** The line after the block that starts at ``at`` (its deeper lines; a list's items under a key). */
  function blockEnd(lines, at) {
    var own = indentOf(lines[at]).length, dash = /^\s*- /.test(lines[at]);
    for (var i = at + 1; i < lines.length; i++) {
      if (blank(lines[i])) continue;
      var d = indentOf(lines[i]).length;
      if (d < own || (d === own && (dash || !/^\s*- /.test(lines[i])))) return i;
    }
    return lines.length;
  }

  function keyLine(lines, from, to, name) {
    var safe = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    var re = new RegExp("(^|[\\s{,])[\"']?" + safe + "[\"']?\\s*:(\\s|$)"), best = -1;
    for (var i = from; i < to; i++) {
      if (!blank(lines[i]) && re.test(lines[i]) &&
          (best < 0 || indentOf(lines[i]).length < indentOf(lines[best]).length)) best = i;
    }
    return best;
  }

  function itemLine(lines, from, to, index) {
    var items = [], depth = Infinity;
    for (var i = from; i < to; i++) {
      if (/^\s*- /.test(lines[i]) && i > from) {
        var d = indentOf(lines[i]).length;
        if (d < depth) { depth = d; items = []; }
        if (d === depth) items.push(i);
      }
    }
    return index < items.length ? items[index] : -1;
  }

  /**
   * The line (1-based) an error names: "line N" in a YAML syntax error, else its path (such as
   * triggers[7].coupon) followed through a block-style file as far as it goes; 0 if nowhere.
   */
  function locate(text, path, message) {
    var syntax = /line (\d+)/.exec(message);
    if (syntax) return Number(syntax[1]);
    if (!path) return 0;
    var lines = text.split("\n"), steps = [], m, re = /([^.[\]]+)|\[(\d+)\]/g, from = 0, to = lines.length, found = 0;
    while ((m = re.exec(path))) steps.push(m[2] != null ? Number(m[2]) : m[1]);
    for (var i = 0; i < steps.length; i++) {
      var hit = typeof steps[i] === "number" ? itemLine(lines, from, to, steps[i]) : keyLine(lines, from, to, steps[i]);
      if (hit < 0) break;
      found = hit + 1;
      from = hit;
      to = blockEnd(lines, hit);
    }
    return found;
  }

  /** "path: problem" (the service's form); a message without a path is the file's as a whole. */
  function splitError(message) {
    var at = message.indexOf(": "), path = at > 0 ? message.slice(0, at) : "";
    return /^\S+$/.test(path) ? { path: path, problem: message.slice(at + 2) } : { path: "", problem: message };
  }

  /* ---- answers ------------------------------------------------------------------------------ */

  function head(kind, words) { return C.el("div", "cfg-head " + kind, words); }

  function errorList(errors, text) {
    var box = C.el("div", "cfg-errors"), list = C.el("ul"), bad = [];
    box.append(head("err", "✗ " + errors.length + " 个错误，按路径列出 · " + errors.length +
      (errors.length === 1 ? " error" : " errors") + ", by path"));
    errors.forEach(function (message) {
      var parts = splitError(message), li = C.el("li"), line = locate(text, parts.path, message);
      li.dataset.path = parts.path;
      li.append(C.el("code", "path", parts.path || "文件 file"), C.el("span", "problem", parts.problem));
      if (line) {
        var jump = C.el("button", "btn ghost small", "第 " + line + " 行 · line " + line);
        jump.type = "button";
        jump.onclick = function () { goTo(line); };
        li.append(jump);
        bad.push(line);
      }
      list.append(li);
    });
    numberLines(bad);
    box.append(list);
    return box;
  }

  function checkPassed(r) {
    var box = C.el("div"), rooms = r.rooms === "*" ? "全部 all" : r.rooms.join(", ");
    box.append(head("ok", "✓ 校验通过 Valid"), C.el("p", "cfg-line", "活动 " + r.campaign + " · 直播间 rooms: " + rooms +
      " · " + r.coupons.length + " 种券 coupons · " + r.triggers.length + " 个触发器 triggers"));
    var chips = C.el("div");
    r.triggers.forEach(function (t) { chips.append(C.el("span", "chip", t)); });
    box.append(chips);
    numberLines([]);
    return box;
  }

  function signed(x, format) {
    if (!x) return "±0";
    return (x > 0 ? "+" : "−") + format(Math.abs(x));
  }

  function backtestRow(name, candidate, current) {
    var tr = document.createElement("tr"), who = C.el("td");
    tr.dataset.trigger = name;
    who.append(C.el("b", null, name));
    if (!current) who.append(C.el("span", "chip ok", "新增 new"));
    if (!candidate) who.append(C.el("span", "chip no", "删除 removed"));
    tr.append(who);
    METRICS.forEach(function (m) {
      var now = candidate ? candidate[m[0]] : null, before = current ? current[m[0]] : null;
      var cell = C.el("td", "num", now == null ? "—" : m[2](now));
      cell.dataset.col = m[0];
      var delta = (now || 0) - (before || 0);
      if (delta) cell.append(C.el("small", delta > 0 ? "up" : "down", " " + signed(delta, m[2])));
      var old = C.el("td", "num was", before == null ? "—" : m[2](before));
      old.dataset.col = m[0] + "-current";
      tr.append(cell, old);
    });
    var held = C.el("td");
    Object.keys((candidate && candidate.suppressed) || {}).forEach(function (reason) {
      var chip = C.el("span", "chip", C.reasonWords(reason));
      chip.append(C.el("b", null, C.n(candidate.suppressed[reason])));
      held.append(chip);
    });
    if (!held.children.length) held.append(C.el("span", "muted", "—"));
    tr.append(held);
    return tr;
  }

  function backtestTable(r) {
    var box = C.el("div"), table = C.el("table", "cfg-bt"), thead = C.el("thead"), body = C.el("tbody");
    var foot = C.el("tfoot"), top = document.createElement("tr"), sub = document.createElement("tr");
    box.append(head("", "回测 Backtest"), C.el("p", "cfg-line muted", "用本服务日志中的 " + C.n(r.events) +
      " 个事件，分别重放这份文件（候选）与生效中的版本（当前）· Replayed " + r.events +
      " logged events with this file (candidate) and with the version in force (current)"));
    var first = C.el("th", null, "触发器 Trigger");
    first.rowSpan = 2;
    top.append(first);
    METRICS.forEach(function (m) {
      var th = C.el("th", "group", m[1]);
      th.colSpan = 2;
      top.append(th);
      sub.append(C.el("th", null, "候选 Candidate"), C.el("th", null, "当前 Current"));
    });
    var last = C.el("th", null, "候选的拦截 Suppressed (candidate)");
    last.rowSpan = 2;
    top.append(last);
    thead.append(top, sub);
    var names = Object.keys(r.candidate.triggers);
    Object.keys(r.current.triggers).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); });
    names.forEach(function (n) { body.append(backtestRow(n, r.candidate.triggers[n], r.current.triggers[n])); });
    var totals = backtestRow("合计 Totals", r.candidate.totals, r.current.totals);
    totals.className = "totals";
    totals.removeAttribute("data-trigger");
    totals.querySelectorAll(".chip").forEach(function (c) { c.remove(); });
    totals.lastChild.replaceChildren();
    var diff = document.createElement("tr"), label = C.el("td", null, "差额 Difference");
    diff.className = "difference";
    diff.append(label);
    METRICS.forEach(function (m) {
      var d = r.difference[m[0]], cell = C.el("td", "num " + (d > 0 ? "up" : d < 0 ? "down" : ""), signed(d, m[2]));
      cell.colSpan = 2;
      cell.dataset.col = m[0];
      diff.append(cell);
    });
    diff.append(C.el("td", "muted", "决策 decisions " + signed(r.difference.decisions, C.n)));
    foot.append(totals, diff);
    table.append(thead, body, foot);
    box.append(table);
    return box;
  }

  function changeChips(changes) {
    var box = C.el("div", "cfg-changes"), any = false;
    PARTS.forEach(function (part) {
      var what = changes[part[0]], row = C.el("div");
      row.dataset.part = part[0];
      row.append(C.el("span", "muted", part[1]));
      if (Array.isArray(what)) {
        what.forEach(function (field) { row.append(C.el("span", "chip amber", "修改 changed " + field)); });
      } else {
        Object.keys(KINDS).forEach(function (kind) {
          (what[kind] || []).forEach(function (name) {
            row.append(C.el("span", "chip " + KINDS[kind][0], KINDS[kind][1] + " " + name));
          });
        });
      }
      if (row.children.length > 1) { box.append(row); any = true; }
    });
    if (!any) box.append(C.el("span", "muted", "没有改动 Nothing changed"));
    return box;
  }

  function diffLines(diff) {
    var pre = C.el("pre", "cfg-diff");
    diff.forEach(function (line) {
      var kind = /^(\+\+\+|---)/.test(line) ? "meta" : line[0] === "@" ? "hunk" :
        line[0] === "+" ? "add" : line[0] === "-" ? "del" : "ctx";
      pre.append(C.el("span", kind, line || " "));
    });
    return pre;
  }

  function publishedAnswer(r) {
    var box = C.el("div");
    box.dataset.version = r.version;
    if (!r.published) {
      box.append(head("", "没有改动，未发布：v" + r.version + " 仍在生效 · Nothing changed: version " + r.version +
        " stays in force"));
      return box;
    }
    box.append(head("ok", "✓ 已发布 v" + r.version + " · Published version " + r.version));
    var effect = C.el("p", "cfg-effect");
    effect.append(C.el("b", null, r.effect.words_zh), C.el("span", null, r.effect.words_en));
    box.append(effect);
    if (r.effect.rooms_waiting.length) {
      var waiting = C.el("div", "cfg-waiting");
      waiting.append(C.el("span", "muted", "等下一场开播的直播间 Rooms on air waiting for their next broadcast:"));
      r.effect.rooms_waiting.forEach(function (room) {
        var chip = C.el("span", "chip amber", room + " · 本场沿用旧版本 keeps its version until it ends");
        chip.dataset.room = room;
        waiting.append(chip);
      });
      box.append(waiting);
    }
    box.append(C.el("h3", null, "改动 What changed"), changeChips(r.changes));
    if (r.diff.length) box.append(C.el("h3", null, "文件差异 Diff · v" + (r.version - 1) + " → v" + r.version), diffLines(r.diff));
    return box;
  }

  function refusedAnswer(err, text) {
    var box = C.el("div");
    box.dataset.code = err.code || "";
    if (err.code === "campaign_invalid") {
      box.append(head("err", "✗ 发布被拒：文件不能用 · Publish refused: the file cannot be used"),
        errorList(err.message.split("; "), text));
      return box;
    }
    if (err.code === "version_conflict") {
      box.append(head("err", "✗ 版本冲突：你载入 v" + base + " 之后，别人发布了新版本 · Conflict: another version was " +
        "published since you loaded v" + base), C.el("p", "cfg-line", err.message));
      var again = C.el("button", "btn small", "载入生效中的版本（替换编辑器内容）· Reload the version in force (replaces your edit)");
      again.type = "button";
      again.id = "cfg-conflict-reload";
      again.onclick = function () { load("已载入生效中的版本，请重新应用你的修改 · Loaded the version in force: apply your change again"); };
      var keep = C.el("button", "btn ghost small", "先下载我的修改 · Download my edit first");
      keep.type = "button";
      keep.onclick = function () { download("my-edit-from-v" + base + ".yaml", text); };
      var actions = C.el("div", "cfg-actions");
      actions.append(again, keep);
      box.append(actions);
      return box;
    }
    box.append(head("err", "✗ 发布失败 Publish failed"), C.el("p", "cfg-line", err.message));
    return box;
  }

  /* ---- calls ------------------------------------------------------------------------------ */

  /** One request drawn into ``out``; an older answer arriving after a newer request is dropped. */
  function run(button, out, waiting, request, draw, fail) {
    var mine = (runs[out.id] = (runs[out.id] || 0) + 1), text = editor().value;
    button.disabled = true;
    out.hidden = false;
    out.classList.remove("stale");
    out.replaceChildren(C.el("div", "muted", waiting));
    return request(text).then(function (r) {
      if (mine !== runs[out.id]) return;
      ranOn[out.id] = text;
      out.replaceChildren(draw(r, text));
    }, function (err) {
      if (mine !== runs[out.id]) return;
      out.replaceChildren(fail ? fail(err, text) : head("err", "✗ " + err.message));
    }).then(function () { button.disabled = false; });
  }

  /** The text to send, or null (and why, in the status line). */
  function sendable() {
    var text = editor().value;
    if (!text.trim()) return tell("编辑器是空的 · The editor is empty", true);
    if (text.length > MAX_CHARS) return tell("文件超过 1 MiB · The file is over 1 MiB", true);
    return text;
  }

  function check() {
    if (sendable() == null) return;
    run($("cfg-check"), $("cfg-check-out"), "校验中… Checking",
      function (text) { return C.api(BASE + "check", { yaml: text }); },
      function (r, text) { return r.ok ? checkPassed(r) : errorList(r.errors, text); });
  }

  function backtest() {
    if (sendable() == null) return;
    run($("cfg-backtest"), $("cfg-backtest-out"), "回测中：重放本服务的日志… Backtesting on the service's log",
      function (text) { return C.api(BASE + "backtest", { yaml: text }); },
      function (r, text) { return r.ok ? backtestTable(r) : errorList(r.errors, text); });
  }

  function publish(e) {
    e.preventDefault();
    if (sendable() == null) return;
    var form = e.target, named = campaignOf(editor().value);
    if (scope != null && named !== scope) {
      tell("这是活动 " + (named || "？") + " 的文件，运营台显示的是 " + scope + "：先在顶部切换活动 · This file is campaign " +
        (named || "?") + "'s and the console shows " + scope + ": pick it at the top first", true);
      return;
    }
    run($("cfg-publish-button"), $("cfg-publish-out"), "发布中… Publishing", function (text) {
      var body = { yaml: text, note: form.note.value.trim() };
      if (base != null) body.base_version = base;
      return C.api(BASE + "publish", body);
    }, function (r, text) {
      if (r.published) { base = r.version; loaded = text; form.note.value = ""; }
      refresh();
      return publishedAnswer(r);
    }, function (err, text) {
      refresh();
      return refusedAnswer(err, text);
    });
  }

  /** The editor gets the version in force (what it edits, and the base_version of its publish). */
  /** GET versions of the campaign edited; an answer about one picked before never settles (it is dropped). */
  function readVersions() {
    var asked = scope;
    return C.api(BASE + "versions" + (asked == null ? "" : "?campaign=" + encodeURIComponent(asked)))
      .then(function (v) { return asked === scope ? v : new Promise(function () {}); });
  }

  function load(words) {
    return readVersions().then(function (v) {
      base = v.version;
      loaded = v.yaml || "";
      note = v.yaml == null ? ["服务没有保存这个版本的文件 · The service keeps no file for this version", true] :
        words ? [words, false] : null;
      replaceText(loaded);
      versions(v);
    }, function (err) { tell("载入失败 Could not load: " + err.message, true); });
  }

  function refresh() {
    return readVersions().then(versions, function () { /* tried again on the next refresh */ });
  }

  function exportFile() {
    readVersions().then(function (v) {
      versions(v);
      if (v.yaml == null) throw new Error("服务没有保存这个版本的文件 · The service keeps no file for this version");
      download(fileName(v.yaml, v.version), v.yaml);
      tell("已导出 v" + v.version + " · Exported version " + v.version);
    }).catch(function (err) { tell("导出失败 Export failed: " + err.message, true); });
  }

  /** The file's own ``campaign:`` id (read as the service finds a publish's campaign), or null. */
  function campaignOf(yaml) {
    var name = /^campaign:\s*["']?([^"'#\s]+)/m.exec(yaml);
    return name ? name[1] : null;
  }

  function fileName(yaml, version) {
    return (campaignOf(yaml) || "campaign").replace(/[\\/:*?"<>|]+/g, "-") + "-v" + version + ".yaml";
  }

  function download(name, text) {
    var url = URL.createObjectURL(new Blob([text], { type: "application/yaml;charset=utf-8" }));
    var a = C.el("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  /** A .yaml file picked from disk, read in the browser, into the editor (nothing is sent). */
  function importFile(e) {
    var file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    if (file.size > MAX_CHARS * 4) { tell("文件太大 · The file is too large", true); return; }
    file.text().then(function (text) {
      replaceText(text);
      tell("已导入 " + file.name + "，尚未发布 · Imported " + file.name + ", not published");
    }, function () { tell("读不了这个文件 · Could not read the file", true); });
  }

  /** Reload the version in force; with edits, the first click asks, the second reloads. */
  function reload() {
    var button = $("cfg-reload");
    if (editor().value !== loaded && !button.dataset.confirm) {
      button.dataset.confirm = "1";
      button.textContent = "放弃修改并载入？Discard edits?";
      setTimeout(function () { delete button.dataset.confirm; button.textContent = "重新载入 Reload"; }, 4000);
      return;
    }
    delete button.dataset.confirm;
    button.textContent = "重新载入 Reload";
    load("已载入生效中的版本 · Loaded the version in force");
  }

  /* ---- history, rooms, status ---------------------------------------------------------------- */

  function at(seconds) {
    return seconds == null ? "启动时 at start" : new Date(seconds * 1000).toLocaleString("zh-CN", { hour12: false });
  }

  function versions(v) {
    inForce = v.version;
    var rooms = Object.keys(v.rooms);
    $("cfg-summary").textContent = "生效中 v" + v.version + " · in force · " + rooms.length + " 个直播间在播 on air";
    var list = $("cfg-versions");
    list.replaceChildren.apply(list, v.versions.slice().reverse().map(function (x) {
      var li = C.el("li"), what = C.el("div");
      li.dataset.version = x.version;
      what.append(C.el("time", null, at(x.at)));
      if (x.version === v.version) what.append(C.el("span", "chip ok", "生效中 in force"));
      if (x.version === base) what.append(C.el("span", "chip", "编辑器基于此 editing from"));
      what.append(C.el("div", "cfg-note", x.note || "（无备注 no note）"));
      li.append(C.el("b", null, "v" + x.version), what);
      return li;
    }));
    var box = $("cfg-rooms");
    box.replaceChildren.apply(box, rooms.length ? rooms.map(function (room) {
      var line = C.el("div", "cfg-room"), running = v.rooms[room];
      line.dataset.room = room;
      line.dataset.version = running;
      line.append(C.el("span", null, room), C.el("b", null, "v" + running));
      line.append(running < v.version ?
        C.el("span", "chip amber", "本场沿用，下一场开播用 v" + v.version + " · v" + v.version + " from its next broadcast") :
        C.el("span", "chip ok", "最新 latest"));
      return line;
    }) : [C.el("div", "empty", "没有直播间在播 · No room on air")]);
    status();
  }

  function tell(words, error) {
    note = [words, !!error];
    status();
    return null;
  }

  function status() {
    var box = $("cfg-status"), edited = editor().value !== loaded;
    box.dataset.edited = edited ? "1" : "0";
    box.replaceChildren();
    if (note) box.append(C.el("span", note[1] ? "cfg-say err" : "cfg-say", note[0]));
    if (base == null) return;
    box.append(C.el("span", "chip", "基于 v" + base + " · from v" + base),
      C.el("span", edited ? "chip amber" : "chip", edited ? "已修改 edited" : "未修改 unchanged"));
    if (inForce != null && inForce !== base) {
      box.append(C.el("span", "chip no", "v" + inForce + " 已发布，先重新载入 · v" + inForce + " published since: reload first"));
    }
  }

  function toggle() {
    open = !open;
    $("cfg-body").hidden = !open;
    var button = $("cfg-toggle");
    button.textContent = open ? "收起 Close" : "打开编辑器 Open editor";
    button.setAttribute("aria-expanded", String(open));
    button.classList.toggle("ghost", open);
    clearInterval(timer);
    if (!open) return;
    timer = setInterval(refresh, REFRESH_MS);
    if (base == null) load(); else refresh();
    editor().focus();
  }

  /** Each stats frame: a room going on or off air changes which version it runs. */
  function stats(s) {
    var live = Object.keys(s.rooms).filter(function (r) { return s.rooms[r].on_air; }).join("\n");
    if (live === onAir) return;
    onAir = live;
    if (open) refresh();
  }

  /** Edit ``name``'s file (null: the deployment's only campaign); the edit of the one left waits for it. */
  function campaign(name) {
    if (name === scope) return;
    if (base != null && editor().value !== loaded) drafts[scope] = { text: editor().value, base: base, loaded: loaded };
    scope = name;
    var draft = drafts[name] || null;
    delete drafts[name];
    base = draft && draft.base;
    loaded = draft ? draft.loaded : "";
    inForce = null;
    onAir = null;
    note = draft && ["你对 " + name + " 未发布的修改还在 · Your unpublished edit of " + name + " is back", false];
    ["cfg-check-out", "cfg-backtest-out", "cfg-publish-out"].forEach(function (id) {
      runs[id] = (runs[id] || 0) + 1; // an answer still coming is about the campaign left
      delete ranOn[id];
      $(id).hidden = true;
      $(id).replaceChildren();
    });
    $("cfg-summary").textContent = "";
    $("cfg-versions").replaceChildren();
    $("cfg-rooms").replaceChildren();
    var ed = editor();
    ed.value = draft ? draft.text : "";  // not through insert(): picking a campaign leaves the focus where it is
    ed.setSelectionRange(0, 0);
    ed.scrollTop = 0;
    changed();
    if (open && !draft) load(); else refresh();
  }

  function start() {
    var ed = editor();
    ed.addEventListener("keydown", onKey);
    ed.addEventListener("input", changed);
    ed.addEventListener("scroll", scrolled);
    ["keyup", "click", "focus"].forEach(function (type) { ed.addEventListener(type, caret); });
    $("cfg-toggle").onclick = toggle;
    $("cfg-check").onclick = check;
    $("cfg-backtest").onclick = backtest;
    $("cfg-export").onclick = exportFile;
    $("cfg-reload").onclick = reload;
    $("cfg-refresh").onclick = refresh;
    $("cfg-import").addEventListener("change", importFile);
    $("cfg-publish").addEventListener("submit", publish);
    numberLines([]);
    refresh();
  }

  global.lcCampaignEditor = { start: start, stats: stats, campaign: campaign };
})(window);
