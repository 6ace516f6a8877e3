// The same /v1 API any client calls, with the signed-in key as a bearer header; errors become ApiError with the
// server's own message.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

let KEY = sessionStorage.getItem("r1stack.key") || "";

export function signedIn() { return Boolean(KEY); }
export function setKey(key) { KEY = key; if (key) sessionStorage.setItem("r1stack.key", key); else sessionStorage.removeItem("r1stack.key"); }
export function authHeaders(extra = {}) { return KEY ? { Authorization: "Bearer " + KEY, ...extra } : extra; }

// Every refusal of the key (wrong, or revoked while the page was open) also goes out as one event, so the page
// can return to the sign-in form wherever it happened.
export const UNAUTHORIZED = "r1stack:unauthorized";

export async function errorOf(resp) {
  if (resp.status === 401) window.dispatchEvent(new Event(UNAUTHORIZED));
  let msg = resp.status + " " + resp.statusText;
  try {
    const body = await resp.json();
    msg = body?.error?.message || body?.detail?.[0]?.msg || msg;
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(msg, resp.status);
}

export async function api(path, { method = "GET", body, signal, raw = false } = {}) {
  const opts = { method, headers: authHeaders(), signal };
  if (body !== undefined) { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  const resp = await fetch(path, opts);
  if (!resp.ok) throw await errorOf(resp);
  if (raw) return resp;
  return resp.json();
}

// POST a streamed chat completion; calls onChunk(parsed) per SSE data block. Resolves when [DONE] arrives or
// the stream ends; rejects with ApiError for an in-band error, or with the fetch error (abort, network).
export async function streamChat(body, { signal, onChunk }) {
  const resp = await fetch("/v1/chat/completions", {
    method: "POST", signal, headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
  });
  if (!resp.ok) throw await errorOf(resp);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  let done = false;
  for (;;) {
    const { value, done: end } = await reader.read();
    if (end) break;
    buf += dec.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") { done = true; continue; }
        const parsed = JSON.parse(data);
        if (parsed.error) throw new ApiError(parsed.error.message, parsed.error.code);
        onChunk(parsed);
      }
    }
  }
  if (!done) throw new ApiError("stream ended early", 0);
}
