// Diff of two versions: files added, removed, modified, renamed with size deltas,
// parameters, and for a tabular file its rows (`dvfs diff --rows`), changes marked.
import { api, errorBox, h, human, link, pager, paramText, rawUrl, rowCell, signed, put, swap } from "./dom.js";

const LIMIT = 200;

export async function diffPage(el, params) {
  const oldRev = h("input", { name: "old", value: params.old || "HEAD~1", size: 14 });
  const newRev = h("input", { name: "new", value: params.new || "HEAD", size: 14 });
  put(el, h("h1", {}, "Diff"), h("form", {
    class: "filters",
    onsubmit: (e) => {
      e.preventDefault();
      location.hash = link("diff", { old: oldRev.value, new: newRev.value });
    },
  }, h("label", {}, "from ", oldRev), h("label", {}, " to ", newRev), h("button", { type: "submit" }, "Compare")));
  if (!params.old || !params.new) {
    put(el, h("p", { class: "muted" }, "Pick two versions here, or tick two on the Versions page."));
    return;
  }
  const offset = params.offset || 0; // as given: the server refuses, by name, what is no number
  let d;
  try {
    d = await api("diff", { old: params.old, new: params.new, offset, limit: LIMIT }, true);
  } catch (err) {
    put(el, errorBox(err, "diff", "new"));
    return;
  }
  const s = d.summary;
  put(el, h("p", { class: "summary" },
    h("a", { href: link("version", { rev: d.old.id }) }, d.old.revision), " → ",
    h("a", { href: link("version", { rev: d.new.id }) }, d.new.revision), ": ",
    `${s.added} added, ${s.removed} removed, ${s.modified} modified, ${s.renamed} renamed `,
    `(+${human(s.bytes_added)}, -${human(s.bytes_removed)})`,
    s.parameters ? `, ${s.parameters} parameters changed` : ""));
  const rowsBox = h("section", { class: "rowdiff" });
  const fileLink = (rev, path) => h("a", { href: link("version", { rev, dir: parentDir(path), file: path }) }, path);
  const body = d.changes.map((c) => {
    const delta = Number(c.new_size ?? 0) - Number(c.old_size ?? 0);
    const where = c.status === "removed" ? fileLink(d.old.id, c.path) : c.kind === "dir" ? c.path + "/" : fileLink(d.new.id, c.path);
    return h("tr", { class: `change ${c.status}` },
      h("td", { class: "status" }, c.status),
      h("td", {}, c.old_path ? [c.old_path, " → "] : null, where),
      h("td", { class: "num" }, human(c.old_size)),
      h("td", { class: "num" }, human(c.new_size)),
      h("td", { class: "num" }, signed(delta)),
      h("td", {}, c.tabular && c.status !== "renamed" ? h("button", {
        class: "rows-btn",
        onclick: () => showRows(rowsBox, d, c.path),
      }, "rows") : null,
      IMAGE.test(c.path) && c.kind === "file" ? h("button", {
        class: "images-btn",
        onclick: () => showImages(rowsBox, d, c),
      }, "images") : null));
  });
  put(el, 
    h("table", { class: "changes" },
      h("thead", {}, h("tr", {}, ["status", "path", "old size", "new size", "delta", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, body)),
    pager(d.total_changes, d.offset, d.limit, (o) => { location.hash = link("diff", { ...params, offset: o }); }),
  );
  if (d.parameters.length) {
    put(el, h("h2", {}, "Parameters"), h("table", { class: "changes" },
      h("thead", {}, h("tr", {}, ["status", "name", "old", "new"].map((t) => h("th", {}, t)))),
      h("tbody", {}, d.parameters.map((p) => h("tr", { class: `change ${p.status}` },
        // ("-": the side the parameter is not on; the JSON names no value there)
        h("td", {}, p.status), h("td", {}, p.name),
        ["old", "new"].map((side) => h("td", {}, Object.hasOwn(p, side) ? paramText(p[side]) : "-")))))));
  }
  put(el, rowsBox);
  if (params.rows) await showRows(rowsBox, d, params.rows);
}

const IMAGE = /\.(png|jpe?g|gif|webp)$/i;

// The two sides of an image, side by side (a side where it does not exist says so).
function showImages(box, d, c) {
  const side = (label, v, path) => h("figure", { class: "side" },
    path ? h("img", { src: rawUrl(v.id, path, true), alt: `${path} in ${v.revision}` })
      : h("p", { class: "muted" }, "not in this version"),
    h("figcaption", {}, `${label}: ${v.revision}`));
  swap(box, h("h2", {}, `Image ${c.path}`), h("div", { class: "images" },
    side("old", d.old, c.status === "added" ? null : c.old_path || c.path),
    side("new", d.new, c.status === "removed" ? null : c.path)));
}

function parentDir(path) {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

// A column's name in a list, quoted where blanks at either end or a ", " in it would
// not tell it from another (` v` from `v`), as `dvfs diff --rows` shows it.
const columnName = (n) => (/^\s|\s$|, /.test(n) ? `"${n}"` : n);

const ROWS = 50; // rows of a row diff shown first
const ROWS_MAX = 500; // ... and at most, on asking for more (the route's page limit)

async function showRows(box, d, path, key = "", limit = ROWS) {
  swap(box, h("p", { class: "muted" }, `Comparing the rows of ${path}…`));
  // (kept with a refusal too: a key the files refuse is mended here)
  const keyInput = h("input", { name: "key", value: key, placeholder: "key columns, e.g. id" });
  const keyForm = h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); showRows(box, d, path, keyInput.value); } },
    h("label", {}, "match rows by ", keyInput), h("button", { type: "submit" }, "Diff rows"));
  let r;
  try {
    r = await api("rows", { old: d.old.id, new: d.new.id, path, key, limit }, true);
  } catch (err) {
    swap(box, h("h2", {}, `Rows of ${path}`), keyForm, errorBox(err));
    return;
  }
  const s = r.summary;
  const mixed = new Set(r.mixed_columns);
  const shown = (v, c) => rowCell(v, mixed.has(c));
  const cols = [];
  for (const row of r.rows) {
    for (const c of [...Object.keys(row.key || {}), ...Object.keys(row.values || {}), ...Object.keys(row.changes || {})]) {
      if (!cols.includes(c)) cols.push(c);
    }
  }
  swap(box, 
    h("h2", {}, `Rows of ${path}`),
    keyForm,
    h("p", { class: "summary" }, `${s.added} added, ${s.removed} removed, ${s.changed ?? 0} changed, ${s.unchanged ?? "?"} unchanged`,
      r.key.length ? ` (key ${r.key.map(columnName).join(", ")})` : ""),
    r.schema.length ? h("ul", { class: "schema" }, r.schema.map((c) =>
      h("li", { class: `change ${c.status}` }, `${c.status}: ${c.column} ${c.old_type ?? ""} → ${c.new_type ?? ""}`))) : null,
    r.notes.map((n) => h("p", { class: "note" }, n)),
    h("div", { class: "scroll" }, h("table", { class: "data rows" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), cols.map((c) => h("th", {}, c)))),
      h("tbody", {}, r.rows.map((row) => h("tr", { class: `row ${row.status}` },
        h("td", { class: "status" }, row.status === "added" ? "+" : row.status === "removed" ? "−" : "~"),
        cols.map((c) => {
          // (own values only: a column may be named "constructor")
          if (row.status === "changed") {
            if (Object.hasOwn(row.changes, c)) {
              const ch = row.changes[c];
              return h("td", { class: "cell-changed" }, h("del", {}, shown(ch.old, c)), " ", h("ins", {}, shown(ch.new, c)));
            }
            return h("td", {}, row.key && Object.hasOwn(row.key, c) ? shown(row.key[c], c) : "");
          }
          return h("td", {}, row.values && Object.hasOwn(row.values, c) ? shown(row.values[c], c) : "");
        })))))),
    r.more ? h("p", { class: "muted more" }, `… and ${r.more.toLocaleString()} more rows `,
      limit < ROWS_MAX ? h("button", { onclick: () => showRows(box, d, path, key, ROWS_MAX) }, `Show up to ${ROWS_MAX}`)
        : "(`dvfs diff OLD NEW PATH --rows --limit N` shows them)") : null,
  );
}
