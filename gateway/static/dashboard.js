// unifaas live dashboard: polls /dashboard/data every second and draws the
// history (about five minutes, client-side) as small hand-written SVG charts.
"use strict";

(function () {
  const DATA_URL = "/dashboard/data";
  const POLL_MS = 1000;
  const FETCH_TIMEOUT_MS = 3000;
  const HISTORY_S = 300;
  const MIN_SPAN_S = 20;
  const MAX_ERRORS_SHOWN = 25;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const COLORS = {
    booting: "#f2b134",
    idle: "#4c8bf5",
    bound: "#e07b39",
    loading: "#d9534f",
    draining: "#9b6bd3",
    p50: "#1f9d55",
    p99: "#d64545",
    warm: "#e07b39",
    prewarmed: "#4c8bf5",
    cold: "#6b7585",
  };

  // One entry per successful poll: {t, pool, p50, p99, rates|null}.
  const samples = [];
  let previous = null; // last payload, for counter differences
  let lastOk = 0;

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function fmt(v, digits) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    if (digits === undefined) digits = Math.abs(v) < 10 && v % 1 !== 0 ? 1 : 0;
    return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  }

  function clock(epochS) {
    const d = new Date(epochS * 1000);
    return d.toTimeString().slice(0, 8);
  }

  // A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least `max`.
  function niceMax(max) {
    if (!(max > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
    return 10 * p;
  }

  // ---- data -----------------------------------------------------------------

  function rates(prev, cur) {
    if (!prev) return null;
    const dt = cur.time - prev.time;
    if (!(dt > 0)) return null;
    const out = {};
    for (const kind of ["warm", "prewarmed", "cold"]) {
      const a = (prev.totals.starts || {})[kind] || 0;
      const b = (cur.totals.starts || {})[kind] || 0;
      if (b < a) return null; // counters reset (platform restarted)
      out[kind] = (b - a) / dt;
    }
    out.errors = Math.max(0, (cur.totals.errors - prev.totals.errors) / dt);
    return out;
  }

  function record(data) {
    const latency = data.latency_ms || {};
    samples.push({
      t: data.time,
      pool: data.pool,
      p50: latency.p50 === undefined ? null : latency.p50,
      p99: latency.p99 === undefined ? null : latency.p99,
      rates: rates(previous, data),
    });
    previous = data;
    const cutoff = data.time - HISTORY_S;
    while (samples.length && samples[0].t < cutoff) samples.shift();
  }

  // ---- charts ---------------------------------------------------------------

  // series: [{name, color, value(sample) -> number|null, dashed?}], stacked
  // series are drawn as filled areas on top of one another.
  function drawChart(svg, series, opts) {
    const w = Math.max(svg.clientWidth || 0, 200);
    const h = Math.max(svg.clientHeight || 0, 120);
    const m = { left: 40, right: 10, top: 8, bottom: 20 };
    const iw = w - m.left - m.right;
    const ih = h - m.top - m.bottom;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    while (svg.firstChild) svg.removeChild(svg.firstChild);

    const drawn = samples.filter((s) => series.some((se) => Number.isFinite(se.value(s))));
    svg.setAttribute("data-points", String(drawn.length));

    const tEnd = samples.length ? samples[samples.length - 1].t : Date.now() / 1000;
    const tStart0 = samples.length ? samples[0].t : tEnd - MIN_SPAN_S;
    const span = Math.min(HISTORY_S, Math.max(MIN_SPAN_S, tEnd - tStart0));
    const tStart = tEnd - span;
    const x = (t) => m.left + ((t - tStart) / span) * iw;

    let yMax = opts.floor || 1;
    for (const s of drawn) {
      let stack = 0;
      for (const se of series) {
        const v = se.value(s);
        if (!Number.isFinite(v)) continue;
        if (se.stacked) stack += v;
        yMax = Math.max(yMax, se.stacked ? stack : v);
      }
    }
    yMax = niceMax(yMax * 1.05);
    const y = (v) => m.top + ih - (v / yMax) * ih;

    // grid and y labels
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const v = (yMax / ticks) * i;
      const yy = y(v);
      svg.appendChild(svgEl("line", { class: i === 0 ? "axis" : "grid", x1: m.left, x2: m.left + iw, y1: yy, y2: yy }));
      const label = svgEl("text", { x: m.left - 6, y: yy + 4, "text-anchor": "end" });
      label.textContent = fmt(v, yMax < 5 ? 1 : 0);
      svg.appendChild(label);
    }
    // x labels: seconds before the newest sample
    const step = span <= 30 ? 5 : span <= 60 ? 10 : span <= 150 ? 30 : 60;
    for (let ago = 0; ago <= span + 0.001; ago += step) {
      const xx = x(tEnd - ago);
      if (xx < m.left + 12 && ago !== 0) continue;
      const label = svgEl("text", { x: xx, y: h - 4, "text-anchor": ago === 0 ? "end" : "middle" });
      label.textContent = ago === 0 ? "now" : `-${ago >= 60 && ago % 60 === 0 ? ago / 60 + "m" : ago + "s"}`;
      svg.appendChild(label);
    }

    if (!drawn.length) {
      const t = svgEl("text", { class: "nodata", x: m.left + iw / 2, y: m.top + ih / 2, "text-anchor": "middle" });
      t.textContent = "waiting for data…";
      svg.appendChild(t);
      return;
    }

    // stacked areas, bottom to top
    const base = new Map(drawn.map((s) => [s, 0]));
    for (const se of series.filter((s) => s.stacked)) {
      const top = [];
      const bottom = [];
      for (const s of drawn) {
        const v = se.value(s);
        const b = base.get(s);
        const tv = b + (Number.isFinite(v) ? v : 0);
        top.push(`${x(s.t).toFixed(1)},${y(tv).toFixed(1)}`);
        bottom.push(`${x(s.t).toFixed(1)},${y(b).toFixed(1)}`);
        base.set(s, tv);
      }
      if (drawn.length === 1) {
        // a single sample: a thin bar so it is visible
        const s = drawn[0];
        const b = base.get(s) - (se.value(s) || 0);
        svg.appendChild(svgEl("rect", { class: "area", fill: se.color, x: x(s.t) - 3, width: 3, y: y(base.get(s)), height: Math.max(0, y(b) - y(base.get(s))) }));
        continue;
      }
      const path = `M${top.join("L")}L${bottom.reverse().join("L")}Z`;
      svg.appendChild(svgEl("path", { class: "area", fill: se.color, d: path }));
    }

    // lines, broken where a value is missing
    for (const se of series.filter((s) => !s.stacked)) {
      let d = "";
      let pen = false;
      for (const s of samples) {
        const v = se.value(s);
        if (!Number.isFinite(v)) {
          pen = false;
          continue;
        }
        d += `${pen ? "L" : "M"}${x(s.t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      if (!d) continue;
      const cls = se.dashed ? "limit" : "series";
      const attrs = { class: cls, d };
      if (!se.dashed) attrs.stroke = se.color;
      svg.appendChild(svgEl("path", attrs));
      if (!se.dashed && drawn.length === 1) {
        const s = drawn[0];
        svg.appendChild(svgEl("circle", { cx: x(s.t), cy: y(se.value(s)), r: 3, fill: se.color }));
      }
    }
  }

  function drawLegend(ul, series, latest, unit) {
    ul.replaceChildren();
    for (const se of series) {
      const li = el("li");
      const sw = el("span", { class: se.dashed ? "swatch dashed" : "swatch" });
      if (!se.dashed) sw.style.background = se.color;
      li.appendChild(sw);
      li.appendChild(document.createTextNode(se.name + " "));
      const v = latest ? se.value(latest) : null;
      li.appendChild(el("b", {}, Number.isFinite(v) ? fmt(v, se.digits) + (unit || "") : "–"));
      ul.appendChild(li);
    }
  }

  const POOL_SERIES = [
    { name: "bound", color: COLORS.bound, stacked: true, value: (s) => s.pool.bound },
    { name: "loading", color: COLORS.loading, stacked: true, value: (s) => s.pool.loading },
    { name: "idle", color: COLORS.idle, stacked: true, value: (s) => s.pool.idle },
    { name: "booting", color: COLORS.booting, stacked: true, value: (s) => s.pool.booting },
    { name: "draining", color: COLORS.draining, stacked: true, value: (s) => s.pool.draining },
    { name: "max", dashed: true, value: (s) => s.pool.max_vms },
  ];
  const LATENCY_SERIES = [
    { name: "p50", color: COLORS.p50, digits: 1, value: (s) => s.p50 },
    { name: "p99", color: COLORS.p99, digits: 1, value: (s) => s.p99 },
  ];
  const RATE_SERIES = ["warm", "prewarmed", "cold"].map((kind) => ({
    name: kind,
    color: COLORS[kind],
    stacked: true,
    digits: 1,
    value: (s) => (s.rates ? s.rates[kind] : null),
  }));

  function drawCharts() {
    const latest = samples.length ? samples[samples.length - 1] : null;
    drawChart($("chart-pool"), POOL_SERIES, { floor: 1 });
    drawLegend($("legend-pool"), POOL_SERIES, latest);
    drawChart($("chart-latency"), LATENCY_SERIES, { floor: 1 });
    drawLegend($("legend-latency"), LATENCY_SERIES, latest, " ms");
    drawChart($("chart-rate"), RATE_SERIES, { floor: 1 });
    drawLegend($("legend-rate"), RATE_SERIES, latest, "/s");
  }

  // ---- header, table, errors ---------------------------------------------------

  function drawHeader(data) {
    const t = data.totals;
    const p = data.pool;
    $("node").textContent = data.node;
    $("t-invocations").textContent = fmt(t.invocations);
    $("t-errors").textContent = fmt(t.errors);
    $("t-errors").classList.toggle("bad", t.errors > 0);
    $("t-starts").textContent = `${fmt(t.starts.warm)} / ${fmt(t.starts.prewarmed)} / ${fmt(t.starts.cold)}`;
    $("t-boots").textContent = fmt(t.boots);
    $("t-restores").textContent = fmt(t.restores || 0);
    $("t-evictions").textContent = fmt(t.evictions);
    $("t-reclaims").textContent = fmt(t.reclaims);
    $("t-vms").textContent = `${fmt(p.vms)} / ${fmt(p.max_vms)}`;
    $("t-queue").textContent = fmt(p.queue_depth);
    if (data.latency_ms && data.latency_ms.window_s) $("latency-window").textContent = data.latency_ms.window_s;
  }

  function drawFunctions(functions) {
    const body = $("functions-body");
    const rows = [...functions].sort((a, b) => b.vms - a.vms || a.key.localeCompare(b.key));
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr", { class: "empty" });
      tr.appendChild(el("td", { colspan: "5" }, "no warm VMs"));
      body.appendChild(tr);
      return;
    }
    const most = Math.max(1, ...rows.map((f) => f.vms));
    for (const f of rows) {
      const tr = el("tr", { class: "function", "data-function": f.key });
      tr.appendChild(el("td", { class: "key" }, f.key));
      tr.appendChild(el("td", { class: "num vms" }, fmt(f.vms)));
      const wanted = f.wanted == null ? "-" : `${fmt(f.wanted)}${f.panic ? " !" : ""}`;
      tr.appendChild(el("td", { class: "num wanted" }, wanted));
      tr.appendChild(el("td", { class: "num in-flight" }, fmt(f.in_flight)));
      const bar = el("div", { class: "bar", title: `${f.in_flight} busy of ${f.vms}` });
      const busy = Math.min(f.in_flight, f.vms);
      bar.appendChild(el("span", { class: "busy", style: `width:${(busy / most) * 100}%` }));
      bar.appendChild(el("span", { class: "free", style: `width:${((f.vms - busy) / most) * 100}%` }));
      const td = el("td");
      td.appendChild(bar);
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  function drawErrors(errors) {
    const list = $("errors-list");
    const rows = [...errors].sort((a, b) => b.time - a.time).slice(0, MAX_ERRORS_SHOWN);
    list.replaceChildren();
    if (!rows.length) {
      list.appendChild(el("li", { class: "empty" }, "no errors"));
      return;
    }
    for (const e of rows) {
      const li = el("li", { class: "error", "data-kind": e.kind, "data-function": e.function });
      li.appendChild(el("span", { class: "when" }, clock(e.time)));
      li.appendChild(el("span", { class: "fn" }, e.function));
      li.appendChild(el("span", { class: "kind" }, e.kind));
      li.appendChild(el("span", { class: "status-code" }, String(e.status)));
      const msg = el("span", { class: "message", title: e.message }, e.message + " ");
      li.appendChild(msg);
      li.appendChild(el("span", { class: "inv" }, e.invocation_id));
      list.appendChild(li);
    }
  }

  function setStatus(ok, detail) {
    const status = $("status");
    status.dataset.state = ok ? "live" : "disconnected";
    status.textContent = ok ? "live" : "disconnected";
    status.title = detail || "";
  }

  function tickUpdated() {
    const u = $("updated");
    if (!lastOk) return;
    const ago = Math.round((Date.now() - lastOk) / 1000);
    u.textContent = ago <= 1 ? "updated just now" : `updated ${ago}s ago`;
  }

  // ---- polling ----------------------------------------------------------------

  async function poll() {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
    try {
      const r = await fetch(DATA_URL, { cache: "no-store", signal: ctrl.signal });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const data = await r.json();
      if (previous && data.time <= previous.time) return; // duplicate or stale answer
      record(data);
      drawHeader(data);
      drawFunctions(data.functions || []);
      drawErrors(data.recent_errors || []);
      drawCharts();
      lastOk = Date.now();
      setStatus(true);
    } catch (err) {
      setStatus(false, String(err && err.message ? err.message : err));
    } finally {
      clearTimeout(timer);
      tickUpdated();
      setTimeout(poll, POLL_MS);
    }
  }

  window.addEventListener("resize", drawCharts);
  drawCharts();
  poll();
})();
