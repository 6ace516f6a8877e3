// A small Markdown renderer that builds DOM nodes and never parses HTML: every piece of untrusted text reaches
// the page through textContent, so `<script>` or `<img onerror=...>` in model output shows as the characters it is.

import { el } from "./dom.js";

const SAFE_LINK = /^(https?:|mailto:)/i;
const KEYWORDS = new Set(
  ("def class return if elif else for while in not and or import from as with try except finally raise " +
   "lambda yield async await pass break continue None True False function const let var new this typeof " +
   "null undefined true false switch case default throw catch public private static void int float double " +
   "char struct enum fn pub use mut impl match select where insert update delete create table").split(" "));

// Syntax colouring by a plain tokenizer: comments, strings, numbers and common keywords.
export function highlight(code) {
  const frag = document.createDocumentFragment();
  const re = /(\/\/[^\n]*|#[^\n]*|\/\*[\s\S]*?\*\/)|("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|(\b\d+(?:\.\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)/g;
  let last = 0;
  for (const m of code.matchAll(re)) {
    let cls = null;
    if (m[1]) cls = "tok-c";
    else if (m[2]) cls = "tok-s";
    else if (m[3]) cls = "tok-n";
    else if (m[4] && KEYWORDS.has(m[4])) cls = "tok-k";
    if (!cls) continue;
    if (m.index > last) frag.append(code.slice(last, m.index));
    frag.append(el("span", cls, m[0]));
    last = m.index + m[0].length;
  }
  if (last < code.length) frag.append(code.slice(last));
  return frag;
}

// Underscores inside words (snake_case, __dunder__ names in text) are not emphasis, as in CommonMark.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([\s\S]+?)\*\*|(?<!\w)__([\s\S]+?)__(?!\w)|\*([^*\s][^*]*?)\*|(?<!\w)_([^_\s][^_]*?)_(?!\w)|\[([^\]\n]+)\]\(([^)\s]+)\)|\[(\d{1,2})\]/g;

// Inline spans into `parent`; `cite(n)` returns a node for a citation marker [n], or null to leave it as text.
export function renderInline(text, parent, cite) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    const before = text.slice(last, m.index);
    let node = null;
    if (m[1]) node = el("code", null, m[2]);
    else if (m[3] !== undefined || m[4] !== undefined) { node = el("strong"); renderInline(m[3] ?? m[4], node, cite); }
    else if (m[5] !== undefined || m[6] !== undefined) { node = el("em"); renderInline(m[5] ?? m[6], node, cite); }
    else if (m[7] !== undefined) {
      if (SAFE_LINK.test(m[8])) {
        node = el("a");
        node.href = m[8];
        node.rel = "noopener noreferrer nofollow";
        node.target = "_blank";
        renderInline(m[7], node, cite);
      }
    } else if (m[9] !== undefined && cite) node = cite(Number(m[9]));
    if (!node) continue;
    if (before) parent.append(before);
    parent.append(node);
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function paragraph(lines, cite) {
  const p = el("p");
  lines.forEach((line, i) => {
    if (i) p.append(el("br"));
    renderInline(line, p, cite);
  });
  return p;
}

// Markdown text -> DocumentFragment. Supports fenced code, headings, lists, quotes, rules and paragraphs.
export function renderMarkdown(text, cite = null) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  let para = [];
  const flush = () => { if (para.length) { frag.append(paragraph(para, cite)); para = []; } };
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)/);
    if (fence) {
      flush();
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      const pre = el("pre");
      const code = el("code", fence[2] ? "lang-" + fence[2].replace(/[^\w-]/g, "") : null);
      code.append(highlight(body.join("\n")));
      pre.append(code);
      frag.append(pre);
      continue;
    }
    const h = line.match(/^(#{1,6})\s+(.*)$/);
    if (h) { flush(); const e = el("h" + Math.min(6, h[1].length + 2)); renderInline(h[2], e, cite); frag.append(e); i++; continue; }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flush(); frag.append(el("hr")); i++; continue; }
    if (/^\s*>/.test(line)) {
      flush();
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
      const q = el("blockquote");
      q.append(renderMarkdown(body.join("\n"), cite));
      frag.append(q);
      continue;
    }
    const item = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
    if (item.test(line)) {
      flush();
      const ordered = /\d/.test(line.match(item)[1]);
      const list = el(ordered ? "ol" : "ul");
      while (i < lines.length && item.test(lines[i])) {
        const li = el("li");
        renderInline(lines[i].match(item)[2], li, cite);
        list.append(li);
        i++;
      }
      frag.append(list);
      continue;
    }
    if (!line.trim()) { flush(); i++; continue; }
    para.push(line);
    i++;
  }
  flush();
  return frag;
}
