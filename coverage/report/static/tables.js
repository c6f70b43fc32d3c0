/* bbcov report tables: click-to-sort headers and a text filter. Plain JS, no dependencies. */
(function () {
  "use strict";

  var collator = new Intl.Collator("de", { numeric: true, sensitivity: "base" });

  /* "1.234,5 %" -> 1234.5; returns null for non-numbers (e.g. "–"). */
  function parseGerman(text) {
    var t = String(text).replace(/[\s\u00a0\u202f%]/g, "").replace(/\./g, "").replace(",", ".");
    if (!/^-?\d+(\.\d+)?$/.test(t)) { return null; }
    return parseFloat(t);
  }

  function cellNumber(td) {
    var raw = td.getAttribute("data-value");
    if (raw !== null && raw !== "") {
      var n = parseFloat(raw);
      if (!isNaN(n)) { return n; }
    }
    return parseGerman(td.textContent);
  }

  function compareCells(a, b, numeric) {
    if (numeric) {
      var x = cellNumber(a), y = cellNumber(b);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }   /* empty values last */
      if (y === null) { return -1; }
      return x - y;
    }
    return collator.compare(a.textContent.trim(), b.textContent.trim());
  }

  function sortBy(table, th, index) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = th.classList.contains("num");
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    /* numbers start descending (largest first), text ascending */
    if (th.getAttribute("aria-sort") === "none" && numeric) { dir = "descending"; }
    var sign = dir === "ascending" ? 1 : -1;
    rows.sort(function (r1, r2) {
      var a = r1.cells[index], b = r2.cells[index];
      var xNull = numeric && cellNumber(a) === null, yNull = numeric && cellNumber(b) === null;
      if (xNull || yNull) { return compareCells(a, b, true); }
      return sign * compareCells(a, b, numeric);
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", dir);
  }

  function formatCount(n) {
    return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ".");
  }

  function applyFilter(input) {
    var table = document.getElementById(input.getAttribute("data-filter-for"));
    if (!table) { return; }
    var q = input.value.trim().toLocaleLowerCase("de");
    var rows = table.tBodies[0].rows, shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var hit = !q || rows[i].textContent.toLocaleLowerCase("de").indexOf(q) !== -1;
      rows[i].hidden = !hit;
      if (hit) { shown++; }
    }
    var counter = document.querySelector('[data-count-for="' + table.id + '"]');
    if (counter) {
      counter.textContent = q ? formatCount(shown) + " von " + formatCount(rows.length) + " Zeilen"
                              : formatCount(rows.length) + " Zeilen";
    }
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      if (!table.tHead) { return; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        var button = th.querySelector("button") || th;
        button.addEventListener("click", function () { sortBy(table, th, index); });
      });
    });
    Array.prototype.forEach.call(document.querySelectorAll("input[data-filter-for]"), function (input) {
      input.addEventListener("input", function () { applyFilter(input); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
