/* bbcov atlas search: Kreise, Ämter, Gemeinden (and addresses in the internal atlas) by name or key.
   Plain JS, no dependencies, no network: the index is search/index.js (window.BBCOV_SEARCH, loaded by
   every page); address parts (search/str_*.js, search/id_*.js) are loaded on demand by script-element
   insertion, which also works from file://. fold() must stay equal to coverage/report/search.py. */
(function () {
  "use strict";

  var MAX_RESULTS = 10;
  var LEVEL_ORDER = { "Gemeinde": 0, "Amt": 1, "Kreis": 2 };

  /* lower case, ß -> ss, diacritics dropped, runs of non-letters/digits -> one space */
  function fold(text) {
    var s = String(text).toLowerCase().replace(/ß/g, "ss").normalize("NFKD").replace(/\p{M}/gu, "");
    return s.replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  }

  /* 32-bit FNV-1a over the code points of fold(id), as search.py's id_part() */
  function idPart(id, parts) {
    var h = 0x811c9dc5;
    for (var ch of fold(id)) {
      h = Math.imul(h ^ ch.codePointAt(0), 0x01000193) >>> 0;
    }
    return h % parts;
  }

  /* "ueber" is also looked for as "uber" (streets are filed under their plain folded name) */
  function collapsed(q) {
    return q.replace(/ae/g, "a").replace(/oe/g, "o").replace(/ue/g, "u");
  }

  function matchScore(keys, q) {
    var best = null;
    for (var i = 0; i < keys.length; i++) {
      var k = keys[i], s = null;
      if (k === q) { s = 0; }
      else if (k.indexOf(q) === 0) { s = 1; }
      else if ((" " + k).indexOf(" " + q) !== -1) { s = 2; }
      if (s !== null && (best === null || s < best)) { best = s; }
    }
    return best;
  }

  function searchAreas(index, q) {
    var hits = [];
    var numeric = /^\d+$/.test(q);
    index.areas.forEach(function (a) {
      var s = numeric ? (a[2] === q ? 0 : (a[2].indexOf(q) === 0 ? 1 : null)) : matchScore(a[5].split("|"), q);
      if (s !== null) {
        hits.push({ score: s, order: LEVEL_ORDER[a[1]], label: a[0], note: a[1] + (a[4] ? " · " + a[4] : ""),
                    path: a[3] });
      }
    });
    hits.sort(function (x, y) {
      return x.score - y.score || x.order - y.order || x.label.length - y.label.length ||
        x.label.localeCompare(y.label, "de");
    });
    return hits;
  }

  var loaded = {};  /* path -> "loading" | "done" */
  var waiting = {}; /* path -> callbacks */

  function loadPart(root, path, done) {
    if (loaded[path] === "done") { done(); return; }
    (waiting[path] = waiting[path] || []).push(done);
    if (loaded[path] === "loading") { return; }
    loaded[path] = "loading";
    var script = document.createElement("script");
    script.src = root + path;
    script.onload = script.onerror = function () {
      loaded[path] = "done";
      var callbacks = waiting[path] || [];
      waiting[path] = [];
      callbacks.forEach(function (cb) { cb(); });
    };
    document.head.appendChild(script);
  }

  function gemeindeNames(index) {
    if (!index._gemeinde) {
      index._gemeinde = {};
      index.areas.forEach(function (a) { if (a[1] === "Gemeinde") { index._gemeinde[a[2]] = a[0]; } });
    }
    return index._gemeinde;
  }

  function addressHit(index, id, ags, label, score) {
    var name = gemeindeNames(index)[ags] || ags;
    return { score: score, order: 3, label: label, note: "Adresse · Gemeinde " + name + " · " + id,
             path: "gemeinde/" + encodeURIComponent(ags) + ".html#adresse=" + encodeURIComponent(id) };
  }

  /* "hauptstrasse 12 a gustrow" -> street "hauptstrasse", number "12a", place "gustrow" */
  function parseAddress(q) {
    var tokens = q.split(" ");
    var at = -1;
    for (var i = 1; i < tokens.length; i++) { if (/^\d/.test(tokens[i])) { at = i; break; } }
    if (at < 0) { return { street: q, number: "", place: "" }; }
    var end = at + 1;
    if (end < tokens.length && /^[a-z]$/.test(tokens[end])) { end += 1; }
    return { street: tokens.slice(0, at).join(" "), number: tokens.slice(at, end).join(""),
             place: tokens.slice(end).join(" ") };
  }

  /* Address hits for q; calls back with them once the parts they need are loaded. */
  function searchAddresses(index, root, q, callback) {
    var info = index.addresses;
    if (!info || q.length < 3) { callback([]); return; }
    var parsed = parseAddress(q);
    var streetKeys = [];
    [parsed.street, collapsed(parsed.street)].forEach(function (s) {
      var key = s.replace(/ /g, "").slice(0, 2);
      if (key.length === 2 && info.streets.indexOf(key) !== -1 && streetKeys.indexOf(key) === -1) {
        streetKeys.push(key);
      }
    });
    var idKey = String(idPart(q, info.id_parts));  /* ids fold like names ("MV-0000001": "mv 0000001") */
    var paths = streetKeys.map(function (k) { return "search/str_" + k + ".js"; });
    if (idKey !== null) { paths.push("search/id_" + idKey + ".js"); }
    var pending = paths.length;
    if (!pending) { callback([]); return; }
    function finish() {
      var hits = [];
      /* an id line names where the address is: street part, street, number (the part has the label) */
      var refs = [];
      if (idKey !== null && window.BBCOV_IDS && window.BBCOV_IDS[idKey]) {
        window.BBCOV_IDS[idKey].split("\n").forEach(function (line) {
          var f = line.split("\t");
          if (fold(f[0]) === q) { refs.push(f); }
        });
      }
      var missing = refs.map(function (f) { return "search/str_" + f[1] + ".js"; })
        .filter(function (p) { return loaded[p] !== "done"; });
      if (missing.length) {
        var left = missing.length;
        missing.forEach(function (p) { loadPart(root, p, function () { left -= 1; if (left === 0) { finish(); } }); });
        return;
      }
      refs.forEach(function (f) {
        var st = ((window.BBCOV_STREETS || {})[f[1]] || [])[parseInt(f[2], 10)];
        if (!st) { return; }
        var n = parseInt(f[3], 10);
        var label = (st[0] + " " + st[4][2 * n]).trim() + (st[1] ? ", " + st[1] : "");
        hits.push(addressHit(index, f[0], st[2], label, 0));
      });
      var byId = {};
      refs.forEach(function (f) { byId[f[0]] = true; });
      var wanted = [parsed.street, collapsed(parsed.street)];
      streetKeys.forEach(function (k) {
        var streets = (window.BBCOV_STREETS || {})[k] || [];
        streets.forEach(function (st) {
          var s = null;
          wanted.forEach(function (w) {
            var m = matchScore(st[3].split("|"), w);
            if (m !== null && (s === null || m < s)) { s = m; }
          });
          if (s === null) { return; }
          if (parsed.place) {
            var where = [fold(st[1]), fold(gemeindeNames(index)[st[2]] || "")];
            if (matchScore(where, parsed.place) === null && matchScore(where, collapsed(parsed.place)) === null) {
              return;
            }
          }
          var numbers = st[4];
          for (var i = 0; i < numbers.length && hits.length < 200; i += 2) {
            var hn = fold(numbers[i]).replace(/ /g, "");
            if ((parsed.number && hn.indexOf(parsed.number) !== 0) || byId[numbers[i + 1]]) { continue; }
            var exact = parsed.number && hn === parsed.number ? 0 : 1;
            var label = (st[0] + " " + numbers[i]).trim() + (st[1] ? ", " + st[1] : "");
            hits.push(addressHit(index, numbers[i + 1], st[2], label, 10 + s * 2 + exact));
          }
        });
      });
      hits.sort(function (x, y) { return x.score - y.score || x.label.localeCompare(y.label, "de", { numeric: true }); });
      callback(hits);
    }
    paths.forEach(function (p) { loadPart(root, p, function () { pending -= 1; if (pending === 0) { finish(); } }); });
  }

  function init(form) {
    var index = window.BBCOV_SEARCH;
    var input = form.querySelector("input[type=search]");
    var list = form.querySelector(".search-results");
    var status = form.querySelector(".search-status");
    var root = form.getAttribute("data-root") || "";
    if (!index) {
      input.disabled = true;
      input.placeholder = "Suchindex nicht gefunden (search/index.js)";
      return;
    }
    var current = [];
    var active = -1;
    var generation = 0;
    var onReady = null;

    function show(hits, q) {
      current = hits.slice(0, MAX_RESULTS);
      active = current.length ? 0 : -1;
      list.textContent = "";
      current.forEach(function (h, i) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        if (i === active) { li.className = "active"; li.setAttribute("aria-selected", "true"); }
        var a = document.createElement("a");
        a.href = root + h.path;
        a.textContent = h.label;
        var note = document.createElement("span");
        note.className = "search-note";
        note.textContent = h.note;
        li.appendChild(a);
        li.appendChild(note);
        list.appendChild(li);
      });
      list.hidden = !q;
      status.textContent = !q ? "" : hits.length === 0 ? "Kein Treffer" :
        (hits.length > MAX_RESULTS ? "die ersten " + MAX_RESULTS + " von " + hits.length + " Treffern"
                                   : hits.length + " Treffer");
    }

    function highlight(i) {
      var items = list.querySelectorAll("li");
      if (!items.length) { return; }
      active = (i + items.length) % items.length;
      items.forEach(function (li, j) {
        li.className = j === active ? "active" : "";
        li.setAttribute("aria-selected", j === active ? "true" : "false");
      });
    }

    function run() {
      var q = fold(input.value);
      var mine = ++generation;
      if (!q) { show([], q); return; }
      var areas = searchAreas(index, q);
      show(areas, q);
      if (!index.addresses) { if (onReady) { var f = onReady; onReady = null; f(); } return; }
      form.setAttribute("data-loading", "1");
      searchAddresses(index, root, q, function (addr) {
        if (mine !== generation) { return; }
        form.removeAttribute("data-loading");
        show(areas.concat(addr), q);
        if (onReady) { var f = onReady; onReady = null; f(); }
      });
    }

    function openActive() {
      var hit = current[active >= 0 ? active : 0];
      if (hit) { window.location.href = root + hit.path; }
    }

    input.addEventListener("input", run);
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(active + 1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(active - 1); }
      else if (e.key === "Escape") { input.value = ""; show([], ""); }
    });
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (form.getAttribute("data-loading")) { onReady = openActive; return; }
      if (!current.length && input.value) { onReady = openActive; run(); return; }
      openActive();
    });
  }

  window.bbcovSearch = { fold: fold, idPart: idPart };

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form.atlas-search"), init);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
