/* Shared helpers of every page: the API client, DOM building, formatting.
 *
 * Data from the API is only ever put into the page with textContent / attributes
 * (see el()), never with innerHTML.
 */
"use strict";

const RL = (() => {
  const pageData = JSON.parse(document.getElementById("page-data").textContent || "{}");

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, data) {
      super(ApiError.describe(status, data));
      this.status = status;
      this.data = data;
    }

    static describe(status, data) {
      const detail = data && data.detail;
      if (typeof detail === "string") return detail;
      if (Array.isArray(detail)) {
        return detail
          .map((d) => {
            const loc = (d.loc || []).filter((p) => p !== "body").join(".");
            return loc ? `${loc}: ${d.msg}` : d.msg;
          })
          .join("; ");
      }
      return `request failed (HTTP ${status})`;
    }

    /** 422 details as [{field, path, msg}], field = last element of loc. */
    get fieldErrors() {
      const detail = this.data && this.data.detail;
      if (!Array.isArray(detail)) return [];
      return detail.map((d) => {
        const loc = (d.loc || []).filter((p) => p !== "body");
        const msg = String(d.msg || "").replace(/^Value error, /, "");
        return { field: loc.length ? loc[loc.length - 1] : null, path: loc, msg };
      });
    }
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const i = part.indexOf("=");
      if (i < 0) continue;
      if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
    }
    return null;
  }

  function loginUrl() {
    return "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }

  /** fetch() a JSON API path; state-changing methods carry the CSRF header. */
  async function api(path, { method = "GET", body, signal } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET" && method !== "HEAD") {
      headers["Content-Type"] = "application/json";
      const token = cookie("rl_csrf");
      if (token) headers["X-CSRF-Token"] = token;
    }
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
    if (resp.status === 401) {
      location.href = loginUrl();
      throw new ApiError(401, { detail: "login required" });
    }
    let data = null;
    const type = resp.headers.get("content-type") || "";
    if (resp.status !== 204 && type.includes("json")) {
      try {
        data = await resp.json();
      } catch (e) {
        data = null;
      }
    }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }

  /** Every item of a paginated list endpoint (items/total/limit/offset). */
  async function apiAll(path, params = {}, pageSize = 500) {
    const items = [];
    let offset = 0;
    for (;;) {
      const q = new URLSearchParams({ ...params, limit: pageSize, offset });
      const page = await api(`${path}?${q}`);
      items.push(...page.items);
      offset += page.items.length;
      if (!page.items.length || offset >= page.total) return items;
    }
  }

  // ------------------------------------------------------------------ DOM

  /** Build an element. Children that are not Nodes become text nodes (escaped). */
  function el(tag, attrs, ...children) {
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

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function $(selector, root = document) {
    return root.querySelector(selector);
  }

  function toast(message, kind = "info", ms = 5000) {
    const box = document.getElementById("toasts");
    const t = el("div", { class: `toast ${kind}`, text: message });
    box.append(t);
    setTimeout(() => t.remove(), ms);
  }

  function debounce(fn, ms) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
  }

  /** Call fn every ms while the tab is visible (and once at once when it becomes visible). */
  function poll(fn, ms) {
    let timer = null;
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
    timer = setInterval(tick, ms);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) tick();
    });
    return { stop: () => clearInterval(timer), now: tick };
  }

  // ------------------------------------------------------------------ formatting

  const LABELS = {
    activation: { relu: "ReLU", leaky_relu: "LeakyReLU", tanh: "tanh", sigmoid: "Sigmoid" },
    augmentation: {
      none: "none",
      crop_flip: "crop + flip",
      crop_flip_blur_color: "crop + flip + blur + colour",
    },
    dataset: { cifar10: "CIFAR-10", fashion_mnist: "Fashion-MNIST", digits: "digits" },
  };

  const FIELD_LABELS = {
    lr_ratio: "LR ratio",
    lr: "learning rate",
    seed: "seed",
    batch_size: "batch size",
    weight_decay: "weight decay",
  };

  /** Human name of a factor value: label("activation", "leaky_relu") = "LeakyReLU". */
  function label(field, value) {
    if (value === null || value === undefined) return "—";
    const names = LABELS[field];
    if (names && Object.prototype.hasOwnProperty.call(names, value)) return names[value];
    if (typeof value === "boolean") return value ? "yes" : "no";
    return String(value);
  }

  function fieldLabel(field) {
    return FIELD_LABELS[field] || String(field).replace(/_/g, " ");
  }

  /** 0.9514 -> "95.14%". Accuracies from the API are fractions in 0..1. */
  function pct(x, digits = 2) {
    if (x === null || x === undefined || Number.isNaN(x)) return "—";
    return `${(x * 100).toFixed(digits)}%`;
  }

  /** Seconds -> "45 s", "12 min 05 s", "3 h 07 min", "2 d 4 h". */
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  function eta(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    return `~${duration(seconds)}`;
  }

  /** A timestamp, short: "14:02:07" today, "Nov 28, 14:02" this year, else with the year. */
  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    const now = new Date();
    if (d.toDateString() === now.toDateString()) {
      return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    }
    const opts = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
    if (d.getFullYear() !== now.getFullYear()) opts.year = "numeric";
    return d.toLocaleString(undefined, opts);
  }

  function num(x, digits = 4) {
    if (x === null || x === undefined) return "—";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    return String(Number(x.toPrecision(digits)));
  }

  const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "lost"];
  const ACTIVE = new Set(["queued", "running"]);
  const RETRYABLE = new Set(["failed", "cancelled", "lost"]);
  const FINISHED = new Set(["succeeded", "failed", "cancelled", "lost"]);

  function badge(status) {
    return el("span", { class: `badge st-${status}`, text: status });
  }

  function progressBar(fraction, { small = false } = {}) {
    const f = Math.max(0, Math.min(1, fraction || 0));
    const inner = el("div", { style: { width: `${(f * 100).toFixed(1)}%` } });
    return el(
      "div",
      {
        class: `progress${small ? " small" : ""}${f >= 1 ? " done" : ""}`,
        role: "progressbar",
        "aria-valuemin": 0,
        "aria-valuemax": 100,
        "aria-valuenow": Math.round(f * 100),
      },
      inner,
    );
  }

  /** The factors of a run's config as one short line: "digits · ReLU · 2:1:1 · crop + flip". */
  function factorLine(config) {
    const c = config || {};
    return [
      label("dataset", c.dataset),
      label("activation", c.activation),
      c.lr_ratio,
      label("augmentation", c.augmentation),
      `seed ${c.seed ?? 0}`,
    ]
      .filter((x) => x !== undefined)
      .join(" · ");
  }

  /** Run an action (cancel/retry/delete) with a toast for the outcome. */
  async function runAction(action, runId) {
    const paths = {
      cancel: ["POST", `/api/runs/${runId}/cancel`],
      retry: ["POST", `/api/runs/${runId}/retry`],
      delete: ["DELETE", `/api/runs/${runId}`],
    };
    const [method, path] = paths[action];
    if (action === "delete" && !window.confirm(`Delete run #${runId} and its checkpoint?`)) {
      return false;
    }
    try {
      await api(path, { method });
      toast(`Run #${runId}: ${action === "delete" ? "deleted" : action + " requested"}`);
      return true;
    } catch (e) {
      if (e.status !== 401) toast(`Run #${runId}: ${e.message}`, "error");
      return false;
    }
  }

  return {
    pageData,
    ApiError,
    api,
    apiAll,
    cookie,
    el,
    append,
    clear,
    $,
    toast,
    debounce,
    poll,
    label,
    fieldLabel,
    pct,
    duration,
    eta,
    when,
    num,
    STATUSES,
    ACTIVE,
    RETRYABLE,
    FINISHED,
    badge,
    progressBar,
    factorLine,
    runAction,
  };
})();
