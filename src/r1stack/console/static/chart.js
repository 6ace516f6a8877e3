// Horizontal bar charts as inline SVG built with DOM calls (no library, no markup strings): labels and values
// reach the page as text nodes only.
import { svg } from "./dom.js";

// items: [{label, value, color?}] -> <svg>; width in px, rows of `row` px.
export function barChart(items, { width = 460, row = 24, labelWidth = 170, title = "" } = {}) {
  const height = Math.max(1, items.length) * row + 8;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "bar-chart" });
  if (title) root.append(svg("title", {}, title));
  const top = Math.max(1e-9, ...items.map((i) => i.value));
  const span = width - labelWidth - 56;
  items.forEach((item, n) => {
    const y = n * row + 4;
    const w = Math.max(item.value > 0 ? 1 : 0, (span * item.value) / top);
    const label = String(item.label);
    root.append(
      svg("text", { x: labelWidth - 8, y: y + row * 0.65, "text-anchor": "end", class: "bar-label" },
        label.length > 26 ? label.slice(0, 25) + "…" : label),
      svg("rect", { x: labelWidth, y: y + 3, width: w.toFixed(1), height: row - 8, rx: 3, fill: item.color || "#2563eb", class: "bar" }),
      svg("text", { x: labelWidth + w + 6, y: y + row * 0.65, class: "bar-value" }, formatValue(item.value)),
    );
  });
  return root;
}

function formatValue(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
