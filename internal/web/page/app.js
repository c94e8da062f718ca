// pgvalve's live page: polls the JSON API every second and draws what it
// answers. Plain JS, no library; every value from the API goes into the
// page as text (application names and queries are the clients' words).
"use strict";

const REFRESH_MS = 1000;
const WINDOW_S = 300; // what the charts show
const SVG = "http://www.w3.org/2000/svg";

const state = {
  history: new Map(), // "database/user" -> samples, oldest first
  lastT: null,        // the newest sample's t, for ?since=
  lastOK: null,
};

function el(tag, attrs, ...children) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// ---- formatting: numbers with their units ----

const NBSP = "\u00a0";

function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  if (s === 0) return "0";
  if (s < 0.001) return Math.round(s * 1e6) + NBSP + "µs";
  if (s < 1) return trimZeros((s * 1e3).toPrecision(3)) + NBSP + "ms";
  if (s < 60) return s.toFixed(1) + NBSP + "s";
  if (s < 3600) return Math.floor(s / 60) + NBSP + "min" + NBSP + String(Math.floor(s % 60)).padStart(2, "0") + NBSP + "s";
  return Math.floor(s / 3600) + NBSP + "h" + NBSP + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + NBSP + "min";
}

// trimZeros drops a decimal part's trailing zeros: "2.50" is "2.5", "100" stays.
function trimZeros(v) {
  return v.includes(".") ? v.replace(/0+$/, "").replace(/\.$/, "") : v;
}

function fmtClock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour12: false });
}

function fmtPct(f) {
  return Math.round(f * 100) + NBSP + "%";
}

// ---- charts: inline SVG, drawn whole on each refresh ----

// niceMax rounds up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// drawChart draws series [{cls, area, points: [[t, v|null]]}] over
// [tmax-WINDOW_S, tmax]; fmt formats the y axis.
function drawChart(svg, series, tmax, fmt, minMax) {
  const W = Math.max(svg.clientWidth || 0, 200), H = svg.clientHeight || 130;
  const L = 56, R = 46, T = 8, B = 18;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const tmin = tmax - WINDOW_S;
  let vmax = minMax || 0, n = 0, newest = null;
  for (const s of series) for (const [t, v] of s.points) {
    if (t < tmin || v === null) continue;
    n++;
    if (v > vmax) vmax = v;
    if (newest === null || t > newest) newest = t;
  }
  // For tests and the curious: how many values it draws, and the newest's
  // time (unix seconds).
  svg.setAttribute("data-points", String(n));
  svg.setAttribute("data-newest", newest === null ? "" : String(newest));
  const ymax = niceMax(vmax);
  const x = t => L + (W - L - R) * (t - tmin) / WINDOW_S;
  const y = v => T + (H - T - B) * (1 - v / ymax);
  for (const f of [0, 0.5, 1]) {
    svg.append(el("svg:line", { class: "grid", x1: L, x2: W - R, y1: y(f * ymax), y2: y(f * ymax) }));
    const lab = el("svg:text", { class: "axis", x: L - 6, y: y(f * ymax) + 4, "text-anchor": "end" });
    lab.textContent = fmt(f * ymax);
    svg.append(lab);
  }
  for (const [t, label, anchor] of [[tmin, "−" + WINDOW_S / 60 + " min", "start"], [tmax, "now", "end"]]) {
    const lab = el("svg:text", { class: "axis", x: x(t), y: H - 4, "text-anchor": anchor });
    lab.textContent = label;
    svg.append(lab);
  }
  if (n === 0) {
    const msg = el("svg:text", { class: "nodata", x: (L + W - R) / 2, y: H / 2, "text-anchor": "middle" });
    msg.textContent = "no data yet";
    svg.append(msg);
    return;
  }
  const labels = [];
  for (const s of series) {
    // One path per run of known values: a null breaks the line.
    let d = "", run = [], last = null;
    const flush = () => {
      if (run.length === 0) return;
      d += "M" + run.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join("L");
      if (s.area) {
        const a = "M" + x(run[0][0]).toFixed(1) + "," + y(0) + "L" +
          run.map(([t, v]) => x(t).toFixed(1) + "," + y(v).toFixed(1)).join("L") +
          "L" + x(run[run.length - 1][0]).toFixed(1) + "," + y(0) + "Z";
        svg.append(el("svg:path", { class: "area " + s.cls, d: a }));
      }
      run = [];
    };
    for (const p of s.points) {
      if (p[0] < tmin) continue;
      if (p[1] === null) { flush(); continue; }
      run.push(p);
      last = p;
    }
    flush();
    svg.append(el("svg:path", { class: "line " + s.cls, d }));
    if (last && s.label !== false) labels.push({ cls: s.cls, t: last[0], v: last[1] });
  }
  // The newest value of each series, at the right edge, kept apart.
  labels.sort((a, b) => b.v - a.v);
  let prevY = -Infinity;
  for (const l of labels) {
    const ly = Math.max(y(l.v) + 4, prevY + 12);
    prevY = ly;
    const lab = el("svg:text", { class: "last " + l.cls, x: W - R + 6, y: ly });
    lab.textContent = fmt(l.v);
    svg.append(lab);
  }
}

const fmtCount = v => String(Math.round(v * 10) / 10);

function drawPoolCharts(card, samples, tmax) {
  const pts = f => samples.map(s => [s.t, f(s)]);
  drawChart(card.querySelector('[data-chart="util"]'), [
    { cls: "size", points: pts(s => s.size), label: false },
    { cls: "util", area: true, points: pts(s => s.servers_active) },
  ], tmax, fmtCount, 1);
  drawChart(card.querySelector('[data-chart="waiting"]'), [
    { cls: "wait", area: true, points: pts(s => s.clients_waiting) },
  ], tmax, fmtCount, 1);
  drawChart(card.querySelector('[data-chart="latency"]'), [
    { cls: "p99", points: pts(s => s.query_p99) },
    { cls: "p95", points: pts(s => s.query_p95) },
    { cls: "p50", points: pts(s => s.query_p50) },
  ], tmax, fmtDur, 0.001);
}

// ---- pools ----

function stat(label, key) {
  return el("div", { class: "stat" }, el("span", { class: "label" }, label), el("span", { class: "value", "data-stat": key }));
}

function setStat(card, key, text, bad) {
  const v = card.querySelector(`[data-stat="${key}"]`);
  v.textContent = text;
  v.classList.toggle("bad", !!bad);
}

function figure(chart, title, ...keys) {
  return el("figure", {},
    el("figcaption", {}, el("span", { class: "title" }, title),
      ...keys.map(([cls, name]) => el("span", { class: "key " + cls }, name))),
    el("svg:svg", { class: "chart", "data-chart": chart, role: "img", "aria-label": title }));
}

function poolCard(key) {
  return el("article", { class: "pool", "data-pool": key },
    el("header", {}, el("h3", {}), el("span", { class: "mode" }), el("span", { class: "badges" })),
    el("div", { class: "stats" },
      stat("Servers active / size", "servers"),
      stat("Clients waiting", "waiting"),
      stat("Longest wait now", "max_wait"),
      stat("Query p50 (last min)", "p50"),
      stat("Query p95", "p95"),
      stat("Query p99", "p99"),
      stat("Clients active", "clients")),
    el("div", { class: "charts" },
      figure("util", "Servers", ["util", "active"], ["size", "pool size"]),
      figure("waiting", "Clients waiting", ["wait", "waiting"]),
      figure("latency", "Query latency", ["p50", "p50"], ["p95", "p95"], ["p99", "p99"])));
}

function renderPools(pools, tmax) {
  const box = document.getElementById("pools");
  const seen = new Set();
  for (const p of pools) {
    const key = p.database + "/" + p.user;
    seen.add(key);
    let card = [...box.children].find(c => c.dataset.pool === key);
    if (!card) { card = poolCard(key); box.append(card); }
    card.querySelector("h3").textContent = p.database + " / " + p.user;
    card.querySelector(".mode").textContent = p.mode + " pooling";
    const badges = card.querySelector(".badges");
    badges.replaceChildren();
    const full = p.size > 0 && p.servers_active >= p.size;
    if (full && p.clients_waiting > 0) badges.append(el("span", { class: "badge bad" }, "saturated"));
    if (p.paused) badges.append(el("span", { class: "badge warn" }, "paused"));
    if (p.draining) badges.append(el("span", { class: "badge warn" }, "draining"));
    if (p.last_dial_error) badges.append(el("span", { class: "badge bad", title: p.last_dial_error }, "cannot dial"));
    setStat(card, "servers", p.servers_active + " / " + p.size, full);
    setStat(card, "waiting", String(p.clients_waiting), p.clients_waiting > 0);
    setStat(card, "max_wait", fmtDur(p.max_wait), p.max_wait >= 1);
    const q = p.latency.query, known = q.count > 0;
    setStat(card, "p50", known ? fmtDur(q.p50) : "–");
    setStat(card, "p95", known ? fmtDur(q.p95) : "–");
    setStat(card, "p99", known ? fmtDur(q.p99) : "–");
    setStat(card, "clients", String(p.clients_active));
    drawPoolCharts(card, state.history.get(key) || [], tmax);
  }
  for (const c of [...box.children]) if (!seen.has(c.dataset.pool)) c.remove();
  document.getElementById("pools-empty").hidden = pools.length > 0;
}

// ---- holders and diagnosis ----

function td(text, cls, attrs) {
  return el("td", Object.assign({ class: cls }, attrs || {}), text);
}

function renderHolders(holders) {
  const rows = holders.map(h => el("tr", { "data-client-id": String(h.id), "data-application": h.application_name },
    td(String(h.id), "num"),
    td(h.addr),
    td(h.user),
    td(h.database),
    td(h.application_name || "–"),
    td(String(h.server_pid), "num"),
    td(fmtClock(h.held_since), "num"),
    td(fmtDur(h.held_for), h.held_for >= 10 ? "num long" : "num"),
    td(h.hold_state, "state", { "data-hold-state": h.hold_state }),
    td(h.query || "–", "query", { title: h.query }),
    td(fmtPct(h.server_share), "num")));
  const table = document.getElementById("holders");
  table.tBodies[0].replaceChildren(...rows);
  table.setAttribute("data-rows", String(rows.length));
  document.getElementById("holders-empty").hidden = rows.length > 0;
}

function renderDiagnosis(d) {
  const ul = document.getElementById("diagnosis-lines");
  ul.replaceChildren(...d.lines.map(l => el("li", {}, l)));
  document.getElementById("diagnosis").setAttribute("data-count", String(d.lines.length));
  document.getElementById("diagnosis-ok").hidden = d.lines.length > 0;
}

// ---- polling ----

function mergeHistory(h) {
  for (const p of h.pools) {
    const key = p.database + "/" + p.user;
    const have = state.history.get(key) || [];
    have.push(...p.samples);
    const newest = have.length ? have[have.length - 1].t : 0;
    // Keep one sample before the window so the line reaches its edge.
    let cut = have.findIndex(s => s.t >= newest - WINDOW_S);
    if (cut > 0) have.splice(0, cut - 1);
    state.history.set(key, have);
    if (newest && (state.lastT === null || newest > state.lastT)) state.lastT = newest;
  }
  for (const key of [...state.history.keys()]) {
    if (!h.pools.some(p => p.database + "/" + p.user === key)) state.history.delete(key);
  }
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function setStatus(live) {
  const s = document.getElementById("status");
  const at = state.lastOK ? state.lastOK.toLocaleTimeString([], { hour12: false }) : "never";
  s.setAttribute("data-state", live ? "live" : (state.lastOK ? "stale" : "connecting"));
  s.textContent = live ? "live · " + at : "no answer from pgvalve since " + at;
}

async function refresh() {
  try {
    const since = state.lastT === null ? "" : "?since=" + state.lastT;
    const [pools, holders, diag, hist] = await Promise.all([
      getJSON("api/pools"), getJSON("api/holders"), getJSON("api/diagnosis"), getJSON("api/history" + since),
    ]);
    mergeHistory(hist);
    const tmax = state.lastT !== null ? state.lastT : Date.parse(pools.time) / 1000;
    renderDiagnosis(diag);
    renderPools(pools.pools, tmax);
    renderHolders(holders.holders);
    state.lastOK = new Date();
    setStatus(true);
  } catch (e) {
    setStatus(false);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

document.getElementById("window").textContent = WINDOW_S / 60 + " minutes";
refresh();
