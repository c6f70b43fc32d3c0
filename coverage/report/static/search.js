/* bbcov atlas search: Kreise, Ämter, Gemeinden (and addresses in the internal atlas) by name or key.
   Plain JS, no dependencies, no network: the index is search/index.js (window.BBCOV_SEARCH, loaded by
   every page); address parts (search/s_*.js street directory, search/a_*.js addresses, search/id_*.js ids)
   are loaded on demand by script-element insertion, which also works from file://, only those a query
   needs (see coverage/report/search.py for their layout). fold() must stay equal to search.py's. */
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

  /* Streets loaded per query at most: directory parts (search/s_*.js) and address parts
     (search/a_*.js). A street in more address parts than that (a common name, no place given)
     is offered per Gemeinde instead: choosing one writes the Gemeinde after the number. */
  var MAX_STREET_PARTS = 3;
  var MAX_ADDRESS_PARTS = 8;
  var MAX_ADDRESS_HITS = 200;
  /* one collator for the (possibly thousands of) address hits: localeCompare with a locale builds one per call */
  var BY_NAME = new Intl.Collator("de").compare;
  var BY_NUMBER = new Intl.Collator("de", { numeric: true }).compare;

  /* the directory parts whose [first, last] folded names can hold a name starting with w */
  function directoryParts(ranges, w) {
    var out = [];
    var hi = w + "\uffff";
    for (var i = 0; i < ranges.length; i++) {
      if (ranges[i][0] < hi && ranges[i][1] >= w) { out.push(i); }
    }
    return out;
  }

  function loadAll(root, paths, done) {
    var left = paths.length;
    if (!left) { done(); return; }
    paths.forEach(function (p) { loadPart(root, p, function () { left -= 1; if (left === 0) { done(); } }); });
  }

  function unique(list) {
    return list.filter(function (x, i) { return list.indexOf(x) === i; });
  }

  function placeMatches(index, place, ags, wanted) {
    var where = [fold(place), fold(gemeindeNames(index)[ags] || "")];
    return wanted.some(function (w) { return matchScore(where, w) !== null; });
  }

  function addressLabel(street, number, place, id) {
    var label = (street + " " + number).trim() + (place ? ", " + place : "");
    return label || id;
  }

  /* Address hits for q: calls back with (hits, hint) once the parts they need are loaded. */
  function searchAddresses(index, root, q, callback) {
    var info = index.addresses;
    if (!info || q.length < 3) { callback([], ""); return; }
    var parsed = parseAddress(q);
    var idKey = String(idPart(q, info.id_parts));  /* ids fold like names ("MV-0000001": "mv 0000001") */
    var wanted = unique([parsed.street, collapsed(parsed.street)]).filter(function (w) { return w.length >= 2; });
    var places = parsed.place ? unique([parsed.place, collapsed(parsed.place)]) : [];
    var dir = [];
    wanted.forEach(function (w) { dir = unique(dir.concat(directoryParts(info.streets, w))); });
    var hint = "";
    if (dir.length > MAX_STREET_PARTS) {
      hint = "für Adressen mehr von der Straße eingeben";
      dir = [];
    }
    var first = ["search/id_" + idKey + ".js"].concat(dir.map(function (n) { return "search/s_" + n + ".js"; }));
    loadAll(root, first, function () {
      /* the ids equal to q, and the streets (street, ags, place, parts) whose name starts as typed */
      var idRefs = [];
      ((window.BBCOV_IDS || {})[idKey] || "").split("\n").forEach(function (line) {
        var f = line.split("\t");
        if (line && fold(f[0]) === q) { idRefs.push(f); }
      });
      var streets = [];
      dir.forEach(function (n) {
        ((window.BBCOV_STREETS || {})[n] || []).forEach(function (e) {
          var keys = e[1].split("|"), s = null;
          keys.forEach(function (k) {
            wanted.forEach(function (w) {
              var m = k === w ? 0 : (k.indexOf(w) === 0 ? 1 : null);
              if (m !== null && (s === null || m < s)) { s = m; }
            });
          });
          if (s === null) { return; }
          var refs = e[2];
          for (var i = 0; i < refs.length; i += 4) {
            if (places.length && !placeMatches(index, refs[i + 1], refs[i], places)) { continue; }
            streets.push({ street: e[0], ags: refs[i], place: refs[i + 1], from: refs[i + 2], to: refs[i + 3],
                           score: s });
          }
        });
      });
      var streetParts = [];
      streets.forEach(function (st) { for (var p = st.from; p <= st.to; p++) { streetParts.push(p); } });
      streetParts = unique(streetParts);
      var offer = streetParts.length > MAX_ADDRESS_PARTS;
      var parts = idRefs.filter(function (f) { return f[1] !== ""; }).map(function (f) { return parseInt(f[1], 10); });
      if (!offer) { parts = parts.concat(streetParts); }
      loadAll(root, unique(parts).map(function (p) { return "search/a_" + p + ".js"; }), function () {
        var data = window.BBCOV_ADDR || {};
        var hits = [];
        var byId = {};
        idRefs.forEach(function (f) {
          byId[f[0]] = true;
          if (f[1] === "") { hits.push(addressHit(index, f[0], f[2], f[3] || f[0], 0)); return; }  /* no street */
          (data[f[1]] || []).forEach(function (e) {
            for (var i = 1; i < e[3].length; i += 2) {
              if (e[3][i] === f[0]) { hits.push(addressHit(index, f[0], e[2], addressLabel(e[0], e[3][i - 1], e[1], f[0]), 0)); }
            }
          });
        });
        if (offer) {
          /* one hit per street and Gemeinde; choosing it writes the Gemeinde into the field */
          var seen = {}, names = gemeindeNames(index), offers = [];
          streets.forEach(function (st) {
            var key = st.street + "\t" + st.ags;
            if (seen[key]) { return; }
            seen[key] = true;
            var name = names[st.ags] || st.ags;
            var text = (st.street + " " + (parsed.number || "")).trim() + ", " + name;
            offers.push({ score: 10 + st.score, order: 3, label: text, fill: text,
                          note: "Straße · Gemeinde " + name + " · Ort übernehmen" });
          });
          var count = unique(streets.map(function (st) { return st.ags; })).length;
          hint = "Straße in " + count + " Gemeinden: Ort dazuschreiben oder wählen";
          offers.sort(function (x, y) { return x.score - y.score || BY_NAME(x.label, y.label); });
          callback(hits.concat(offers), hint);
          return;
        }
        streets.forEach(function (st) {
          for (var p = st.from; p <= st.to; p++) {
            (data[p] || []).forEach(function (e) {
              if (e[0] !== st.street || e[1] !== st.place || e[2] !== st.ags) { return; }
              var numbers = e[3];
              for (var i = 0; i < numbers.length && hits.length < MAX_ADDRESS_HITS; i += 2) {
                var hn = fold(numbers[i]).replace(/ /g, "");
                if ((parsed.number && hn.indexOf(parsed.number) !== 0) || byId[numbers[i + 1]]) { continue; }
                var exact = parsed.number && hn === parsed.number ? 0 : 1;
                hits.push(addressHit(index, numbers[i + 1], e[2], addressLabel(e[0], numbers[i], e[1], numbers[i + 1]),
                                     10 + st.score * 2 + exact));
              }
            });
          }
        });
        hits.sort(function (x, y) { return x.score - y.score || BY_NUMBER(x.label, y.label); });
        callback(hits, hint);
      });
    });
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

    /* a hit that offers a place writes it into the field (and searches again) instead of opening a page */
    function take(hit) {
      input.value = hit.fill;
      input.focus();
      run();
    }

    function show(hits, q, hint) {
      current = hits.slice(0, MAX_RESULTS);
      active = current.length ? 0 : -1;
      list.textContent = "";
      current.forEach(function (h, i) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        if (i === active) { li.className = "active"; li.setAttribute("aria-selected", "true"); }
        var a = document.createElement("a");
        a.textContent = h.label;
        if (h.fill) {
          a.href = "#";
          a.addEventListener("click", function (e) { e.preventDefault(); take(h); });
        } else {
          a.href = root + h.path;
        }
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
                                   : hits.length + " Treffer") + (q && hint ? " · " + hint : "");
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
      searchAddresses(index, root, q, function (addr, hint) {
        if (mine !== generation) { return; }
        form.removeAttribute("data-loading");
        show(areas.concat(addr), q, hint);
        if (onReady) { var f = onReady; onReady = null; f(); }
      });
    }

    function openActive() {
      var hit = current[active >= 0 ? active : 0];
      if (hit && hit.fill) { take(hit); }
      else if (hit) { window.location.href = root + hit.path; }
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

  /* searchAddresses is exposed for the tests, which compare its hits with the addresses */
  window.bbcovSearch = { fold: fold, idPart: idPart, addresses: searchAddresses };

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form.atlas-search"), init);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
