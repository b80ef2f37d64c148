// One version: its metadata (as `dvfs show`), a file browser by directory, a preview.
import { act, api, ApiError, badges, CSRF, errorBox, h, human, link, pager, paramText, rawUrl, cell, lines, put, reload, swap } from "./dom.js";
import { highlight } from "./highlight.js";

const FILES = 200;
const ROWS = 50;
const COLUMNS = 100; // of a table, as the server shows them (vfs.ui.previews.COLUMNS_SHOWN)

export async function versionPage(el, params) {
  const rev = params.rev || "HEAD";
  const dir = params.dir || "";
  let v, listing;
  try {
    [v, listing] = await Promise.all([
      api("version", { rev }, true),
      api("files", { rev, dir, offset: params.offset || 0, limit: FILES }),
    ]);
  } catch (err) {
    put(el, h("h1", {}, `Version ${rev}`), errorBox(err));
    return;
  }
  const go = (p) => { location.hash = link("version", { rev, dir, ...p }); };
  const changes = h("dd", { class: "changes" }, "…");
  const params_ = Object.entries(flat(v.parameters));
  put(el, 
    h("h1", {}, `Version ${v.version} `, badges(v)),
    h("dl", { class: "fields" },
      h("dt", {}, "id"), h("dd", {}, h("code", {}, v.id)),
      v.parents.length ? [h("dt", {}, v.parents.length > 1 ? "parents" : "parent"), h("dd", {},
        v.parents.map((p, i) => [i ? ", " : "", h("a", { href: link("version", { rev: p }) }, h("code", {}, p.slice(0, 10)))]))] : null,
      h("dt", {}, "author"), h("dd", {}, v.author),
      h("dt", {}, "created"), h("dd", {}, v.created),
      v.git_commit ? [h("dt", {}, "git"), h("dd", {}, h("code", {}, v.git_commit), v.git_dirty ? " (dirty)" : "")] : null,
      h("dt", {}, "message"), h("dd", { class: "message" }, lines(v.message)),
      h("dt", {}, "totals"), h("dd", {}, `${v.totals.files.toLocaleString()} files, ${human(v.totals.bytes)} in ${v.totals.directories.toLocaleString()} directories`),
      h("dt", {}, "changes"), changes,
      params_.length ? [h("dt", {}, "parameters"), h("dd", {}, h("table", { class: "params" },
        params_.map(([k, val]) => h("tr", {}, h("td", {}, k), h("td", {}, paramText(val))))))] : null,
      v.pipeline.length ? [h("dt", {}, "pipeline"), h("dd", {},
        h("a", { href: link("lineage", { rev: v.id }) }, `${v.pipeline.length} stages`))] : null,
    ),
  );

  if (CSRF) put(el, tagForm(v));

  const crumbs = [h("a", { href: link("version", { rev }) }, v.version)];
  let acc = "";
  for (const part of dir ? dir.split("/") : []) {
    acc = acc ? `${acc}/${part}` : part;
    crumbs.push(" / ", h("a", { href: link("version", { rev, dir: acc }) }, part));
  }
  const rows = listing.entries.map((e) => {
    const target = e.type === "dir"
      ? link("version", { rev, dir: e.path })
      : link("version", { rev, dir, file: e.path });
    return h("tr", { class: e.path === params.file ? "selected" : "" },
      h("td", { class: "name" }, h("a", { href: target, class: `entry ${e.type}` },
        e.name + (e.type === "dir" ? "/" : ""), e.target ? ` → ${e.target}` : "")),
      h("td", { class: "num" }, e.type === "dir" ? "" : human(e.size)),
      h("td", { class: "added", "data-path": e.path }, e.type === "dir" ? "" : e.added || (listing.added_known ? "" : "…")));
  });
  const browser = h("section", { class: "files" },
    h("h2", { class: "crumbs" }, crumbs),
    h("table", { class: "listing" },
      h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "size"),
        h("th", {}, "added in"))),
      h("tbody", {}, rows)),
    pager(listing.total, listing.offset, listing.limit, (o) => go({ offset: o })));
  const preview = h("section", { class: "preview" });
  put(el, h("div", { class: "split" }, browser, preview));
  fillChanges(changes, v); // after the page is shown
  if (!listing.added_known) fillAdded(browser, rev, dir, listing); // after the page is shown
  if (params.file) await showPreview(preview, rev, params, go);
}

// What the last tagging said, and of which version: the page is drawn again once the
// tag is made (its badge shows), and the form drawn then for that version shows it, once.
let taggedSaid = null;

// "Tag this version" (`dvfs tag NAME vN`), offered when the server allows writes.
function tagForm(v) {
  const name = h("input", { name: "tag", placeholder: "new tag name", required: true });
  const said = h("span", { class: "said", role: "status" },
    taggedSaid && taggedSaid.id === v.id ? taggedSaid.text : null);
  taggedSaid = null;
  return h("form", {
    class: "action tag-form",
    onsubmit: async (e) => {
      e.preventDefault();
      swap(said);
      try {
        const done = await act("tag", { name: name.value, rev: v.id });
        taggedSaid = { id: v.id, text: `tagged ${done.tagged.version} as ${done.tagged.name}` };
        swap(said, taggedSaid.text);
        reload();
      } catch (err) {
        swap(said, errorBox(err));
      }
    },
  }, h("label", {}, "Tag this version ", name), h("button", { type: "submit" }, "Tag"), said);
}

// The counts of changes since the parent: a comparison of two trees (long for a large
// directory), so asked for apart, once the rest of the version is shown.
async function fillChanges(dd, v) {
  let c;
  try {
    c = (await api("version/changes", { rev: v.id })).changes;
  } catch (err) {
    swap(dd, errorBox(err));
    return;
  }
  swap(dd,
    c.since ? h("a", { href: link("diff", { old: v.parents[0], new: v.id }) }, `since ${c.since}`) : "first version",
    `: ${c.added} added, ${c.modified} modified, ${c.removed} removed, ${c.renamed} renamed`);
}

// "Added in" of a directory too large to find it with the listing: asked for apart,
// and filled in when it comes ("vK or before" where the search stopped).
async function fillAdded(box, rev, dir, listing) {
  let a;
  try {
    a = await api("added", { rev, dir, offset: listing.offset, limit: listing.limit });
  } catch (err) {
    return;
  }
  for (const td of box.querySelectorAll("td.added[data-path]")) {
    const p = td.dataset.path;
    if (Object.hasOwn(a.added, p)) td.textContent = a.added[p];
    else if (Object.hasOwn(a.before, p)) {
      td.textContent = `${a.before[p]} or before`;
      td.title = "unchanged since then at least: the search stopped there";
    } else if (td.textContent === "…") td.textContent = "";
  }
}

// Parameters as `dvfs show` names them: nested ones by their dotted names, an empty
// mapping as the value {} (it is one: `empty = {}`). (No prototype: `__proto__` is a
// name like any other.)
function flat(obj, prefix = "", out = Object.create(null)) {
  for (const [k, v] of Object.entries(obj || {})) {
    const name = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) flat(v, name, out);
    else out[name] = v;
  }
  return out;
}

async function showPreview(el, rev, params, go) {
  const path = params.file;
  const offset = params.roffset || 0; // as given: the server refuses, by name, what is no number
  const coffset = params.coffset || 0;
  // A table's rows come first, before its rows are counted (count=later: total null,
  // when the server can prove their width without counting); then the count, asked for
  // again, which may also find the file no table after all (a row of another width).
  let p;
  try {
    p = await api("preview", { rev, path, offset, limit: ROWS, coffset, count: "later" }, true);
  } catch (err) {
    put(el, errorBox(err));
    return;
  }
  await renderPreview(el, p, params, go);
  if (p.kind !== "table" || p.total !== null) return;
  try {
    p = await api("preview", { rev, path, offset, limit: ROWS, coffset }, true);
  } catch (err) {
    swap(el, errorBox(err));
    return;
  }
  el.replaceChildren();
  await renderPreview(el, p, params, go);
}

async function renderPreview(el, p, params, go) {
  const path = params.file;
  const said = h("div", { class: "download-said" });
  put(el, h("h2", {}, p.path, " ",
    h("a", { class: "download", href: rawUrl(p.id, p.path), download: "", onclick: (e) => download(e, said) }, "download"),
    h("span", { class: "muted" }, ` ${human(p.size)}`)), said);
  if (p.note) put(el, h("p", { class: "note" }, p.note));
  if (p.kind === "table") {
    const at = { dir: params.dir, file: path, roffset: p.offset, coffset: p.column_offset };
    put(el, 
      h("p", { class: "muted" }, `${p.format.toUpperCase()} · ${p.total === null ? "counting rows…" : `${p.total.toLocaleString()} rows`} · ${p.total_columns.toLocaleString()} columns`),
      p.total_columns > p.columns.length ? h("div", { class: "columns-pager" }, "columns ",
        pager(p.total_columns, p.column_offset, COLUMNS, (o) => go({ ...at, coffset: o }))) : null,
      h("div", { class: "scroll" }, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, p.columns.map((c) => h("th", { title: c.type }, c.name)))),
        h("tbody", {}, p.rows.map((r) => h("tr", {}, r.map((x) => h("td", {}, cell(x)))))))),
      p.total === null ? null : pager(p.total, p.offset, p.limit, (o) => go({ ...at, roffset: o })));
  } else if (p.kind === "image") {
    put(el, h("img", { class: "image", src: rawUrl(p.id, p.path, true), alt: p.path }));
  } else if (p.kind === "text") {
    const code = h("code", {}, lines(p.text));
    put(el, h("pre", { class: "text" }, code));
    await highlight(code, p.path);
    if (p.truncated) put(el, h("p", { class: "muted" }, "… the first 64 KiB; download it for the rest"));
  } else if (p.kind === "binary") {
    put(el, h("pre", { class: "hex" }, lines(p.hex.join("\n"))));
    if (p.truncated) put(el, h("p", { class: "muted" }, "… the first bytes only"));
  } else if (p.kind === "link") {
    put(el, h("p", {}, "symbolic link to ", h("code", {}, p.target)));
  }
}

// A download asked of the server first (HEAD: it reads the file's first chunk and
// answers before any byte is sent), so that a file it cannot give (a remote gone, a
// pack lost) says why on the page rather than as a failed download with no reason.
async function download(e, said) {
  const a = e.currentTarget;
  if (a.dataset.checked === "1") { a.dataset.checked = ""; return; } // checked: go on
  e.preventDefault();
  swap(said);
  let res;
  try {
    res = await fetch(a.href, { method: "HEAD", credentials: "same-origin" });
  } catch (err) {
    swap(said, errorBox(err));
    return;
  }
  if (!res.ok) {
    const got = await fetch(a.href, { credentials: "same-origin" });
    const body = await got.json().catch(() => ({ error: `HTTP ${got.status}` }));
    swap(said, errorBox(got.ok ? new ApiError(res.status, {}) : new ApiError(got.status, body)));
    return;
  }
  a.dataset.checked = "1";
  a.click();
}
