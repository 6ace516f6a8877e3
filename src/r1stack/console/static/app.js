// The console's entry: sign-in, tabs, and the chat view (streaming, reasoning apart, stop, regenerate,
// conversations saved on the server after every turn).
import { api, ApiError, setKey, signedIn, authHeaders, errorOf, streamChat, UNAUTHORIZED } from "./api.js";
import { t, translatePage } from "./i18n.js";
import { renderMarkdown } from "./md.js";
import { el, downloadBlob } from "./dom.js";
import { initKnowledge, renderKbChoices } from "./kb.js";
import { startDashboard, stopDashboard } from "./dash.js";
import { initRisk } from "./risk.js";
import { initClinical, showClinical } from "./clinical.js";

const $ = (id) => document.getElementById(id);
const state = { conv: null, list: [], controller: null, busy: false, me: null };

function showError(msg) { $("chat-error").textContent = msg || ""; }

// --- sign-in ------------------------------------------------------------------------------------------------------

async function signIn(key) {
  setKey(key);
  try {
    await api("/v1/models");
    state.me = await api("/v1/console/me");
  } catch (e) {
    setKey("");
    throw e;
  }
}

function showSignIn(message = "") {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("key").focus();
}

async function enterApp() {
  $("signin").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = state.me?.key_id ?? "operator";
  // The dashboard is the operator's: keys without the admin group do not see its tab.
  document.querySelector('nav [data-view="dash"]').hidden = !state.me?.admin;
  await refreshList();
  await refreshKbChoices();
  const saved = sessionStorage.getItem("r1stack.conv");
  if (saved && state.list.some((c) => c.id === saved)) await openConversation(saved);
  else newConversation();
  $("prompt").focus();
}

// --- conversations ------------------------------------------------------------------------------------------------

async function refreshList() {
  state.list = (await api("/v1/conversations")).data;
  const ul = $("conv-list");
  ul.replaceChildren();
  for (const c of state.list) {
    const li = el("li");
    const b = el("button", "conv-item" + (state.conv?.id === c.id ? " active" : ""), c.title);
    b.dataset.id = c.id;
    b.addEventListener("click", () => openConversation(c.id).catch((e) => showError(e.message)));
    li.append(b);
    ul.append(li);
  }
}

function newConversation() {
  state.conv = { id: null, title: t("untitled"), settings: {}, messages: [] };
  sessionStorage.removeItem("r1stack.conv");
  applySettings({});
  renderConversation();
  refreshList().catch(() => {});
}

async function openConversation(id) {
  if (state.busy) return;
  state.conv = await api("/v1/conversations/" + id);
  sessionStorage.setItem("r1stack.conv", id);
  applySettings(state.conv.settings || {});
  renderConversation();
  await refreshList();
}

function currentSettings() {
  const num = (id) => { const v = parseFloat($(id).value); return Number.isFinite(v) ? v : undefined; };
  return {
    temperature: num("temperature"), top_p: num("top-p"), max_tokens: num("max-tokens"),
    web_search: $("web-search").checked,
    knowledge_bases: [...document.querySelectorAll("#kb-choices input:checked")].map((i) => i.value),
  };
}

function applySettings(s) {
  if (s.temperature !== undefined) $("temperature").value = s.temperature;
  if (s.top_p !== undefined) $("top-p").value = s.top_p;
  if (s.max_tokens !== undefined) $("max-tokens").value = s.max_tokens;
  $("web-search").checked = Boolean(s.web_search);
  for (const i of document.querySelectorAll("#kb-choices input")) i.checked = (s.knowledge_bases || []).includes(i.value);
}

async function refreshKbChoices() {
  await renderKbChoices($("kb-choices"), new Set(state.conv?.settings?.knowledge_bases || []));
}

// Saves `c` (the open conversation by default); when the server cannot be reached, retries every few seconds
// so an answer kept in the page after a lost connection reaches the server once it is back.
async function save(c = state.conv) {
  const body = { title: c.title, settings: c === state.conv ? currentSettings() : c.settings, messages: c.messages };
  try {
    if (!c.id) {
      const made = await api("/v1/conversations", { method: "POST", body });
      c.id = made.id;
      if (c === state.conv) {
        sessionStorage.setItem("r1stack.conv", c.id);
        for (const id of ["rename", "export-md", "export-json", "delete"]) $(id).disabled = false;
      }
    } else {
      await api("/v1/conversations/" + c.id, { method: "PATCH", body });
    }
    if (c.unsaved) { c.unsaved = false; showError(""); }
    await refreshList();
  } catch (e) {
    showError(t("saved_error", { m: e.message }));
    if (e instanceof ApiError) return;  // the server answered no: retrying will not change its mind
    c.unsaved = true;
    setTimeout(() => { if (c.unsaved) save(c); }, 3000);
  }
}

// --- rendering ----------------------------------------------------------------------------------------------------

function renderConversation() {
  $("conv-title").textContent = state.conv.title;
  const box = $("messages");
  box.replaceChildren();
  for (const m of state.conv.messages) box.append(messageNode(m).root);
  box.scrollTop = box.scrollHeight;
  showError("");
  for (const id of ["rename", "export-md", "export-json", "delete"]) $(id).disabled = !state.conv.id;
}

function citeFor(m) {
  return (n) => {
    const src = (m.sources || []).find((s) => s.id === n);
    if (!src) return null;
    const b = el("button", "cite", "[" + n + "]");
    b.type = "button";
    b.addEventListener("click", () => openSource(src));
    return b;
  };
}

function openSource(src) {
  $("source-panel").hidden = false;
  $("source-title").textContent = "[" + src.id + "] " + (src.title || src.document || src.url || "");
  $("source-where").textContent = src.url || [src.knowledge_base, src.document, src.chunk != null ? "#" + src.chunk : ""].filter(Boolean).join(" · ");
  $("source-text").replaceChildren(renderMarkdown(src.text || ""));
  $("source-close").focus();
}

// One message's DOM, with an update() that re-renders it from the message object.
function messageNode(m) {
  const root = el("article", "msg " + m.role);
  const parts = {};
  if (m.role === "assistant") {
    parts.think = el("details", "thinking");
    parts.thinkHead = el("summary");
    parts.thinkBody = el("div", "thinking-body");
    parts.think.append(parts.thinkHead, parts.thinkBody);
    parts.answer = el("div", "answer md");
    parts.sources = el("ol", "sources");
    parts.stats = el("div", "stats muted small");
    parts.error = el("div", "msg-error error");
    root.append(parts.think, parts.answer, parts.sources, parts.stats, parts.error);
  } else {
    parts.answer = el("div", "answer md");
    root.append(parts.answer);
  }
  const update = () => {
    if (m.role === "assistant") {
      parts.think.hidden = !m.reasoning;
      parts.thinkHead.textContent = m.think_seconds != null ? t("thought_for", { s: m.think_seconds.toFixed(1) }) : m.streaming ? t("thinking_now") : t("thinking");
      parts.thinkBody.textContent = m.reasoning || "";
      parts.answer.replaceChildren(renderMarkdown(m.content || "", citeFor(m)));
      parts.sources.replaceChildren();
      for (const s of m.sources || []) {
        const li = el("li");
        li.value = s.id;
        const b = el("button", "source-link", s.title || s.document || s.url || "source " + s.id);
        b.type = "button";
        b.addEventListener("click", () => openSource(s));
        li.append(b);
        if (s.url) li.append(" ", el("span", "muted small url", s.url));
        parts.sources.append(li);
      }
      parts.sources.hidden = !(m.sources || []).length;
      parts.stats.textContent = m.stats ? t("tokens", { n: m.stats.tokens, tps: m.stats.tps.toFixed(1) }) : "";
      parts.error.textContent = m.error || "";
    } else {
      parts.answer.replaceChildren(renderMarkdown(m.content || ""));
    }
  };
  update();
  return { root, update };
}

// --- a turn -------------------------------------------------------------------------------------------------------

function setBusy(busy) {
  state.busy = busy;
  $("send").disabled = busy;
  $("regenerate").disabled = busy;
  $("stop").disabled = !busy;
  document.body.classList.toggle("busy", busy);
}

function requestMessages() {
  return state.conv.messages
    .filter((m) => (m.role === "user" || m.role === "assistant") && (m.content || m.role === "user"))
    .map((m) => ({ role: m.role, content: m.content }));
}

async function runTurn() {
  const s = currentSettings();
  const body = { messages: requestMessages(), temperature: s.temperature, top_p: s.top_p, max_tokens: s.max_tokens };
  if (s.web_search) body.web_search = true;
  if (s.knowledge_bases.length) body.knowledge_bases = s.knowledge_bases;
  const m = { role: "assistant", content: "", reasoning: "" };
  Object.defineProperty(m, "streaming", { value: true, writable: true, enumerable: false });
  const node = messageNode(m);
  $("messages").append(node.root);
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  showError("");
  const t0 = performance.now();
  let thinkStart = null, tokens = 0, first = null, pending = false, arrived = [];
  // One re-render per frame however fast tokens come; each token's arrival-to-frame delay is a performance
  // measure ("r1-token-delay") that benchmarks/console.py reads.
  const paint = () => {
    arrived.push(performance.now());
    if (pending) return;
    pending = true;
    const flush = () => {
      if (!pending) return;
      pending = false;
      node.update();
      $("messages").scrollTop = $("messages").scrollHeight;
      const now = performance.now();
      for (const at of arrived) performance.measure("r1-token-delay", { start: at, end: now });
      arrived = [];
    };
    requestAnimationFrame(flush);
    // A browser that grants this tab few frames (many tabs, a busy machine) still sees text within ~30 ms.
    setTimeout(flush, 30);
  };
  try {
    await streamChat(body, {
      signal: controller.signal,
      onChunk: (chunk) => {
        if (chunk.sources) m.sources = chunk.sources;
        if (chunk.notices) m.notices = chunk.notices;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        const d = chunk.choices?.[0]?.delta;
        if (!d) return;
        if (d.reasoning_content) {
          if (thinkStart === null) thinkStart = performance.now();
          m.reasoning += d.reasoning_content;
        }
        if (d.content) {
          if (first === null) first = performance.now();
          if (thinkStart !== null && m.think_seconds == null) m.think_seconds = (performance.now() - thinkStart) / 1000;
          m.content += d.content;
        }
        if (d.content || d.reasoning_content) paint();
      },
    });
  } catch (e) {
    if (e.name === "AbortError") m.error = t("stopped");
    else if (e instanceof ApiError && e.status !== 0) m.error = e.message;
    else m.error = t("lost") + (e.message ? " (" + e.message + ")" : "");
  } finally {
    state.controller = null;
    m.streaming = false;
    const secs = (performance.now() - t0) / 1000;
    if (thinkStart !== null && m.think_seconds == null) m.think_seconds = (performance.now() - thinkStart) / 1000;
    if (!m.reasoning) delete m.reasoning;
    if (m.notices?.length) m.error = [m.error, ...m.notices].filter(Boolean).join(" ");
    if (tokens) m.stats = { tokens, seconds: secs, tps: tokens / Math.max(secs, 1e-3) };
    const failedBeforeAnswer = m.error && !m.content && !m.reasoning;
    if (failedBeforeAnswer) showError(m.error);
    if (!failedBeforeAnswer) state.conv.messages.push(m);
    else node.root.remove();
    node.update();
    await save();
    setBusy(false);
    // A finished turn (answered, stopped or failed) is counted, so scripts and tests can wait for it.
    document.body.dataset.turns = String(Number(document.body.dataset.turns || 0) + 1);
    $("prompt").focus();
  }
}

async function send() {
  if (state.busy) return;
  const text = $("prompt").value;
  if (!text.trim()) { showError(t("no_text")); return; }
  if (!state.conv.id && !state.conv.messages.length) state.conv.title = text.trim().slice(0, 60);
  $("conv-title").textContent = state.conv.title;
  setBusy(true);
  const m = { role: "user", content: text };
  state.conv.messages.push(m);
  $("messages").append(messageNode(m).root);
  $("prompt").value = "";
  await save();
  await runTurn();
}

async function regenerate() {
  if (state.busy) return;
  const msgs = state.conv.messages;
  while (msgs.length && msgs[msgs.length - 1].role === "assistant") msgs.pop();
  if (!msgs.length) return;
  setBusy(true);
  renderConversation();
  await runTurn();
}

async function download(format) {
  const resp = await fetch(`/v1/conversations/${state.conv.id}/export?format=${format}`, { headers: authHeaders() });
  if (!resp.ok) throw await errorOf(resp);
  const name = (resp.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/)?.[1] || "conversation";
  downloadBlob(await resp.blob(), name);
}

// --- wiring -------------------------------------------------------------------------------------------------------

function showView(name) {
  for (const v of ["chat", "kb", "apps", "dash"]) $("view-" + v).hidden = v !== name;
  for (const b of document.querySelectorAll("nav [data-view]")) b.setAttribute("aria-selected", String(b.dataset.view === name));
  if (name === "dash") startDashboard(state.me); else stopDashboard();
  if (name === "chat" && !$("app").hidden) refreshKbChoices();
  if (name === "apps" && !$("app").hidden) showApp(document.querySelector("nav [data-app][aria-selected=true]")?.dataset.app || "risk");
}

function showApp(name) {
  $("risk-page").hidden = name !== "risk";
  $("clinical-page").hidden = name !== "clinical";
  for (const b of document.querySelectorAll("nav [data-app]")) b.setAttribute("aria-selected", String(b.dataset.app === name));
  if (name === "clinical") showClinical();
}

function wire() {
  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await signIn($("key").value.trim());
      $("key").value = "";
      await enterApp();
    } catch (e) {
      showSignIn(e instanceof ApiError && e.status === 401 ? t("bad_key") : e instanceof ApiError ? e.message : t("no_server"));
    }
  });
  // A key refused after sign-in (revoked, or the server restarted without it): back to the form, with why.
  window.addEventListener(UNAUTHORIZED, () => {
    if (!signedIn() || $("app").hidden) return;
    setKey("");
    stopDashboard();
    showSignIn(t("bad_key"));
  });
  $("signout").addEventListener("click", () => { setKey(""); sessionStorage.removeItem("r1stack.conv"); stopDashboard(); showSignIn(); });
  $("composer").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
  $("prompt").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
  });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && state.controller) state.controller.abort(); });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("regenerate").addEventListener("click", () => regenerate());
  $("new-chat").addEventListener("click", () => { if (!state.busy) newConversation(); });
  $("rename").addEventListener("click", async () => {
    const title = prompt(t("rename_ph"), state.conv.title);
    if (!title || !title.trim()) return;
    state.conv.title = title.trim().slice(0, 200);
    $("conv-title").textContent = state.conv.title;
    await save();
  });
  $("delete").addEventListener("click", async () => {
    if (!state.conv.id || !confirm(t("confirm_delete"))) return;
    try { await api("/v1/conversations/" + state.conv.id, { method: "DELETE" }); } catch (e) { showError(e.message); return; }
    newConversation();
  });
  $("export-md").addEventListener("click", () => download("markdown").catch((e) => showError(e.message)));
  $("export-json").addEventListener("click", () => download("json").catch((e) => showError(e.message)));
  $("source-close").addEventListener("click", () => { $("source-panel").hidden = true; });
  for (const b of document.querySelectorAll("nav [data-view]")) b.addEventListener("click", () => showView(b.dataset.view));
  for (const b of document.querySelectorAll("nav [data-app]")) b.addEventListener("click", () => showApp(b.dataset.app));
  initKnowledge(() => state.me);
  initRisk();
  initClinical();
}

async function main() {
  translatePage();
  wire();
  showView("chat");
  if (!signedIn()) { showSignIn(); return; }
  try {
    state.me = await api("/v1/console/me");
    await enterApp();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) { setKey(""); showSignIn(t("bad_key")); }
    else showSignIn(e instanceof ApiError ? e.message : t("no_server"));
  }
}

main();
