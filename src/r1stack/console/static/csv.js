// CSV in and out (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes), done here because the
// risk endpoint takes JSON rows and the page must read the analyst's file itself.

export function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false, i = 0;
  const s = String(text).replace(/^\uFEFF/, "");
  while (i < s.length) {
    const c = s[i];
    if (quoted) {
      if (c === '"' && s[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"' && field === "") { quoted = true; i++; continue; }
    if (c === ",") { row.push(field); field = ""; i++; continue; }
    if (c === "\r" || c === "\n") {
      row.push(field); field = "";
      if (row.some((f) => f !== "")) rows.push(row);
      row = [];
      i += c === "\r" && s[i + 1] === "\n" ? 2 : 1;
      continue;
    }
    field += c; i++;
  }
  if (quoted) throw new Error("unterminated quoted field");
  row.push(field);
  if (row.some((f) => f !== "")) rows.push(row);
  return rows;
}

// CSV text -> [{column: value}] keyed by the header row.
export function csvRecords(text) {
  const [header, ...body] = parseCsv(text);
  if (!header) return { header: [], records: [] };
  const names = header.map((h) => h.trim());
  return { header: names, records: body.map((r) => Object.fromEntries(names.map((h, k) => [h, r[k] ?? ""]))) };
}

function cell(v) {
  const s = v === null || v === undefined ? "" : Array.isArray(v) ? v.join(" | ") : String(v);
  // A leading =, +, - or @ would run as a formula in a spreadsheet; a quote mark keeps it text.
  const safe = /^[=+\-@\t\r]/.test(s) && !/^-?\d/.test(s) ? "'" + s : s;
  return /[",\r\n]/.test(safe) ? '"' + safe.replaceAll('"', '""') + '"' : safe;
}

export function toCsv(columns, rows) {
  return [columns.map(cell).join(","), ...rows.map((r) => columns.map((c) => cell(r[c])).join(","))].join("\r\n") + "\r\n";
}
