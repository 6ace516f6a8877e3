// The operator dashboard: the server's own /metrics and /health, polled and drawn as small line charts, and the
// audit log's recent records and chain check for admin keys.
import { api } from "./api.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const HISTORY = 90;
let timer = null;
let last = null;
const series = { running: [], waiting: [], kv: [], tps: [], prefix: [] };

// Prometheus text format -> {name: summed value} over all label sets (one model per server).
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([^{\s]+)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) out[m[1]] = (out[m[1]] || 0) + v;
  }
  return out;
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
    const m = parseMetrics(await (await fetch("/metrics")).text());
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
    $("d-experts").hidden = Object.keys(m).some((k) => k.includes("expert"));
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
    const ul = $("d-redactions");
    ul.replaceChildren();
    for (const [k, n] of Object.entries(a.redactions)) { const li = document.createElement("li"); li.textContent = `${k}: ${n}`; ul.append(li); }
    const tb = $("d-audit");
    tb.replaceChildren();
    for (const r of a.recent) {
      const tr = document.createElement("tr");
      for (const v of [r.time, r.key_id ?? "operator", r.status, (r.kb_sources || []).join(", ")]) {
        const td = document.createElement("td");
        td.textContent = v ?? "";
        tr.append(td);
      }
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
