// The risk page: a CSV of transactions scored through /v1/apps/risk/score in small batches (so the bar shows
// real progress), a sortable results table, SVG charts of the risk levels and top reasons, and CSV and HTML
// report downloads built in the page.
import { api } from "./api.js";
import { barChart } from "./chart.js";
import { csvRecords, toCsv } from "./csv.js";
import { el, downloadBlob } from "./dom.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
export const LEVELS = ["low", "medium", "high", "critical"];
export const LEVEL_COLORS = { low: "#12b76a", medium: "#f79009", high: "#f04438", critical: "#912018" };
const COLUMNS = [
  { key: "transaction_id", label: "risk_col_id" },
  { key: "risk_level", label: "risk_col_level", rank: (r) => LEVELS.indexOf(r.risk_level) },
  { key: "combined_score", label: "risk_col_combined", numeric: true },
  { key: "score", label: "risk_col_model", numeric: true },
  { key: "rules_score", label: "risk_col_rules", numeric: true },
  { key: "reasons", label: "risk_col_reasons", text: (r) => [...r.reasons, ...r.flags].join("; ") },
];
const IN_FLIGHT = 2;  // batches sent at once, so the engine batches rows of two requests together

const state = { results: [], errors: [], file: "", sort: { key: "combined_score", dir: -1 }, busy: false };

function batchSize(n) { return Math.min(50, Math.max(2, Math.ceil(n / 20))); }

async function readRows(file) {
  if (!/\.csv$/i.test(file.name) && !/csv/.test(file.type)) throw new Error(t("risk_not_csv", { name: file.name }));
  let parsed;
  try { parsed = csvRecords(await file.text()); } catch (e) { throw new Error(t("risk_bad_csv", { m: e.message })); }
  if (!parsed.header.includes("transaction_id")) throw new Error(t("risk_no_header"));
  if (!parsed.records.length) throw new Error(t("risk_no_rows"));
  if (parsed.records.length > 5000) throw new Error(t("risk_too_many", { n: parsed.records.length }));
  return parsed.records;
}

async function score(rows) {
  const size = batchSize(rows.length);
  const batches = [];
  for (let at = 0; at < rows.length; at += size) batches.push({ at, rows: rows.slice(at, at + size) });
  const bar = $("risk-progress");
  bar.max = rows.length;
  bar.value = 0;
  bar.hidden = false;
  let done = 0;
  const seed = Math.floor(Math.random() * 1e6);
  const results = new Array(batches.length);
  const errors = [];
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const n = next++;
      const b = batches[n];
      const res = await api("/v1/apps/risk/score", { method: "POST", body: { transactions: b.rows, seed: seed + b.at } });
      results[n] = res.data;
      for (const e of res.errors) errors.push({ ...e, row: e.row + b.at });
      done += b.rows.length;
      bar.value = done;
      $("risk-status").textContent = t("risk_scoring", { done, n: rows.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, batches.length) }, worker));
  return { results: results.flat(), errors: errors.sort((a, b) => a.row - b.row) };
}

function sortValue(col, r) {
  if (col.rank) return col.rank(r);
  if (col.text) return col.text(r);
  return r[col.key];
}

function renderTable() {
  const head = $("risk-head");
  head.replaceChildren();
  const tr = el("tr");
  for (const col of COLUMNS) {
    const th = el("th");
    const sorted = state.sort.key === col.key;
    th.setAttribute("aria-sort", sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    const b = el("button", "sort", t(col.label) + (sorted ? (state.sort.dir > 0 ? " ▲" : " ▼") : ""));
    b.type = "button";
    b.dataset.key = col.key;
    b.addEventListener("click", () => {
      state.sort = { key: col.key, dir: sorted ? -state.sort.dir : col.numeric || col.rank ? -1 : 1 };
      renderTable();
      head.querySelector(`button[data-key="${col.key}"]`).focus();
    });
    th.append(b);
    tr.append(th);
  }
  head.append(tr);
  const col = COLUMNS.find((c) => c.key === state.sort.key);
  const rows = [...state.results].sort((a, b) => {
    const x = sortValue(col, a), y = sortValue(col, b);
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * state.sort.dir;
  });
  const body = $("risk-body");
  body.replaceChildren();
  for (const r of rows) {
    const row = el("tr");
    for (const c of COLUMNS) {
      const td = el("td", null, c.text ? c.text(r) : r[c.key]);
      if (c.key === "risk_level") { td.className = "level level-" + (LEVELS.includes(r.risk_level) ? r.risk_level : "unknown"); }
      row.append(td);
    }
    body.append(row);
  }
}

export function levelCounts(results) {
  return LEVELS.map((lv) => ({ label: lv, value: results.filter((r) => r.risk_level === lv).length, color: LEVEL_COLORS[lv] }));
}

export function topReasons(results, n = 10) {
  const counts = new Map();
  for (const r of results) {
    for (const x of [...r.reasons, ...r.flags]) {
      const k = x.trim().toLowerCase();
      if (k) counts.set(k, (counts.get(k) || 0) + 1);
    }
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, n)
    .map(([label, value]) => ({ label, value, color: "#6172f3" }));
}

function renderCharts() {
  $("risk-levels").replaceChildren(barChart(levelCounts(state.results), { title: t("risk_levels") }));
  const reasons = topReasons(state.results);
  $("risk-reasons").replaceChildren(reasons.length ? barChart(reasons, { title: t("risk_reasons"), labelWidth: 210 }) : el("p", "muted", t("risk_no_reasons")));
}

function renderErrors() {
  const ul = $("risk-errors");
  ul.replaceChildren();
  for (const e of state.errors) ul.append(el("li", null, t("risk_row_error", { row: e.row, id: e.transaction_id ?? "?", m: e.message })));
  $("risk-errors-box").hidden = !state.errors.length;
}

function csvReport() {
  const features = [...new Set(state.results.flatMap((r) => Object.keys(r.features || {})))];
  const columns = ["transaction_id", "risk_level", "score", "rules_score", "combined_score", "reasons", "flags", ...features];
  const rows = state.results.map((r) => ({ ...r.features, ...r }));
  return toCsv(columns, rows);
}

const REPORT_STYLE = "body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#1d2939}" +
  "td,th{padding:3px 8px;border-bottom:1px solid #d0d5dd;text-align:left}table{border-collapse:collapse}" +
  ".bar-label,.bar-value{font-size:12px;fill:#344054}";

// A standalone HTML file: the body is built as DOM nodes in an inert document and serialised, so every value is
// escaped by the serialiser; the style goes in as text, never applied to this page (its CSP forbids inline style).
function htmlReport() {
  const doc = document.implementation.createHTMLDocument("");
  const add = (tag, text) => { const e = doc.createElement(tag); if (text !== undefined) e.textContent = text; doc.body.append(e); return e; };
  add("h1", t("risk_report_title"));
  add("p", t("risk_summary", { n: state.results.length, bad: state.errors.length, file: state.file }));
  add("h2", t("risk_levels"));
  doc.body.append(doc.importNode(barChart(levelCounts(state.results)), true));
  add("h2", t("risk_reasons"));
  doc.body.append(doc.importNode(barChart(topReasons(state.results, 12), { labelWidth: 210 }), true));
  add("h2", t("risk_results"));
  const table = add("table");
  const head = doc.createElement("tr");
  for (const c of COLUMNS) { const th = doc.createElement("th"); th.textContent = t(c.label); head.append(th); }
  table.append(head);
  for (const r of [...state.results].sort((a, b) => b.combined_score - a.combined_score)) {
    const tr = doc.createElement("tr");
    for (const c of COLUMNS) { const td = doc.createElement("td"); td.textContent = String(c.text ? c.text(r) : r[c.key]); tr.append(td); }
    table.append(tr);
  }
  if (state.errors.length) {
    add("h2", t("risk_rejected"));
    const ul = add("ul");
    for (const e of state.errors) { const li = doc.createElement("li"); li.textContent = t("risk_row_error", { row: e.row, id: e.transaction_id ?? "?", m: e.message }); ul.append(li); }
  }
  const title = doc.createElement("title");
  title.textContent = t("risk_report_title") + " — " + state.file;
  return `<!doctype html>\n<html lang="${document.documentElement.lang}"><head><meta charset="utf-8">${title.outerHTML}` +
    `<style>${REPORT_STYLE}</style></head>${doc.body.outerHTML}</html>\n`;
}

function baseName() { return (state.file.replace(/\.csv$/i, "") || "transactions").replace(/[^\w.-]+/g, "_") + "-risk"; }

export function initRisk() {
  $("risk-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (state.busy) return;
    const file = $("risk-file").files[0];
    $("risk-error").textContent = "";
    if (!file) { $("risk-error").textContent = t("risk_choose"); return; }
    state.busy = true;
    $("risk-run").disabled = true;
    $("risk-page").classList.add("busy");
    try {
      const rows = await readRows(file);
      $("risk-status").textContent = t("risk_scoring", { done: 0, n: rows.length });
      const { results, errors } = await score(rows);
      Object.assign(state, { results, errors, file: file.name });
      $("risk-status").textContent = t("risk_done", { n: results.length, bad: errors.length });
      $("risk-output").hidden = !results.length && !errors.length;
      renderTable();
      renderCharts();
      renderErrors();
    } catch (e) {
      $("risk-error").textContent = e.message;
      $("risk-status").textContent = "";
    } finally {
      state.busy = false;
      $("risk-run").disabled = false;
      $("risk-page").classList.remove("busy");
      document.body.dataset.riskRuns = String(Number(document.body.dataset.riskRuns || 0) + 1);
    }
  });
  $("risk-csv").addEventListener("click", () => downloadBlob(new Blob([csvReport()], { type: "text/csv" }), baseName() + ".csv"));
  $("risk-html").addEventListener("click", () => downloadBlob(new Blob([htmlReport()], { type: "text/html" }), baseName() + ".html"));
}
