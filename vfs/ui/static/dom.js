// Small helpers shared by the pages: building DOM (text only, never HTML from data),
// calling the JSON API, formatting sizes, links between pages.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// Text from the repository as the page shows it, escaped as the CLI prints it
// (vfs/quoting.py escape_text): a bidirectional override would make a name read
// backwards (`evil\u202etxt.exe` as `evilexe.txt`), an invisible character would make
// two names look alike, a byte that is not UTF-8 (U+DC80..U+DCFF, see encodeValue)
// would show as U+FFFD, and a newline or a tab would show as a space (`x\ny.txt` as
// `x y.txt`, another file's name). Tab, newline and carriage return are shown as
// `\t`, `\n`, `\r` (and BEL, BS, VT, FF as `\a`, `\b`, `\v`, `\f`), every other such
// code point as the octal escapes of its UTF-8 bytes (`\342\200\256`). Text read as
// lines (a message, a text preview) keeps its tabs and line breaks: `lines`.
const UNSAFE = /[\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const NAMED = { 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r" };
const octal = (b) => "\\" + b.toString(8).padStart(3, "0");
export function visible(text) {
  return String(text).replace(UNSAFE, (ch) => {
    const c = ch.charCodeAt(0);
    if (Object.hasOwn(NAMED, c)) return NAMED[c];
    if (c >= 0xdc80 && c <= 0xdcff) return octal(c - 0xdc00);
    if (c >= 0xd800 && c <= 0xdfff) return "\\ufffd";
    return Array.from(new TextEncoder().encode(ch), octal).join("");
  });
}

// Text read as lines (a message, a text preview), as a text node: `visible`, but its
// tabs and line endings kept (\n, \r\n). A carriage return that ends no line is shown
// as `\r`, as the CLI prints it: the page would show nothing of it, and a terminal
// `safe\rEVIL` as EVIL over safe.
export function lines(text) {
  return document.createTextNode(String(text).split(/(\t|\r?\n)/)
    .map((part, i) => (i % 2 ? part : visible(part))).join(""));
}

// Attributes a person reads (an image's alt text, a tooltip): shown by `visible`, as text
// is. Others (href, src, value, data-*) are data and stay as given.
const READ = new Set(["alt", "title", "aria-label", "placeholder"]);

// h("a", {href: "#/x", class: "c"}, "text", child...): an element; strings become text
// (shown by `visible`).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (READ.has(k) && v !== true) el.setAttribute(k, visible(v));
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(visible(c)));
  }
  return el;
}

// A name that is not UTF-8 comes in the API's JSON as the CLI's --json writes it: each
// byte that does not decode comes as a lone surrogate U+DC80..U+DCFF. A query sends that
// byte back as %XX (URLSearchParams would send U+FFFD, naming no file), and
// queryParams reads %XX that is not UTF-8 back into the same surrogate.
function encodeValue(s) {
  let out = "";
  for (const ch of String(s)) {
    const c = ch.codePointAt(0);
    if (c >= 0xdc80 && c <= 0xdcff) out += "%" + (c - 0xdc00).toString(16).toUpperCase();
    else if (c >= 0xd800 && c <= 0xdfff) out += "%EF%BF%BD"; // any other lone surrogate
    else out += encodeURIComponent(ch);
  }
  return out;
}

// "k=v&…" of the params that have a value (see encodeValue).
export function query(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${encodeValue(k)}=${encodeValue(v)}`)
    .join("&");
}

// Bytes as UTF-8, each byte that does not decode as U+DC80 + byte (Python's surrogateescape).
function decodeBytes(b) {
  let out = "";
  for (let i = 0; i < b.length;) {
    const x = b[i];
    const n = x < 0x80 ? 1 : x >= 0xc2 && x < 0xe0 ? 2 : x >= 0xe0 && x < 0xf0 ? 3 : x >= 0xf0 && x < 0xf5 ? 4 : 0;
    let c = n === 1 ? x : n ? x & (0xff >> (n + 1)) : -1;
    for (let j = 1; j < n && c >= 0; j++) {
      const y = b[i + j];
      c = y !== undefined && (y & 0xc0) === 0x80 ? (c << 6) | (y & 0x3f) : -1;
    }
    const ok = c >= 0 && c >= [0, 0, 0x80, 0x800, 0x10000][n] && c <= 0x10ffff && !(c >= 0xd800 && c <= 0xdfff);
    out += ok ? String.fromCodePoint(c) : String.fromCharCode(0xdc00 + x);
    i += ok ? n : 1;
  }
  return out;
}

function decodeValue(s) {
  const bytes = [];
  const text = new TextEncoder();
  for (const piece of s.replace(/\+/g, " ").split(/(%[0-9a-fA-F]{2})/)) {
    if (/^%[0-9a-fA-F]{2}$/.test(piece)) bytes.push(parseInt(piece.slice(1), 16));
    else bytes.push(...text.encode(piece));
  }
  return decodeBytes(bytes);
}

// The params of a query "k=v&…" (the last of a name wins), as `query` writes them.
export function queryParams(q) {
  const out = {};
  for (const part of (q || "").split("&")) {
    if (!part) continue;
    const at = part.indexOf("=");
    out[decodeValue(at < 0 ? part : part.slice(0, at))] = at < 0 ? "" : decodeValue(part.slice(at + 1));
  }
  return out;
}

// A whole number past 2**53 (an int64 id, a time in nanoseconds) parsed as a double
// reads as another: 1234567890123456789 and ...790 both as 1234567890123456800. The
// routes whose values a page shows as text (`api(..., true)`) keep such a number as a
// BigInt, read from its JSON text (where the browser gives a reviver that text);
// `cell`, `paramText` and the experiments' sort take BigInts.
function exactInts(key, value, context) {
  return typeof value === "number" && !Number.isSafeInteger(value) && context
    && /^-?[0-9]+$/.test(context.source) ? BigInt(context.source) : value;
}

export async function api(route, params = {}, exact = false) {
  const res = await fetch(`/api/${route}?${query(params)}`, { credentials: "same-origin" });
  let body;
  try {
    body = JSON.parse(await res.text(), exact ? exactInts : undefined);
  } catch {
    body = { error: `HTTP ${res.status}` };
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

// JSON of a value that may hold BigInts (exactInts), each written with its digits.
function jsonText(v) {
  return JSON.stringify(v, (k, x) => (typeof x === "bigint" ? JSON.rawJSON(String(x)) : x));
}

export function rawUrl(rev, path, inline = false) {
  return `/api/raw?${query({ rev, path, inline: inline ? "1" : null })}`;
}

// A link to a page of this app: route ("version") and its query.
export function link(route, params = {}) {
  const s = query(params);
  return `#/${route}${s ? "?" + s : ""}`;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
export function human(n) {
  if (n === null || n === undefined) return "-";
  let v = Number(n), i = 0; // (a BigInt too: exactInts)
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i]}`;
}

export function signed(n) {
  return n > 0 ? `+${human(n)}` : n < 0 ? `-${human(-n)}` : "±0";
}

export function cell(v) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number" || typeof v === "bigint") return String(v); // (all its digits)
  if (typeof v === "string") return v;
  return jsonText(v);
}

// A parameter or metric of a version: "null" for a null value, "-" where it has none,
// and a text that would read as another value ("2", "true", "null", "-", "") in double
// quotes, as the CLI shows it (vfs.model.params.reads_as_other): the text "2" beside
// the number 2 is another value. `text`: v is a text even if it spells a float JSON cannot
// hold (".inf", "-.Inf", ".NAN": a float metric arrives so spelt), quoted beside it.
export function valueCell(v, text = false) {
  if (typeof v === "string" && (readsAsOther(v) || (text && NON_FINITE.test(v)))) return JSON.stringify(v);
  return v === null ? "null" : cell(v);
}

// A parameter's value in full, as `dvfs diff` shows it (vfs.cli.history.param_text):
// a text as it is (in double quotes if it would read as another value: "2", "null"),
// anything else as JSON (null as "null", a number with all its digits: a diff of
// 0.1234567 and 0.1234568 is no diff rounded).
export function paramText(v) {
  return typeof v === "string" && !readsAsOther(v) ? v : jsonText(v);
}

const TYPED = /^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|~|null|Null|NULL|true|True|TRUE|false|False|FALSE|-|)$/;

const NON_FINITE = /^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/; // (vfs.model.params.NON_FINITE)

// A value of a row diff: as `cell` shows it, but in a column where a text may stand
// beside a number, a boolean or a list (the diff's `mixed_columns`), a
// text that reads as another value is quoted, as `dvfs diff --rows` shows it ("2" beside 2).
export function rowCell(v, mixed) {
  return mixed && typeof v === "string" && readsAsOther(v) ? JSON.stringify(v) : cell(v);
}

function readsAsOther(text) {
  return TYPED.test(text) || /^\s|\s$/.test(text) || /^\[.*\]$|^\{.*\}$/s.test(text);
}

// An argument as a shell would need it, as `dvfs audit` and `dvfs lineage` show
// commands (Python's shlex.quote): a message of two words reads as one argument, not two.
export function shellQuote(arg) {
  const s = String(arg);
  if (!s) return "''";
  return /[^\w@%+=:,./-]/.test(s) ? `'${s.replaceAll("'", "'\"'\"'")}'` : s;
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
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : visible(c))));
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
