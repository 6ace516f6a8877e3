// The clinical page: DICOM files de-identified by the server (preview PNG and summary shown), then symptoms ->
// triage -> differential diagnosis grounded on the chosen knowledge bases, with citations that open the snippet.
import { api, authHeaders, errorOf } from "./api.js";
import { el } from "./dom.js";
import { t } from "./i18n.js";
import { renderKbChoices } from "./kb.js";
import { renderMarkdown } from "./md.js";

const $ = (id) => document.getElementById(id);
const state = { images: [], busy: false, urls: [] };

// The PNG sits behind the API key, so it is fetched with the bearer header and shown from a blob: URL.
async function previewUrl(batch, path) {
  const name = String(path).split(/[\\/]/).pop();
  const resp = await fetch(`/v1/console/dicom/${encodeURIComponent(batch)}/${encodeURIComponent(name)}`, { headers: authHeaders() });
  if (!resp.ok) throw await errorOf(resp);
  const url = URL.createObjectURL(await resp.blob());
  state.urls.push(url);
  return url;
}

async function uploadDicom(files) {
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const resp = await fetch("/v1/apps/clinical/dicom", { method: "POST", headers: authHeaders(), body: form });
  if (!resp.ok) throw await errorOf(resp);
  return resp.json();
}

function renderImages() {
  const box = $("clin-images");
  box.replaceChildren();
  for (const im of state.images) {
    const fig = el("figure", "card dicom");
    if (im.url) {
      const img = el("img");
      img.src = im.url;
      img.alt = t("clin_preview_alt", { m: im.modality || "?", b: im.body_part || "?" });
      fig.append(img);
    } else {
      fig.append(el("div", "no-preview muted small", im.note || t("clin_no_preview")));
    }
    fig.append(el("figcaption", "small", im.summary));
    box.append(fig);
  }
  $("clin-clear").hidden = !state.images.length;
}

async function refreshKbs() {
  const box = $("clin-kbs");
  await renderKbChoices(box, new Set([...box.querySelectorAll("input:checked")].map((i) => i.value)));
}

function openSource(s) {
  $("clin-source").hidden = false;
  $("clin-source-title").textContent = `[${s.id}] ${s.document}`;
  $("clin-source-where").textContent = [s.kb, s.heading, s.page != null ? "p. " + s.page : "", "#" + s.chunk_id].filter(Boolean).join(" · ");
  $("clin-source-text").replaceChildren(renderMarkdown(s.text || ""));
}

function citeButton(s) {
  const b = el("button", "cite", `[${s.id}]`);
  b.type = "button";
  b.addEventListener("click", () => openSource(s));
  return b;
}

function renderTriage(tr) {
  const box = $("clin-triage");
  box.hidden = false;
  $("clin-dept").textContent = tr.department;
  $("clin-urgency").textContent = tr.urgency;
  $("clin-urgency").className = "urgency urgency-" + String(tr.urgency).replace(/[^\w-]/g, "");
}

function renderNote(note) {
  renderTriage(note.triage);
  $("clin-note").hidden = false;
  const list = (id, items) => {
    const ul = $(id);
    ul.replaceChildren(...items.map((x) => el("li", null, x)));
    if (!items.length) ul.append(el("li", "muted none", t("clin_none")));
  };
  list("clin-differential", note.differential);
  list("clin-steps", note.next_steps);
  const cites = $("clin-cites");
  cites.replaceChildren();
  const byId = new Map(note.sources.map((s) => [s.id, s]));
  for (const n of note.citations) if (byId.has(n)) cites.append(citeButton(byId.get(n)));
  if (!cites.childElementCount) cites.append(el("span", "muted small", t("clin_no_cites")));
  const src = $("clin-sources");
  src.replaceChildren();
  for (const s of note.sources) {
    const li = el("li");
    li.value = s.id;
    const b = el("button", "source-link", `${s.document}${s.heading ? " — " + s.heading : ""}`);
    b.type = "button";
    b.addEventListener("click", () => openSource(s));
    li.append(b, " ", el("span", "muted small", s.kb));
    src.append(li);
  }
  $("clin-sources-box").hidden = !note.sources.length;
  const red = Object.entries(note.redactions || {});
  $("clin-redactions").textContent = red.length ? t("clin_redacted", { r: red.map(([k, n]) => `${k} ×${n}`).join(", ") }) : "";
  $("clin-notice").textContent = note.safety_notice;
}

function step(name) {
  for (const li of document.querySelectorAll("#clin-steps-bar li")) {
    const order = ["triage", "diagnose", "done"];
    li.className = order.indexOf(li.dataset.step) < order.indexOf(name) ? "done" : li.dataset.step === name ? "now" : "";
  }
}

async function assess() {
  const symptoms = $("clin-symptoms").value.trim();
  $("clin-error").textContent = "";
  if (!symptoms) { $("clin-error").textContent = t("clin_no_symptoms"); return; }
  state.busy = true;
  $("clin-run").disabled = true;
  $("clin-note").hidden = true;
  $("clin-triage").hidden = true;
  $("clin-source").hidden = true;
  $("clin-steps-bar").hidden = false;
  // One seed for both stages, so the triage shown first is the one the diagnosis starts from.
  const seed = Math.floor(Math.random() * 1e6);
  try {
    step("triage");
    renderTriage(await api("/v1/apps/clinical/triage", { method: "POST", body: { symptoms, seed } }));
    step("diagnose");
    const kb = [...document.querySelectorAll("#clin-kbs input:checked")].map((i) => i.value);
    const imaging = state.images.map((i) => i.summary);
    renderNote(await api("/v1/apps/clinical/diagnose", { method: "POST", body: { symptoms, kb, imaging, seed } }));
    step("done");
  } catch (e) {
    $("clin-error").textContent = e.message;
  } finally {
    state.busy = false;
    $("clin-run").disabled = false;
    document.body.dataset.clinicalRuns = String(Number(document.body.dataset.clinicalRuns || 0) + 1);
  }
}

export function initClinical() {
  $("clin-form").addEventListener("submit", (ev) => { ev.preventDefault(); if (!state.busy) assess(); });
  $("clin-dicom-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const files = [...$("clin-dicom").files];
    const errs = $("clin-dicom-errors");
    errs.replaceChildren();
    if (!files.length) { errs.append(el("li", null, t("clin_choose_dicom"))); return; }
    $("clin-upload").disabled = true;
    try {
      const res = await uploadDicom(files);
      for (const d of res.data) {
        let url = null;
        if (d.preview) url = await previewUrl(res.batch, d.preview).catch((e) => { errs.append(el("li", null, e.message)); return null; });
        state.images.push({ ...d, url });
      }
      // The server names files file-<n> (a file name may hold a patient's name); map them back for the reader.
      for (const e of res.errors) {
        const n = Number((e.source.match(/^file-(\d+)/) || [])[1]);
        const name = Number.isInteger(n) && files[n] ? files[n].name : e.source;
        errs.append(el("li", null, `${name}: ${e.message}`));
      }
      $("clin-dicom").value = "";
      renderImages();
    } catch (e) {
      errs.append(el("li", null, e.message));
    } finally {
      $("clin-upload").disabled = false;
      document.body.dataset.dicomUploads = String(Number(document.body.dataset.dicomUploads || 0) + 1);
    }
  });
  $("clin-clear").addEventListener("click", () => {
    for (const u of state.urls) URL.revokeObjectURL(u);
    state.urls = [];
    state.images = [];
    renderImages();
  });
  $("clin-source-close").addEventListener("click", () => { $("clin-source").hidden = true; });
}

export function showClinical() { refreshKbs(); }
