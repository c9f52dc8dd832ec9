"use strict";
// The report's only script: sortable tables, table filters and the side-by-side sample viewer.
// Everything it shows is in the page already; it makes no request.
(function () {
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") el.className = v; else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  // ---- tables ------------------------------------------------------------------------------
  function cellKey(td) {
    const v = td.dataset.v;
    if (v !== undefined && v !== "") return parseFloat(v);
    return td.textContent.trim().toLowerCase();
  }
  function sortBy(th) {
    const table = th.closest("table");
    const idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    const asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach((x) => x.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellKey(a.cells[idx]), y = cellKey(b.cells[idx]);
      const nx = typeof x === "number" && !isNaN(x), ny = typeof y === "number" && !isNaN(y);
      let c;
      if (nx && ny) c = x - y; else if (nx) return -1; else if (ny) return 1;
      else c = String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach((r) => body.appendChild(r));
  }
  document.querySelectorAll("table.sortable th").forEach((th) => {
    th.tabIndex = 0;
    th.title = "sort";
    th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
  document.querySelectorAll("input.table-filter").forEach((inp) => {
    const table = document.getElementById(inp.dataset.table);
    inp.addEventListener("input", () => {
      const q = inp.value.trim().toLowerCase();
      for (const r of table.tBodies[0].rows) r.hidden = q !== "" && !r.textContent.toLowerCase().includes(q);
    });
  });

  // ---- samples -----------------------------------------------------------------------------
  function marked(text, spans) {
    const frag = document.createDocumentFragment();
    let pos = 0;
    for (let i = 0; i + 1 < spans.length; i += 2) {
      if (spans[i] > pos) frag.append(text.slice(pos, spans[i]));
      frag.append(h("mark", null, text.slice(spans[i], spans[i + 1])));
      pos = spans[i + 1];
    }
    frag.append(text.slice(pos));
    return frag;
  }

  function viewer(root, g) {
    // item: [id, input, reference, [[prediction, rouge1, rouge2, rougeL, spans] | null per model]]
    const st = { page: 0, size: 10, model: g.models.length - 1, metric: 0, min: 0, max: 1, sort: "order", q: "" };
    const hay = g.items.map((it) => [it[1], it[2], ...it[3].map((o) => (o ? o[0] : ""))].join("\n").toLowerCase());
    const score = (it) => { const o = it[3][st.model]; return o ? o[1 + st.metric] : NaN; };
    const opts = (names, sel) => names.map((n, i) => h("option", i === sel ? { value: i, selected: "" } : { value: i }, n));
    const num = (key, val) => h("input", { type: "number", min: "0", max: "1", step: "0.05", value: val, "data-role": key,
      oninput: (e) => { const v = parseFloat(e.target.value); st[key] = isNaN(v) ? (key === "min" ? 0 : 1) : v; st.page = 0; draw(); } });
    const list = h("div", { class: "sample-list" });
    const status = h("span", { class: "status", "data-role": "status" });
    const prev = h("button", { type: "button", "data-role": "prev", onclick: () => { st.page--; draw(); } }, "\u2039 previous");
    const next = h("button", { type: "button", "data-role": "next", onclick: () => { st.page++; draw(); } }, "next \u203a");
    root.append(
      h("div", { class: "controls" },
        h("label", null, "ROUGE of ", h("select", { "data-role": "model", onchange: (e) => { st.model = +e.target.value; st.page = 0; draw(); } }, ...opts(g.models, st.model))),
        h("select", { "data-role": "metric", onchange: (e) => { st.metric = +e.target.value; st.page = 0; draw(); } }, ...opts(g.metrics, 0)),
        h("label", null, "from ", num("min", 0), " to ", num("max", 1)),
        h("label", null, "order ", h("select", { "data-role": "sort", onchange: (e) => { st.sort = e.target.value; st.page = 0; draw(); } },
          h("option", { value: "order" }, "as evaluated"), h("option", { value: "asc" }, "lowest first"),
          h("option", { value: "desc" }, "highest first"))),
        h("label", null, "contains ", h("input", { type: "search", "data-role": "search", placeholder: "words",
          oninput: (e) => { st.q = e.target.value.trim().toLowerCase(); st.page = 0; draw(); } }))),
      h("div", { class: "pager" }, prev, next, status), list);

    function card(it) {
      const outs = h("div", { class: "outputs" },
        h("span", { class: "who" }, "human"), h("span", { class: "ref" }, it[2]), h("span", { class: "score" }, "reference"));
      it[3].forEach((o, i) => {
        outs.append(h("span", { class: "who" }, h("span", { class: "swatch", style: "background:" + g.colors[i] }), g.models[i]),
          o ? h("span", { class: "pred" }, marked(o[0], o[4])) : h("span", { class: "empty" }, "not scored on this example"),
          h("span", { class: "score" }, o ? g.metrics.map((m, k) => m + " " + o[1 + k].toFixed(3)).join("  ") : ""));
      });
      return h("article", { class: "sample", "data-id": String(it[0]) },
        h("div", { class: "sample-head" }, h("span", null, "example " + it[0]), h("span", null, g.task)),
        h("div", { class: "input" }, it[1] === null ? "" : String(it[1])), outs);
    }

    function draw() {
      let idx = [];
      for (let i = 0; i < g.items.length; i++) {
        const s = score(g.items[i]);
        if (!(s >= st.min - 1e-9 && s <= st.max + 1e-9)) continue;
        if (st.q && !hay[i].includes(st.q)) continue;
        idx.push(i);
      }
      if (st.sort !== "order") {
        const sign = st.sort === "asc" ? 1 : -1;
        idx.sort((a, b) => sign * (score(g.items[a]) - score(g.items[b])) || a - b);
      }
      const pages = Math.max(1, Math.ceil(idx.length / st.size));
      st.page = Math.min(Math.max(st.page, 0), pages - 1);
      const from = st.page * st.size, shown = idx.slice(from, from + st.size);
      list.replaceChildren(...(shown.length ? shown.map((i) => card(g.items[i]))
        : [h("p", { class: "empty" }, "No example matches these filters.")]));
      status.textContent = (idx.length ? `${from + 1}\u2013${from + shown.length} of ${idx.length}` : "0") +
        ` matching (of ${g.items.length}); page ${st.page + 1} of ${pages}`;
      prev.disabled = st.page === 0;
      next.disabled = st.page >= pages - 1;
    }
    draw();
  }

  const data = document.getElementById("samples-data");
  if (data) {
    const groups = JSON.parse(data.textContent);
    groups.forEach((g, i) => viewer(document.getElementById("samples-" + i), g));
  }
  document.documentElement.dataset.ready = "1";
})();
