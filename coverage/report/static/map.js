/* The interactive page map of the atlas (plain JavaScript, no library, no network).
   - Layer switch: technology group x threshold, white/grey spots, the 100 m grid. The Gemeinden of the
     inline SVG keep their links and titles; only fills, titles and the legend change.
   - Internal atlas: the addresses of the page on a canvas (class by the best current download over all
     technologies), sites and contested addresses marked, the cost-estimate tree as lines.
   - Zoom (wheel, buttons) and pan (drag) by the SVG's viewBox; the canvases follow.
   - "#adresse=<id>" (the search's address hit, also on hashchange): the address layer goes on, the map
     centres on the address, rings it and shows its tooltip; a status line says so (or that it is missing).
   Data come from scripts next to the pages that assign window.BBCOV.* (added as script elements, which
   works from file://); every text from them is set with textContent, never as HTML. */
(function () {
  "use strict";
  var fig = document.querySelector("figure[data-map-layers]");
  if (!fig) { return; }
  var B = window.BBCOV = window.BBCOV || {};
  var svg = fig.querySelector("svg.atlas-map");
  if (!svg) { return; }
  var W = svg.viewBox.baseVal.width, H = svg.viewBox.baseVal.height;
  var X0 = parseFloat(svg.getAttribute("data-x0")), Y1 = parseFloat(svg.getAttribute("data-y1"));
  var S = parseFloat(svg.getAttribute("data-s"));
  var vb = { x: 0, y: 0, w: W, h: H };
  var nf1 = new Intl.NumberFormat("de-DE", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  var nf0 = new Intl.NumberFormat("de-DE", { maximumFractionDigits: 0 });
  function pct(v) { return v === null || v === undefined ? "–" : nf1.format(v) + "\u00a0%"; }
  function num(v) { return v === null || v === undefined || v < 0 ? "–" : nf0.format(v); }
  function classOf(v, breaks) {  // as coverage.report.maps.classify: last break <= v, below the first: 0
    if (v === null || v === undefined) { return -1; }
    var i = 0;
    while (i + 1 < breaks.length && v >= breaks[i + 1]) { i++; }
    return i;
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function load(src, done) {
    var s = document.createElement("script");
    s.src = src;
    s.onload = function () { done(true); };
    s.onerror = function () { done(false); };
    document.head.appendChild(s);
  }

  // ---------------------------------------------------------------- stage: canvas under and over the SVG
  var stage = svg.parentNode;
  var under = el("canvas", { "class": "map-under", "aria-hidden": "true" });
  var over = el("canvas", { "class": "map-over", "aria-hidden": "true" });
  stage.insertBefore(under, svg);
  stage.appendChild(over);
  var tip = el("div", { "class": "map-tip", role: "tooltip", hidden: "" });
  stage.appendChild(tip);
  var areas = Array.prototype.slice.call(svg.querySelectorAll("g.area"));
  var legend = fig.querySelector(".legend");
  var state = { mode: "share", group: "all", t: "100", spot: "white", addr: false, tree: false };
  var L = null, grid = null, addrKeys = [], addrData = [], mark = null;
  var status = el("p", { "class": "map-status", role: "status", "aria-live": "polite" });
  var body = stage.parentNode;  // the row of map and legend; the status line goes under it
  body.parentNode.insertBefore(status, body.nextSibling);

  function screenScale() { return (svg.clientWidth || W) / vb.w; }
  function toScreen(x, y, out) {  // data metres -> CSS pixels of the stage
    var k = screenScale();
    out[0] = ((x - X0) * S - vb.x) * k;
    out[1] = ((Y1 - y) * S - vb.y) * k;
  }
  function sizeCanvas(c) {
    var dpr = window.devicePixelRatio || 1, w = svg.clientWidth, h = svg.clientHeight;
    c.style.width = w + "px"; c.style.height = h + "px";
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    var ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return ctx;
  }

  // ---------------------------------------------------------------- layers of the Gemeinden
  function layerIndex(id) {
    for (var i = 0; i < L.layers.length; i++) { if (L.layers[i].id === id) { return i; } }
    return -1;
  }
  function currentId() {
    return state.mode === "spot" ? "fund_" + state.spot : "share_ge_" + state.t + "_" + state.group;
  }
  function legendRows(title, classes, counts, extra) {
    legend.textContent = "";
    legend.appendChild(el("div", { "class": "legend-title" }, title));
    var ul = el("ul");
    classes.colours.forEach(function (c, i) {
      var li = el("li");
      var sw = el("span", { "class": "swatch" }); sw.style.background = c;
      li.appendChild(sw); li.appendChild(document.createTextNode(classes.labels[i] + " "));
      if (counts) { li.appendChild(el("span", { "class": "legend-count" }, "(" + counts[i] + ")")); }
      ul.appendChild(li);
    });
    if (classes.nodata) {
      var li = el("li"), sw = el("span", { "class": "swatch" });
      sw.style.background = classes.nodata[0];
      li.appendChild(sw); li.appendChild(document.createTextNode(classes.nodata[1] + " "));
      if (counts) { li.appendChild(el("span", { "class": "legend-count" }, "(" + counts[counts.length - 1] + ")")); }
      ul.appendChild(li);
    }
    legend.appendChild(ul);
    if (extra) { legend.appendChild(extra); }
  }
  function addressLegend() {
    if (!state.addr && !state.tree) { return null; }
    var box = el("div", { "class": "legend-addresses" });
    var n = [0, 0, 0, 0, 0], sites = 0, contested = 0;
    addrData.forEach(function (d) {
      for (var i = 0; i < d.c.length; i++) { n[d.c[i]]++; sites += d.s[i]; contested += d.k[i]; }
    });
    if (state.addr) {
      box.appendChild(el("div", { "class": "legend-title" },
        "Adressen nach bester Download-Bandbreite heute (alle Technologien, Festnetz und Mobilfunk)"));
      var ul = el("ul");
      L.classes.address.forEach(function (c, i) {
        var li = el("li"), dot = el("span", { "class": "dot" }); dot.style.background = c[1];
        li.appendChild(dot); li.appendChild(document.createTextNode(c[0] + " "));
        li.appendChild(el("span", { "class": "legend-count" }, "(" + nf0.format(n[i]) + ")"));
        ul.appendChild(li);
      });
      var s = el("li"); s.appendChild(el("span", { "class": "dot ring" }));
      s.appendChild(document.createTextNode("Standort (Verwaltung, Schule) (" + nf0.format(sites) + ")"));
      ul.appendChild(s);
      var k = el("li"); k.appendChild(el("span", { "class": "dot contested" }));
      k.appendChild(document.createTextNode("strittig: Stellungnahme liegt vor (" + nf0.format(contested) + ")"));
      ul.appendChild(k);
      box.appendChild(ul);
    }
    if (state.tree) {
      var t = el("ul"), a = el("li"), b = el("li");
      a.appendChild(el("span", { "class": "line" })); a.appendChild(document.createTextNode("Trasse (Schätzung, Luftlinie)"));
      b.appendChild(el("span", { "class": "line link" })); b.appendChild(document.createTextNode("Anbindung an versorgte Adresse (Schätzung)"));
      t.appendChild(a); t.appendChild(b);
      box.appendChild(t);
    }
    return box;
  }
  function applyLayer() {
    var id = currentId(), j = layerIndex(id);
    if (j < 0) { return; }
    var layer = L.layers[j];
    var classes = L.classes[layer.kind];
    var counts = classes.colours.map(function () { return 0; }).concat([0]);
    var spotIdx = 0;
    if (layer.kind === "spot") {
      L.layers.forEach(function (x, i) { if (x.kind === "spot" && i < j) { spotIdx++; } });
    }
    var gridMode = state.mode === "grid";
    areas.forEach(function (g) {
      var a = L.areas[g.getAttribute("data-key")];
      if (!a) { return; }
      var v = a.v[j], c = classOf(v, classes.breaks);
      counts[c < 0 ? counts.length - 1 : c]++;
      var path = g.querySelector("path"), title = g.querySelector("title");
      path.setAttribute("fill", c < 0 ? classes.nodata[0] : classes.colours[c]);
      path.setAttribute("fill-opacity", gridMode ? "0" : state.addr ? "0.35" : "1");  // points stay visible
      g.setAttribute("data-class", c < 0 ? "nodata" : String(c));
      g.setAttribute("data-layer", id);
      var text = a.n + "\n" + layer.label + ": " + pct(v);
      if (layer.kind === "spot" && a.f) { text += " (" + num(a.f[spotIdx]) + " Haushalte)"; }
      title.textContent = text + "\nHaushalte: " + num(a.h);
    });
    var bg = svg.querySelector(":scope > rect");
    if (bg) { bg.setAttribute("fill-opacity", gridMode ? "0" : "1"); }
    fig.setAttribute("data-layer", gridMode ? "grid:" + id : id);
    if (gridMode) {
      legendRows(layer.label.replace("Anteil der Haushalte", "Anteil der Haushalte je 100-m-Zelle"),
                 { colours: L.classes.share.colours, labels: L.classes.share.labels }, null, addressLegend());
      if (!grid) {
        load(fig.getAttribute("data-map-grid"), function () { grid = B.grid || null; drawUnder(); });
      }
    } else {
      legendRows(layer.label + ", je Gemeinde", classes, counts, addressLegend());
    }
    drawUnder();
  }

  // ---------------------------------------------------------------- canvases
  var pt = [0, 0];
  function drawUnder() {
    var ctx = sizeCanvas(under);
    if (state.mode !== "grid" || !grid) { return; }
    var codes = grid.classes[currentId()];
    if (!codes) { return; }
    var w = svg.clientWidth, h = svg.clientHeight;
    var side = Math.max(1, grid.size * S * screenScale()), half = side / 2;
    var colours = L.classes.share.colours;
    for (var c = 0; c < colours.length; c++) {
      var ch = String(c);
      ctx.beginPath();
      for (var i = 0; i < grid.x.length; i++) {
        if (codes[i] !== ch) { continue; }
        toScreen(grid.x[i], grid.y[i], pt);
        if (pt[0] < -side || pt[1] < -side || pt[0] > w + side || pt[1] > h + side) { continue; }
        ctx.rect(pt[0] - half, pt[1] - half, side, side);
      }
      ctx.fillStyle = colours[c];
      ctx.fill();
    }
  }
  function drawOver() {
    var ctx = sizeCanvas(over);
    var w = svg.clientWidth, h = svg.clientHeight, k = screenScale();
    var r = Math.max(1.5, Math.min(6, 1.2 * Math.sqrt(k * W / w * 4)));
    if (state.tree) {
      addrData.forEach(function (d) {
        if (!d.tree) { return; }
        [0, 1].forEach(function (kind) {
          ctx.beginPath();
          for (var i = 0; i < d.tree_kind.length; i++) {
            if (d.tree_kind[i] !== kind) { continue; }
            toScreen(d.tree[4 * i], d.tree[4 * i + 1], pt); ctx.moveTo(pt[0], pt[1]);
            toScreen(d.tree[4 * i + 2], d.tree[4 * i + 3], pt); ctx.lineTo(pt[0], pt[1]);
          }
          ctx.setLineDash(kind ? [4, 3] : []);
          ctx.strokeStyle = kind ? "#e7298a" : "#6a3d9a";
          ctx.lineWidth = 1.2;
          ctx.stroke();
        });
      });
      ctx.setLineDash([]);
    }
    if (!state.addr) { return; }
    var colours = L.classes.address.map(function (c) { return c[1]; });
    for (var c = 0; c < colours.length; c++) {
      ctx.beginPath();
      addrData.forEach(function (d) {
        for (var i = 0; i < d.x.length; i++) {
          if (d.c[i] !== c) { continue; }
          toScreen(d.x[i], d.y[i], pt);
          if (pt[0] < -r || pt[1] < -r || pt[0] > w + r || pt[1] > h + r) { continue; }
          ctx.moveTo(pt[0] + r, pt[1]);
          ctx.arc(pt[0], pt[1], r, 0, 2 * Math.PI);
        }
      });
      ctx.fillStyle = colours[c];
      ctx.fill();
    }
    [["s", "#000000", r + 2.5], ["k", "#e7298a", r + 4.5]].forEach(function (m) {
      ctx.beginPath();
      addrData.forEach(function (d) {
        var flags = d[m[0]];
        for (var i = 0; i < flags.length; i++) {
          if (!flags[i]) { continue; }
          toScreen(d.x[i], d.y[i], pt);
          ctx.moveTo(pt[0] + m[2], pt[1]);
          ctx.arc(pt[0], pt[1], m[2], 0, 2 * Math.PI);
        }
      });
      ctx.strokeStyle = m[1];
      ctx.lineWidth = 2;
      ctx.stroke();
    });
    if (mark) {  // the address of "#adresse=": a white-black double ring, visible on every class colour
      toScreen(mark[0].x[mark[1]], mark[0].y[mark[1]], pt);
      [["#ffffff", 5, r + 9], ["#000000", 2.5, r + 9]].forEach(function (m) {
        ctx.beginPath();
        ctx.arc(pt[0], pt[1], m[2], 0, 2 * Math.PI);
        ctx.strokeStyle = m[0];
        ctx.lineWidth = m[1];
        ctx.stroke();
      });
    }
  }
  function redraw() {
    svg.setAttribute("viewBox", vb.x + " " + vb.y + " " + vb.w + " " + vb.h);
    var labels = svg.querySelector("g.labels");
    if (labels) { labels.style.fontSize = (11 * vb.w / W) + "px"; labels.style.strokeWidth = (3 * vb.w / W) + "px"; }
    drawUnder();
    drawOver();
  }

  // ---------------------------------------------------------------- address tooltips
  function decode(d) {  // columns of coverage.report.pagemap.address_data: base-91 codes into value tables
    if (d.decoded) { return d; }
    Object.keys(d.cols).forEach(function (name) {
      var col = d.cols[name], k = col.k, s = col.s, v = col.v, out = new Array(d.n);
      for (var i = 0; i < d.n; i++) {
        var code = 0;
        for (var j = 0; j < k; j++) { var c = s.charCodeAt(i * k + j); code = code * 91 + (c - 35 - (c > 92 ? 1 : 0)); }
        out[i] = v[code];
      }
      d[name] = out;
    });
    for (var i = 0; i < d.n; i++) { d.x[i] += d.ox; d.y[i] += d.oy; }
    if (d.i) { d.id = d.i.map(function (rest) { return d.ip + rest; }); }
    if (d.tree) { for (var t = 0; t < d.tree.length; t += 2) { d.tree[t] += d.ox; d.tree[t + 1] += d.oy; } }
    d.decoded = true;
    return d;
  }
  function speed(v) { return v === null || v === undefined ? "kein Angebot" : num(v) + " Mbit/s"; }
  function addressText(d, i) {
    var lines = [d.a[i] || "(ohne Straße)"];
    if (d.id) { lines.push("Adress-ID: " + d.id[i]); }
    lines.push("Haushalte: " + nf0.format(d.h[i]));
    d.groups.forEach(function (g) {
      var down = d["d_" + g[0]][i], tech = d["t_" + g[0]][i];
      var line = g[1] + ": " + speed(down);
      if (g[0] === "all" && down !== null) {
        if (d.u[i] !== null) { line = g[1] + ": " + num(down) + "/" + num(d.u[i]) + " Mbit/s"; }
        if (d.p && d.p[i]) { line += ", " + d.p[i]; }
      }
      if (down !== null && tech) { line += " (" + tech + ")"; }
      lines.push(line);
    });
    lines.push("Mit geplantem Ausbau (alle): " + speed(d.pd[i]));
    var f = [];
    d.rules.forEach(function (label, b) {
      f.push(label + ": " + ((d.f[i] >> b) & 1 ? "ja" : "nein") + " / " + ((d.fp[i] >> b) & 1 ? "ja" : "nein"));
    });
    if (f.length) { lines.push("Förderfähig (heute / mit Planung): " + f.join("; ")); }
    if (d.s[i]) { lines.push("Standort (Verwaltung oder Schule)"); }
    if (d.k[i]) { lines.push("Strittig: Stellungnahme liegt vor"); }
    return lines.join("\n");
  }
  function nearest(mx, my) {
    var best = null, bestD = 64;  // within 8 px
    addrData.forEach(function (d) {
      for (var i = 0; i < d.x.length; i++) {
        toScreen(d.x[i], d.y[i], pt);
        var dx = pt[0] - mx, dy = pt[1] - my, dd = dx * dx + dy * dy;
        if (dd < bestD) { bestD = dd; best = [d, i]; }
      }
    });
    return best;
  }

  // ---------------------------------------------------------------- controls
  function buildControls() {
    var box = el("div", { "class": "map-controls" });
    function select(label, ctl, options, value, modes) {
      var lab = el("label", modes ? { "data-modes": modes } : {}, label + " ");
      var s = el("select", { "data-ctl": ctl });
      options.forEach(function (o) { s.appendChild(el("option", { value: o[0] }, o[1])); });
      s.value = value;
      s.addEventListener("change", function () { state[ctl] = s.value; showModes(); applyLayer(); drawOver(); });
      lab.appendChild(s);
      box.appendChild(lab);
    }
    var modes = [["share", "Versorgung je Gemeinde"]];
    if (L.layers.some(function (x) { return x.kind === "spot"; })) { modes.push(["spot", "Weiße und graue Flecken je Gemeinde"]); }
    if (L.grid && fig.getAttribute("data-map-grid")) { modes.push(["grid", "100-m-Raster (Anteil je Zelle)"]); }
    select("Karte", "mode", modes, state.mode);
    select("Technologie", "group", L.groups, state.group, "share grid");
    select("Schwelle", "t", L.thresholds.map(function (t) { return [t, "≥ " + t + " Mbit/s"]; }), state.t, "share grid");
    var spots = L.layers.filter(function (x) { return x.kind === "spot"; }).map(function (x) { return [x.rule, x.label]; });
    if (spots.length) { select("Flecken", "spot", spots, state.spot, "spot"); }
    function check(label, ctl) {
      var lab = el("label", { "class": "check" });
      var c = el("input", { type: "checkbox", "data-ctl": ctl });
      c.addEventListener("change", function () {
        state[ctl] = c.checked;
        ensureAddresses(function () { applyLayer(); drawOver(); });
      });
      lab.appendChild(c); lab.appendChild(document.createTextNode(" " + label));
      box.appendChild(lab);
    }
    if (addrKeys.length) {
      check("Adressen", "addr");
      if (fig.getAttribute("data-map-tree")) { check("Trassen der Kostenschätzung (Schätzung)", "tree"); }
    }
    var zoom = el("span", { "class": "map-zoom" });
    [["in", "+", "Vergrößern"], ["out", "−", "Verkleinern"], ["reset", "Ganze Karte", "Ganze Karte zeigen"]].forEach(function (z) {
      var b = el("button", { type: "button", "data-zoom": z[0], title: z[2] }, z[1]);
      b.addEventListener("click", function () {
        if (z[0] === "reset") { vb = { x: 0, y: 0, w: W, h: H }; redraw(); } else { zoomAt(W / 2, H / 2, z[0] === "in" ? 1.6 : 1 / 1.6, true); }
      });
      zoom.appendChild(b);
    });
    box.appendChild(zoom);
    fig.insertBefore(box, fig.firstChild);
    showModes();
  }
  function showModes() {
    fig.querySelectorAll("[data-modes]").forEach(function (lab) {
      lab.hidden = lab.getAttribute("data-modes").split(" ").indexOf(state.mode) < 0;
    });
  }
  var pending = null;
  function ensureAddresses(done) {
    if (!state.addr && !state.tree) { done(); return; }
    if (addrData.length === addrKeys.length) { done(); return; }
    if (pending) { pending.push(done); return; }
    pending = [done];
    var left = addrKeys.length, base = fig.getAttribute("data-map-addr-base");
    addrKeys.forEach(function (key) {
      load(base + encodeURIComponent(key) + ".js", function () {
        left--;
        if (left === 0) {
          B.addr = B.addr || {};
          addrData = addrKeys.map(function (k) { return B.addr[k]; }).filter(Boolean).map(decode);
          fig.setAttribute("data-addresses", String(addrData.reduce(function (n, d) { return n + d.x.length; }, 0)));
          var cbs = pending; pending = null;
          cbs.forEach(function (cb) { cb(); });
        }
      });
    });
  }

  // ---------------------------------------------------------------- zoom and pan
  function zoomAt(ux, uy, f, centre) {
    var w = Math.max(W / 64, Math.min(W, vb.w / f)), h = w * H / W;
    var fx = centre ? 0.5 : (ux - vb.x) / vb.w, fy = centre ? 0.5 : (uy - vb.y) / vb.h;
    if (centre) { ux = vb.x + vb.w / 2; uy = vb.y + vb.h / 2; }
    vb = { x: ux - fx * w, y: uy - fy * h, w: w, h: h };
    redraw();
  }
  function userPoint(ev) {
    var r = svg.getBoundingClientRect(), k = screenScale();
    return [vb.x + (ev.clientX - r.left) / k, vb.y + (ev.clientY - r.top) / k, ev.clientX - r.left, ev.clientY - r.top];
  }
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var p = userPoint(ev);
    zoomAt(p[0], p[1], ev.deltaY < 0 ? 1.25 : 0.8, false);
  }, { passive: false });
  var drag = null, dragged = false;
  svg.addEventListener("pointerdown", function (ev) { drag = [ev.clientX, ev.clientY, vb.x, vb.y]; dragged = false; });
  window.addEventListener("pointerup", function () { drag = null; });
  svg.addEventListener("pointermove", function (ev) {
    if (drag && (ev.buttons & 1)) {
      var dx = ev.clientX - drag[0], dy = ev.clientY - drag[1];
      if (dragged || Math.abs(dx) + Math.abs(dy) > 4) {
        dragged = true;
        var k = screenScale();
        vb.x = drag[2] - dx / k; vb.y = drag[3] - dy / k;
        redraw();
      }
      return;
    }
    if (!state.addr || !addrData.length) { tip.hidden = true; return; }
    var p = userPoint(ev), hit = nearest(p[2], p[3]);
    if (!hit) { tip.hidden = true; return; }
    showTip(hit[0], hit[1], p[2], p[3]);
  });
  function showTip(d, i, sx, sy) {
    tip.textContent = addressText(d, i);
    tip.style.left = Math.max(0, Math.min(sx + 12, svg.clientWidth - 260)) + "px";
    tip.hidden = false;
    var below = sy + 12, above = sy - 12 - tip.offsetHeight;  // above the point when it would leave the map
    tip.style.top = (below + tip.offsetHeight > svg.clientHeight && above >= 0 ? above : below) + "px";
  }
  svg.addEventListener("pointerleave", function () { tip.hidden = true; });
  svg.addEventListener("click", function (ev) {  // a drag is not a click on an area
    if (dragged) { ev.preventDefault(); ev.stopPropagation(); dragged = false; }
  }, true);
  window.addEventListener("resize", function () { drawUnder(); drawOver(); });

  // ---------------------------------------------------------------- "#adresse=<id>": mark one address
  function wantedAddress() {
    var m = /^#adresse=(.*)$/.exec(window.location.hash);
    if (!m) { return null; }
    try { return decodeURIComponent(m[1]).trim(); } catch (e) { return m[1]; }
  }
  function findAddress(id) {
    for (var j = 0; j < addrData.length; j++) {
      var ids = addrData[j].id || [];
      for (var i = 0; i < ids.length; i++) { if (ids[i] === id) { return [addrData[j], i]; } }
    }
    return null;
  }
  function markFromHash() {
    var id = wantedAddress();
    if (id === null || !L) { return; }
    if (!addrKeys.length) {
      mark = null; drawOver();
      status.textContent = "Adresse „" + id + "“ nicht gefunden: diese Karte zeigt keine Adressen.";
      fig.setAttribute("data-marked", "");
      return;
    }
    B.map.set({ addr: true }, function () {
      var hit = findAddress(id);
      if (!hit) {
        mark = null; drawOver(); tip.hidden = true;
        status.textContent = "Adresse „" + id + "“ nicht gefunden: nicht unter den Adressen dieser Karte.";
        fig.setAttribute("data-marked", "");
        return;
      }
      mark = hit;
      var w = Math.min(vb.w, W / 6), h = w * H / W;  // zoom in (never out) and centre on the address
      var ux = (hit[0].x[hit[1]] - X0) * S, uy = (Y1 - hit[0].y[hit[1]]) * S;
      vb = { x: ux - w / 2, y: uy - h / 2, w: w, h: h };
      redraw();
      svg.scrollIntoView({ block: "center" });  // the address is at its centre
      var p = [0, 0]; toScreen(hit[0].x[hit[1]], hit[0].y[hit[1]], p);
      showTip(hit[0], hit[1], p[0], p[1]);  // until the mouse moves over the map
      status.textContent = "Adresse " + (hit[0].a[hit[1]] || "(ohne Straße)") + " (Adress-ID " + id +
        ") auf der Karte markiert (schwarzer Ring, Adressen eingeblendet).";
      fig.setAttribute("data-marked", id);
    });
  }
  window.addEventListener("hashchange", markFromHash);

  // ---------------------------------------------------------------- start
  try { addrKeys = JSON.parse(fig.getAttribute("data-map-addr") || "[]"); } catch (e) { addrKeys = []; }
  load(fig.getAttribute("data-map-layers"), function (ok) {
    if (!ok || !B.layers) { return; }
    L = B.layers;
    var def = fig.getAttribute("data-map-default") || L["default"];
    var layer = L.layers[Math.max(0, layerIndex(def))];
    state.mode = layer.kind;
    if (layer.kind === "share") { state.group = layer.group; state.t = layer.t; } else { state.spot = layer.rule; }
    if (L.groups.length && !L.groups.some(function (g) { return g[0] === state.group; })) { state.group = L.groups[0][0]; }
    buildControls();
    fig.setAttribute("data-ready", "1");
    redraw();
    markFromHash();
  });
  B.map = {  // for tests and the curious: switch programmatically, wait for data
    set: function (changes, done) {
      Object.keys(changes).forEach(function (k) {
        state[k] = changes[k];
        var c = fig.querySelector('[data-ctl="' + k + '"]');
        if (c) { if (c.type === "checkbox") { c.checked = !!changes[k]; } else { c.value = changes[k]; } }
      });
      showModes();
      ensureAddresses(function () { applyLayer(); drawOver(); if (done) { done(); } });
    },
    state: function () { return JSON.parse(JSON.stringify(state)); },
    screen: function (x, y) { var p = [0, 0]; toScreen(x, y, p); return p; }
  };
})();
