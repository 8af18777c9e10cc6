/* DOM building and small timing helpers. Data from the API is only ever put into the page
 * with textContent / attributes (see el()), never with innerHTML. */

/** Build an element. Children that are not Nodes become text nodes (escaped). */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export const byId = (id) => document.getElementById(id);

export function toast(message, kind = "info", ms = 5000) {
  const t = el("div", { class: `toast ${kind}`, text: message });
  byId("toasts").append(t);
  setTimeout(() => t.remove(), ms);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Call fn every ms while the tab is visible (and at once when it becomes visible again). */
export function poll(fn, ms) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try {
      await fn();
    } catch (e) {
      if (e.status !== 401) console.warn("refresh failed:", e.message);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(tick, ms);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) tick();
  });
  return { stop: () => clearInterval(timer), now: tick };
}

/** A key for display: underscores get a line-break opportunity after them, so narrow
 * screens wrap "jitter_saturation" at "jitter_|saturation", never mid-word. */
export function breakable(name) {
  const parts = String(name).split("_");
  return parts.flatMap((p, i) => (i < parts.length - 1 ? [`${p}_`, el("wbr")] : [p]));
}
