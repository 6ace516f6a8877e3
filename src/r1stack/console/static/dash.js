// The operator dashboard: the server's own /metrics and /health, polled and drawn as small line charts, and the
// audit log's recent records and chain check for admin keys.
import { api } from "./api.js";
import { barChart } from "./chart.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const HISTORY = 90;
let timer = null;
let last = null;
const series = { running: [], waiting: [], kv: [], tps: [], prefix: [] };

// Prometheus text format -> [{name, labels, value}], one per sample line.
export function parseSamples(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([^{\s]+)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:\\.|[^"\\])*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    out.push({ name: m[1], labels, value });
  }
  return out;
}

// {name: summed value} over all label sets (one model per server).
export function sumByName(samples) {
  const out = {};
  for (const s of samples) out[s.name] = (out[s.name] || 0) + s.value;
  return out;
}

// Tokens routed to each expert, summed over layers, from any MoE counter with an `expert` label (e.g.
// r1stack:moe_expert_tokens_total{layer="3",expert="17"}); [] when the served model reports none.
export function expertLoad(samples) {
  const load = new Map();
  for (const s of samples) {
    if (!/expert/i.test(s.name) || s.labels.expert === undefined || /_(created|bucket)$/.test(s.name)) continue;
    load.set(s.labels.expert, (load.get(s.labels.expert) || 0) + s.value);
  }
  return [...load.entries()].sort((a, b) => Number(a[0]) - Number(b[0]) || a[0].localeCompare(b[0]))
    .map(([expert, value]) => ({ expert, value }));
}

export function renderExperts(samples) {
  const load = expertLoad(samples);
  $("d-experts-card").hidden = !load.length;
  if (!load.length) return;
  const total = load.reduce((a, x) => a + x.value, 0);
  const mean = total / load.length;
  const max = Math.max(...load.map((x) => x.value));
  $("d-experts-summary").textContent = t("dash_experts_summary", { n: load.length, imb: mean ? (max / mean).toFixed(2) : "–" });
  const shown = load.length > 64 ? [...load].sort((a, b) => b.value - a.value).slice(0, 64) : load;
  $("d-experts").replaceChildren(barChart(shown.map((x) => ({ label: t("dash_expert", { e: x.expert }), value: x.value, color: "#7c3aed" })),
    { row: 16, labelWidth: 90, width: 520, title: t("dash_experts") }));
}

function push(name, v) {
  const s = series[name];
  s.push(v);
  if (s.length > HISTORY) s.shift();
}

function draw(id, lines, max) {
  const c = $(id);
  const g = c.getContext("2d");
  const w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#d0d5dd";
  g.lineWidth = 1;
  g.strokeRect(0.5, 0.5, w - 1, h - 1);
  const top = Math.max(max ?? 0, ...lines.flatMap((l) => l.data), 1e-9);
  for (const { data, color } of lines) {
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    data.forEach((v, i) => {
      const x = (i / (HISTORY - 1)) * (w - 4) + 2;
      const y = h - 4 - (v / top) * (h - 8);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }
  g.fillStyle = "#667085";
  g.font = "11px sans-serif";
  g.fillText(String(Math.round(top * 100) / 100), 6, 14);
}

async function tick() {
  const now = performance.now();
  try {
    const health = await fetch("/health");
    $("d-health").textContent = health.ok ? "ok" : (await health.json()).error?.message || String(health.status);
    const samples = parseSamples(await (await fetch("/metrics")).text());
    const m = sumByName(samples);
    const running = m["r1stack:num_requests_running"] ?? 0;
    const waiting = m["r1stack:num_requests_waiting"] ?? 0;
    const kv = m["r1stack:kv_cache_usage_perc"] ?? 0;
    const gen = m["r1stack:generation_tokens_total"] ?? m["r1stack:generation_tokens"] ?? 0;
    const q = m["r1stack:prefix_cache_queries_total"] ?? m["r1stack:prefix_cache_queries"] ?? 0;
    const hits = m["r1stack:prefix_cache_hits_total"] ?? m["r1stack:prefix_cache_hits"] ?? 0;
    const tps = last ? Math.max(0, gen - last.gen) / ((now - last.at) / 1000) : 0;
    last = { at: now, gen };
    $("d-running").textContent = String(running);
    $("d-waiting").textContent = String(waiting);
    $("d-kv").textContent = (kv * 100).toFixed(1) + " %";
    $("d-tps").textContent = tps.toFixed(1);
    $("d-prefix").textContent = q ? ((100 * hits) / q).toFixed(1) + " %" : "–";
    push("running", running); push("waiting", waiting); push("kv", kv * 100); push("tps", tps); push("prefix", q ? (100 * hits) / q : 0);
    draw("c-requests", [{ data: series.running, color: "#2563eb" }, { data: series.waiting, color: "#f97316" }]);
    draw("c-kv", [{ data: series.kv, color: "#7c3aed" }], 100);
    draw("c-tps", [{ data: series.tps, color: "#059669" }]);
    draw("c-prefix", [{ data: series.prefix, color: "#0891b2" }], 100);
    renderExperts(samples);
  } catch (e) {
    $("d-health").textContent = e.message;
  }
}

async function audit(me) {
  const chain = $("d-chain");
  if (!me?.admin) { chain.textContent = t("dash_admin_only"); return; }
  try {
    const a = await api("/v1/console/audit?limit=15");
    chain.textContent = a.verified === false ? t("dash_chain_bad", { p: a.problem }) : t("dash_chain_ok", { n: a.records });
    chain.className = a.verified === false ? "error" : "ok";
    const red = Object.entries(a.redactions).sort((x, y) => y[1] - x[1]);
    $("d-redactions").replaceChildren(red.length
      ? barChart(red.map(([k, n]) => ({ label: k, value: n, color: "#f79009" })), { title: t("dash_redactions") })
      : el("p", "muted small", t("dash_no_redactions")));
    const tb = $("d-audit");
    tb.replaceChildren();
    for (const r of a.recent) {
      const tr = el("tr");
      const redacted = Object.entries(r.redactions || {}).map(([k, n]) => `${k} ×${n}`).join(", ");
      const sources = [...(r.kb_sources || []), ...(r.web_queries || []).map((q) => "web: " + q)].join(", ");
      for (const v of [r.time, r.key_id ?? "operator", r.request_id, r.status, redacted, sources]) tr.append(el("td", null, v ?? ""));
      tb.append(tr);
    }
  } catch (e) { chain.textContent = e.message; }
}

export function startDashboard(me) {
  stopDashboard();
  tick();
  audit(me);
  timer = setInterval(() => { tick(); }, 2000);
}

export function stopDashboard() {
  if (timer) clearInterval(timer);
  timer = null;
}
