// The knowledge view: list and create knowledge bases, upload documents with a progress bar, and see each file's
// ingestion result.
import { api, authHeaders } from "./api.js";
import { t } from "./i18n.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
let current = null;

export async function knowledgeBases() {
  return (await api("/v1/kb")).data.map((k) => k.name);
}

async function refresh() {
  const ul = $("kb-list");
  ul.replaceChildren();
  let names = [];
  try { names = await knowledgeBases(); } catch (e) { $("kb-error").textContent = e.message; return; }
  if (!names.length) ul.append(el("li", "muted", t("kb_none")));
  for (const name of names) {
    const b = el("button", "kb-item" + (name === current ? " active" : ""), name);
    b.addEventListener("click", () => open(name));
    const li = el("li");
    li.append(b);
    ul.append(li);
  }
}

async function open(name) {
  current = name;
  $("kb-detail").hidden = false;
  $("kb-detail-name").textContent = name;
  const info = await api("/v1/kb/" + encodeURIComponent(name));
  const ul = $("kb-docs");
  ul.replaceChildren();
  for (const d of info.data) ul.append(el("li", null, `${d.document} · ${d.chunks} ${t("chunks")}`));
  await refresh();
}

// XMLHttpRequest, not fetch: only it reports upload progress.
function upload(name, files) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/kb/" + encodeURIComponent(name) + "/documents");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    const bar = $("kb-progress");
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.addEventListener("progress", (ev) => { if (ev.lengthComputable) bar.value = (90 * ev.loaded) / ev.total; });
    xhr.addEventListener("load", () => {
      bar.value = 100;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep null */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new Error(body?.error?.message || `${xhr.status} ${xhr.statusText}`));
    });
    xhr.addEventListener("error", () => reject(new Error(t("no_server"))));
    xhr.send(form);
  });
}

/** Fill `box` with one checkbox per knowledge base; those named in `chosen` (a Set) start checked. */
export async function renderKbChoices(box, chosen) {
  box.replaceChildren();
  let names = [];
  try { names = await knowledgeBases(); } catch { /* no kb router on this server */ }
  if (!names.length) box.append(el("span", "muted small", t("no_kbs_selected")));
  for (const name of names) {
    const label = el("label", "check");
    const input = el("input");
    input.type = "checkbox";
    input.value = name;
    input.checked = chosen.has(name);
    label.append(input, " ", el("span", null, name));
    box.append(label);
  }
}

export function initKnowledge() {
  $("kb-create").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("kb-error").textContent = "";
    const name = $("kb-name").value.trim();
    if (!name) return;
    try {
      await api("/v1/kb", { method: "POST", body: { name } });
      $("kb-name").value = "";
      await open(name);
    } catch (e) { $("kb-error").textContent = e.message; }
  });
  $("kb-upload").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const files = [...$("kb-files").files];
    if (!current || !files.length) return;
    const tbody = $("kb-results");
    tbody.replaceChildren();
    try {
      const res = await upload(current, files);
      for (const r of res.data) {
        const tr = el("tr", r.status === "failed" ? "failed" : "ok");
        tr.append(el("td", null, r.document), el("td", null, r.status), el("td", null, r.message || `${r.chunks} ${t("chunks")}`));
        tbody.append(tr);
      }
      $("kb-files").value = "";
      await open(current);
    } catch (e) {
      const tr = el("tr", "failed");
      tr.append(el("td", null, files.map((f) => f.name).join(", ")), el("td", null, "failed"), el("td", null, e.message));
      tbody.append(tr);
    }
  });
  for (const b of document.querySelectorAll('nav [data-view="kb"]')) b.addEventListener("click", () => refresh());
}
