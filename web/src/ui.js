// Small DOM helpers shared by the views.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== ""));
  return node;
}

const formats = new Map();
export function money(amount, currency) {
  if (!formats.has(currency)) {
    formats.set(currency, new Intl.NumberFormat("en", { style: "currency", currency, maximumFractionDigits: 0 }));
  }
  return formats.get(currency).format(Number(amount));
}

export function daysSince(iso) {
  return (Date.now() - new Date(iso).getTime()) / 86400e3;
}

let timer = null;
/** A message at the top of the page (kind: info, conflict, error). */
export function notice(text, kind = "info") {
  const node = document.getElementById("notice");
  node.textContent = text;
  node.className = `notice ${kind}`;
  node.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => (node.hidden = true), 8000);
}
