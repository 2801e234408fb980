"""The viewer's CSS and JavaScript, inlined into every page by :mod:`tim.viz.viewer`.

Kept as Python strings so they ship with the package without package-data settings.
Rule for the script: model text only ever goes through ``textContent`` (or
``createTextNode``); attributes get numbers and fixed names only.
"""

__all__ = ["VIEWER_CSS", "VIEWER_JS"]

VIEWER_CSS = r"""
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       color: #1d232b; background: #f6f7f9; }
#app { display: grid; grid-template-columns: minmax(280px, 42%) 1fr;
       grid-template-rows: auto minmax(200px, 1fr) auto; height: 100vh; gap: 8px; padding: 8px; }
header { grid-column: 1 / 3; background: #fff; border: 1px solid #dde1e6; border-radius: 6px;
         padding: 8px 12px; display: flex; flex-wrap: wrap; gap: 6px 16px; align-items: baseline; }
header h1 { font-size: 15px; margin: 0; }
header .q { font-style: italic; color: #3b4652; max-width: 60ch; overflow: hidden;
            text-overflow: ellipsis; white-space: nowrap; }
header .ans { font-weight: 600; color: #1b6e2a; }
header .ans.none { color: #b3261e; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { background: #eef1f5; border-radius: 10px; padding: 1px 8px; font-size: 11px; color: #3b4652; }
.search { margin-left: auto; display: flex; gap: 6px; align-items: center; }
.search input { width: 240px; padding: 4px 8px; border: 1px solid #c4cbd3; border-radius: 4px; }
.pane { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; overflow: auto; min-height: 0; }
#tree { padding: 6px 4px; }
#tree ul { list-style: none; margin: 0; padding-left: 16px; }
#tree > ul { padding-left: 0; }
.row { display: flex; align-items: center; gap: 4px; padding: 1px 4px; border-radius: 3px;
       cursor: pointer; white-space: nowrap; }
.row:hover { background: #eef3fb; }
.row.sel { background: #d6e6fb; }
.row.hit .lbl { background: #fff2a8; }
.tog { width: 16px; border: 0; background: none; padding: 0; cursor: pointer; color: #555; font-size: 11px; }
.tog.leaf { visibility: hidden; }
.dot { width: 9px; height: 9px; border-radius: 50%; flex: none; border: 1px solid rgba(0,0,0,.25); }
.st-done .dot { background: #43a047; } .st-running .dot { background: #f2b01e; }
.st-pending .dot { background: #fff; } .st-error .dot { background: #d32f2f; }
.lbl { overflow: hidden; text-overflow: ellipsis; }
.pr .lbl { color: #6f6f6f; font-style: italic; }
.tag { font-size: 10px; color: #67727e; }
.tag.pruned { color: #8e24aa; } .tag.tool { color: #1f5f99; } .tag.err { color: #c62828; }
.more { border: 1px dashed #b7c0ca; background: #fafbfc; border-radius: 3px; margin: 2px 4px;
        font-size: 11px; cursor: pointer; }
#detail { padding: 10px 14px; }
#detail h2 { font-size: 14px; margin: 0 0 6px; word-break: break-word; }
#detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 10px; margin: 0 0 8px; }
#detail dt { color: #67727e; } #detail dd { margin: 0; word-break: break-word; }
#detail h3 { font-size: 12px; margin: 10px 0 3px; color: #3b4652; }
#detail pre { white-space: pre-wrap; word-break: break-word; margin: 0; padding: 6px 8px;
              background: #f6f8fa; border-radius: 4px; font: 12px/1.45 ui-monospace, Menlo, Consolas, monospace; }
#detail .err { color: #b3261e; }
#results { padding: 4px 0; border-bottom: 1px solid #eee; margin-bottom: 6px; }
#results .row { white-space: nowrap; }
#timeline { grid-column: 1 / 3; padding: 6px 8px; max-height: 45vh; }
#timeline h3 { margin: 0 0 4px; font-size: 12px; color: #3b4652; }
#timeline .note { color: #67727e; font-size: 11px; }
#timeline svg { width: 100%; display: block; }
svg .seg { cursor: pointer; } svg .seg.sel { stroke: #111; stroke-width: 1.5; }
svg text { font: 10px system-ui, sans-serif; fill: #4a5560; }
svg.sights { width: 100%; max-width: 360px; display: block; background: #fafbfc; }
ul.sights { margin: 4px 0; padding-left: 18px; font-size: 12px; }
"""

VIEWER_JS = r"""
(function () {
  "use strict";
  var t0 = performance.now();
  var SVG = "http://www.w3.org/2000/svg";
  var CHUNK = 200;
  var data = JSON.parse(document.getElementById("tim-data").textContent);
  var tasks = data.tasks, meta = data.meta, tl = data.timeline, sights = data.sights || {};
  var kids = tasks.map(function () { return []; });
  var roots = [];
  tasks.forEach(function (t, i) { if (t.p < 0) { roots.push(i); } else { kids[t.p].push(i); } });
  var rows = {};      // task index -> its <li>, once drawn
  var segEls = {};    // task index -> its timeline rects
  var selected = -1;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function short(s, n) {
    s = String(s).replace(/\s+/g, " ").trim();
    return s.length <= n ? s : s.slice(0, n - 1) + "\u2026";
  }
  function label(t) {
    if (t.ti) { return short(t.ti, 80); }
    return t.th && t.th.trim() ? short(t.th, 80) : "(no thought yet)";
  }
  function pathText(i) { return i < 0 ? "root stream" : "task " + tasks[i].path; }

  // ---------------------------------------------------------------- layout
  var app = document.getElementById("app");
  app.textContent = "";
  var header = el("header");
  header.appendChild(el("h1", null, "tim task tree"));
  if (meta.question) { header.appendChild(el("span", "q", meta.question)); document.title = short(meta.question, 60) + " \u2014 tim"; }
  var ans = el("span", "ans" + (meta.answer === null ? " none" : ""),
               meta.answer === null ? "no answer" + (meta.error ? ": " + short(meta.error, 120) : "")
                                    : "answer: " + short(meta.answer, 160));
  header.appendChild(ans);
  var chips = el("span", "chips");
  function chip(text) { chips.appendChild(el("span", "chip", text)); }
  chip(meta.num_tasks + " tasks");
  if (meta.format) { chip(meta.format + " \u00b7 pruning " + meta.pruning + " \u00b7 " + meta.positions); }
  if (meta.model) { chip(meta.model); }
  if (meta.partial) { chip("partial tree: the run did not finish"); }
  var s = meta.stats;
  if (s) {
    chip(s.tokens_generated + " generated \u00b7 " + s.tokens_forced + " forced");
    chip("peak live KV " + s.peak_live_tokens + " \u00b7 evicted " + s.tokens_evicted);
    chip(s.num_forks + " forks \u00b7 max " + s.max_concurrency + " workers \u00b7 " + s.num_steps + " steps");
  }
  header.appendChild(chips);
  var searchBox = el("span", "search");
  var input = el("input");
  input.type = "search"; input.id = "search"; input.placeholder = "search titles, thoughts, tools\u2026";
  var count = el("span", "tag");
  searchBox.appendChild(input); searchBox.appendChild(count);
  header.appendChild(searchBox);
  var treePane = el("div", "pane"); treePane.id = "tree";
  var detailPane = el("div", "pane"); detailPane.id = "detail";
  var timePane = el("div", "pane"); timePane.id = "timeline";
  app.appendChild(header); app.appendChild(treePane); app.appendChild(detailPane); app.appendChild(timePane);

  // ---------------------------------------------------------------- tree
  function makeRow(i, cls) {
    var t = tasks[i];
    var li = el("li", "st-" + t.st + (t.pr ? " pr" : ""));
    li.dataset.task = String(i);
    var row = el("div", "row " + (cls || ""));
    var tog = el("button", "tog" + (kids[i].length ? "" : " leaf"), kids[i].length ? "\u25b8" : "");
    tog.type = "button"; tog.tabIndex = -1;
    tog.addEventListener("click", function (ev) { ev.stopPropagation(); toggle(i); });
    row.appendChild(tog);
    row.appendChild(el("span", "dot"));
    row.appendChild(el("span", "lbl", label(t)));
    if (t.n) { row.appendChild(el("span", "tag", t.n + " tok")); }
    if (t.tool) { row.appendChild(el("span", "tag tool", "\u2699 " + short(t.tool.name, 30))); }
    if (t.pr) { row.appendChild(el("span", "tag pruned", "\u2702 pruned")); }
    if (t.st === "error") { row.appendChild(el("span", "tag err", "error")); }
    if (kids[i].length) { row.appendChild(el("span", "tag", "(" + kids[i].length + ")")); }
    row.addEventListener("click", function () { select(i, false); });
    row.addEventListener("dblclick", function () { toggle(i); });
    li.appendChild(row);
    return li;
  }
  function drawMore(ul, list) {
    var from = ul.childElementCount - (ul.lastChild && ul.lastChild.classList.contains("more-li") ? 1 : 0);
    if (ul.lastChild && ul.lastChild.classList.contains("more-li")) { ul.removeChild(ul.lastChild); }
    var frag = document.createDocumentFragment();
    for (var k = from; k < Math.min(list.length, from + CHUNK); k++) {
      var li = makeRow(list[k]); rows[list[k]] = li; frag.appendChild(li);
    }
    ul.appendChild(frag);
    if (ul.childElementCount < list.length) {
      var more = el("li", "more-li");
      var b = el("button", "more", "show " + Math.min(CHUNK, list.length - ul.childElementCount) +
                 " more of " + (list.length - ul.childElementCount) + "\u2026");
      b.type = "button";
      b.addEventListener("click", function () { drawMore(ul, list); });
      more.appendChild(b); ul.appendChild(more);
    }
  }
  function toggle(i, open) {
    var li = rows[i];
    if (!li || !kids[i].length) { return; }
    var ul = li.querySelector(":scope > ul");
    var isOpen = ul && !ul.hidden;
    if (open === undefined) { open = !isOpen; }
    if (open && !ul) { ul = el("ul"); li.appendChild(ul); drawMore(ul, kids[i]); }
    if (ul) { ul.hidden = !open; }
    li.querySelector(":scope > .row > .tog").textContent = open ? "\u25be" : "\u25b8";
  }
  function reveal(i) {
    var chain = [];
    for (var a = tasks[i].p; a >= 0; a = tasks[a].p) { chain.unshift(a); }
    chain.forEach(function (a) { toggle(a, true); });
    var list = tasks[i].p < 0 ? roots : kids[tasks[i].p];
    var ul = tasks[i].p < 0 ? treePane.firstChild : rows[tasks[i].p].querySelector(":scope > ul");
    while (!rows[i] && ul.childElementCount <= list.length) { drawMore(ul, list); }
  }
  var top = el("ul"); treePane.appendChild(top); drawMore(top, roots);

  // ---------------------------------------------------------------- detail
  function field(dl, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    dl.appendChild(el("dt", null, name)); dl.appendChild(el("dd", null, value));
  }
  function block(name, text, cls) {
    detailPane.appendChild(el("h3", null, name));
    detailPane.appendChild(el("pre", cls || null, text === "" ? "(empty)" : text));
  }
  function showDetail(i) {
    detailPane.textContent = "";
    if (i < 0) { showRun(); return; }
    var t = tasks[i];
    detailPane.appendChild(el("h2", null, t.ti || label(t)));
    var dl = el("dl");
    field(dl, "path", t.path);
    field(dl, "status", t.st);
    field(dl, "tokens", t.n ? String(t.n) : null);
    if (t.pr || meta.format) { field(dl, "pruned", t.pr ? "yes: the subtask list holding it left the KV cache" : "no"); }
    field(dl, "positions", t.pos ? t.pos[0] + "\u2013" + t.pos[1] + " (when written)" : null);
    field(dl, "subtasks", kids[i].length ? String(kids[i].length) : null);
    var ran = (segsOf[i] || []).map(function (g) { return g[1] + "\u2013" + g[2] + " (worker " + (g[3] + 1) + ")"; });
    field(dl, "ran in steps", ran.length ? ran.join(", ") : null);
    field(dl, "evicted", t.ev.length ? t.ev.map(function (e) {
      return "step " + e[0] + " from the view of " + (e[1].length ? "stream " + e[1].join("/") : "the root stream") + " (list of " + e[2] + " tokens)";
    }).join("; ") : null);
    detailPane.appendChild(dl);
    if (sights[i]) { showSights(sights[i]); }
    if (t.er) { block("error", t.er, "err"); }
    block("thought", t.th);
    if (t.tool) {
      block("tool call: " + t.tool.name, t.tool.params);
      block("tool result", t.tool.result === null ? "(no result yet)" : t.tool.result);
    }
    block("conclusion", t.co);
  }
  function showSights(pairs) {
    // shared siblings: tokens of each sibling this worker saw, per step
    detailPane.appendChild(el("h3", null, "siblings it saw (tokens per step)"));
    var W = 360, H = 70, L = 4, steps = Math.max(tl ? tl.steps : 1, 1), most = 1;
    pairs.forEach(function (p) { p[1].forEach(function (r) { most = Math.max(most, r[1]); }); });
    var chart = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "class": "sights"}, detailPane);
    var list = el("ul", "sights");
    pairs.forEach(function (p, k) {
      var colour = "hsl(" + (k * 67 % 360) + ",55%,45%)";
      var pts = p[1].map(function (r) {
        return ((r[0] - 1) / steps * (W - 2 * L) + L).toFixed(1) + "," + (H - 4 - r[1] / most * (H - 8)).toFixed(1);
      });
      tip(svg("polyline", {points: pts.join(" "), fill: "none", stroke: colour, "stroke-width": 1.5}, chart), pathText(p[0]));
      var first = p[1][0], last = p[1][p[1].length - 1];
      var item = el("li", null, pathText(p[0]) + ": steps " + first[0] + "\u2013" + last[0] + ", " + first[1] + " \u2192 " + last[1] + " tokens");
      item.style.color = colour;
      list.appendChild(item);
    });
    detailPane.appendChild(list);
  }
  function showRun() {
    detailPane.appendChild(el("h2", null, meta.question ? "question" : "run"));
    if (meta.question) { detailPane.appendChild(el("pre", null, meta.question)); }
    block("answer", meta.answer === null ? "(none)" : meta.answer);
    if (meta.error) { block("error", meta.error, "err"); }
    if (meta.stats) {
      var dl = el("dl");
      Object.keys(meta.stats).forEach(function (k) { field(dl, k.replace(/_/g, " "), String(meta.stats[k])); });
      detailPane.appendChild(el("h3", null, "statistics")); detailPane.appendChild(dl);
    }
    detailPane.appendChild(el("p", "tag", "Click a task in the tree or a bar in the timeline."));
  }
  function select(i, scroll) {
    if (selected >= 0 && rows[selected]) { rows[selected].firstChild.classList.remove("sel"); }
    (segEls[selected] || []).forEach(function (r) { r.classList.remove("sel"); });
    selected = i;
    if (i >= 0) {
      reveal(i);
      rows[i].firstChild.classList.add("sel");
      if (scroll) { rows[i].firstChild.scrollIntoView({block: "nearest"}); }
      (segEls[i] || []).forEach(function (r) { r.classList.add("sel"); });
    }
    showDetail(i);
  }

  // ---------------------------------------------------------------- search
  var results = null, timer = null;
  function search() {
    var q = input.value.trim().toLowerCase();
    if (results) { results.remove(); results = null; }
    document.querySelectorAll(".row.hit").forEach(function (r) { r.classList.remove("hit"); });
    if (!q) { count.textContent = ""; return; }
    var hits = [];
    for (var i = 0; i < tasks.length; i++) {
      var t = tasks[i];
      var hay = [t.ti || "", t.th, t.co, t.tool ? t.tool.name + " " + t.tool.params + " " + (t.tool.result || "") : ""].join("\n").toLowerCase();
      if (hay.indexOf(q) >= 0) { hits.push(i); }
    }
    count.textContent = hits.length + (hits.length === 1 ? " match" : " matches");
    results = el("div"); results.id = "results";
    hits.slice(0, 100).forEach(function (i) {
      var r = el("div", "row");
      r.appendChild(el("span", "tag", tasks[i].path));
      r.appendChild(el("span", "lbl", label(tasks[i])));
      r.addEventListener("click", function () { select(i, true); });
      results.appendChild(r);
    });
    if (hits.length > 100) { results.appendChild(el("div", "tag", "\u2026 and " + (hits.length - 100) + " more")); }
    treePane.insertBefore(results, treePane.firstChild);
    hits.forEach(function (i) { if (rows[i]) { rows[i].firstChild.classList.add("hit"); } });
  }
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 120); });
  input.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { clearTimeout(timer); search(); } });

  // ---------------------------------------------------------------- timeline
  var segsOf = {};
  function svg(tag, attrs, parent) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function tip(e, text) { var t = document.createElementNS(SVG, "title"); t.textContent = text; e.appendChild(t); }
  function drawTimeline() {
    timePane.appendChild(el("h3", null, "workers over time"));
    if (!tl) { timePane.appendChild(el("p", "note", "No run record: a plain tree has no timeline.")); return; }
    tl.segments.forEach(function (g) { (segsOf[g[0]] = segsOf[g[0]] || []).push(g); });
    var W = 1200, L = 64, R = 10, kvH = 56, laneH = 13, gap = 3, top = 8;
    var lanesY = top + kvH + 14, H = lanesY + tl.lanes * (laneH + gap) + 22;
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img"}, timePane);
    var steps = Math.max(tl.steps, 1);
    function x(step) { return L + (step - 1) / steps * (W - L - R); }
    var maxLive = 1;
    tl.kv.forEach(function (r) { maxLive = Math.max(maxLive, r[2]); });
    var pts = ["M", x(tl.kv[0][0]), top + kvH];
    tl.kv.forEach(function (r) { pts.push("L", x(r[0]).toFixed(1), (top + kvH - r[2] / maxLive * kvH).toFixed(1)); });
    pts.push("L", x(tl.kv[tl.kv.length - 1][0]), top + kvH, "Z");
    tip(svg("path", {d: pts.join(" "), fill: "#1f5f99", "fill-opacity": 0.18, stroke: "#1f5f99", "stroke-width": 1}, root),
        "live KV tokens per step (peak " + maxLive + ")");
    svg("text", {x: 2, y: top + 10}, root).textContent = "live KV";
    svg("text", {x: 2, y: top + 22}, root).textContent = "max " + maxLive;
    for (var lane = 0; lane < tl.lanes; lane++) {
      var ty = svg("text", {x: 2, y: lanesY + lane * (laneH + gap) + 10}, root);
      ty.textContent = "worker " + (lane + 1);
    }
    tl.segments.forEach(function (g) {
      var i = g[0], depth = i < 0 ? 0 : tasks[i].path.split("/").length;
      var hue = (210 + depth * 47) % 360;
      var r = svg("rect", {x: x(g[1]).toFixed(1), y: lanesY + g[3] * (laneH + gap),
                           width: Math.max(x(g[2] + 1) - x(g[1]), 1.5).toFixed(1), height: laneH, rx: 2,
                           fill: "hsl(" + hue + ",55%," + (i >= 0 && tasks[i].pr ? 80 : 62) + "%)",
                           "class": "seg"}, root);
      tip(r, pathText(i) + (i >= 0 ? " \u00b7 " + label(tasks[i]) : "") + " \u00b7 steps " + g[1] + "\u2013" + g[2]);
      r.addEventListener("click", function () { select(i, true); });
      (segEls[i] = segEls[i] || []).push(r);
    });
    var colors = {fork: "#6a1b9a", join: "#2e7d32", tool: "#1f5f99", evict: "#c62828", error: "#b71c1c"};
    var laneAt = function (i, step) {
      var found = (segsOf[i] || []).filter(function (g) { return g[1] <= step && step <= g[2]; })[0];
      return found ? found[3] : 0;
    };
    tl.events.forEach(function (e) {
      var ex = x(e[0]), c = colors[e[1]] || "#555", mark;
      if (e[1] === "fork" || e[1] === "join") {
        mark = svg("line", {x1: ex, x2: ex, y1: lanesY - 4, y2: H - 18, stroke: c, "stroke-width": 1,
                            "stroke-dasharray": e[1] === "fork" ? "3 2" : "1 2"}, root);
      } else if (e[1] === "evict") {
        mark = svg("path", {d: "M" + (ex - 4) + " " + (top + kvH + 2) + " L" + (ex + 4) + " " + (top + kvH + 2) +
                            " L" + ex + " " + (top + kvH + 10) + " Z", fill: c}, root);
      } else {
        var y = lanesY + laneAt(e[2], e[0]) * (laneH + gap) + laneH / 2;
        mark = svg("path", {d: "M" + ex + " " + (y - 5) + " L" + (ex + 5) + " " + y + " L" + ex + " " + (y + 5) +
                            " L" + (ex - 5) + " " + y + " Z", fill: c, stroke: "#fff", "stroke-width": 0.8}, root);
      }
      mark.setAttribute("class", "ev ev-" + e[1]);
      tip(mark, e[1] + " at step " + e[0] + " \u00b7 " + pathText(e[2]) + (e[3] ? " \u00b7 " + e[3] : ""));
    });
    for (var k = 0; k <= 5; k++) {
      var st = Math.round(1 + k * (steps - 1) / 5);
      svg("text", {x: x(st), y: H - 6, "text-anchor": k === 0 ? "start" : (k === 5 ? "end" : "middle")}, root).textContent = "step " + st;
    }
    timePane.appendChild(el("p", "note", "Bars: when each task's stream ran, on a worker. Dashed purple: fork; " +
      "dotted green: join; blue diamond: tool call; red triangle: eviction. Read from the record: the " +
      "streams fed in each step, and the steps of its forks, joins, tool calls and evictions."));
  }
  drawTimeline();
  select(-1, false);
  window.timViewer = {select: select, reveal: reveal, toggle: toggle, numTasks: tasks.length,
                      initMs: performance.now() - t0, ready: true};
})();
"""
