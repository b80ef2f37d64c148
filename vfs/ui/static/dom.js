// Small helpers shared by the pages: building DOM (text only, never HTML from data),
// calling the JSON API, formatting sizes, links between pages.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// h("a", {href: "#/x", class: "c"}, "text", child...): an element; strings become text.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export async function api(route, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const res = await fetch(`/api/${route}?${q}`, { credentials: "same-origin" });
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export function rawUrl(rev, path, inline = false) {
  const q = new URLSearchParams({ rev, path });
  if (inline) q.set("inline", "1");
  return `/api/raw?${q}`;
}

// A link to a page of this app: route ("version") and its query.
export function link(route, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return `#/${route}${s ? "?" + s : ""}`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function human(n) {
  if (n === null || n === undefined) return "-";
  let v = n, i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

export function signed(n) {
  return n > 0 ? `+${human(n)}` : n < 0 ? `-${human(-n)}` : "±0";
}

export function cell(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

// A parameter or metric of a version: "null" for a null value, "-" where it has none.
export function valueCell(v) {
  return v === null ? "null" : cell(v);
}

// An error box; a 404 naming close revisions links to each.
export function errorBox(err, route = "version", param = "rev") {
  const cands = (err.body && err.body.candidates) || [];
  return h("div", { class: "error", role: "alert" },
    h("strong", {}, err.status === 404 ? "Not found: " : "Error: "), err.message,
    cands.length ? h("p", {}, "Closest versions: ",
      cands.map((c, i) => [i ? ", " : "",
        /\s/.test(c) ? c : h("a", { href: link(route, { [param]: c }) }, c)])) : null);
}

// Previous / next buttons for a page of `total` rows.
export function pager(total, offset, limit, go) {
  if (total <= limit && offset === 0) return h("div", { class: "pager muted" }, `${total} shown`);
  const last = Math.min(offset + limit, total);
  return h("div", { class: "pager" },
    h("button", { disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "‹ Prev"),
    h("span", {}, ` ${total ? offset + 1 : 0}–${last} of ${total} `),
    h("button", { disabled: last >= total, onclick: () => go(offset + limit) }, "Next ›"));
}

export function badges(row) {
  return [
    ...(row.branches || []).map((b) => h("span", { class: "badge branch" }, b)),
    ...(row.tags || []).map((t) => h("span", { class: "badge tag" }, t)),
  ];
}

// el.append and el.replaceChildren with nested arrays and nulls allowed, as h() takes.
export function put(el, ...children) {
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

export function swap(el, ...children) {
  el.replaceChildren();
  return put(el, ...children);
}

// The page's CSRF token: present when the server runs with --allow-write, and then the
// pages offer its actions (tag a version, delete a branch).
export const CSRF = document.querySelector('meta[name="dvfs-csrf"]')?.content || null;

// POST an action (`dvfs ui --allow-write`); its answer, or an ApiError.
export async function act(name, body) {
  const res = await fetch(`/api/actions/${name}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-DVFS-CSRF": CSRF || "" },
    body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new ApiError(res.status, answer);
  return answer;
}

// Show the current page again (after an action changed what it shows).
export function reload() {
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
